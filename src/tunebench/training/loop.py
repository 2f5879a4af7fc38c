"""The loop's small parts with names: what the caller sees of it and how it stops it (:class:`Callbacks`:
progress, each epoch's curve point, an interrupt), divergence (:func:`check_finite`) and the best epoch's
weights (:class:`BestWeights`).  The optimizer step and the early-stopping rule are in
:mod:`tunebench.training.optim`; the loop itself is :func:`tunebench.training.engine.train_and_evaluate`.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from tunebench.faults import Diverged, Interrupted, disk_guard
from tunebench.training.resume import LoopState

StepCallback = Callable[[dict[str, Any]], None]


class Objective:
    """The training loss: cross-entropy, weighted per class when the run asks (``RunConfig.class_weights``);
    for multi-label targets (0/1 rows) binary cross-entropy on each label's logit, the weights then being each
    label's positive weight (``pos_weight``: its negatives over its positives when balanced); for a regression
    (``target_scale``: the training target's mean and sd) the mean squared error of the standardised target.

    A batch split over processes counts each shard by its share of the whole batch's weight
    (:meth:`share`), so the gradients summed over processes are the whole batch's weighted mean: torch's
    ``cross_entropy(weight=)`` divides by the weights of the examples it sees, a shard's, not the batch's.
    The multi-label loss is a plain mean over examples and labels, so a shard counts by its examples.
    """

    def __init__(self, class_weights: tuple[float, ...] | None, labels: np.ndarray, device: torch.device,
                 target_scale: tuple[float, float] | None = None) -> None:
        self.target_scale = target_scale  # a regression: (mean, sd) of the training target
        self.multi_label = np.ndim(labels) == 2
        self.host = None if class_weights is None or self.multi_label else np.asarray(class_weights, dtype=np.float64)
        self.weights = None if class_weights is None else torch.tensor(class_weights, dtype=torch.float32,
                                                                        device=device)
        self.labels = labels if self.multi_label else np.asarray(labels, dtype=np.int64)

    def loss(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        if self.target_scale is not None:
            mean, sd = self.target_scale
            return nn.functional.mse_loss(logits.float()[:, 0], (labels.float() - mean) / sd)
        if self.multi_label:
            return nn.functional.binary_cross_entropy_with_logits(logits.float(), labels.float(),
                                                                  pos_weight=self.weights)
        return nn.functional.cross_entropy(logits.float(), labels, self.weights)  # weight passed by position

    def share(self, index: np.ndarray, whole: np.ndarray) -> float:
        """This process's part of the batch ``whole``: its examples' (weights') share of the batch's."""
        if self.host is None:
            return len(index) / len(whole)
        return float(self.host[self.labels[index]].sum() / self.host[self.labels[whole]].sum())

    def counts_as(self, index: np.ndarray, whole: np.ndarray) -> float:
        """How many examples this shard's loss counts as in the epoch's mean training loss (its share of the batch)."""
        return len(index) if self.host is None else self.share(index, whole) * len(whole)


def evaluation_outputs(logits: torch.Tensor, labels: torch.Tensor,
                       target_scale: tuple[float, float] | None) -> tuple[np.ndarray, float]:
    """One evaluation batch's outputs and summed loss, by task shape: softmax and cross-entropy (class ids);
    each label's sigmoid and BCE summed over labels, divided by their number (0/1 rows); a regression
    (``target_scale``): the prediction in the target's units, the MSE of the standardised target."""
    if target_scale is not None:
        mean, sd = target_scale
        loss = nn.functional.mse_loss(logits[:, 0], (labels.float() - mean) / sd, reduction="sum")
        return (logits * sd + mean).cpu().numpy(), float(loss)
    if labels.ndim == 2:
        loss = nn.functional.binary_cross_entropy_with_logits(logits, labels.float(), reduction="sum")
        return torch.sigmoid(logits).cpu().numpy(), float(loss) / labels.shape[1]
    loss = nn.functional.cross_entropy(logits, labels, reduction="sum")
    return torch.softmax(logits, dim=-1).cpu().numpy(), float(loss)


@dataclass
class Callbacks:
    """What the caller sees of the loop, and how it stops it (every one optional).

    ``on_step(point)``: after every batch, the epoch's running loss, examples/s and rate (a progress bar);
    ``on_epoch(point)``: each epoch's curve point, and may raise to stop the run (a search's pruner does);
    ``should_stop()``: true raises :class:`~tunebench.faults.Interrupted` at the next batch.
    """

    on_step: StepCallback | None = None
    on_epoch: StepCallback | None = None
    should_stop: Callable[[], bool] | None = None

    def check_interrupt(self, loop: LoopState, batch: int) -> None:
        if self.should_stop is not None and self.should_stop():
            raise Interrupted(f"interrupted at epoch {loop.epoch}, batch {batch}", epoch=loop.epoch, batch=batch,
                              step=loop.step, last_finite_loss=loop.last_finite_loss, curves=loop.curves)

    def progress(self, loop: LoopState, epochs: int, batch: int, batches: int, elapsed: float, lr: float) -> None:
        if self.on_step is not None and loop.loss_n:
            self.on_step({"epoch": loop.epoch, "epochs": epochs, "batch": batch, "batches": batches,
                          "loss": loop.loss_sum / loop.loss_n, "examples_per_s": loop.seen_examples / max(elapsed, 1e-9),
                          "lr": lr})

    def epoch_done(self, point: dict[str, float]) -> None:
        if self.on_epoch is not None:
            self.on_epoch(point)


def check_finite(loss: torch.Tensor, loop: LoopState, batch: int) -> float:
    """The loss as a float; a NaN/inf loss raises :class:`~tunebench.faults.Diverged` (divergence)."""
    if not torch.isfinite(loss):
        raise Diverged(f"loss became {float(loss.detach())} at epoch {loop.epoch}, batch {batch} "
                       f"(step {loop.step}); last finite loss {loop.last_finite_loss}", epoch=loop.epoch,
                       batch=batch, step=loop.step, last_finite_loss=loop.last_finite_loss, curves=loop.curves)
    return float(loss.detach())


class BestWeights:
    """The best epoch's trainable weights, kept in an anonymous temporary file rather than in RAM.

    A copy in memory adds every trainable weight to peak memory for the rest of the run (87 MB,
    the whole model, for full fine-tuning of MiniLM-L6).  ``torch.save`` writes one storage at a
    time, without a second copy, and the file's pages sit in the page cache, not in the process.
    The cost is one write per epoch that improves the validation selection metric.  The file has no name: it
    goes when the object does.
    """

    def __init__(self) -> None:
        self.file: Any = None

    def keep(self, model: nn.Module) -> None:
        self.keep_state({n: p.detach().cpu() for n, p in model.named_parameters() if p.requires_grad})

    def keep_state(self, state: dict[str, torch.Tensor]) -> None:
        if self.file is None:
            self.file = tempfile.TemporaryFile(prefix="tunebench-best-", suffix=".pt")  # noqa: SIM115 (lives with self)
        self.file.seek(0)
        self.file.truncate()
        with disk_guard("the best epoch's weights", tempfile.gettempdir()):
            torch.save(state, self.file)
            self.file.flush()

    def state(self) -> dict[str, torch.Tensor]:
        if self.file is None:
            return {}
        self.file.seek(0)
        return torch.load(self.file, map_location="cpu", weights_only=True)

    def restore(self, model: nn.Module) -> dict[str, torch.Tensor]:
        """Copy the kept weights back into ``model``; return them."""
        state = self.state()
        named = dict(model.named_parameters())
        with torch.no_grad():
            for name, value in state.items():
                named[name].copy_(value.to(named[name].device))
        return state
