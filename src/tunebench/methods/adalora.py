"""AdaLoRA: SVD-shaped LoRA whose total rank budget falls from ``init_r`` to ``target_r`` per module during training.

peft's schedule needs the run's planned optimizer steps (``total_step``; the study sets
:attr:`Method.total_steps` before ``prepare``) and a call of ``update_and_allocate(step)`` after every optimizer
step, before the gradients are zeroed (:meth:`after_step`): it scores each singular value's importance from
its gradient and masks the least important ones.  The budget stays at ``init_r`` per module for ``tinit``
steps, falls cubically, and holds at ``target_r`` for the last ``tfinal`` steps; values below 1 are shares of
the run's steps.  AdaLoRA's orthogonality penalty is added by peft to the model's own loss, which tunebench's
engine does not use (it computes cross-entropy from the logits), so it is off here.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from tunebench.errors import SpecError
from tunebench.methods.peft_base import PeftMethod, on_meta
from tunebench.methods.registry import register


@register
class AdaLoraMethod(PeftMethod):
    """AdaLoRA through peft; ``after_step`` reallocates the rank budget."""

    kind = "adalora"

    def schedule(self) -> tuple[int, int, int]:
        """(total, tinit, tfinal) in optimizer steps; one sentence when the schedule does not fit the run."""
        total = int(self.total_steps)
        if total <= 0:
            raise SpecError(f"strategy '{self.label}' needs the run's planned optimizer steps (Method.total_steps) "
                            "before prepare: AdaLoRA's rank schedule is laid over them")

        def steps(value: float) -> int:
            return round(value * total) if value < 1 else int(value)

        tinit, tfinal = steps(float(self.spec.tinit)), steps(float(self.spec.tfinal))
        if tinit + tfinal >= total:
            raise SpecError(f"strategy '{self.label}': tinit ({tinit}) + tfinal ({tfinal}) steps leave no step of the "
                            f"run's {total} to reduce the rank budget in; lower them or train longer")
        return total, tinit, tfinal

    def peft_config(self, model: nn.Module, head: list[str]) -> Any:
        from peft import AdaLoraConfig, TaskType

        if int(self.spec.target_r) > int(self.spec.init_r):
            raise SpecError(f"strategy '{self.label}': target_r ({self.spec.target_r}) must not exceed init_r "
                            f"({self.spec.init_r})")
        if on_meta(model) and self.total_steps <= 0:
            total, tinit, tfinal = 1000, 0, 0  # the dry run checks targets and ranks; the schedule needs the plan
        else:
            total, tinit, tfinal = self.schedule()
        alpha = float(self.spec.alpha) if self.spec.alpha is not None else 2.0 * int(self.spec.init_r)
        return AdaLoraConfig(task_type=TaskType.SEQ_CLS, init_r=int(self.spec.init_r), target_r=int(self.spec.target_r),
                             tinit=tinit, tfinal=tfinal, deltaT=int(self.spec.deltaT), total_step=total,
                             lora_alpha=alpha, lora_dropout=float(self.spec.dropout), orth_reg_weight=0.0,
                             target_modules=self.targets(model), modules_to_save=head)

    def after_step(self, model: nn.Module, step: int) -> None:
        model.base_model.update_and_allocate(step)

    def rank_budget(self, model: nn.Module) -> int:
        """The number of singular values not masked to zero, over every adapted module (what the schedule prunes)."""
        return sum(int((param != 0).sum()) for name, param in model.named_parameters() if ".lora_E." in name)
