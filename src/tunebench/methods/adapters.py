"""The weight-adapting peft methods that need more than their recipe: IA3, OFT, BOFT, FourierFT, HRA, LN tuning.

Each kind's config is built from its :class:`~tunebench.spec.options.PeftRecipe` by
:class:`~tunebench.methods.peft_base.PeftMethod`; a class here adds a check or a field the recipe cannot
say.  VeRA, LoHa and LoKr are their recipe alone (no class); LoRA and its variants are in :mod:`~.lora`,
AdaLoRA in :mod:`~.adalora`, the prompt methods in :mod:`~.prompts`.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from tunebench.errors import SpecError
from tunebench.methods.peft_base import PeftMethod
from tunebench.methods.registry import register
from tunebench.methods.roles import FFN_ROLES, norm_modules


def _linear(model: nn.Module, name: str) -> nn.Linear:
    return dict(model.named_modules())[name]


@register
class Ia3Method(PeftMethod):
    """IA3: learned vectors rescaling the targeted linears' outputs (inputs, for the feed-forward roles)."""

    kind = "ia3"

    def model_fields(self, model: nn.Module) -> dict[str, Any]:
        ffn = [r for r in self.spec.targets if r in FFN_ROLES]
        return {"feedforward_modules": self.targets(model, ffn) if ffn else []}


@register
class OftMethod(PeftMethod):
    """OFT: a learned block-diagonal orthogonal matrix multiplies each targeted weight."""

    kind = "oft"

    def check(self, model: nn.Module, names: list[str]) -> None:
        size = int(self.spec.block_size)
        bad = sorted({_linear(model, n).in_features for n in names if _linear(model, n).in_features % size})
        if bad:
            raise SpecError(f"strategy '{self.label}': {self.display} block_size {size} must divide the adapted "
                            f"layers' input width ({', '.join(map(str, bad))})")


@register
class BoftMethod(OftMethod):
    """BOFT: the orthogonal matrix is a product of butterfly-structured block-diagonal factors."""

    kind = "boft"
    wraps_on_meta = False


@register
class FourierFtMethod(PeftMethod):
    """FourierFT: n_frequency learned spectral coefficients per weight at fixed random frequencies."""

    kind = "fourierft"

    def check(self, model: nn.Module, names: list[str]) -> None:
        smallest = min(_linear(model, n).in_features * _linear(model, n).out_features for n in names)
        if int(self.spec.n_frequency) > smallest:
            raise SpecError(f"strategy '{self.label}' asks for {self.spec.n_frequency} frequencies but the smallest "
                            f"adapted weight has {smallest} entries; use n_frequency up to {smallest}")


@register
class HraMethod(PeftMethod):
    """HRA: r learned Householder reflections multiply each targeted weight."""

    kind = "hra"

    def target_names(self, model: nn.Module) -> list[str] | None:
        if int(self.spec.r) % 2:  # before the targets, as ever
            raise SpecError(f"strategy '{self.label}': HRA needs an even number of reflections r (got {self.spec.r})")
        return super().target_names(model)


@register
class LnTuningMethod(PeftMethod):
    """LN tuning: a trainable copy of every LayerNorm inside the layer stack (weight and bias)."""

    kind = "ln-tuning"
    needs_roles = False

    def target_names(self, model: nn.Module) -> list[str] | None:
        return norm_modules(model, self.spec.layers, self.label)
