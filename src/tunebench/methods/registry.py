"""The behaviour side of the method registry: each kind's :class:`~tunebench.methods.base.Method` class.

There is one list of kinds, the spec's (:data:`tunebench.spec.strategy.OPTIONS`, in the order kinds are
listed to users); this module only says what each of them *does*.  A method module registers its class
with :func:`register` (a decorator: ``@register`` above ``class VeraMethod``); a kind whose options carry
a peft recipe and no class of its own is a plain :class:`~tunebench.methods.peft_base.PeftMethod`.
:data:`METHODS` is the resulting view, kind -> class, in the spec's order; :func:`build_strategy` builds
the method a strategy spec names.

A plug-in passes its options model too, ``register(MyMethod, options=MyOptions)``: both halves of a method
in one call, from one module (see docs/ARCHITECTURE.md, "Adding a method").
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from functools import cache

from tunebench.errors import SpecError
from tunebench.methods.base import Method
from tunebench.methods.peft_base import PeftMethod
from tunebench.spec.strategy import KINDS, OPTIONS, StrategyOptions, register_options

#: kind -> the class registered for it (the kinds with a recipe and no class are not here)
_REGISTERED: dict[str, type[Method]] = {}


def register(cls: type[Method], options: type[StrategyOptions] | None = None) -> type[Method]:
    """Register ``cls`` for its ``kind`` (usable as a decorator); with ``options``, register that options
    model in the spec first (a plug-in's one call).  The kind needs an options model in the spec."""
    if options is not None:
        register_options(options)
    if cls.kind not in OPTIONS:
        raise ValueError(f"method {cls.__name__} is for kind {cls.kind!r}, which has no options model in "
                         f"tunebench.spec.strategy.OPTIONS (kinds: {', '.join(OPTIONS)})")
    if _REGISTERED.get(cls.kind, cls) is not cls:
        raise ValueError(f"kind {cls.kind!r} already has a method ({_REGISTERED[cls.kind].__name__}); "
                         f"{cls.__name__} needs a kind of its own")
    _REGISTERED[cls.kind] = cls
    return cls


@cache
def _from_recipe(kind: str) -> type[Method]:
    """A kind that is its peft recipe alone: a :class:`PeftMethod` named after it (``VeraMethod``)."""
    name = "".join(part.capitalize() for part in kind.replace("-", " ").split()) + "Method"
    cls = type(name, (PeftMethod,), {"kind": kind, "__doc__": OPTIONS[kind].__doc__, "__module__": __name__})
    globals().setdefault(name, cls)  # found by name, as pickle looks classes up
    return cls


def method_class(kind: str) -> type[Method] | None:
    """The class that prepares a model for ``kind``; None when the kind has no behaviour."""
    if kind in _REGISTERED:
        return _REGISTERED[kind]
    options = OPTIONS.get(kind)
    return _from_recipe(kind) if options is not None and options.peft is not None else None


class _Methods(Mapping[str, type[Method]]):
    """kind -> method class, for every kind of the spec that has one, in the spec's order."""

    def __getitem__(self, kind: str) -> type[Method]:
        method = method_class(kind)
        if method is None:
            raise KeyError(kind)
        return method

    def __iter__(self) -> Iterator[str]:
        return (kind for kind in KINDS if method_class(kind) is not None)

    def __len__(self) -> int:
        return sum(1 for _ in self)


#: kind -> the method class that prepares a model for it
METHODS: Mapping[str, type[Method]] = _Methods()


def build_strategy(spec: StrategyOptions) -> Method:
    """The method ``spec`` names, ready to ``prepare`` a model."""
    method = method_class(spec.kind)
    if method is None:
        raise SpecError(f"strategy kind {spec.kind!r} has no registered method; registered: {', '.join(METHODS)}")
    return method(spec=spec)
