"""Sweep keys: what a ``sweep:`` section may vary, how one value is applied, and the checks of each value.

Expansion into the study's configurations (grid products, random draws) lives in
:mod:`tunebench.study.plan`; this module never expands: :func:`check_sweep` applies each value of
each key on its own, so a grid of a million combinations is checked in a million-th of the time.

A *configuration* is one resolved strategy with resolved training settings; every configuration
runs once per seed.  A sweep key names either a training field (``lr``, ``scheduler``,
``warmup_ratio``, ``epochs``, ``batch_size``, ``weight_decay``, ``grad_accumulation``) that applies
to every strategy, or a strategy option as ``kind.option`` (``lora.r``, ``lora.alpha``,
``lora.dropout``, ``lora.targets``, ``lora.layers``, ``partial.k``, and ``lora.lr``-style
per-kind overrides of ``lr`` / ``epochs`` / ``scheduler``) that applies to strategies of that kind.

- ``grid``: every combination of the values, per strategy, of the keys that apply to it;
- ``random``: ``trials`` draws (seeded by ``sampler_seed``) from lists (a uniform choice) or ranges
  (``{low, high, log}``), each draw applied to every strategy;
- ``optuna``: the same space searched by Optuna's TPE (see :mod:`tunebench.study.search`).

Configurations that resolve to the same settings are kept once.  Names read like
``lora:r=18 lr=0.0005`` (the *group*); with several seeds a run's label adds `` seed=1``.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from tunebench.errors import SpecError
from tunebench.spec.options import _fmt
from tunebench.spec.parts import RangeSpec, TrainingSpec, _explain
from tunebench.spec.strategy import KINDS, STRATEGY_TRAINING, PerKind, StrategySpec, validate_strategy

if TYPE_CHECKING:  # spec.study checks its sweep with this module
    from tunebench.spec.study import StudySpec

#: options of a strategy kind that a sweep may set (``kind.option``), from the options models' ``sweepable``.
#: ``STRATEGY_TRAINING`` (``lr``, ``epochs``, ``scheduler``), the fields a strategy may override for itself,
#: apply to every strategy when unprefixed; ``KINDS`` lists every kind.  Both come from the same registry.
KIND_OPTIONS: Mapping[str, tuple[str, ...]] = PerKind(lambda options: options.sweepable, keep=bool)
#: training fields a sweep may set for every strategy (not per kind)
TRAINING_ONLY = ("batch_size", "warmup_ratio", "weight_decay", "grad_accumulation", "max_grad_norm")
ALIASES = {"warmup": "warmup_ratio", "batch": "batch_size", "rank": "r"}


@dataclass(frozen=True)
class SweepKey:
    """One parsed sweep key: the field it sets and the strategy kind it is limited to (None: all)."""

    text: str
    field: str
    kind: str | None

    @property
    def on_strategy(self) -> bool:
        return self.field not in TRAINING_ONLY

    def applies_to(self, kind: str) -> bool:
        return self.kind is None or self.kind == kind


def known_keys() -> list[str]:
    keys = list(STRATEGY_TRAINING) + list(TRAINING_ONLY)
    keys += [f"{kind}.{opt}" for kind, opts in KIND_OPTIONS.items() for opt in opts]
    return keys


def parse_key(text: str) -> SweepKey:
    """``lora.r`` → (r, lora); ``lr`` → (lr, all); ``training.warmup`` → (warmup_ratio, all)."""
    raw = str(text).strip()
    name = raw.lower().removeprefix("training.")
    kind, dot, option = name.partition(".")
    if not dot:
        kind, option = None, name
    option = ALIASES.get(option, option)
    if kind is None:
        if option in STRATEGY_TRAINING or option in TRAINING_ONLY:
            return SweepKey(raw, option, None)
    elif kind in KINDS and (option in KIND_OPTIONS.get(kind, ()) or option in STRATEGY_TRAINING):
        return SweepKey(raw, option, kind)
    raise SpecError(f"sweep key '{raw}' is not something a sweep can vary; use one of: {', '.join(known_keys())}")


@dataclass
class Configuration:
    """One resolved strategy with its training settings and the swept values that made it."""

    strategy: StrategySpec
    training: TrainingSpec
    params: dict[str, Any] = field(default_factory=dict)  # sweep key (as written) -> value
    group: str = ""

    def __post_init__(self) -> None:
        if not self.group:
            self.group = self.strategy.label


def apply(spec: StudySpec, strategy: StrategySpec, values: dict[SweepKey, Any]) -> Configuration:
    """``strategy`` and the study's training settings with the swept ``values`` set (checked)."""
    fields = strategy.given()  # without derived defaults (lora's alpha = 2 r follows a swept rank)
    swept_training = {k.field for k in values if k.field in STRATEGY_TRAINING}
    base = {name: v for name, v in fields.items() if name not in swept_training}
    training = spec.training.model_dump()
    suffix = []
    for key, value in values.items():
        if key.field in type(strategy).sweepable:
            base[key.field] = fields[key.field] = _option_value(key, value)
        elif key.on_strategy:
            fields[key.field] = value
            suffix.append(f"{key.field}={_fmt(value)}")
        else:
            training[key.field] = value
            suffix.append(f"{key.field}={_fmt(value)}")
    named = _validate_strategy(base, values)
    resolved = _validate_strategy(fields, values)
    try:
        train = TrainingSpec.model_validate(training)
    except ValidationError as exc:
        raise SpecError(_explain(exc, prefix=f"sweep value {_shown(values)}")) from None
    params = {k.text: v for k, v in values.items()}
    return Configuration(resolved, train, params, " ".join([named.label, *suffix]))


def _option_value(key: SweepKey, value: Any) -> Any:
    """``targets: [query+value, all]`` style strings become lists, as in a strategy string; a single
    layer (``--grid lora.layers=0,1`` reads each as a number) is a one-layer list."""
    if key.field in ("targets", "layers") and isinstance(value, str):
        parts = [p for p in value.split("+") if p]
        return [int(p) for p in parts] if key.field == "layers" and all(p.lstrip("-").isdigit() for p in parts) else parts
    if key.field == "layers" and isinstance(value, int) and not isinstance(value, bool):
        return [value]
    return value


def _validate_strategy(fields: dict[str, Any], values: dict[SweepKey, Any]) -> StrategySpec:
    try:
        return validate_strategy(fields)
    except ValidationError as exc:
        raise SpecError(_explain(exc, prefix=f"sweep value {_shown(values)}")) from None


def _shown(values: dict[SweepKey, Any]) -> str:
    return ", ".join(f"{k.text}={v!r}" for k, v in values.items()) or "(none)"


def parsed_space(spec: StudySpec) -> dict[SweepKey, list[Any] | RangeSpec]:
    sweep = spec.sweep
    space = {parse_key(k): v for k, v in sweep.space.items()}
    space = dict(sorted(space.items(), key=lambda kv: kv[0].kind is None))  # strategy options first
    kinds = {s.kind for s in spec.strategies}
    for key, values in space.items():
        if key.kind is not None and key.kind not in kinds:
            raise SpecError(f"sweep key '{key.text}' varies {key.kind} strategies, but the study has none "
                            f"(strategies: {', '.join(s.label for s in spec.strategies)})")
        if isinstance(values, list) and not values:
            raise SpecError(f"sweep key '{key.text}' has no values; give a list such as [4, 8, 16]")
    return space


def check_sweep(spec: StudySpec) -> None:
    """Raise one :class:`SpecError` sentence for a sweep that cannot run; expand it to check every value."""
    sweep = spec.sweep
    if sweep.grid and sweep.random:
        raise SpecError("give either sweep.grid (every combination) or sweep.random (sampled trials), not both")
    method = sweep.method
    if method is None:
        if sweep.trials is not None:
            raise SpecError("sweep.trials needs a search space: sweep.random (or sweep.grid with search: optuna)")
        return
    if not sweep.space:
        raise SpecError(f"sweep.search is {method} but no space is given; add sweep.grid or sweep.random, "
                        "e.g. grid: {lora.r: [4, 8], lr: [1e-4, 5e-4]}")
    if method == "grid":
        if sweep.random:
            raise SpecError("search: grid takes sweep.grid lists, not sweep.random")
        if sweep.trials is not None:
            raise SpecError("sweep.trials is for random or optuna search; a grid runs every combination")
    elif sweep.trials is None:
        raise SpecError(f"search: {method} needs sweep.trials, the number of configurations to try")
    if method == "optuna" and importlib.util.find_spec("optuna") is None:
        raise SpecError("sweep.search: optuna needs the optuna package; install it with pip install 'tunebench[sweep]'")
    corners(spec)  # every value of every key (a range: both bounds) on every strategy it applies to


def corners(spec: StudySpec) -> list[Configuration]:
    """Each key's values applied one at a time (ranges: both bounds), on every strategy the key applies to.

    This checks every value the sweep can take without forming the product of the keys.
    """
    out = []
    for strategy in spec.strategies:
        for key, values in parsed_space(spec).items():
            if key.applies_to(strategy.kind):
                ends = [values.low, values.high] if isinstance(values, RangeSpec) else values
                out += [apply(spec, strategy, {key: cast(values, v)}) for v in ends]
    return out


def cast(values: list[Any] | RangeSpec, v: Any) -> Any:
    return int(v) if isinstance(values, RangeSpec) and values.integer else v
