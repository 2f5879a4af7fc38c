"""Methods that only choose which parameters of the model train: ``full``, ``head``, ``partial``."""

from __future__ import annotations

from torch import nn

from tunebench.errors import SpecError
from tunebench.methods.base import Method, freeze_all_but
from tunebench.methods.registry import register
from tunebench.training.modeling import find_layer_stack, head_parameter_names


@register
class FullMethod(Method):
    """Every parameter trains."""

    kind = "full"
    cache_note = "never (the embeddings train)"

    def prepare(self, model: nn.Module) -> nn.Module:
        freeze_all_but(model, lambda name: True)
        self.lowest_trainable_layer = self._lowest_from(model)
        return model


@register
class HeadMethod(Method):
    """The classifier (and the pooler, where the model has one) trains; the encoder is frozen."""

    kind = "head"
    cache_note = "everything below the head"

    def prepare(self, model: nn.Module) -> nn.Module:
        head = set(head_parameter_names(model))
        freeze_all_but(model, lambda name: name in head)
        self.lowest_trainable_layer = self._lowest_from(model)
        return model


@register
class PartialMethod(Method):
    """The top ``k`` encoder layers and the head train."""

    kind = "partial"
    cache_note = "the layers below the top k"

    def prepare(self, model: nn.Module) -> nn.Module:
        stack_name, stack = find_layer_stack(model)
        k = int(self.spec.k)
        if k > len(stack):
            raise SpecError(f"strategy '{self.label}' asks for the top {k} layers but the model has only "
                            f"{len(stack)}; use k between 1 and {len(stack)} (or 'full')")
        top = {f"{stack_name}.{i}." for i in range(len(stack) - k, len(stack))}
        head = set(head_parameter_names(model))
        freeze_all_but(model, lambda name: name in head or any(name.startswith(t) for t in top))
        self.lowest_trainable_layer = self._lowest_from(model)
        return model
