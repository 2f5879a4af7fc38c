"""Fine-tuning strategies: each says which parameters train and how deep gradients must reach.

A strategy is a small object built from a :class:`~tunebench.spec.schema.StrategySpec`:

``prepare(model)``
    freezes what must not train (and, for LoRA, wraps the model with peft); returns the model.
``lowest_trainable_layer``
    after ``prepare``: index into the encoder's layer stack of the lowest block with a trainable
    parameter; ``-1`` when the embeddings train, ``n_layers`` when only the head trains.  The
    engine uses it: below that depth no gradient is needed.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from torch import nn

from tunebench.errors import SpecError
from tunebench.spec.schema import StrategySpec
from tunebench.training.modeling import find_layer_stack, head_module_names, head_parameter_names

#: LoRA target roles → module names per architecture (``model_type`` in the config).
LORA_TARGET_NAMES: dict[str, dict[str, list[str]]] = {
    "bert": {"query": ["query"], "key": ["key"], "value": ["value"],
             "dense": ["dense"], "attention.output": ["attention.output.dense"]},
    "roberta": {"query": ["query"], "key": ["key"], "value": ["value"], "dense": ["dense"]},
    "xlm-roberta": {"query": ["query"], "key": ["key"], "value": ["value"], "dense": ["dense"]},
    "electra": {"query": ["query"], "key": ["key"], "value": ["value"], "dense": ["dense"]},
    "distilbert": {"query": ["q_lin"], "key": ["k_lin"], "value": ["v_lin"], "dense": ["out_lin"]},
    "deberta": {"query": ["in_proj"], "value": ["in_proj"]},
    "deberta-v2": {"query": ["query_proj"], "key": ["key_proj"], "value": ["value_proj"]},
    "mpnet": {"query": ["q"], "key": ["k"], "value": ["v"], "dense": ["o"]},
}


@dataclass
class Strategy:
    spec: StrategySpec
    n_layers: int = 0
    lowest_trainable_layer: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def label(self) -> str:
        return self.spec.label

    def prepare(self, model: nn.Module) -> nn.Module:  # pragma: no cover - abstract
        raise NotImplementedError

    def _lowest_from(self, model: nn.Module) -> int:
        """Derive the lowest trainable layer from what actually requires grad."""
        stack_name, stack = find_layer_stack(model)
        self.n_layers = len(stack)
        lowest = self.n_layers
        for name, param in model.named_parameters():
            if not param.requires_grad:
                continue
            if ".embeddings." in f".{name}":
                return -1
            marker = f"{stack_name}."
            if marker in name:
                index = int(name.split(marker, 1)[1].split(".", 1)[0])
                lowest = min(lowest, index)
        return lowest


def _freeze_all_but(model: nn.Module, keep) -> None:
    for name, param in model.named_parameters():
        param.requires_grad = keep(name)


class FullStrategy(Strategy):
    def prepare(self, model: nn.Module) -> nn.Module:
        _freeze_all_but(model, lambda name: True)
        self.lowest_trainable_layer = self._lowest_from(model)
        return model


class HeadStrategy(Strategy):
    def prepare(self, model: nn.Module) -> nn.Module:
        head = set(head_parameter_names(model))
        _freeze_all_but(model, lambda name: name in head)
        self.lowest_trainable_layer = self._lowest_from(model)
        return model


class PartialStrategy(Strategy):
    def prepare(self, model: nn.Module) -> nn.Module:
        stack_name, stack = find_layer_stack(model)
        k = int(self.spec.k or 0)
        if k > len(stack):
            raise SpecError(f"strategy '{self.label}' asks for the top {k} layers but the model has only "
                            f"{len(stack)}; use k between 1 and {len(stack)} (or 'full')")
        top = {f"{stack_name}.{i}." for i in range(len(stack) - k, len(stack))}
        head = set(head_parameter_names(model))
        _freeze_all_but(model, lambda name: name in head or any(name.startswith(t) for t in top))
        self.lowest_trainable_layer = self._lowest_from(model)
        return model


class LoraStrategy(Strategy):
    """LoRA through peft; the classifier (and pooler) train and are saved with the adapter."""

    def target_modules(self, model: nn.Module) -> list[str]:
        model_type = getattr(model.config, "model_type", "")
        table = LORA_TARGET_NAMES.get(model_type, {})
        names: list[str] = []
        for role in self.spec.targets or []:
            mapped = table.get(role, [role])  # unknown role: treat it as a literal module name
            names.extend(n for n in mapped if n not in names)
        present = {name.rsplit(".", 1)[-1] for name, _ in model.named_modules()}
        present |= {name for name, _ in model.named_modules()}
        missing = [n for n in names if n not in present and not any(
            m.endswith("." + n) for m in present)]
        if missing:
            known = ", ".join(sorted(table)) if table else "query, key, value (or module names)"
            raise SpecError(f"LoRA target(s) {', '.join(missing)} not found in {type(model).__name__}; "
                            f"use roles from: {known}")
        return names

    def prepare(self, model: nn.Module) -> nn.Module:
        from peft import LoraConfig, TaskType, get_peft_model

        stack_name, stack = find_layer_stack(model)
        layers = self.spec.layers
        if layers is not None:
            layers = [i if i >= 0 else len(stack) + i for i in layers]
            bad = [i for i in layers if not 0 <= i < len(stack)]
            if bad:
                raise SpecError(f"strategy '{self.label}' names layer(s) {bad} but the model has layers "
                                f"0..{len(stack) - 1}")
        config = LoraConfig(
            task_type=TaskType.SEQ_CLS,
            r=int(self.spec.r or 8),
            lora_alpha=float(self.spec.alpha or 16),
            lora_dropout=float(self.spec.dropout or 0.0),
            target_modules=self.target_modules(model),
            layers_to_transform=layers,
            layers_pattern=stack_name.rsplit(".", 1)[-1] if layers is not None else None,
            modules_to_save=head_module_names(model),
        )
        peft_model = get_peft_model(model, config)
        self.lowest_trainable_layer = self._lowest_from(peft_model)
        return peft_model


_KINDS: dict[str, type[Strategy]] = {
    "full": FullStrategy,
    "head": HeadStrategy,
    "partial": PartialStrategy,
    "lora": LoraStrategy,
}


def build_strategy(spec: StrategySpec) -> Strategy:
    return _KINDS[spec.kind](spec=spec)
