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

from tunebench.methods.adalora import AdaLoraMethod
from tunebench.methods.adapters import ADAPTER_METHODS
from tunebench.methods.base import Method
from tunebench.methods.baselines import BaselineMethod, MajorityMethod, TfidfLogregMethod
from tunebench.methods.bitfit import BitFitMethod
from tunebench.methods.freezing import FullMethod, HeadMethod, PartialMethod
from tunebench.methods.lora import LORA_TARGET_NAMES, LoraFaMethod, LoraMethod, LoraPlusMethod
from tunebench.methods.peft_base import PeftMethod
from tunebench.methods.prompts import PROMPT_METHODS, PromptMethod
from tunebench.methods.registry import METHODS, build_strategy, register

__all__ = ["LORA_TARGET_NAMES", "METHODS", "BaselineMethod", "BitFitMethod", "FullMethod", "HeadMethod", "LoraMethod",
           "Method", "PartialMethod", "PeftMethod", "PromptMethod", "build_strategy", "register"]

for _method in (FullMethod, HeadMethod, PartialMethod, LoraMethod, BitFitMethod):
    register(_method)
for _method in (MajorityMethod, TfidfLogregMethod):  # the baselines (methods.baselines)
    register(_method)
# the PEFT methods beyond LoRA (spec.peft_kinds): methods.lora, .adalora, .adapters, .prompts
for _method in (LoraFaMethod, LoraPlusMethod, AdaLoraMethod, *ADAPTER_METHODS, *PROMPT_METHODS):
    register(_method)
