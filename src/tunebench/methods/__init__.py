"""tunebench.methods: fine-tuning methods: which parameters train and how deep gradients reach.

The behaviour side of the method registry (:mod:`~.registry`): each kind of the spec's registry
(:data:`tunebench.spec.strategy.OPTIONS`) gets its :class:`~tunebench.methods.base.Method` class, registered by
``@register`` in its module, or, for a kind that is its peft recipe alone, a plain
:class:`~tunebench.methods.peft_base.PeftMethod`.  :func:`build_strategy` builds the one a strategy spec names.

=============  ============================================  =============================
kind           trains                                        module
=============  ============================================  =============================
``full``       everything                                    :mod:`~.freezing`
``head``       classifier (+ pooler)                         :mod:`~.freezing`
``partial``    the top ``k`` layers + head                   :mod:`~.freezing`
``lora``       LoRA matrices (peft) + head                   :mod:`~.lora`
``bitfit``     every bias + head                             :mod:`~.bitfit`
``majority``   nothing: the baselines train no network       :mod:`~.baselines`
``lora-fa``    LoRA with A frozen, ``lora-plus`` B faster    :mod:`~.lora`
``adalora``    LoRA with a pruned rank budget + head         :mod:`~.adalora`
``ia3`` ...    IA3, OFT, BOFT, FourierFT, HRA, LN tuning     :mod:`~.adapters`
``vera`` ...   VeRA, LoHa, LoKr: their recipe alone          :mod:`tunebench.spec.peft_kinds`
``prefix``     prefix / prompt / P-tuning tokens + head      :mod:`~.prompts`
``setfit``     fitted candidates on sentence embeddings:     :mod:`~.sentence`
               ``embed-logreg`` (a head on frozen ones) and
               ``setfit`` (contrastive encoder + head)
=============  ============================================  =============================
"""

from __future__ import annotations

from tunebench.methods import (  # noqa: F401 - they register
    adalora,
    adapters,
    baselines,
    bitfit,
    freezing,
    lora,
    prompts,
    sentence,
)
from tunebench.methods.base import FitContext, FittedMethod, Method
from tunebench.methods.baselines import BaselineMethod
from tunebench.methods.bitfit import BitFitMethod
from tunebench.methods.freezing import FullMethod, HeadMethod, PartialMethod
from tunebench.methods.lora import LORA_TARGET_NAMES, LoraMethod
from tunebench.methods.peft_base import PeftMethod
from tunebench.methods.prompts import PromptMethod
from tunebench.methods.registry import METHODS, build_strategy, register

__all__ = ["LORA_TARGET_NAMES", "METHODS", "BaselineMethod", "BitFitMethod", "FitContext", "FittedMethod", "FullMethod",
           "HeadMethod", "LoraMethod", "Method", "PartialMethod", "PeftMethod", "PromptMethod", "build_strategy", "register"]
