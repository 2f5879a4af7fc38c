"""Planning a study: its configurations (sweep expansion), its runs (one per seed), their ids.

A run id is a hash of everything that determines the run's result (model, data spec and split
hashes, strategy, resolved training settings, device): the same computation has the same id in
any study (see :mod:`tunebench.results.store` for the identity rule).

A *configuration* is one resolved strategy with resolved training settings
(:class:`~tunebench.spec.sweep.Configuration`); every configuration runs once per seed.

- ``grid``: every combination of the values, per strategy, of the keys that apply to it;
- ``random``: ``trials`` draws (seeded by ``sampler_seed``) from lists (a uniform choice) or ranges
  (``{low, high, log}``), each draw applied to every strategy;
- ``optuna``: chosen as results come in (:mod:`tunebench.study.search`).

Configurations that resolve to the same settings are kept once.  Names read like
``lora:r=18 lr=0.0005`` (the *group*); with several seeds a run's label adds `` seed=1``.
"""

from __future__ import annotations

import itertools
import math
import random
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import torch

from tunebench.data.bundle import DatasetBundle
from tunebench.data.subsets import nested_subset
from tunebench.errors import SpecError
from tunebench.methods import build_strategy
from tunebench.results.choices import AttentionChoice, CompileChoice
from tunebench.spec.parts import RangeSpec, TrainingSpec, stable_hash
from tunebench.spec.rates import body_rate, head_rate
from tunebench.spec.strategy import OPTIONS, StrategySpec
from tunebench.spec.study import StudySpec
from tunebench.spec.sweep import Configuration, apply, corners, parsed_space
from tunebench.training import batching, engine
from tunebench.training.resources import environment


def configurations(spec: StudySpec) -> list[Configuration]:
    """The study's configurations in order (strategy by strategy), without duplicates.

    For ``search: optuna`` these are the space's corners only as a check; the search itself
    chooses its configurations as it goes (:mod:`tunebench.study.search`).
    """
    method = spec.sweep.method
    if method is None:
        return [Configuration(s, spec.training) for s in spec.strategies]
    space = parsed_space(spec)
    if method == "grid":
        out = []
        for strategy in spec.strategies:
            keys = [k for k in space if k.applies_to(strategy.kind)]
            for combo in itertools.product(*(space[k] for k in keys)):
                out.append(apply(spec, strategy, dict(zip(keys, combo, strict=True))))
        return unique(out)
    if method == "random":
        rng = random.Random(spec.sweep.sampler_seed)
        draws = [{k: sample(v, rng) for k, v in space.items()} for _ in range(spec.sweep.trials or 0)]
        return unique([apply(spec, s, {k: v for k, v in d.items() if k.applies_to(s.kind)})
                       for d in draws for s in spec.strategies])
    return unique(corners(spec))  # optuna: the space's corners (its search chooses as it goes)


def sample(values: list[Any] | RangeSpec, rng: random.Random) -> Any:
    """One draw: a uniform choice from a list; uniform (or log-uniform) from a range; integers stay integers."""
    if isinstance(values, list):
        return values[rng.randrange(len(values))]
    if values.integer:
        return rng.randint(int(values.low), int(values.high))
    if values.log:
        return float(f"{math.exp(rng.uniform(math.log(values.low), math.log(values.high))):.3g}")
    return float(f"{rng.uniform(values.low, values.high):.3g}")


def unique(configs: list[Configuration]) -> list[Configuration]:
    """Drop configurations whose resolved strategy and training equal an earlier one's."""
    seen: set[str] = set()
    out = []
    for c in configs:
        key = c.strategy.model_dump_json() + c.training.model_dump_json()
        if key not in seen:
            seen.add(key)
            out.append(c)
    return out


def run_label(group: str, seed: int, seeds: list[int] | None) -> str:
    """A run's unique name: its configuration, plus the seed when the study repeats seeds."""
    return f"{group} seed={seed}" if seeds and len(seeds) > 1 else group


# --- what every run of a study shares, and the runs it plans -----------------------------------


@dataclass
class Prepared:
    """What every run of a study shares: data, tokenizer, encoded splits, device, precision."""

    bundle: DatasetBundle
    model_source: str
    tokenizer: Any
    train: batching.EncodedSplit
    validation: batching.EncodedSplit
    test: batching.EncodedSplit
    device: torch.device
    precision: str
    #: the attention kernel every run loads (``model.attention``; ``auto`` measured once per study)
    attention: AttentionChoice | None = None
    #: whether runs compile (``training.compile``; ``auto`` decided once per study from the kernel probe)
    compile: CompileChoice | None = None
    #: the training subset the runs train on (``data.train_size``): size, draw, pool rows; None: the whole split
    subset: dict[str, int] | None = None

    def subset_of(self, size: int, draw: int) -> Prepared:
        """The same study on the first ``size`` rows of the training pool's nested order for ``draw``
        (:mod:`tunebench.data.subsets`): validation, test and tokenization shared, nothing tokenized again."""
        pool = self.bundle.train
        if size > len(pool):
            raise SpecError(f"data.train_size {size:,} is larger than the training pool ({len(pool):,} rows after "
                            "cleaning, splitting and train_limit); choose sizes up to it")
        idx, note = nested_subset(pool, size, draw)
        bundle = replace(self.bundle, train=pool.select(idx), notes=[*self.bundle.notes, note])
        enc = self.train
        train = batching.EncodedSplit([enc.input_ids[i] for i in idx],
                                      None if enc.token_type_ids is None else [enc.token_type_ids[i] for i in idx],
                                      enc.labels[idx])
        return replace(self, bundle=bundle, train=train, subset={"size": size, "draw": draw, "pool": len(pool)})

    @property
    def compile_auto(self) -> bool:
        return bool(self.compile is not None and self.compile.on)

    @property
    def attention_kernel(self) -> str:
        """What ``load_classifier`` is asked for: the chosen kernel, else transformers' own choice."""
        return self.attention.kernel if self.attention is not None and self.attention.kernel else "auto"

    def class_weights(self, mode: str) -> tuple[float, ...] | None:
        """The training loss's weight per class for ``training.class_weight``: ``balanced`` is scikit-learn's
        rule (``n / (classes × count)``, the tf-idf floor's) over the training split's labels; None when
        unweighted, and when balanced weights are all equal (equal counts: the same computation, the same run id).
        A class absent from the training split keeps weight 1 (it contributes no loss either way).  Multi-label:
        ``pos_weight`` of the BCE loss per label, ``negatives / positives`` (scikit-learn's balanced weights of
        each label's two-class problem, as a ratio), 1 for a label without positives or without negatives."""
        from sklearn.utils.class_weight import compute_class_weight

        if mode == "none" or not len(self.train.labels) or self.bundle.task == "regression":  # no classes
            return None
        if self.train.labels.ndim == 2:  # multi-label: each label's positive weight, its negatives over positives
            positives = self.train.labels.sum(axis=0)
            negatives = len(self.train.labels) - positives
            weights = np.divide(negatives, positives, out=np.ones_like(positives), where=(positives > 0) & (negatives > 0))
            return tuple(round(float(w), 6) for w in weights)
        labels = np.asarray(self.train.labels, dtype=np.int64)
        present = np.unique(labels)
        weights = np.ones(len(self.bundle.label_names))
        weights[present] = compute_class_weight("balanced", classes=present, y=labels)
        return None if np.allclose(weights, weights[0], rtol=0, atol=1e-12) else tuple(round(float(w), 6)
                                                                                          for w in weights)

    @property
    def target_scale(self) -> tuple[float, float] | None:
        """A regression's training-target mean and standard deviation: the loss is on the standardised target (a
        fresh head starts near 0 and every strategy's rates mean the same whatever the target's units); None for
        classification."""
        if self.bundle.task != "regression" or not len(self.train.labels):
            return None
        y = np.asarray(self.train.labels, dtype=np.float64)
        sd = float(y.std(ddof=1)) if len(y) > 1 else 0.0
        return round(float(y.mean()), 8), round(sd if sd > 0 else 1.0, 8)

    def environment(self) -> dict[str, Any]:
        """This process's environment record (:func:`training.resources.environment`) and the kernel choice."""
        env = environment(self.device)
        if self.attention is not None:
            env["attention"] = self.attention.as_record()
        if self.compile is not None:
            env["compile"] = self.compile.as_record()
        return env


def run_config(spec: StudySpec, strategy: StrategySpec, precision: str, training: TrainingSpec | None = None,
               seed: int | None = None, compile_auto: bool = False,
               class_weights: tuple[float, ...] | None = None, n_train: int | None = None,
               target_scale: tuple[float, float] | None = None) -> engine.RunConfig:
    """The engine's settings for ``strategy``: ``training`` (a sweep's, default the study's) and ``seed``;
    ``compile_auto``: what ``training.compile: auto`` resolved to for this study (:class:`CompileChoice`);
    ``class_weights``: ``training.class_weight`` resolved on the training split (:meth:`Prepared.class_weights`);
    ``n_train``: the training rows, for ``training.min_steps_per_epoch`` (:func:`passes_for`);
    ``target_scale``: a regression's training-target mean and sd (:attr:`Prepared.target_scale`)."""
    t = training or spec.training
    stopping = t.early_stopping
    lr = body_rate(strategy, t.lr)
    return engine.RunConfig(
        epochs=strategy.epochs or t.epochs, batch_size=t.batch_size, eval_batch_size=t.eval_batch_size,
        lr=lr, weight_decay=t.weight_decay,
        warmup_ratio=t.warmup_ratio, scheduler=strategy.scheduler or t.scheduler, max_grad_norm=t.max_grad_norm,
        grad_accumulation=t.grad_accumulation, seed=t.seed if seed is None else seed, precision=precision,
        prefix_cache=t.prefix_cache, bucketing=t.bucketing,
        compile=t.compile if isinstance(t.compile, bool) else compile_auto,
        head_lr=head_rate(strategy, lr, t.head_lr),
        patience=stopping.patience if stopping else None, min_delta=stopping.min_delta if stopping else 0.0,
        max_length=spec.model.max_length, selection_metric=t.selection_metric, class_weights=class_weights,
        passes=passes_for(t, n_train), target_scale=target_scale,
    )


#: DataSpec fields that change a run only through its training split (hashed): not hashed again
SUBSET_FIELDS = ("train_sizes", "train_size", "data_seeds")

#: Model options that decide whether a model may load, not what it computes: not part of the run id.
MODEL_LOADING_OPTIONS = ("trust_remote_code", "allow_pickle")


def run_id_for(spec: StudySpec, strategy: StrategySpec, bundle: DatasetBundle, cfg: engine.RunConfig,
               device: torch.device) -> str:
    """A stable id from everything that determines the run's result."""
    return stable_hash({
        "model": spec.model.model_dump(exclude=set(MODEL_LOADING_OPTIONS)),
        # min_per_class changes a run only through the splits, whose hashes are here: ids of runs stored before it;
        # the subset fields likewise (the training split's hash is the subset's)
        "data": {k: v for k, v in spec.data.model_dump(exclude={"min_per_class", *SUBSET_FIELDS}).items()
                 if LATER_DATA_FIELDS.get(k, ...) != v},  # a later field at its default: ids as before it
        "hashes": bundle.hashes(),
        "strategy": identity_options(strategy),
        "run": identity_settings(cfg),
        "device": device.type,
    })


#: DataSpec fields added after run ids were first written, at the value that computes as before: left out of a
#: run's id at that value (single-label data: every stored run keeps its id)
LATER_DATA_FIELDS: dict[str, Any] = {"task": "single_label", "label_sep": None}


#: The option keys every run id has hashed (``None`` where an option is not the strategy kind's), as
#: of the PEFT methods.  An option added later enters a run id only when it has a value, so adding
#: one to any kind never changes the ids of stored runs of the others (it did: every run of a study
#: trained again after ``tfidf-logreg`` got ``class_weight``).
ID_OPTION_KEYS = frozenset((
    "C", "alpha", "bias", "block_size", "butterfly", "deltaT", "dora", "dropout", "encoder", "encoder_hidden",
    "epochs", "head_lr", "init", "init_r", "k", "kind", "layers", "loraplus_ratio", "lr", "max_features",
    "n_frequency", "projection", "r", "rslora", "scaling", "scheduler", "target_r", "targets", "tfinal", "tinit",
    "tokens"))


def identity_options(strategy: StrategySpec) -> dict[str, Any]:
    """The strategy's options as a run id hashes them: :data:`ID_OPTION_KEYS` always, any other only when set."""
    return {k: v for k, v in strategy.model_dump().items() if k in ID_OPTION_KEYS or v is not None}


#: RunConfig fields a run id hashes elsewhere (``max_length`` with the model's options): not again
HASHED_ELSEWHERE = ("max_length",)


def identity_settings(cfg: engine.RunConfig) -> dict[str, Any]:
    """The engine settings a run id hashes: every field, except those added later
    (:data:`~tunebench.training.engine.LATER_FIELDS`) while at the value that computes as before them,
    so that a run stored by an earlier version keeps its id and is reused, and :data:`HASHED_ELSEWHERE`."""
    later = engine.LATER_FIELDS
    return {k: v for k, v in vars(cfg).items()
            if not (k in later and v == later[k]) and k not in HASHED_ELSEWHERE}


@dataclass
class PlannedRun:
    """One run of a study: a strategy, its resolved settings, its place in the study and its stable id.

    ``group`` names the configuration without the seed (the runs of one group differ only in their
    seed); ``label`` names the run, unique within a study; ``params`` holds the swept values.
    """

    position: int
    strategy: StrategySpec
    cfg: engine.RunConfig
    run_id: str
    label: str = ""
    group: str = ""
    params: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.group = self.group or self.strategy.label
        self.label = self.label or self.group


def plan_runs(spec: StudySpec, prepared: Prepared) -> list[PlannedRun]:
    """Every run the study asks for, in order: each configuration of the sweep (one per strategy
    without a sweep), once per seed.  The data split stays the one of ``training.seed``."""
    seeds = spec.sweep.seed_list
    plan: list[PlannedRun] = []
    seen: set[str] = set()
    for config in configurations(spec):
        for seed in seeds or [config.training.seed]:
            planned = planned_run(spec, prepared, config, seed, len(plan))
            if planned.run_id not in seen:
                seen.add(planned.run_id)
                plan.append(planned)
    return plan


def planned_run(spec: StudySpec, prepared: Prepared, config: Configuration, seed: int, position: int) -> PlannedRun:
    """One configuration with one seed, resolved into engine settings and its stable run id."""
    strategy = follow_class_weight(config.strategy, config.training)
    cfg = run_config(spec, strategy, prepared.precision, config.training, seed, prepared.compile_auto,
                     prepared.class_weights(config.training.class_weight), len(prepared.train), prepared.target_scale)
    run_id = run_id_for(spec, strategy, prepared.bundle, cfg, prepared.device)
    return PlannedRun(position, strategy, cfg, run_id, run_label(config.group, seed, spec.sweep.seed_list),
                      config.group, config.params)


def follow_class_weight(strategy: StrategySpec, training: TrainingSpec) -> StrategySpec:
    """A baseline with a ``class_weight`` option of its own (the tf-idf floor) fits with the study's
    ``training.class_weight`` unless the strategy sets it: floor and candidates train on the same objective."""
    if "class_weight" not in type(strategy).model_fields or "class_weight" in strategy.model_fields_set:
        return strategy
    return strategy.model_copy(update={"class_weight": training.class_weight})


def planned_steps(cfg: engine.RunConfig, n_train: int) -> int:
    """The optimizer steps a run plans over its maximum epochs (as the engine's schedule counts them)."""
    return engine.steps_per_epoch(cfg, n_train) * cfg.epochs


def steps_per_pass(training: TrainingSpec, n_train: int) -> int:
    """Optimizer steps in one pass over ``n_train`` training rows (batches grouped by gradient accumulation)."""
    return math.ceil(math.ceil(n_train / training.batch_size) / training.grad_accumulation)


def passes_for(training: TrainingSpec, n_train: int | None) -> int:
    """``training.min_steps_per_epoch``: the passes over ``n_train`` training rows an epoch needs to have at least
    that many optimizer steps (1 without the setting, or when one pass has them)."""
    need = training.min_steps_per_epoch
    if need is None or not n_train:
        return 1
    return max(1, math.ceil(need / steps_per_pass(training, n_train)))


def check_methods_fit(spec: StudySpec, prepared: Prepared, plan: list[PlannedRun]) -> None:
    """Prepare every distinct method of the plan on a weightless copy of the model (the ``meta``
    device: no memory, no time), so that a method the model cannot take (a rank wider than its layers,
    ``partial:k`` deeper than it, a target it lacks) is one sentence before any run trains."""
    from transformers import AutoConfig, AutoModelForSequenceClassification

    config = AutoConfig.from_pretrained(prepared.model_source, num_labels=len(prepared.bundle.label_names),
                                        trust_remote_code=spec.model.trust_remote_code)
    seen: set[str] = set()
    for planned in plan:
        key = planned.strategy.model_dump_json()
        if key in seen:
            continue
        if prepared.bundle.task not in OPTIONS[planned.strategy.kind].tasks:
            raise SpecError(f"strategy {planned.strategy.label} does not fit {prepared.bundle.task} data (data.task) "
                            "yet; leave it out of the study")
        if OPTIONS[planned.strategy.kind].fitted:  # fitted by its own recipe: no classifier loaded
            continue
        seen.add(key)
        with torch.device("meta"):
            model = AutoModelForSequenceClassification.from_config(
                config, trust_remote_code=spec.model.trust_remote_code)
            method = build_strategy(planned.strategy)
            method.total_steps = planned_steps(planned.cfg, len(prepared.train))
            method.check_fit(model, planned.cfg.max_length)
            method.prepare(model)
