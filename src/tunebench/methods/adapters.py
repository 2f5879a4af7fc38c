"""Methods that wrap the model with one peft config: the shared ``prepare`` and the weight-adapting methods.

:class:`PeftMethod` builds the method's peft config, adds the head (every module
:func:`~tunebench.training.modeling.head_module_names` finds: classifier, pooler, DistilBERT's
``pre_classifier``, anything the checkpoint lacked) to ``modules_to_save`` so it trains and is saved in the
adapter, wraps the model and derives the frozen-prefix depth from what requires grad.  A peft refusal is
one sentence naming the method and the architecture (:class:`SpecError`, exit 2), which the study's
meta-device dry run raises before any training.

Here: IA3, VeRA, LoHa, LoKr, OFT, BOFT, FourierFT, HRA and LN tuning; LoRA and its variants are in
:mod:`~.lora`, AdaLoRA in :mod:`~.adalora`, the prompt methods in :mod:`~.prompts`.
"""

from __future__ import annotations

from typing import Any, ClassVar

from torch import nn

from tunebench.errors import SpecError, first_line
from tunebench.methods.base import Method
from tunebench.methods.roles import FFN_ROLES, ROLE_MODULES, model_type, norm_modules, target_modules
from tunebench.training.modeling import head_module_names


def on_meta(model: nn.Module) -> bool:
    """A weightless dry-run model (``study.run.check_methods_fit``): nothing weight-dependent can be computed."""
    return any(p.is_meta for p in model.parameters())


class PeftMethod(Method):
    """One peft config around the model, the head in ``modules_to_save``."""

    #: how the method is named in sentences
    display: ClassVar[str] = ""
    #: model_type -> why the method cannot run on it (one sentence before any training)
    unsupported: ClassVar[dict[str, str]] = {}
    #: architectures whose blocks the role table maps (None: any encoder with a layer stack)
    needs_roles: ClassVar[bool] = True
    #: what the frozen-prefix cache does for this method, for ``tunebench methods``
    cache_note: ClassVar[str] = "below the lowest adapted layer (use layers= to adapt the top ones only)"
    #: False: peft's init computes on the weights (BOFT), so the meta-device dry run stops after the config checks
    wraps_on_meta: ClassVar[bool] = True

    def peft_config(self, model: nn.Module, head: list[str]) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

    def check_architecture(self, model: nn.Module) -> None:
        arch = model_type(model)
        if arch in self.unsupported:
            raise SpecError(f"{self.display} cannot run on {arch} ({type(model).__name__}): {self.unsupported[arch]}")
        if self.needs_roles and arch not in ROLE_MODULES:
            raise SpecError(f"{self.display} has no target roles for architecture {arch or type(model).__name__}; "
                            f"supported: {', '.join(ROLE_MODULES)}")

    def targets(self, model: nn.Module, roles: list[str] | None = None, **kinds: Any) -> list[str]:
        return target_modules(model, list(roles if roles is not None else self.spec.targets),
                              getattr(self.spec, "layers", None), self.label, self.display, **kinds)

    def prepare(self, model: nn.Module) -> nn.Module:
        from peft import get_peft_model

        self.check_architecture(model)
        config = self.peft_config(model, head_module_names(model))
        if not self.wraps_on_meta and on_meta(model):
            self.lowest_trainable_layer = -1
            return model
        try:
            peft_model = get_peft_model(model, config)
        except (ValueError, RuntimeError, TypeError, NotImplementedError, KeyError) as exc:
            raise SpecError(f"{self.display} cannot adapt {model_type(model)} ({type(model).__name__}) as "
                            f"'{self.label}' asks: {first_line(exc, 200)}") from None
        self.wrapped(peft_model)
        self.lowest_trainable_layer = self._lowest_from(peft_model)
        return peft_model

    def wrapped(self, model: nn.Module) -> None:
        """After peft wrapped the model (LoRA-FA freezes A here)."""


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
