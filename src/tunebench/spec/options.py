"""The base of every strategy's options model, and the spec side of the method registry.

:class:`StrategyOptions` is what every kind's options model extends: the shared per-strategy overrides
(``lr``, ``epochs``, ``scheduler``, ``head_lr``), the class attributes a kind sets (default learning rate
and its source, sweepable options, fitted or not, baseline or not) and the label.  :data:`OPTIONS` maps each kind to its
options model, in the order kinds are listed to users; :func:`register_options` adds one.  The built-in
kinds are registered by :mod:`tunebench.spec.kinds`; :mod:`tunebench.spec.strategy` builds the union and
the grammar over whatever is registered.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from typing import Any, ClassVar

from pydantic import BaseModel, Field, create_model, model_serializer, model_validator

from tunebench.spec.parts import Scheduler, _Strict


@dataclass(frozen=True)
class PeftRecipe:
    """How a kind's options become one peft config, as data (the spec never imports peft): the config class
    by its name in ``peft``, option -> config field, fixed config fields, and options that take another
    option's value when not given (LoHa's ``alpha`` defaults to ``r``).  A kind with a ``targets`` option
    also gets ``target_modules``, its roles resolved to module names; the methods layer builds the config
    (:class:`tunebench.methods.peft_base.PeftMethod`)."""

    config: str
    fields: dict[str, str] = field(default_factory=dict)
    constants: dict[str, Any] = field(default_factory=dict)
    fallbacks: dict[str, str] = field(default_factory=dict)


class StrategyOptions(_Strict):
    """The options every strategy takes: per-strategy overrides of the study's training settings.

    A subclass per kind adds its own options (with their defaults) and says its default learning
    rate, which of its options a sweep may set (``kind.option``) and its label.  ``None`` means
    "not given" for every field, as it always has: ``{kind: head, k: null}`` is plain ``head``.
    """

    kind: str
    lr: float | None = Field(default=None, gt=0)
    epochs: int | None = Field(default=None, ge=1)
    scheduler: Scheduler | None = None
    head_lr: float | None = Field(default=None, gt=0)

    default_lr: ClassVar[float]  # the rate when neither the strategy nor ``training.lr`` sets one
    #: where ``default_lr`` comes from (a paper, a peft example), for ``tunebench methods`` and the docs
    lr_source: ClassVar[str] = ""
    #: the kind's own head rate (None: the rule of :mod:`tunebench.spec.rates`); VeRA and FourierFT
    default_head_lr: ClassVar[float | None] = None
    own_head_rate: ClassVar[bool] = True  # False where the head is all that trains: lr is its rate
    #: fitted by its own recipe, not tunebench's engine (:meth:`tunebench.methods.base.FittedMethod.fit_predict`):
    #: no model loaded for the engine, no head rate, never tuned by rates; every baseline, and the candidates
    #: ``embed-logreg`` and ``setfit``
    fitted: ClassVar[bool] = False
    #: a reference method (majority, tfidf-logreg): a floor the report compares with, never ranked as a
    #: candidate; always ``fitted`` too
    baseline: ClassVar[bool] = False
    #: the task shapes (data.task) it fits; a study of another shape refuses it (a baseline: leaves it out by default)
    tasks: ClassVar[tuple[str, ...]] = ("single_label", "multi_label", "regression")
    #: options a sweep may set as ``kind.option`` (besides ``lr`` / ``epochs`` / ``scheduler``)
    sweepable: ClassVar[tuple[str, ...]] = ()
    #: how the method is named in sentences (``LoRA``, ``VeRA``); empty: the kind
    display: ClassVar[str] = ""
    #: the peft config this kind's options translate to (None: its method builds the model by hand)
    peft: ClassVar[PeftRecipe | None] = None

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        if cls.baseline:  # a reference row is fitted by its own recipe, a plug-in's too
            cls.fitted = True

    @classmethod
    def own_options(cls) -> tuple[str, ...]:
        """This kind's option fields (not ``kind`` nor the shared overrides), in declaration order."""
        return tuple(name for name in cls.model_fields if name not in StrategyOptions.model_fields)

    @model_validator(mode="before")
    @classmethod
    def _given_options(cls, data: Any) -> Any:
        """Drop ``None`` (not given); another kind's option is one sentence naming the kind it belongs to."""
        if not isinstance(data, Mapping):
            return data
        fields = cls.model_fields
        kept: dict[str, Any] = {}
        for key, value in data.items():
            if key in fields:  # kept even when None: an assignment re-validates the whole model
                kept[key] = fields[key].get_default(call_default_factory=True) if value is None else value
            elif value is not None:
                kept[key] = value
        columns = option_columns()
        foreign = [name for name in kept if name in columns and name not in fields]
        if foreign:  # named by the kind of the first one given
            kind = kept.get("kind", fields["kind"].default)
            owner = next(options for options in OPTIONS.values() if foreign[0] in options.own_options())
            named = [name for name in owner.own_options() if name in foreign]
            _option_values(owner).model_validate({name: kept[name] for name in named})  # a bad value first, as ever
            owner_kind = owner.model_fields["kind"].default
            if len(owner.own_options()) == 1:
                raise ValueError(f"option {named[0]} only applies to {owner_kind}, not {kind}")
            raise ValueError(f"option(s) {', '.join(named)} only apply to {owner_kind}, not {kind}")
        return kept

    def options_label(self) -> list[str]:
        """The ``key=value`` parts of the label that name this kind's options (none by default)."""
        return []

    @property
    def label(self) -> str:
        """Short, unique-enough name such as ``lora:r=8`` or ``partial:k=2``; it names the run in stores."""
        parts = self.options_label()
        parts += [f"{name}={_fmt(getattr(self, name))}" for name in STRATEGY_TRAINING if getattr(self, name) is not None]
        return self.kind + (":" + ",".join(parts) if parts else "")

    def given(self) -> dict[str, Any]:
        """The fields set explicitly (and ``kind``): what a sweep varies from.  Derived defaults are left
        out so that they follow the options they derive from."""
        return {"kind": self.kind, **{name: getattr(self, name) for name in self.model_fields_set}}

    @model_serializer(mode="wrap")
    def _uniform(self, handler: Any, info: Any) -> Any:
        """Every kind dumps the same keys (``kind``, every option column, the overrides), ``None`` where an
        option is not this kind's: stored records, results columns and run ids keep one shape."""
        data = handler(self)
        if not isinstance(data, dict):
            return data
        out = {"kind": data.pop("kind")} if "kind" in data else {}
        for name in option_columns():
            if name in data:
                out[name] = data.pop(name)
            elif name not in type(self).model_fields and not info.exclude_none:
                out[name] = None
        out.update(data)
        return out


@cache
def _option_values(options: type[StrategyOptions]) -> type[BaseModel]:
    """A model of ``options``' own fields alone (no validators): checks another kind's option values."""
    fields: dict[str, Any] = {name: (options.model_fields[name].annotation, options.model_fields[name])
                              for name in options.own_options()}
    return create_model(f"{options.__name__}Values", **fields)


#: The spec-side method registry: kind -> options model, in the order kinds are listed to users.
OPTIONS: dict[str, type[StrategyOptions]] = {}


def register_options(cls: type[StrategyOptions]) -> type[StrategyOptions]:
    """Register an options model under the default of its ``kind`` field."""
    kind = cls.model_fields["kind"].default
    if not isinstance(kind, str) or kind in OPTIONS:
        raise ValueError(f"{cls.__name__} needs a kind of its own (got {kind!r})")
    OPTIONS[kind] = cls
    return cls


#: fields a strategy may override for itself (of the study's training settings)
STRATEGY_TRAINING: tuple[str, ...] = tuple(name for name in StrategyOptions.model_fields if name != "kind")


def option_columns() -> list[str]:
    """Every kind's own option names, each once, in registry order: ``k, r, alpha, dropout, targets, layers``."""
    names: list[str] = []
    for options in OPTIONS.values():
        names += [name for name in options.own_options() if name not in names]
    return names


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)
