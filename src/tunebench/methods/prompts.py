"""Prompt methods: trained virtual tokens instead of changed weights (prefix tuning, prompt tuning, P-tuning).

The virtual tokens sit outside the transformers model (peft's prompt encoder), so gradients must reach the
input: ``lowest_trainable_layer`` is -1 and nothing is cached.  They also take positions: prompt tuning and
P-tuning put ``tokens`` embeddings before the input, prefix tuning shifts the input's position ids by
``tokens`` (the prefix is the past of every layer).  :meth:`PromptMethod.check_fit` says in one sentence when
``max_length`` no longer fits the model's position table; the study calls it with the run's ``max_length``.
"""

from __future__ import annotations

import inspect
from typing import Any, ClassVar

from torch import nn

from tunebench.errors import SpecError
from tunebench.methods.peft_base import PeftMethod
from tunebench.methods.registry import register
from tunebench.methods.roles import model_type
from tunebench.training.modeling import base_model


def usable_positions(config: Any) -> int | None:
    """How many tokens the position table takes (RoBERTa-style tables start after the padding index)."""
    positions = getattr(config, "max_position_embeddings", None)
    if positions is None:
        return None
    if getattr(config, "model_type", "") in ("roberta", "xlm-roberta", "camembert"):
        positions -= int(getattr(config, "pad_token_id", 1) or 1) + 1
    return int(positions)


def dims(model: nn.Module) -> dict[str, int]:
    """What peft reads from ``config.hidden_size`` and friends; DistilBERT calls them dim, n_heads, n_layers."""
    config = model.config
    return {"token_dim": getattr(config, "hidden_size", None) or config.dim,
            "num_attention_heads": getattr(config, "num_attention_heads", None) or config.n_heads,
            "num_layers": getattr(config, "num_hidden_layers", None) or config.n_layers}


class PromptMethod(PeftMethod):
    """A peft prompt-learning config; the head trains and is saved with the prompt."""

    needs_roles = False
    cache_note: ClassVar[str] = "never: the virtual tokens feed every layer"

    def model_fields(self, model: nn.Module) -> dict[str, Any]:
        return dims(model)

    def check_fit(self, model: nn.Module, max_length: int) -> None:
        """One sentence when ``tokens`` virtual tokens plus ``max_length`` exceed the model's positions."""
        self.check_architecture(model)
        usable = usable_positions(getattr(model, "config", None))
        tokens = int(self.spec.tokens)
        if usable is not None and tokens + max_length > usable:
            raise SpecError(f"strategy '{self.label}' adds {tokens} virtual tokens to max_length {max_length}, "
                            f"{tokens + max_length} positions, but {model_type(model) or type(model).__name__} "
                            f"has {usable}; use max_length up to {usable - tokens} or fewer tokens")


@register
class PrefixMethod(PromptMethod):
    """Prefix tuning: trained keys and values prepended in every attention layer (peft ``PrefixTuningConfig``)."""

    kind = "prefix"

    @classmethod
    def architectures(cls) -> str:
        return "encoders whose forward takes past_key_values (not BERT/RoBERTa/DistilBERT in transformers 5)"

    def check_architecture(self, model: nn.Module) -> None:
        super().check_architecture(model)
        encoder = base_model(model)
        if "past_key_values" not in inspect.signature(encoder.forward).parameters:
            import transformers

            raise SpecError(f"prefix tuning cannot run on {model_type(model) or type(model).__name__}: transformers "
                            f"{transformers.__version__}'s {type(encoder).__name__} takes no past key/values, which "
                            "is how peft injects the prefix")


@register
class PromptTuningMethod(PromptMethod):
    """Prompt tuning: ``tokens`` trained embeddings before the input (peft ``PromptTuningConfig``, random init)."""

    kind = "prompt"


@register
class PTuningMethod(PromptMethod):
    """P-tuning: the virtual-token embeddings come out of a small trained MLP or LSTM (peft ``PromptEncoderConfig``)."""

    kind = "p-tuning"

    def model_fields(self, model: nn.Module) -> dict[str, Any]:
        from peft import PromptEncoderReparameterizationType

        encoder = {"mlp": PromptEncoderReparameterizationType.MLP,
                   "lstm": PromptEncoderReparameterizationType.LSTM}[self.spec.encoder]
        return {**super().model_fields(model), "encoder_reparameterization_type": encoder}
