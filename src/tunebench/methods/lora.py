"""LoRA through peft, with its variants: DoRA, rsLoRA, PiSSA / OLoRA / Gaussian init, trainable biases (options
of ``lora``), LoRA-FA (``lora-fa``: A frozen, peft's LoRA-FA optimizer) and LoRA+ (``lora-plus``: B at
``loraplus_ratio`` times A's rate).  The head trains and is saved with the adapter.

PiSSA and OLoRA move the principal part of each adapted weight into A and B at init (the base weight keeps
the residual), so an adapter saved as is would only work on that residual.  Their adapter is saved
converted (peft's ``path_initial_model_for_weight_conversion``): a rank-2r LoRA of plain base weights, which
``PeftModel.from_pretrained(AutoModelForSequenceClassification...)`` reloads like any other.  Only the
adapted modules change, and they sit in the lowest adapted layer or above, so the frozen-prefix cache below
it stays exact.
"""

from __future__ import annotations

import functools
from typing import Any, ClassVar

import torch
from torch import nn

from tunebench.errors import SpecError
from tunebench.methods.peft_base import PeftMethod, on_meta
from tunebench.methods.registry import register
from tunebench.methods.roles import LORA_TARGET_NAMES
from tunebench.training.optim import adamw

__all__ = ["LORA_TARGET_NAMES", "LoraFaMethod", "LoraMethod", "LoraPlusMethod"]

_INIT = {"default": True, "gaussian": "gaussian", "pissa": "pissa", "olora": "olora"}


@register
class LoraMethod(PeftMethod):
    """LoRA matrices on the targeted modules (optionally of some layers only) plus the head, via peft."""

    kind = "lora"

    def target_modules(self, model: nn.Module) -> list[str]:
        return self.targets(model)

    def peft_config(self, model: nn.Module, head: list[str]) -> Any:
        from peft import LoraConfig, TaskType

        targets = self.targets(model)
        self._check_rank(model, targets)
        init = self.spec.init
        if init in ("pissa", "olora") and self.spec.dora:
            raise SpecError(f"strategy '{self.label}': peft cannot save a DoRA adapter initialised with {init} "
                            "for plain base weights; use dora or init, not both")
        return LoraConfig(
            task_type=TaskType.SEQ_CLS, r=int(self.spec.r), lora_alpha=float(self.spec.alpha),
            lora_dropout=float(self.spec.dropout), target_modules=targets, modules_to_save=head,
            use_dora=bool(self.spec.dora), use_rslora=bool(self.spec.rslora), bias=self.spec.bias,
            # a weightless dry run cannot take an SVD / QR: the same modules and shapes with the plain init
            init_lora_weights=True if on_meta(model) else _INIT[init],
        )

    def wrapped(self, model: nn.Module) -> None:
        if self.spec.init in ("pissa", "olora") and not on_meta(model):
            _save_converted(model)

    def _check_rank(self, model: nn.Module, targets: list[str]) -> None:
        """A rank above the adapted layers' smaller dimension cannot be low-rank (and at r=100000 on a
        384-wide MiniLM it builds huge matrices for minutes): refuse it in one sentence, before peft."""
        modules = dict(model.named_modules())
        widths = [min(modules[t].in_features, modules[t].out_features) for t in targets
                  if isinstance(modules[t], nn.Linear)]
        if widths and int(self.spec.r) > min(widths):
            shown = ", ".join(self.spec.targets)
            raise SpecError(f"strategy '{self.label}' asks for rank {self.spec.r}, but the layers it adapts "
                            f"({shown}) are {min(widths)} wide; use r between 1 and {min(widths)}")


def _save_converted(model: nn.Module) -> None:
    """Keep the initial A0, B0 and make ``save_pretrained`` write the trained adapter as a rank-2r LoRA of the plain
    base weights: W_res + B A = W + [B | -B0] [A ; A0] (peft's PiSSA/OLoRA conversion, which would drop the head)."""
    from peft import get_peft_model_state_dict

    initial = {k: v.detach().clone() for k, v in get_peft_model_state_dict(model).items() if ".lora_" in k}
    model.save_pretrained = functools.partial(_save_with_conversion, model, initial)  # type: ignore[method-assign]


def _save_with_conversion(model: Any, initial: dict[str, torch.Tensor], folder: Any, **kwargs: Any) -> None:
    import copy
    import math
    from pathlib import Path

    from peft import get_peft_model_state_dict
    from safetensors.torch import save_file

    state = {k: v.detach().cpu().contiguous() for k, v in get_peft_model_state_dict(model).items()}
    for name, a0 in initial.items():
        dim = 0 if ".lora_A." in name else 1
        state[name] = torch.cat([state[name], a0.cpu() if dim == 0 else -a0.cpu()], dim=dim).contiguous()
    config = copy.deepcopy(model.peft_config["default"])
    config.r, config.init_lora_weights = 2 * config.r, True
    config.lora_alpha *= math.sqrt(2) if config.use_rslora else 2  # the same scaling at twice the rank
    Path(folder).mkdir(parents=True, exist_ok=True)
    config.save_pretrained(str(folder))
    save_file(state, str(Path(folder) / "adapter_model.safetensors"), metadata={"format": "pt"})


@register
class LoraFaMethod(LoraMethod):
    """LoRA-FA: A stays at its random init (frozen), B trains, through peft's LoRA-FA optimizer, whose update of B
    is the projection that keeps the low-rank update close to full fine-tuning's gradient."""

    kind = "lora-fa"

    def peft_config(self, model: nn.Module, head: list[str]) -> Any:
        if self.spec.dora:
            raise SpecError(f"strategy '{self.label}': peft's LoRA-FA optimizer pairs lora_A with lora_B and cannot "
                            "step DoRA's magnitude vector; use lora:dora=true instead")
        return super().peft_config(model, head)

    def wrapped(self, model: nn.Module) -> None:
        super().wrapped(model)
        for name, param in model.named_parameters():
            if ".lora_A." in name:
                param.requires_grad_(False)

    def make_optimizer(self, model: nn.Module, groups: list[dict[str, Any]]) -> torch.optim.Optimizer | None:
        """peft's LoRA-FA optimizer at the run's rate; the head (when ``head_lr`` differs) in a group of its own."""
        from peft.optimizers import create_lorafa_optimizer

        lr = next((g["lr"] for g in groups if not g["name"].startswith("head")), groups[0]["lr"])
        decay = next((g["weight_decay"] for g in groups if g["name"] == "decay"), 0.0)
        optimizer = create_lorafa_optimizer(model, r=int(self.spec.r), lora_alpha=float(self.spec.alpha), lr=lr,
                                            weight_decay=decay)
        head = {id(p): g for g in groups if g["name"].startswith("head") for p in g["params"]}
        if head:
            group = optimizer.param_groups[0]
            keep = [i for i, p in enumerate(group["params"]) if id(p) not in head]
            moved = [i for i, p in enumerate(group["params"]) if id(p) in head]
            head_group = {key: [group[key][i] for i in moved] for key in ("params", "names", "scaling_factors")}
            for key in ("params", "names", "scaling_factors"):
                group[key] = [group[key][i] for i in keep]
            head_lr = head[id(head_group["params"][0])]["lr"]
            optimizer.add_param_group({**head_group, "lr": head_lr, "weight_decay": decay})
        return optimizer


@register
class LoraPlusMethod(LoraMethod):
    """LoRA+: B's learning rate is ``loraplus_ratio`` times A's (Hayou et al. 2024).

    The groups are the engine's (the head keeps ``head_lr``), each split into its A part and its B part (B, and
    DoRA's magnitude, at ratio × lr), as peft's ``create_loraplus_optimizer`` groups them; that function itself
    would put the head's biases at ratio × lr too, which is why it is not called as is.
    """

    kind = "lora-plus"
    fast: ClassVar[tuple[str, ...]] = (".lora_B.", ".lora_magnitude_vector.")

    def make_optimizer(self, model: nn.Module, groups: list[dict[str, Any]]) -> torch.optim.Optimizer | None:
        fast = {id(p) for name, p in model.named_parameters() if any(part in name for part in self.fast)}
        ratio = float(self.spec.loraplus_ratio)
        split: list[dict[str, Any]] = []
        for group in groups:
            slow = [p for p in group["params"] if id(p) not in fast]
            quick = [p for p in group["params"] if id(p) in fast]
            if slow:
                split.append({**group, "params": slow})
            if quick:
                split.append({**group, "name": group["name"] + "_B", "params": quick, "lr": group["lr"] * ratio})
        return adamw(split, groups[0]["lr"])
