"""LoRA through peft; the classifier (and pooler) train and are saved with the adapter."""

from __future__ import annotations

from torch import nn

from tunebench.errors import SpecError
from tunebench.methods.base import Method
from tunebench.training.modeling import find_layer_stack, head_module_names

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


class LoraMethod(Method):
    """LoRA matrices on the targeted modules (optionally of some layers only) plus the head, via peft."""

    kind = "lora"

    def target_modules(self, model: nn.Module) -> list[str]:
        model_type = getattr(model.config, "model_type", "")
        table = LORA_TARGET_NAMES.get(model_type, {})
        names: list[str] = []
        for role in self.spec.targets:
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
        targets = self.target_modules(model)
        self._check_rank(model, targets)
        config = LoraConfig(
            task_type=TaskType.SEQ_CLS,
            r=int(self.spec.r),
            lora_alpha=float(self.spec.alpha),
            lora_dropout=float(self.spec.dropout),
            target_modules=targets,
            layers_to_transform=layers,
            layers_pattern=stack_name.rsplit(".", 1)[-1] if layers is not None else None,
            modules_to_save=head_module_names(model),
        )
        peft_model = get_peft_model(model, config)
        self.lowest_trainable_layer = self._lowest_from(peft_model)
        return peft_model

    def _check_rank(self, model: nn.Module, targets: list[str]) -> None:
        """A rank above the adapted layers' smaller dimension cannot be low-rank (and at r=100000 on a
        384-wide MiniLM it builds huge matrices for minutes): refuse it in one sentence, before peft."""
        widths = [min(m.in_features, m.out_features) for name, m in model.named_modules()
                  if isinstance(m, nn.Linear) and any(name == t or name.endswith("." + t) for t in targets)]
        if widths and int(self.spec.r) > min(widths):
            raise SpecError(f"strategy '{self.label}' asks for rank {self.spec.r}, but the layers it adapts "
                            f"({', '.join(targets)}) are {min(widths)} wide; use r between 1 and {min(widths)}")
