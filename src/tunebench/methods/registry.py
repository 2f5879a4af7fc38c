"""The behaviour side of the method registry: kind -> the :class:`~tunebench.methods.base.Method` class.

:func:`register` adds a method class for a kind the spec registry (:data:`tunebench.spec.strategy.OPTIONS`)
knows; :func:`build_strategy` builds the one a strategy spec names.
"""

from __future__ import annotations

from tunebench.errors import SpecError
from tunebench.methods.base import Method
from tunebench.spec.strategy import OPTIONS, StrategyOptions

#: kind -> the method class that prepares a model for it
METHODS: dict[str, type[Method]] = {}


def register(cls: type[Method]) -> type[Method]:
    """Register ``cls`` for its ``kind`` (usable as a decorator); the kind needs an options model in the spec."""
    if cls.kind not in OPTIONS:
        raise ValueError(f"method {cls.__name__} is for kind {cls.kind!r}, which has no options model in "
                         f"tunebench.spec.strategy.OPTIONS (kinds: {', '.join(OPTIONS)})")
    METHODS[cls.kind] = cls
    return cls


def build_strategy(spec: StrategyOptions) -> Method:
    """The method ``spec`` names, ready to ``prepare`` a model."""
    method = METHODS.get(spec.kind)
    if method is None:
        raise SpecError(f"strategy kind {spec.kind!r} has no registered method; registered: {', '.join(METHODS)}")
    return method(spec=spec)
