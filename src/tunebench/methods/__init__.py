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
``lora-fa`` LoRA with A frozen, ``lora-plus`` B faster :mod:`~.lora`
``adalora`` LoRA with a pruned rank budget + head      :mod:`~.adalora`
``ia3`` ... IA3, VeRA, LoHa, LoKr, OFT, BOFT,          :mod:`~.adapters`
            FourierFT, HRA, LN tuning + head
``prefix``  prefix / prompt / P-tuning tokens + head   :mod:`~.prompts`
==========  =========================================  ==========================
"""

from __future__ import annotations

from tunebench.methods import adalora, adapters, baselines, bitfit, freezing, lora, prompts  # noqa: F401 - they register
from tunebench.methods.base import Method
from tunebench.methods.baselines import BaselineMethod
from tunebench.methods.bitfit import BitFitMethod
from tunebench.methods.freezing import FullMethod, HeadMethod, PartialMethod
from tunebench.methods.lora import LORA_TARGET_NAMES, LoraMethod
from tunebench.methods.peft_base import PeftMethod
from tunebench.methods.prompts import PromptMethod
from tunebench.methods.registry import METHODS, build_strategy, register

__all__ = ["LORA_TARGET_NAMES", "METHODS", "BaselineMethod", "BitFitMethod", "FullMethod", "HeadMethod", "LoraMethod",
           "Method", "PartialMethod", "PeftMethod", "PromptMethod", "build_strategy", "register"]
