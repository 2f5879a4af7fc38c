"""Resume points: a run's whole training state every N optimizer steps, so a killed run resumes mid-epoch.

``--checkpoint-every N`` (``training.checkpoint_every``) makes the engine call
:meth:`ResumePoint.save` after every N-th optimizer step.  The file, ``OUTPUT/resume/<run_id>.pt``,
holds the trainable parameters, the optimizer, scheduler and gradient-scaler states, the python,
numpy and torch (CPU and CUDA) RNG states, the loop's :class:`LoopState` (the position: epoch, next
batch, step; the running loss sums and counters; the curves so far) and the best epoch's state.  The
batch plan of an epoch is a pure function of the seed and the epoch (``batching.batches``), so the
position is enough to skip the batches already trained; frozen-prefix caches are recomputed
(deterministically) before the state is restored.  On CPU with a fixed seed a resumed run ends with
exactly the metrics of an uninterrupted one.

The file is written to a temporary name and renamed (a reader never sees half a file), loaded
with ``torch.load(weights_only=True)`` (no pickled code), ignored when it was written for other
settings (e.g. the batch size of an out-of-memory retry), and removed when the run ends.
"""

from __future__ import annotations

import dataclasses
import json
import os
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from tunebench.faults import disk_guard

RESUME_DIR = "resume"


@dataclass
class LoopState:
    """The training loop's progress: what a resume point saves (as JSON) and restores, beside the tensors.

    The position is ``epoch`` and ``next_batch``, the batches of that epoch already trained; ``loss_sum``,
    ``loss_n`` and ``epoch_elapsed`` (its training seconds before a resume) belong to that epoch too.
    """

    epoch: int = 1
    next_batch: int = 0
    step: int = 0  # optimizer steps taken
    loss_sum: float = 0.0
    loss_n: int = 0
    seen_examples: int = 0
    seen_tokens: int = 0
    train_time: float = 0.0
    eval_time: float = 0.0
    epoch_elapsed: float = 0.0
    curves: list[dict[str, float]] = field(default_factory=list)
    best_score: float = -1.0  # the best epoch's validation selection metric
    best_epoch: int = 0
    best_val: dict[str, Any] = field(default_factory=dict)
    last_finite_loss: float | None = None
    initial: dict[str, float] | None = None  # the validation score before training (epoch 0)


class ResumePoint:
    """Where one run saves and finds its resume state."""

    def __init__(self, path: Path | str, every: int, settings: dict[str, Any]) -> None:
        self.path = Path(path)
        self.every = int(every)
        self.settings = json.loads(json.dumps(settings, default=str))  # what the state is valid for
        self.resumed_from: dict[str, Any] | None = None  # position restored by load(), for the record

    @classmethod
    def for_run(cls, out_dir: Path | str, run_id: str, every: int, settings: dict[str, Any]) -> ResumePoint:
        return cls(Path(out_dir) / RESUME_DIR / f"{run_id}.pt", every, settings)

    def due(self, step: int) -> bool:
        return self.every > 0 and step > 0 and step % self.every == 0

    def save(self, model: nn.Module, optimizer, scheduler, scaler, progress: LoopState | dict[str, Any],
             best_state: dict[str, torch.Tensor]) -> None:
        """Write the state atomically (temporary file, fsync, rename); ``progress`` may be a dict of LoopState's fields."""
        fields = dataclasses.asdict(progress) if isinstance(progress, LoopState) else dict(progress)
        state = {
            "params": {n: p.detach().to("cpu", copy=True) for n, p in model.named_parameters() if p.requires_grad},
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "scaler": scaler.state_dict() if scaler is not None else None,
            "best_state": best_state,
            "torch_rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            "numpy_rng": torch.from_numpy(np.random.get_state()[1].astype(np.int64)),
            "meta": json.dumps({"settings": self.settings, "progress": fields,
                                "python_rng": random.getstate(), "numpy_rng": _numpy_rest()}),
        }
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".tmp")
        try:
            with disk_guard("a resume checkpoint", self.path), open(tmp, "wb") as fh:
                torch.save(state, fh)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.path)
        finally:
            tmp.unlink(missing_ok=True)

    def load(self, model: nn.Module, optimizer, scheduler, scaler) -> tuple[LoopState, dict[str, torch.Tensor]] | None:
        """Restore a saved state into the run; return (progress, best_state), or None to start afresh."""
        if self.every <= 0 or not self.path.is_file():
            return None
        try:
            state = torch.load(self.path, map_location="cpu", weights_only=True)
            meta = json.loads(state["meta"])
            progress = LoopState(**meta["progress"])
        except Exception:  # an unreadable state is no worse than none: train from the start
            return None
        if meta["settings"] != self.settings:
            return None
        named = dict(model.named_parameters())
        with torch.no_grad():
            for name, value in state["params"].items():
                named[name].copy_(value.to(named[name].device))
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        if scaler is not None and state["scaler"] is not None:
            scaler.load_state_dict(state["scaler"])
        random.setstate(_tuples(meta["python_rng"]))
        kind, pos, has_gauss, cached = meta["numpy_rng"]
        np.random.set_state((kind, state["numpy_rng"].numpy().astype(np.uint32), pos, has_gauss, cached))
        torch.set_rng_state(state["torch_rng"])
        if state["cuda_rng"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["cuda_rng"])
        self.resumed_from = {"epoch": progress.epoch, "batch": progress.next_batch, "step": progress.step}
        return progress, state["best_state"]

    def discard(self) -> None:
        self.path.unlink(missing_ok=True)
        self.path.with_name(self.path.name + ".tmp").unlink(missing_ok=True)


def _numpy_rest() -> list[Any]:
    kind, _, pos, has_gauss, cached = np.random.get_state()
    return [kind, int(pos), int(has_gauss), float(cached)]


def _tuples(value: Any) -> Any:
    """JSON turned random.getstate()'s tuples into lists; turn them back."""
    return tuple(_tuples(v) for v in value) if isinstance(value, list) else value
