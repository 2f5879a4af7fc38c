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

import importlib.metadata
from collections.abc import Callable, Iterator, Mapping, Sequence
from functools import cache
from types import UnionType
from typing import Annotated, Any, Literal, TypeVar, Union, get_args, get_origin

from pydantic import Field, PlainValidator, SerializeAsAny, TypeAdapter, ValidationError, create_model
from pydantic_core import InitErrorDetails

from tunebench.errors import SpecError, first_line
from tunebench.spec.kinds import LoraOptions
from tunebench.spec.options import OPTIONS, STRATEGY_TRAINING, StrategyOptions, option_columns, register_options
from tunebench.spec.parts import _explain, _number, _Strict

__all__ = ["DEFAULT_LR", "ENTRY_POINT_GROUP", "KINDS", "OPTIONS", "STRATEGY_TRAINING", "KindList", "LoraOptions",
           "PerKind", "StrategyOptions", "StrategySpec", "kinds", "load_plugins", "option_columns", "parse_strategy",
           "register_options", "strategy_spec", "validate_strategy"]

#: the entry-point group a package names its method modules in (``[project.entry-points."tunebench.methods"]``)
ENTRY_POINT_GROUP = "tunebench.methods"
_plugins = {"loaded": False}


def load_plugins() -> None:
    """Load every installed method plug-in once: each entry point of :data:`ENTRY_POINT_GROUP` names a module
    (``pkg.method``) that registers its method on import, or a function (``pkg.method:register``) called with
    no arguments.  Done before anything lists kinds or validates a strategy; a plug-in imports
    ``tunebench.methods`` (torch) when it loads."""
    if _plugins["loaded"]:
        return
    _plugins["loaded"] = True  # first: a plug-in that validates a strategy while it loads does not recurse
    for entry in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        try:
            loaded = entry.load()
            if callable(loaded) and not isinstance(loaded, type):
                loaded()
        except Exception as exc:  # any failure of a third-party module is one sentence
            raise SpecError(f"method plug-in {entry.name!r} ({entry.value}) failed to load: "
                            f"{first_line(exc, 200)}") from exc


def kinds() -> tuple[str, ...]:
    """Every registered kind, plug-ins included, in the order they are listed to users."""
    load_plugins()
    return tuple(OPTIONS)


_T = TypeVar("_T")


class KindList(Sequence[str]):
    """The registered kinds (those ``keep`` accepts), read when used: a plug-in registered later is in it."""

    def __init__(self, keep: Callable[[type[StrategyOptions]], bool] = lambda options: True) -> None:
        self._keep = keep

    def _kinds(self) -> tuple[str, ...]:
        return tuple(kind for kind in kinds() if self._keep(OPTIONS[kind]))

    def __getitem__(self, index: Any) -> Any:
        return self._kinds()[index]

    def __len__(self) -> int:
        return len(self._kinds())

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Sequence) and tuple(self) == tuple(other)

    def __repr__(self) -> str:
        return repr(self._kinds())


class PerKind(Mapping[str, _T]):
    """kind -> ``value(options)`` for every registered kind (whose value ``keep`` accepts), read when used."""

    def __init__(self, value: Callable[[type[StrategyOptions]], _T], keep: Callable[[_T], bool] = lambda v: True):
        self._value, self._keep = value, keep

    def _items(self) -> dict[str, _T]:
        values = {kind: self._value(OPTIONS[kind]) for kind in kinds()}
        return {kind: value for kind, value in values.items() if self._keep(value)}

    def __getitem__(self, kind: str) -> _T:
        return self._items()[kind]

    def __iter__(self) -> Iterator[str]:
        return iter(self._items())

    def __len__(self) -> int:
        return len(self._items())

    def __repr__(self) -> str:
        return repr(self._items())


#: every kind, in the order they are listed to users
KINDS: Sequence[str] = KindList()
#: Learning rates used when neither the strategy nor ``training.lr`` sets one (fewer parameters: a larger step).
DEFAULT_LR: Mapping[str, float] = PerKind(lambda options: options.default_lr)


class _KindField(_Strict):
    model_config = {"extra": "ignore"}


@cache
def _validators(models: tuple[type[StrategyOptions], ...]) -> tuple[type[_Strict], TypeAdapter[Any]]:
    """For the registered options models: the discriminator alone, so that a bad or missing kind reads as
    ever (``field 'kind' must be one of ...``), and their union on ``kind``.  Built again when one is added."""
    names = tuple(model.model_fields["kind"].default for model in models)
    kind = create_model("_Kind", __base__=_KindField, kind=(Literal[names], ...))  # type: ignore[call-overload]
    union = TypeAdapter(Annotated[Union[models], Field(discriminator="kind")])  # noqa: UP007
    return kind, union


def _one_kind(value: Any) -> Any:
    """Validate through the union; report errors at the strategy's own fields, without the union's tag."""
    if isinstance(value, StrategyOptions):
        return value
    if not isinstance(value, Mapping):
        raise ValidationError.from_exception_data("StrategySpec", [InitErrorDetails(
            type="model_type", loc=(), input=value, ctx={"class_name": "StrategySpec"})])
    load_plugins()
    kind, union = _validators(tuple(OPTIONS.values()))
    kind.model_validate(value)
    try:
        return union.validate_python(value)
    except ValidationError as exc:
        errors = []
        for err in exc.errors(include_url=False):
            loc = err["loc"][1:] if err["loc"] and err["loc"][0] in OPTIONS else err["loc"]
            details = InitErrorDetails(type=err["type"], loc=loc, input=err["input"])
            if err.get("ctx"):
                details["ctx"] = err["ctx"]
            errors.append(details)
        raise ValidationError.from_exception_data("StrategySpec", errors) from None


#: One way of fine-tuning: the options model of its kind (validated against every registered kind, plug-ins
#: included, when used; dumped as its own kind dumps it).
StrategySpec = Annotated[SerializeAsAny[StrategyOptions], PlainValidator(_one_kind)]
_STRATEGY_SPEC: TypeAdapter[StrategyOptions] = TypeAdapter(StrategySpec)


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
    return _STRATEGY_SPEC.validate_python(fields)



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
    if kind not in kinds():
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
    # isascii: str.isdigit() is true of "²" and "٣", which int() refuses (found by the property test)
    return all(p.lstrip("-").isdigit() and p.isascii() for p in parts)
