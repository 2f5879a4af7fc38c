"""The base of every method: what it was built from, and how deep gradients must reach after ``prepare``.

A method is a small object built from a strategy spec (:data:`~tunebench.spec.strategy.StrategySpec`):

``prepare(model)``
    freezes what must not train (and may wrap the model, as LoRA does with peft); returns the model.
``lowest_trainable_layer``
    after ``prepare``: index into the encoder's layer stack of the lowest block with a trainable
    parameter; ``n_layers`` when only the head trains; ``-1`` when anything else trains (the
    embeddings, a prompt or prefix encoder, an encoder-level norm): no frozen prefix then.  The
    engine caches the layers below it, so a wrong answer would silently freeze what should train.
``hooks(model)``
    after ``prepare``: the method's say in the training loop (:class:`~tunebench.training.optim.TrainHooks`):
    which parameters are the head (they train at ``head_lr``), an optimizer of its own
    (:meth:`make_optimizer`, e.g. LoRA+), an action after every optimizer step (:meth:`after_step`,
    e.g. AdaLoRA's rank allocation).  ``total_steps`` (the run's planned optimizer steps) is set
    before ``prepare`` for methods whose schedule depends on it.

A *fitted* method (:class:`FittedMethod`: the baselines, ``embed-logreg``, ``setfit``) trains by its
own recipe instead of the engine: :meth:`FittedMethod.fit_predict` fits on the training split and
gives the validation and test probabilities, its cost and, when asked, its serving figures.
"""

from __future__ import annotations

import pickle
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import torch
from torch import nn

from tunebench.spec.strategy import StrategyOptions
from tunebench.training.modeling import find_layer_stack, head_parameter_names
from tunebench.training.optim import TrainHooks

if TYPE_CHECKING:
    from tunebench.data.bundle import DatasetBundle, Split


@dataclass
class Method:
    """One fine-tuning method; subclasses set ``kind`` (a kind of :data:`tunebench.spec.strategy.OPTIONS`)."""

    spec: StrategyOptions
    n_layers: int = 0
    lowest_trainable_layer: int = 0
    total_steps: int = 0  # the run's planned optimizer steps, set before prepare

    kind: ClassVar[str] = ""
    #: what the frozen-prefix cache does for this method, for ``tunebench methods`` and docs/METHODS.md
    cache_note: ClassVar[str] = ""

    @classmethod
    def architectures(cls) -> str:
        """The architectures it runs on, in words (``tunebench methods``)."""
        return "any encoder"

    @property
    def label(self) -> str:
        return self.spec.label

    def prepare(self, model: nn.Module) -> nn.Module:  # pragma: no cover - abstract
        raise NotImplementedError

    def check_fit(self, model: nn.Module, max_length: int) -> None:
        """Refuse, in one sentence, a model this method cannot train at ``max_length`` (prompt methods:
        virtual tokens take positions); called on the weightless dry-run model before any run trains."""

    def head_names(self, model: nn.Module) -> set[str]:
        """Names, in ``model.named_parameters()`` (the prepared model, peft wrapper and all), of the
        trainable head parameters: what trains at ``head_lr``."""
        inner = transformers_model(model)
        head = set(head_parameter_names(inner))
        inner_names = {id(param): name for name, param in inner.named_parameters()}
        return {name for name, param in model.named_parameters()
                if param.requires_grad and inner_names.get(id(param)) in head}

    def make_optimizer(self, model: nn.Module, groups: list[dict[str, Any]]) -> torch.optim.Optimizer | None:
        """An optimizer of the method's own over the engine's ``groups``; None: the engine's AdamW."""
        return None

    def after_step(self, model: nn.Module, step: int) -> None:
        """Called after every optimizer step (``step`` counts from 1), before the gradients are zeroed."""

    def hooks(self, model: nn.Module) -> TrainHooks:
        """What the engine needs from this method to train ``model`` (after :meth:`prepare`)."""
        overridden = type(self).after_step is not Method.after_step
        return TrainHooks(head_names=frozenset(self.head_names(model)), make_optimizer=self.make_optimizer,
                          after_step=self.after_step if overridden else None)

    def _lowest_from(self, model: nn.Module) -> int:
        """The lowest layer a gradient must reach, from what actually requires grad (sets ``n_layers``).

        A trainable parameter in the head (classifier, pooler) needs no encoder layer; one inside the
        layer stack needs that layer and those above; any other one (embeddings, a peft prompt or
        prefix encoder, which sit outside the transformers model) needs everything: ``-1``.
        """
        inner = transformers_model(model)
        stack_name, stack = find_layer_stack(inner)
        self.n_layers = len(stack)
        head = set(head_parameter_names(inner))
        inner_names = {id(param): name for name, param in inner.named_parameters()}
        marker = f"{stack_name}."
        lowest = self.n_layers
        for param in model.parameters():
            if not param.requires_grad:
                continue
            name = inner_names.get(id(param))
            if name is None:  # not part of the transformers model: a prompt or prefix encoder
                return -1
            if name in head:
                continue
            if not name.startswith(marker):  # the embeddings, or anything else below or beside the stack
                return -1
            lowest = min(lowest, int(name[len(marker):].split(".", 1)[0]))
        return lowest


def transformers_model(model: nn.Module) -> nn.Module:
    """The transformers model inside a peft wrapper (LoRA layers and ``modules_to_save`` included), or ``model``."""
    peft = sys.modules.get("peft")  # a model can only be a peft model once peft is imported
    if peft is not None and isinstance(model, peft.PeftModel):
        return model.get_base_model()
    return model


def freeze_all_but(model: nn.Module, keep: Callable[[str], bool]) -> None:
    """``requires_grad`` on exactly the parameters whose name ``keep`` accepts."""
    for name, param in model.named_parameters():
        param.requires_grad = keep(name)


@dataclass(frozen=True)
class FitContext:
    """What a fitted method needs beyond the data: the study's encoder folder, the run's seed and settings, the
    device, the class weights (``training.class_weight`` resolved on the training split), and whether to
    measure serving after fitting (a final run, not a trial)."""

    model_source: str = ""
    seed: int = 0
    max_length: int | None = None
    device: torch.device = torch.device("cpu")
    class_weights: tuple[float, ...] | None = None
    batch_size: int = 16
    eval_batch_size: int = 64
    trust_remote_code: bool = False
    serve: bool = False
    serve_onnx: bool = False


def coefficient_count(model: Any) -> int:
    """A scikit-learn linear model's coefficients and intercepts; a one-vs-rest model's (multi-label), summed over
    its labels' models (a label no training row holds is a constant: one value)."""
    parts = getattr(model, "estimators_", [model])
    return int(sum(m.coef_.size + np.size(m.intercept_) if hasattr(m, "coef_") else 1 for m in parts))


@dataclass
class FittedMethod(Method):
    """A method fitted by its own recipe, not tunebench's engine (its options have ``fitted = True``): no
    model loaded for the engine, no curves, no head rate, never tuned by rates.  Subclasses give ``fit`` and
    ``probabilities`` (and their cost figures); ``self.context`` is the run's :class:`FitContext`."""

    context: FitContext = field(default_factory=FitContext)

    cache_note = "n/a"
    #: one sentence for the run's resources (``engine_notes``): what trained, how tokens were counted
    engine_note: ClassVar[str] = ""

    def prepare(self, model: nn.Module) -> nn.Module:
        """Nothing to prepare: the engine never trains a fitted method (the study loads no classifier for it)."""
        return model

    def fit(self, train: Split, n_labels: int) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

    def probabilities(self, fitted: Any, split: Split, n_labels: int) -> np.ndarray:  # pragma: no cover
        raise NotImplementedError

    def parameter_count(self, fitted: Any) -> int:
        """The values fitting set (trainable parameters)."""
        return 0

    def total_parameters(self, fitted: Any) -> int:
        """Every value the fitted predictor holds (frozen encoder included)."""
        return self.parameter_count(fitted)

    def stored_bytes(self, fitted: Any) -> int:
        """The bytes a user must keep beyond the base encoder (what fitting produced)."""
        return len(pickle.dumps(fitted))

    def deploy_bytes(self, fitted: Any) -> int:
        """The bytes the served predictor holds (encoder included)."""
        return self.stored_bytes(fitted)

    def resolved(self) -> dict[str, Any]:
        """The run's rates and epochs as the record shows them (None where they do not apply)."""
        return {"lr": None, "epochs": None, "scheduler": None, "head_lr": None}

    def fit_predict(self, bundle: DatasetBundle, context: FitContext | None = None) -> dict[str, Any]:
        """Fit on the training split; class probabilities of validation and test; cost figures; with
        ``context.serve``, the serving figures (:func:`tunebench.training.serving.measure_fitted_serving`)."""
        if context is not None:
            self.context = context
        n_labels = len(bundle.label_names)
        started = time.perf_counter()
        fitted = self.fit(bundle.train, n_labels)
        train_s = time.perf_counter() - started
        started = time.perf_counter()
        val = self.probabilities(fitted, bundle.validation, n_labels)
        test = self.probabilities(fitted, bundle.test, n_labels)
        eval_s = time.perf_counter() - started
        out = {"val": val, "test": test, "train_time_s": train_s, "eval_time_s": eval_s,
               "save_bytes": self.stored_bytes(fitted), "parameters": self.parameter_count(fitted),
               "total_parameters": self.total_parameters(fitted), "resolved": self.resolved()}
        if self.context.serve:
            from tunebench.training.serving import measure_fitted_serving

            validation = bundle.validation

            def run(index: np.ndarray) -> np.ndarray:  # log-probabilities: the serving code's softmax gives them back
                return np.log(np.clip(self.probabilities(fitted, validation.select(index), n_labels), 1e-12, None))

            out["serving"] = measure_fitted_serving(run, len(validation), self.context.device,
                                                    self.deploy_bytes(fitted), onnx=self.context.serve_onnx)
        return out
