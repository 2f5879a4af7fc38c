"""The strategy grammar and the union of every registered kind's options model.

The kinds themselves are registered in :data:`~tunebench.spec.options.OPTIONS` (the spec side of the
method registry): the built-in ones by :mod:`tunebench.spec.kinds`.  Everything else that lists
kinds is derived from it: :data:`KINDS`, :data:`DEFAULT_LR`, :func:`option_columns`, the sweep keys
(:mod:`tunebench.spec.sweep`) and the sentence :func:`parse_strategy` answers an unknown kind with.
What a method *does* lives in :mod:`tunebench.methods`, which registers one class per kind listed here.

:data:`StrategySpec` is the discriminated union of the options models on ``kind``; build one with
:func:`strategy_spec` (a mapping or keywords; one :class:`SpecError` sentence on a bad value) or
:func:`parse_strategy` (a string such as ``lora:r=8,targets=query+value``).
"""

from __future__ import annotations

from collections.abc import Mapping
from types import UnionType
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import Field, TypeAdapter, ValidationError, WrapValidator
from pydantic_core import InitErrorDetails

from tunebench.errors import SpecError
from tunebench.spec.kinds import LoraOptions
from tunebench.spec.options import OPTIONS, STRATEGY_TRAINING, StrategyOptions, option_columns, register_options
from tunebench.spec.parts import _explain, _number, _Strict

__all__ = ["DEFAULT_LR", "KINDS", "OPTIONS", "STRATEGY_SPEC", "STRATEGY_TRAINING", "LoraOptions", "StrategyKind",
           "StrategyOptions", "StrategySpec", "option_columns", "parse_strategy", "register_options", "strategy_spec",
           "validate_strategy"]


#: every kind, in the order they are listed to users
KINDS: tuple[str, ...] = tuple(OPTIONS)
StrategyKind = Literal[KINDS]  # type: ignore[valid-type]
#: Learning rates used when neither the strategy nor ``training.lr`` sets one (fewer parameters: a larger step).
DEFAULT_LR: dict[str, float] = {kind: options.default_lr for kind, options in OPTIONS.items()}


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
