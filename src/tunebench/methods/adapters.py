"""The weight-adapting peft methods: IA3, VeRA, LoHa, LoKr, OFT, BOFT, FourierFT, HRA and LN tuning.

Each wraps the model with one peft config through :class:`~tunebench.methods.peft_base.PeftMethod`; LoRA and its
variants are in :mod:`~.lora`, AdaLoRA in :mod:`~.adalora`, the prompt methods in :mod:`~.prompts`.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from tunebench.errors import SpecError
from tunebench.methods.peft_base import PeftMethod
from tunebench.methods.roles import FFN_ROLES, norm_modules


def _linear(model: nn.Module, name: str) -> nn.Linear:
    return dict(model.named_modules())[name]


class Ia3Method(PeftMethod):
    """IA3: learned vectors rescaling the targeted linears' outputs (inputs, for the feed-forward roles)."""

    kind, display = "ia3", "IA3"

    def peft_config(self, model: nn.Module, head: list[str]) -> Any:
        from peft import IA3Config, TaskType

        names = self.targets(model)
        ffn = [r for r in self.spec.targets if r in FFN_ROLES]
        feedforward = self.targets(model, ffn) if ffn else []
        return IA3Config(task_type=TaskType.SEQ_CLS, target_modules=names, feedforward_modules=feedforward,
                         modules_to_save=head)


class VeraMethod(PeftMethod):
    """VeRA: one frozen random pair (A, B) shared by every targeted layer; per layer, two scaling vectors train."""

    kind, display = "vera", "VeRA"

    def peft_config(self, model: nn.Module, head: list[str]) -> Any:
        from peft import TaskType, VeraConfig

        return VeraConfig(task_type=TaskType.SEQ_CLS, r=int(self.spec.r), target_modules=self.targets(model),
                          vera_dropout=float(self.spec.dropout), save_projection=True, modules_to_save=head)


class LohaMethod(PeftMethod):
    """LoHa: the update is the Hadamard product of two rank-r products."""

    kind, display = "loha", "LoHa"

    def peft_config(self, model: nn.Module, head: list[str]) -> Any:
        from peft import LoHaConfig, TaskType

        return LoHaConfig(task_type=TaskType.SEQ_CLS, r=int(self.spec.r), alpha=float(self.spec.alpha or self.spec.r),
                          target_modules=self.targets(model), modules_to_save=head)


class LokrMethod(PeftMethod):
    """LoKr: the update is a Kronecker product with a low-rank factor."""

    kind, display = "lokr", "LoKr"

    def peft_config(self, model: nn.Module, head: list[str]) -> Any:
        from peft import LoKrConfig, TaskType

        return LoKrConfig(task_type=TaskType.SEQ_CLS, r=int(self.spec.r), alpha=float(self.spec.alpha or self.spec.r),
                          target_modules=self.targets(model), modules_to_save=head)


class OftMethod(PeftMethod):
    """OFT: a learned block-diagonal orthogonal matrix multiplies each targeted weight."""

    kind, display = "oft", "OFT"

    def _check_blocks(self, model: nn.Module, names: list[str]) -> None:
        size = int(self.spec.block_size)
        bad = sorted({_linear(model, n).in_features for n in names if _linear(model, n).in_features % size})
        if bad:
            raise SpecError(f"strategy '{self.label}': {self.display} block_size {size} must divide the adapted "
                            f"layers' input width ({', '.join(map(str, bad))})")

    def peft_config(self, model: nn.Module, head: list[str]) -> Any:
        from peft import OFTConfig, TaskType

        names = self.targets(model)
        self._check_blocks(model, names)
        return OFTConfig(task_type=TaskType.SEQ_CLS, r=0, oft_block_size=int(self.spec.block_size),
                         module_dropout=float(self.spec.dropout), target_modules=names, modules_to_save=head)


class BoftMethod(OftMethod):
    """BOFT: the orthogonal matrix is a product of butterfly-structured block-diagonal factors."""

    kind, display = "boft", "BOFT"
    wraps_on_meta = False

    def peft_config(self, model: nn.Module, head: list[str]) -> Any:
        from peft import BOFTConfig, TaskType

        names = self.targets(model)
        self._check_blocks(model, names)
        return BOFTConfig(task_type=TaskType.SEQ_CLS, boft_block_size=int(self.spec.block_size),
                          boft_n_butterfly_factor=int(self.spec.butterfly), boft_dropout=float(self.spec.dropout),
                          target_modules=names, modules_to_save=head)


class FourierFtMethod(PeftMethod):
    """FourierFT: n_frequency learned spectral coefficients per weight at fixed random frequencies."""

    kind, display = "fourierft", "FourierFT"

    def peft_config(self, model: nn.Module, head: list[str]) -> Any:
        from peft import FourierFTConfig, TaskType

        names = self.targets(model)
        smallest = min(_linear(model, n).in_features * _linear(model, n).out_features for n in names)
        if int(self.spec.n_frequency) > smallest:
            raise SpecError(f"strategy '{self.label}' asks for {self.spec.n_frequency} frequencies but the smallest "
                            f"adapted weight has {smallest} entries; use n_frequency up to {smallest}")
        return FourierFTConfig(task_type=TaskType.SEQ_CLS, n_frequency=int(self.spec.n_frequency),
                               scaling=float(self.spec.scaling), target_modules=names, modules_to_save=head)


class HraMethod(PeftMethod):
    """HRA: r learned Householder reflections multiply each targeted weight."""

    kind, display = "hra", "HRA"

    def peft_config(self, model: nn.Module, head: list[str]) -> Any:
        from peft import HRAConfig, TaskType

        if int(self.spec.r) % 2:
            raise SpecError(f"strategy '{self.label}': HRA needs an even number of reflections r (got {self.spec.r})")
        return HRAConfig(task_type=TaskType.SEQ_CLS, r=int(self.spec.r), target_modules=self.targets(model),
                         modules_to_save=head)


class LnTuningMethod(PeftMethod):
    """LN tuning: a trainable copy of every LayerNorm inside the layer stack (weight and bias)."""

    kind, display = "ln-tuning", "LN tuning"
    needs_roles = False

    def peft_config(self, model: nn.Module, head: list[str]) -> Any:
        from peft import LNTuningConfig, TaskType

        return LNTuningConfig(task_type=TaskType.SEQ_CLS, target_modules=norm_modules(model, self.spec.layers,
                                                                                    self.label),
                              modules_to_save=head)


ADAPTER_METHODS: tuple[type[PeftMethod], ...] = (Ia3Method, VeraMethod, LohaMethod, LokrMethod, OftMethod,
                                                 BoftMethod, FourierFtMethod, HraMethod, LnTuningMethod)
