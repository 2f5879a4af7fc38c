"""The base of every method that wraps the model with one peft config: the shared ``prepare``.

:class:`PeftMethod` builds the method's peft config, adds the head (every module
:func:`~tunebench.training.modeling.head_module_names` finds: classifier, pooler, DistilBERT's
``pre_classifier``, anything the checkpoint lacked) to ``modules_to_save`` so it trains and is saved in the
adapter, wraps the model and derives the frozen-prefix depth from what requires grad.  A peft refusal is
one sentence naming the method and the architecture (:class:`SpecError`, exit 2), which the study's
meta-device dry run raises before any training.

A kind whose options carry a :class:`~tunebench.spec.options.PeftRecipe` needs no class of its own: the
config is built from the recipe (:meth:`PeftMethod.peft_config`), and the registry gives such a kind a
:class:`PeftMethod` when no class is registered for it (:mod:`tunebench.methods.registry`).  A subclass
adds only what the recipe cannot say: a check (:meth:`check`), config fields computed from the model
(:meth:`model_fields`), the modules to target (:meth:`target_names`).
"""

from __future__ import annotations

from types import UnionType
from typing import Any, ClassVar, Union, get_args, get_origin

from torch import nn

from tunebench.errors import SpecError, first_line
from tunebench.methods.base import Method
from tunebench.methods.roles import ROLE_MODULES, model_type, target_modules
from tunebench.training.modeling import head_module_names


def on_meta(model: nn.Module) -> bool:
    """A weightless dry-run model (``study.run.check_methods_fit``): nothing weight-dependent can be computed."""
    return any(p.is_meta for p in model.parameters())


class PeftMethod(Method):
    """One peft config around the model, the head in ``modules_to_save``."""

    #: model_type -> why the method cannot run on it (one sentence before any training)
    unsupported: ClassVar[dict[str, str]] = {}
    #: architectures whose blocks the role table maps (None: any encoder with a layer stack)
    needs_roles: ClassVar[bool] = True
    #: what the frozen-prefix cache does for this method, for ``tunebench methods``
    cache_note: ClassVar[str] = "below the lowest adapted layer (use layers= to adapt the top ones only)"
    #: False: peft's init computes on the weights (BOFT), so the meta-device dry run stops after the config checks
    wraps_on_meta: ClassVar[bool] = True

    @property
    def display(self) -> str:
        """How sentences name the method (the options' ``display``: ``VeRA``, ``prefix tuning``)."""
        return self.spec.display or self.spec.kind

    @classmethod
    def architectures(cls) -> str:
        if not cls.needs_roles:
            return "any encoder"
        return ", ".join(a for a in ROLE_MODULES if a not in cls.unsupported)

    def peft_config(self, model: nn.Module, head: list[str]) -> Any:
        """The peft config the options' recipe describes, the head in ``modules_to_save``."""
        import peft

        recipe = self.spec.peft
        if recipe is None:  # pragma: no cover - a kind without a recipe has a class of its own
            raise NotImplementedError(f"{type(self).__name__} has no peft recipe: it must build its config")
        fields = dict(recipe.constants)
        for option, name in recipe.fields.items():
            value = getattr(self.spec, option)
            if value is None and option in recipe.fallbacks:
                value = getattr(self.spec, recipe.fallbacks[option])
            fields[name] = _as_declared(type(self.spec), option, value)
        names = self.target_names(model)
        if names is not None:
            fields["target_modules"] = names
        self.check(model, names or [])
        config = getattr(peft, recipe.config)
        return config(task_type=peft.TaskType.SEQ_CLS, modules_to_save=head, **fields, **self.model_fields(model))

    def target_names(self, model: nn.Module) -> list[str] | None:
        """The module names the config targets: the ``targets`` roles resolved (None: the kind has no targets)."""
        return self.targets(model) if "targets" in type(self.spec).model_fields else None

    def check(self, model: nn.Module, names: list[str]) -> None:
        """Refuse, in one sentence, what the config would take but the model cannot (OFT's block size)."""

    def model_fields(self, model: nn.Module) -> dict[str, Any]:
        """Config fields computed from the model (the prompt methods' widths); none by default."""
        return {}

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


def _as_declared(options: type, name: str, value: Any) -> Any:
    """``value`` as option ``name`` declares it: a float option's value is a float (LoHa's alpha taken from r)."""
    annotation = options.model_fields[name].annotation
    types = get_args(annotation) if get_origin(annotation) in (Union, UnionType) else (annotation,)
    if float in types and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value
