"""Sweeps: from a study's strategies and its ``sweep:`` section to the list of configurations it runs.

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

import itertools
import math
import random
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from tunebench.errors import SpecError
from tunebench.spec.schema import RangeSpec, StrategySpec, StudySpec, TrainingSpec, _explain, _fmt

#: options of a strategy kind that a sweep may set (``kind.option``)
KIND_OPTIONS: dict[str, tuple[str, ...]] = {
    "lora": ("r", "alpha", "dropout", "targets", "layers"),
    "partial": ("k",),
}
#: fields a strategy may override for itself; unprefixed they apply to every strategy
STRATEGY_TRAINING = ("lr", "epochs", "scheduler")
#: training fields a sweep may set for every strategy (not per kind)
TRAINING_ONLY = ("batch_size", "warmup_ratio", "weight_decay", "grad_accumulation", "max_grad_norm")
ALIASES = {"warmup": "warmup_ratio", "batch": "batch_size", "rank": "r"}
KINDS = ("full", "head", "partial", "lora")


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
    fields = {name: getattr(strategy, name) for name in strategy.model_fields_set}
    fields["kind"] = strategy.kind
    if strategy.kind == "lora" and strategy.alpha == 2 * (strategy.r or 0):
        fields.pop("alpha", None)  # the default alpha (2 r) follows a swept rank, even after a round trip
    swept_training = {k.field for k in values if k.field in STRATEGY_TRAINING}
    base = {name: v for name, v in fields.items() if name not in swept_training}
    training = spec.training.model_dump()
    suffix = []
    for key, value in values.items():
        if key.field in KIND_OPTIONS.get(strategy.kind, ()):
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
    """``targets: [query+value, all]`` style strings become lists, as in a strategy string."""
    if key.field in ("targets", "layers") and isinstance(value, str):
        parts = [p for p in value.split("+") if p]
        return [int(p) for p in parts] if key.field == "layers" and all(p.isdigit() for p in parts) else parts
    return value


def _validate_strategy(fields: dict[str, Any], values: dict[SweepKey, Any]) -> StrategySpec:
    try:
        return StrategySpec.model_validate(fields)
    except ValidationError as exc:
        raise SpecError(_explain(exc, prefix=f"sweep value {_shown(values)}")) from None


def _shown(values: dict[SweepKey, Any]) -> str:
    return ", ".join(f"{k.text}={v!r}" for k, v in values.items()) or "(none)"


def _parsed_space(spec: StudySpec) -> dict[SweepKey, list[Any] | RangeSpec]:
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
    if method == "optuna":
        from tunebench.study.search import require_optuna

        require_optuna()
    configurations(spec)  # every grid value, every range bound: checked now, not mid-study


def configurations(spec: StudySpec) -> list[Configuration]:
    """The study's configurations in order (strategy by strategy), without duplicates.

    For ``search: optuna`` these are the space's corners only as a check; the search itself
    chooses its configurations as it goes (:mod:`tunebench.study.search`).
    """
    method = spec.sweep.method
    if method is None:
        return [Configuration(s, spec.training) for s in spec.strategies]
    space = _parsed_space(spec)
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
    # optuna: check the bounds of every key on every strategy it applies to
    corners = []
    for strategy in spec.strategies:
        for key, values in space.items():
            if key.applies_to(strategy.kind):
                ends = [values.low, values.high] if isinstance(values, RangeSpec) else values
                corners += [apply(spec, strategy, {key: _cast(values, v)}) for v in ends]
    return unique(corners)


def _cast(values: list[Any] | RangeSpec, v: Any) -> Any:
    return int(v) if isinstance(values, RangeSpec) and values.integer else v


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
