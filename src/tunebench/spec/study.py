"""The study specification: one validated, serialisable object for a whole study.

A :class:`StudySpec` is built from YAML (:func:`load_spec`), from CLI flags, or in Python.
It is serialised whole into every run's result, so a stored run always says exactly how it
was produced.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml
from pydantic import Field, ValidationError, field_validator, model_validator

from tunebench.errors import SpecError, first_line, quoted
from tunebench.spec import metrics
from tunebench.spec.parts import (
    DEFAULT_MODEL,
    DataSpec,
    ExecutionSpec,
    ModelSpec,
    OutputSpec,
    SweepSpec,
    TrainingSpec,
    TuningSpec,
    VerdictSpec,
    _explain,
    _Strict,
)
from tunebench.spec.strategy import OPTIONS, KindList, StrategySpec, parse_strategy
from tunebench.spec.sweep import check_sweep, parsed_space

#: why an Optuna search cannot be spread over processes (said when the spec is built, and by the driver
#: when a launcher started several processes the spec did not ask for)
OPTUNA_IN_ONE_PROCESS = ("sweep.search: optuna picks each trial from the results before it, so it runs here in one "
                         "process; use grid or random with --backend ray or --nproc")


class StudySpec(_Strict):
    """A whole study: data, model, strategies to compare, training, execution, outputs."""

    name: str = "study"
    data: DataSpec = Field(default_factory=DataSpec)
    model: ModelSpec = Field(default_factory=ModelSpec)
    strategies: list[StrategySpec] = Field(default_factory=list)
    training: TrainingSpec = Field(default_factory=TrainingSpec)
    sweep: SweepSpec = Field(default_factory=SweepSpec)
    tuning: TuningSpec | None = Field(default=None, description="equal-budget learning-rate tuning (--tune)")
    #: reference rows beside the strategies (study.driver stores them as study "<name>:baselines")
    baselines: list[str] = Field(default_factory=lambda: list(BASELINES),
                                 description="reference methods run beside the strategies: majority, tfidf-logreg")
    execution: ExecutionSpec = Field(default_factory=ExecutionSpec)
    output: OutputSpec = Field(default_factory=OutputSpec)
    verdict: VerdictSpec = Field(default_factory=VerdictSpec, description="how the report compares configurations")

    @field_validator("strategies", mode="before")
    @classmethod
    def _parse_strategies(cls, value: Any) -> Any:
        if value is None:
            return []
        if not isinstance(value, list):
            raise ValueError("must be a list such as [full, 'partial:k=2', 'lora:r=8', head]")
        out = []
        for item in value:
            if isinstance(item, str):
                out.append(parse_strategy(item))
            elif isinstance(item, dict) and "kind" not in item and len(item) == 1:
                # YAML form  - lora: {r: 8}
                (kind, opts), = item.items()
                if opts is not None and not isinstance(opts, dict):
                    raise ValueError(f"the options of strategy {kind!r} must be a mapping such as {{r: 8}}")
                if opts and "kind" in opts:
                    raise ValueError(f"strategy {kind!r} must not set its kind again inside its options")
                out.append({"kind": kind, **(opts or {})})
            else:
                out.append(item)
        return out

    @model_validator(mode="after")
    def _check(self) -> StudySpec:
        if not self.strategies:
            object.__setattr__(self, "strategies", default_strategies())
        labels = [s.label for s in self.strategies]
        dupes = sorted({lab for lab in labels if labels.count(lab) > 1})
        if dupes:
            raise ValueError(f"strategies are listed twice: {', '.join(dupes)}")
        check_sweep(self)  # the sweep's keys and values, against the strategies
        unknown = [b for b in self.baselines if b not in BASELINES]
        if unknown:
            raise ValueError(f"baselines must be among {', '.join(BASELINES)} (got {', '.join(map(repr, unknown))})")
        _task_defaults(self)
        metrics.check_task(self.training.selection_metric, self.data.task, "training.selection_metric")
        metrics.check_task(self.verdict.metric, self.data.task, "verdict.metric")
        if self.tuning is not None and self.tuning.enabled and self.sweep.method is not None:
            raise ValueError("tuning gives every strategy the same learning-rate trials; it cannot be combined with a "
                             f"sweep ({self.sweep.method}): drop the sweep's grid/random/search or the tuning section")
        check_subsets(self)
        runs = count_runs(self)
        if runs > self.execution.max_runs:
            limit = self.execution.max_runs
            raise ValueError(f"the study asks for {runs:,} runs, more than execution.max_runs ({limit:,}); narrow the "
                             "sweep or its seeds, or raise execution.max_runs (--max-runs)")
        if self.sweep.method == "optuna" and (self.execution.backend != "local" or self.execution.nproc > 1):
            raise ValueError(OPTUNA_IN_ONE_PROCESS)  # checked from the spec alone, before any data loads
        return self

    def to_dict(self) -> dict[str, Any]:
        return json.loads(self.model_dump_json())


def _task_defaults(spec: StudySpec) -> None:
    """What follows from ``data.task`` where the spec holds another shape's default: a regression selects on and
    compares R² (not macro-F1, the classification default) and its floor is the mean and tf-idf ridge; a
    baseline of another shape listed by hand is refused by name."""
    task = spec.data.task
    for part, field in ((spec.training, "selection_metric"), (spec.verdict, "metric")):
        if getattr(part, field) == metrics.DEFAULT_SELECTION and task not in metrics.by_name(
                metrics.DEFAULT_SELECTION).tasks:
            object.__setattr__(part, field, metrics.default_for(task))
    fits = default_baselines(task)
    if set(spec.baselines) in [set(BASELINES)] + [set(default_baselines(t)) for t in metrics.TASKS]:
        object.__setattr__(spec, "baselines", fits)  # a default list (this shape's or another's): this shape's floor
    other = [b for b in spec.baselines if task not in OPTIONS[b].tasks]
    if other:
        raise ValueError(f"baselines {', '.join(other)} do not fit {task} data; this shape's are {', '.join(fits)}")


def default_baselines(task: str) -> list[str]:
    """The floor of a study of ``task``: every baseline that fits it, in registry order."""
    return [b for b in BASELINES if task in OPTIONS[b].tasks]


#: the reference methods (options with ``baseline = True``), in registry order
BASELINES: Sequence[str] = KindList(lambda options: options.baseline)


def check_subsets(spec: StudySpec) -> None:
    """``data.train_sizes`` / ``train_size`` / ``data_seeds`` fit together and with the seeds."""
    data = spec.data
    if data.train_sizes is not None and data.train_size is not None:
        raise ValueError("data.train_sizes runs the study once per size and data.train_size trains on one size: set "
                         "one of them")
    if data.data_seeds is None:
        return
    if spec.sweep.method == "optuna":
        raise ValueError("data.data_seeds pairs each seed with a draw of the training subset; sweep.search: optuna "
                         "picks configurations on one split: drop one of them")
    if data.train_sizes is None and data.train_size is None:
        raise ValueError("data.data_seeds draws training subsets: it needs data.train_sizes (--train-sizes) or "
                         "data.train_size")
    seeds = spec.sweep.seed_list or [spec.training.seed]
    if len(data.data_seeds) != len(seeds):
        raise ValueError(f"data.data_seeds pairs one draw with each seed: {len(seeds)} seed"
                         f"{'s' * (len(seeds) != 1)} ({' '.join(map(str, seeds))}) need {len(seeds)} draw"
                         f"{'s' * (len(seeds) != 1)}, got {len(data.data_seeds)} "
                         f"({' '.join(map(str, data.data_seeds))})")


def count_runs(spec: StudySpec) -> int:
    """How many runs the study plans (every size of a ``data.train_sizes`` curve counted)."""
    return _count_runs(spec) * len(spec.data.train_sizes or [None])


def _count_runs(spec: StudySpec) -> int:
    """How many runs the study plans, from the spec alone (no expansion): per strategy, the product of
    the sizes of the grid keys that apply to it; ``trials`` draws for random and optuna; times the seeds.
    Duplicates that resolve to the same settings are counted: this is the most it can be."""
    seeds = len(spec.sweep.seed_list or [0])
    method = spec.sweep.method
    if method in ("random", "optuna"):
        per_seed = (spec.sweep.trials or 0) * (len(spec.strategies) if method == "random" else 1)
        return per_seed * seeds
    if method is None:
        return len(spec.strategies) * seeds
    space = parsed_space(spec)
    total = 0
    for strategy in spec.strategies:
        combos = 1
        for key, values in space.items():
            if key.applies_to(strategy.kind):
                combos *= len(values) if isinstance(values, list) else 1
        total += combos
    return total * seeds


def default_strategies() -> list[StrategySpec]:
    """The default comparison: full, partial:k=2, lora:r=8, head."""
    return [parse_strategy(s) for s in ("full", "partial:k=2", "lora:r=8", "head")]


def quick_study() -> StudySpec:
    """``tunebench run --quick``: the earlier default, MiniLM-L6 on a seeded SNLI slice, four strategies at their
    default rates, 3 epochs, one seed.  A look at cost and rough quality in minutes; it cannot give a verdict
    (one seed measures no seed noise, untuned rates compare rates, and 3 epochs do not converge on it)."""
    return StudySpec(
        name="default-snli-minilm",
        data=DataSpec(source="snli", train_limit=2000, val_limit=500, test_limit=1000),
        model=ModelSpec(name=DEFAULT_MODEL, max_length=128),
        training=TrainingSpec(epochs=3, batch_size=16),
    )


def default_study() -> StudySpec:
    """The embedded default (``tunebench run``): the verdict protocol sized to end in minutes on 2 CPU cores.

    MiniLM-L6 on a seeded Rotten Tomatoes slice (binary sentiment; the encoder's contrastive training saw
    SNLI, not Rotten Tomatoes), three strategies (:data:`DEFAULT_STRATEGIES`), each tuned by the same search
    (3 body rates, one seed, synchronous successive halving from 2 epochs, the edge of the grid extended),
    early stopping, then 3 seeds at the chosen rates: the statistics' seed level.  The README's "Two
    commands" shows it as a study file (a test compares the two) and what it prints."""
    return StudySpec(
        name="default-rotten-tomatoes-minilm",
        data=DataSpec(source="rotten-tomatoes", train_limit=DEFAULT_SIZES[0], val_limit=DEFAULT_SIZES[1],
                      test_limit=DEFAULT_SIZES[2]),
        model=ModelSpec(name=DEFAULT_MODEL, max_length=64),
        training=TrainingSpec(epochs=DEFAULT_EPOCHS, batch_size=16, early_stopping={"patience": 2}),
        strategies=[parse_strategy(s) for s in DEFAULT_STRATEGIES],
        tuning=TuningSpec(seeds=1, tune_head=False),
        sweep=SweepSpec(seeds=[0, 1, 2]),
    )


#: the default study's strategies: the question most asked (full or LoRA?) and the cheapest fine-tuning
DEFAULT_STRATEGIES = ("full", "lora:r=8", "head")
#: the default study's train / validation / test sizes and its most epochs
DEFAULT_SIZES = (400, 300, 1000)
DEFAULT_EPOCHS = 5


def spec_from_dict(data: dict[str, Any], source: str = "spec") -> StudySpec:
    try:
        return StudySpec.model_validate(data)
    except ValidationError as exc:
        raise SpecError(_explain(exc, prefix=source)) from None


def load_spec(path: str | Path) -> StudySpec:
    """Read a study spec from YAML; every problem becomes one :class:`SpecError` sentence."""
    path = Path(path)
    if path.is_dir():
        raise SpecError(f"study file '{path}' is a folder; name a YAML file")
    if not path.is_file():
        raise SpecError(f"study file '{path}' does not exist")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        check_expansion(data, path)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise SpecError(f"study file '{path}' is not valid YAML{where}: "
                        f"{first_line(getattr(exc, 'problem', None) or exc, 200)}") from None
    except UnicodeDecodeError:
        raise SpecError(f"study file '{path}' is not UTF-8 text") from None
    except (ValueError, TypeError, IndexError, KeyError, AttributeError, OverflowError) as exc:
        # PyYAML's constructors raise these for a tag or a date they cannot build (!!int with no digits,
        # !!bool maybe, 2020-13-45), not a YAMLError
        raise SpecError(f"study file '{path}' holds a value YAML cannot read ({type(exc).__name__}: "
                        f"{first_line(exc, 120)}); quote it to make it text") from None
    except RecursionError:
        raise SpecError(f"study file '{path}' nests values too deeply to read; a study spec is a few levels "
                        "deep") from None
    if data is None:  # an empty file is a mistake, not a request for the default study
        raise SpecError(f"study file '{path}' is empty; it must hold a mapping with keys such as data, model, "
                        "strategies, training, output")
    if not isinstance(data, dict):
        raise SpecError(f"study file '{path}' must hold a mapping with keys such as data, model, "
                        f"strategies, training, output (got a {type(data).__name__})")
    return spec_from_dict(data, source=str(path))


#: a study spec holds tens to a few thousand values; YAML aliases can make 1 KB expand to millions
MAX_VALUES = 100_000
MAX_DEPTH = 64


def check_expansion(data: Any, path: Path) -> None:
    """Refuse a document whose aliases (``&a`` / ``*a``) expand beyond :data:`MAX_VALUES` values, that
    refers to itself, or that nests deeper than :data:`MAX_DEPTH` levels, before anything walks it.

    PyYAML shares an aliased node between its uses, so loading is cheap; it is every later walk
    (validation, error messages, JSON) that pays for the expansion: a "billion laughs" document of
    1 KB printed 226 MB in an error.  Sizes are counted per distinct node (memoised), so the count
    itself never expands anything.
    """
    sizes: dict[int, int] = {}
    open_nodes: set[int] = set()

    def size(node: Any, depth: int) -> int:
        if isinstance(node, str):
            try:
                node.encode("utf-8")
            except UnicodeEncodeError:
                raise SpecError(f"study file '{path}' holds text that is not valid Unicode ({quoted(node, 40)}: a "
                                "lone surrogate escape such as \\ud800)") from None
        if not isinstance(node, (list, dict)):
            return 1
        key = id(node)
        if key in sizes:
            return sizes[key]
        if depth > MAX_DEPTH:
            raise SpecError(f"study file '{path}' nests values more than {MAX_DEPTH} levels deep; a study spec is "
                            "a few levels deep")
        if key in open_nodes:
            raise SpecError(f"study file '{path}' holds a value that contains itself (a YAML alias to its own "
                            "anchor); write the values out")
        open_nodes.add(key)
        children = [*node.keys(), *node.values()] if isinstance(node, dict) else node
        total = 1
        for child in children:
            total += size(child, depth + 1)
            if total > MAX_VALUES:
                raise SpecError(f"study file '{path}' expands to more than {MAX_VALUES:,} values (YAML aliases "
                                "such as *name repeat what &name holds); write the values out, or remove the "
                                "aliases")
        open_nodes.discard(key)
        sizes[key] = total
        return total

    size(data, 0)
