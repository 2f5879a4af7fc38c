"""BitFit: every bias term of the encoder trains, with the head (Ben Zaken, Ravfogel & Goldberg, ACL 2022).

Written here by hand: peft has no BitFit (its methods add modules or reparametrise weights; BitFit
only unfreezes parameters that exist already), and a plain ``requires_grad`` choice keeps the
checkpoint a plain transformers model that ``AutoModelForSequenceClassification`` reloads.
"""

from __future__ import annotations

from torch import nn

from tunebench.methods.base import Method, freeze_all_but
from tunebench.methods.registry import register
from tunebench.training.modeling import head_parameter_names


def is_bias(name: str) -> bool:
    """A bias term: linear and LayerNorm biases alike (as the paper's code: every parameter named ``bias``)."""
    return name.rsplit(".", 1)[-1] == "bias"


@register
class BitFitMethod(Method):
    """Every bias of the encoder (attention, feed-forward, LayerNorm, embedding LayerNorm) plus the head.

    The embedding LayerNorm's bias trains, so gradients reach the embeddings: ``lowest_trainable_layer``
    is -1 and nothing is cached.
    """

    kind = "bitfit"
    cache_note = "never (embedding LayerNorm bias trains)"

    def prepare(self, model: nn.Module) -> nn.Module:
        head = set(head_parameter_names(model))
        freeze_all_but(model, lambda name: name in head or is_bias(name))
        self.lowest_trainable_layer = self._lowest_from(model)
        return model
