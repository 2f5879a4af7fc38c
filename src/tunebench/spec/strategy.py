"""Strategies as data: one options model per method kind, the strategy-string grammar and the default learning rates.

:data:`OPTIONS` is the spec side of the method registry: for each kind (``full``, ``head``,
``partial``, ``lora``, ``bitfit``) a pydantic model of its options, with the shared per-strategy
overrides (``lr``, ``epochs``, ``scheduler``), its default learning rate, the options a sweep may
set and its label.  Everything else that lists kinds is derived from it: :data:`KINDS`,
:data:`DEFAULT_LR`, :func:`option_columns`, the sweep keys (:mod:`tunebench.spec.sweep`) and the
sentence :func:`parse_strategy` answers an unknown kind with.  What a method *does* lives in
:mod:`tunebench.methods`, which registers one class per kind listed here.

:data:`StrategySpec` is the discriminated union of the options models on ``kind``; build one with
:func:`strategy_spec` (a mapping or keywords; one :class:`SpecError` sentence on a bad value) or
:func:`parse_strategy` (a string such as ``lora:r=8,targets=query+value``).
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache
from types import UnionType
from typing import Annotated, Any, ClassVar, Literal, Union, get_args, get_origin

from pydantic import (
    BaseModel,
    Field,
    TypeAdapter,
    ValidationError,
    WrapValidator,
    create_model,
    model_serializer,
    model_validator,
)
from pydantic_core import InitErrorDetails

from tunebench.errors import SpecError
from tunebench.spec.parts import Scheduler, _explain, _number, _Strict
from tunebench.spec.peft_kinds import PEFT_KINDS, KindRow


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
    #: a reference method that trains no network (majority, tfidf-logreg): no lr, no epochs, never tuned
    baseline: ClassVar[bool] = False
    #: options a sweep may set as ``kind.option`` (besides ``lr`` / ``epochs`` / ``scheduler``)
    sweepable: ClassVar[tuple[str, ...]] = ()

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


def _kind(cls: type[StrategyOptions]) -> type[StrategyOptions]:
    """Register an options model under the default of its ``kind`` field."""
    kind = cls.model_fields["kind"].default
    if not isinstance(kind, str) or kind in OPTIONS:
        raise ValueError(f"{cls.__name__} needs a kind of its own (got {kind!r})")
    OPTIONS[kind] = cls
    return cls


@_kind
class FullOptions(StrategyOptions):
    """Every parameter trains."""

    kind: Literal["full"] = "full"
    default_lr: ClassVar[float] = 5e-5


@_kind
class HeadOptions(StrategyOptions):
    """The classifier (and pooler) train; the encoder is frozen."""

    kind: Literal["head"] = "head"
    # a freshly initialised head has no pretrained scale to protect
    default_lr: ClassVar[float] = 1e-3
    own_head_rate: ClassVar[bool] = False  # the head is the whole model that trains: lr is its rate


@_kind
class PartialOptions(StrategyOptions):
    """The top ``k`` encoder layers and the head train."""

    kind: Literal["partial"] = "partial"
    k: int = Field(default=2, ge=1, description="partial: number of top layers to train")
    default_lr: ClassVar[float] = 1e-4
    sweepable: ClassVar[tuple[str, ...]] = ("k",)

    def options_label(self) -> list[str]:
        return [f"k={self.k}"]


@_kind
class LoraOptions(StrategyOptions):
    """LoRA (peft) on the named module roles, optionally on some layers only; the head trains too."""

    kind: Literal["lora"] = "lora"
    r: int = Field(default=8, ge=1, description="lora: rank")
    alpha: float | None = Field(default=None, gt=0, description="lora: scaling alpha (default 2*r)")
    dropout: float = Field(default=0.1, ge=0, lt=1, description="lora: dropout")
    targets: list[str] = Field(default_factory=lambda: ["query", "value"],
                               description="lora: module roles, e.g. query+value")
    layers: list[int] | None = Field(default=None, description="lora: layer indices to adapt")
    dora: bool = Field(default=False, description="lora: weight-decomposed LoRA (DoRA, peft use_dora)")
    rslora: bool = Field(default=False, description="lora: rank-stabilised scaling alpha/sqrt(r) (peft use_rslora)")
    init: Literal["default", "gaussian", "pissa", "olora"] = Field(
        default="default", description="lora: initialisation (peft init_lora_weights; pissa/olora change base weights)")
    bias: Literal["none", "all", "lora_only"] = Field(default="none", description="lora: biases that train too")
    # the low-rank update starts at zero: it needs a larger step than full fine-tuning
    default_lr: ClassVar[float] = 5e-4
    lr_source: ClassVar[str] = "tunebench's reference SNLI study (README): 5e-4 for MiniLM-L6, r=8"
    sweepable: ClassVar[tuple[str, ...]] = ("r", "alpha", "dropout", "targets", "layers", "dora", "rslora", "init")

    @model_validator(mode="after")
    def _defaults(self) -> LoraOptions:
        if self.alpha is None:
            object.__setattr__(self, "alpha", float(2 * self.r))  # not in model_fields_set: it follows r
        if not self.targets:
            raise ValueError("lora targets must name at least one module, e.g. targets=query+value")
        return self

    def options_label(self) -> list[str]:
        parts = [f"r={self.r}"]
        if self.alpha != 2 * self.r:
            parts.append(f"alpha={_fmt(self.alpha)}")
        if self.dropout != 0.1:
            parts.append(f"dropout={_fmt(self.dropout)}")
        if self.targets != ["query", "value"]:
            parts.append("targets=" + "+".join(self.targets))
        if self.layers is not None:
            parts.append("layers=" + "+".join(str(i) for i in self.layers))
        parts += [f"{name}={_fmt(getattr(self, name))}" for name in ("dora", "rslora", "init", "bias")
                  if getattr(self, name) != LoraOptions.model_fields[name].default]
        return parts

    def given(self) -> dict[str, Any]:
        fields = super().given()
        if self.alpha == 2 * self.r:
            fields.pop("alpha", None)  # the default alpha (2 r) follows a swept rank, even after a round trip
        return fields


@_kind
class BitFitOptions(StrategyOptions):
    """Every bias term of the encoder and the head train (Ben Zaken et al., ACL 2022)."""

    kind: Literal["bitfit"] = "bitfit"
    # Ben Zaken, Ravfogel & Goldberg, "BitFit", ACL 2022 (arXiv:2106.10199): BERT learning rates between
    # 1e-4 and 1e-3; their code's example run of full BitFit uses 1e-3.  Few trainable values, few epochs here.
    default_lr: ClassVar[float] = 1e-3


@_kind
class MajorityOptions(StrategyOptions):
    """Baseline: always the training split's most frequent class (no model, no training)."""

    kind: Literal["majority"] = "majority"
    default_lr: ClassVar[float] = 0.0  # trains nothing: no learning rate
    baseline: ClassVar[bool] = True


@_kind
class TfidfLogregOptions(StrategyOptions):
    """Baseline: TF-IDF word and bigram features and a logistic regression (scikit-learn); seconds on a CPU."""

    kind: Literal["tfidf-logreg"] = "tfidf-logreg"
    max_features: int = Field(default=50_000, ge=1, description="tfidf-logreg: vocabulary size")
    C: float = Field(default=1.0, gt=0, description="tfidf-logreg: inverse regularisation strength")
    # macro-F1 weighs classes alike; unweighted, R52's rare classes go unpredicted (test macro-F1 0.051 vs 0.406)
    class_weight: Literal["balanced", "none"] = Field(default="balanced", description="tfidf-logreg: class weights")
    default_lr: ClassVar[float] = 0.0  # trains no network: no learning rate
    baseline: ClassVar[bool] = True

    def options_label(self) -> list[str]:
        parts = [f"max_features={self.max_features}"] if self.max_features != 50_000 else []
        parts += [f"C={_fmt(self.C)}"] if self.C != 1.0 else []
        return parts + ([f"class_weight={self.class_weight}"] if self.class_weight != "balanced" else [])


class _TableLabel(BaseModel):
    """A kind built from a row of ``PEFT_KINDS``: its base's label parts, then every row option not at its default."""

    row_options: ClassVar[tuple[str, ...]] = ()

    def options_label(self) -> list[str]:
        parts = super().options_label()  # type: ignore[misc]
        for name in self.row_options:
            value, info = getattr(self, name), type(self).model_fields[name]
            if value != info.get_default(call_default_factory=True):
                parts.append(f"{name}=" + ("+".join(map(str, value)) if isinstance(value, list) else _fmt(value)))
        return parts


def _table_kind(row: KindRow) -> type[StrategyOptions]:
    base = LoraOptions if row.base == "lora" else StrategyOptions
    name = "".join(part.capitalize() for part in row.kind.replace("-", " ").split()) + "Options"
    cls = create_model(name, __base__=(_TableLabel, base), __doc__=row.doc,
                       kind=(Literal[row.kind], row.kind), **row.fields)  # type: ignore[call-overload]
    cls.__module__ = __name__
    cls.default_lr, cls.lr_source, cls.default_head_lr = row.default_lr, row.lr_source, row.default_head_lr
    cls.sweepable = tuple(dict.fromkeys((*base.sweepable, *row.sweepable)))
    cls.row_options = tuple(row.fields)
    return _kind(cls)


globals().update({cls.__name__: cls for cls in map(_table_kind, PEFT_KINDS)})  # LoraFaOptions, ...


#: every kind, in the order they are listed to users
KINDS: tuple[str, ...] = tuple(OPTIONS)
StrategyKind = Literal[KINDS]  # type: ignore[valid-type]
#: Learning rates used when neither the strategy nor ``training.lr`` sets one (fewer parameters: a larger step).
DEFAULT_LR: dict[str, float] = {kind: options.default_lr for kind, options in OPTIONS.items()}
#: fields a strategy may override for itself (of the study's training settings)
STRATEGY_TRAINING: tuple[str, ...] = tuple(name for name in StrategyOptions.model_fields if name != "kind")


def option_columns() -> list[str]:
    """Every kind's own option names, each once, in registry order: ``k, r, alpha, dropout, targets, layers``."""
    names: list[str] = []
    for options in OPTIONS.values():
        names += [name for name in options.own_options() if name not in names]
    return names


class _Kind(_Strict):
    """The discriminator alone, so that a bad or missing kind reads as today: ``field 'kind' must be one of ...``."""

    model_config = {"extra": "ignore"}
    kind: StrategyKind  # type: ignore[valid-type]


def _one_kind(value: Any, handler: Any) -> Any:
    """Validate through the union; report errors at the strategy's own fields, without the union's tag."""
    if isinstance(value, StrategyOptions):
        return value
    if not isinstance(value, Mapping):
        raise ValidationError.from_exception_data("StrategySpec", [InitErrorDetails(
            type="model_type", loc=(), input=value, ctx={"class_name": "StrategySpec"})])
    _Kind.model_validate(value)
    try:
        return handler(value)
    except ValidationError as exc:
        errors = []
        for err in exc.errors(include_url=False):
            loc = err["loc"][1:] if err["loc"] and err["loc"][0] in OPTIONS else err["loc"]
            details = InitErrorDetails(type=err["type"], loc=loc, input=err["input"])
            if err.get("ctx"):
                details["ctx"] = err["ctx"]
            errors.append(details)
        raise ValidationError.from_exception_data("StrategySpec", errors) from None


#: One way of fine-tuning: the options model of its kind (a discriminated union on ``kind``).
StrategySpec = Annotated[Union[tuple(OPTIONS.values())], Field(discriminator="kind"),  # noqa: UP007
                         WrapValidator(_one_kind)]
STRATEGY_SPEC: TypeAdapter[StrategyOptions] = TypeAdapter(StrategySpec)


def strategy_spec(mapping: Mapping[str, Any] | StrategyOptions | None = None, /, *, where: str | None = None,
                  **fields: Any) -> StrategyOptions:
    """The strategy a mapping (or keywords) describes: ``strategy_spec({"kind": "lora", "r": 4})``.

    ``StrategySpec(**record["spec"])``-style callers use ``strategy_spec(record["spec"])``.  A bad value
    raises one :class:`SpecError` sentence naming the field (``where`` names the strategy in it).
    """
    if isinstance(mapping, StrategyOptions):
        if not fields:
            return mapping
        mapping = mapping.given()
    data = {**(mapping or {}), **fields}
    try:
        return validate_strategy(data)
    except ValidationError as exc:
        raise SpecError(_explain(exc, prefix=f"strategy {where or data!r}")) from None


def validate_strategy(fields: Mapping[str, Any]) -> StrategyOptions:
    """Like :func:`strategy_spec`, raising pydantic's :class:`ValidationError` for callers that word it themselves."""
    return STRATEGY_SPEC.validate_python(fields)


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _value_shape(name: str) -> tuple[str, Any]:
    """How a strategy string spells option ``name``: ``("list", item type)``, ``("number", None)`` or ``("text", None)``."""
    for options in (StrategyOptions, *OPTIONS.values()):
        info = options.model_fields.get(name)
        if info is None or name == "kind":
            continue
        annotation = info.annotation
        types = get_args(annotation) if get_origin(annotation) in (Union, UnionType) else (annotation,)
        for typ in types:
            if get_origin(typ) is list:
                return "list", get_args(typ)[0]
        return ("number" if any(typ in (int, float) for typ in types) else "text"), None
    return "text", None  # an unknown key: pydantic names it, with the value as written


def parse_strategy(text: str) -> StrategyOptions:
    """Parse ``kind[:key=value,...]`` such as ``lora:r=8,alpha=16,targets=query+value``.

    Raises :class:`SpecError` naming the bad part and the allowed values.
    """
    text = text.strip()
    kind, _, rest = text.partition(":")
    kind = kind.strip().lower()
    if kind not in OPTIONS:
        raise SpecError(f"unknown strategy {kind!r} in {text!r}; choose one of: {', '.join(KINDS)} "
                        "(e.g. full, head, partial:k=2, lora:r=8)")
    fields: dict[str, Any] = {"kind": kind}
    for item in filter(None, (p.strip() for p in rest.split(","))):
        key, eq, value = item.partition("=")
        key = key.strip()
        if not eq or not value.strip():
            raise SpecError(f"strategy option {item!r} in {text!r} must look like key=value")
        value = value.strip()
        shape, item_type = _value_shape(key)
        if shape == "list":
            parts = [v for v in value.split("+") if v]
            fields[key] = [int(v) for v in parts] if item_type is int and _all_int(parts) else parts
        else:
            fields[key] = _number(value) if shape == "number" else value
    return strategy_spec(fields, where=text)


def _all_int(parts: list[str]) -> bool:
    return all(p.lstrip("-").isdigit() for p in parts)
