"""tunebench.methods: fine-tuning methods: which parameters train and how deep gradients reach.

The behaviour side of the method registry: :data:`METHODS` maps each strategy kind to its
:class:`~tunebench.methods.base.Method` class; :func:`build_strategy` builds the one a strategy spec
names.  The options side (what a kind accepts, its default learning rate, its label) is
:data:`tunebench.spec.strategy.OPTIONS`; both list the same kinds.

==========  =========================================  ==========================
kind        trains                                     module
==========  =========================================  ==========================
``full``    everything                                 :mod:`~.freezing`
``head``    classifier (+ pooler)                      :mod:`~.freezing`
``partial`` the top ``k`` layers + head                :mod:`~.freezing`
``lora``    LoRA matrices (peft) + head                :mod:`~.lora`
``bitfit``  every bias + head                          :mod:`~.bitfit`
==========  =========================================  ==========================
"""

from __future__ import annotations

from tunebench.errors import SpecError
from tunebench.methods.base import Method
from tunebench.methods.bitfit import BitFitMethod
from tunebench.methods.freezing import FullMethod, HeadMethod, PartialMethod
from tunebench.methods.lora import LORA_TARGET_NAMES, LoraMethod
from tunebench.spec.strategy import OPTIONS, StrategyOptions

__all__ = ["LORA_TARGET_NAMES", "METHODS", "BitFitMethod", "FullMethod", "HeadMethod", "LoraMethod", "Method",
           "PartialMethod", "build_strategy", "register"]

#: kind -> the method class that prepares a model for it
METHODS: dict[str, type[Method]] = {}


def register(cls: type[Method]) -> type[Method]:
    """Register ``cls`` for its ``kind`` (usable as a decorator); the kind needs an options model in the spec."""
    if cls.kind not in OPTIONS:
        raise ValueError(f"method {cls.__name__} is for kind {cls.kind!r}, which has no options model in "
                         f"tunebench.spec.strategy.OPTIONS (kinds: {', '.join(OPTIONS)})")
    METHODS[cls.kind] = cls
    return cls


for _method in (FullMethod, HeadMethod, PartialMethod, LoraMethod, BitFitMethod):
    register(_method)


def build_strategy(spec: StrategyOptions) -> Method:
    """The method ``spec`` names, ready to ``prepare`` a model."""
    method = METHODS.get(spec.kind)
    if method is None:
        raise SpecError(f"strategy kind {spec.kind!r} has no registered method; registered: {', '.join(METHODS)}")
    return method(spec=spec)
