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

import torch
from torch import nn

from tunebench.faults import Diverged, Interrupted, disk_guard
from tunebench.training.resume import LoopState

StepCallback = Callable[[dict[str, Any]], None]


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
