"""What a trained run costs to serve (issue 27, part 2): measured on the study's device after training.

- **Latency**: one example at a time (batch 1, the request path of an online service), p50 and p95
  over :data:`LATENCY_EXAMPLES` validation examples after :data:`WARMUP` untimed ones.
- **Throughput**: batches of :data:`THROUGHPUT_BATCH` (the offline/batch path), examples per second
  over :data:`THROUGHPUT_BATCHES` batches of the same examples.
- **A PEFT adapter twice**: as trained (the adapter computed beside the frozen weights on every call,
  what peft #957 measured 45–50 % slower) and merged into the base weights (peft's ``merge_adapter``,
  undone with ``unmerge_adapter`` before anything else reads the model), with the largest difference
  between their probabilities on the timed examples; a method that cannot merge (the prompt methods)
  says why instead.
- **What must be deployed**: the bytes of the parameters the served model holds (merged: the base
  model's shapes again; unmerged: base, adapter and the head's trained copy).

Validation examples only: the test split is read once, for the run's test metrics.  Timing starts
after ``cuda.synchronize`` and ends after it on a GPU, so a figure is the work done, not its launch.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import torch
from torch import nn

from tunebench.training.batching import EncodedSplit, collate
from tunebench.training.engine import autocast_for

LATENCY_EXAMPLES = 48
WARMUP = 4
THROUGHPUT_BATCH = 32
THROUGHPUT_BATCHES = 4


def measure_serving(model: nn.Module, split: EncodedSplit, pad_id: int, device: torch.device,
                    precision: str) -> dict[str, Any] | None:
    """The run's serving figures (see the module's docstring), or None for an empty split."""
    if not len(split):
        return None
    model.eval()
    n = min(len(split), LATENCY_EXAMPLES)
    plain, probs = _timed(model, split, n, pad_id, device, precision)
    out: dict[str, Any] = {"device": device.type, "precision": precision, "latency_examples": n,
                           "batch": THROUGHPUT_BATCH, **plain, "deploy_bytes": served_bytes(model, merged=False)}
    if not hasattr(model, "peft_config"):
        return out
    try:
        model.merge_adapter()
    except Exception as exc:  # prompt methods have no weights to merge; peft raises several kinds
        out["merged"] = None
        out["merge_note"] = f"cannot merge: {type(exc).__name__}: {str(exc).splitlines()[0][:160] if str(exc) else ''}"
        return out
    try:
        merged, merged_probs = _timed(model, split, n, pad_id, device, precision)
    finally:
        model.unmerge_adapter()
    out["merged"] = {**merged, "deploy_bytes": served_bytes(model, merged=True),
                     "max_prob_diff": float(np.abs(merged_probs - probs).max())}
    return out


def _timed(model: nn.Module, split: EncodedSplit, n: int, pad_id: int, device: torch.device,
           precision: str) -> tuple[dict[str, float], np.ndarray]:
    """(latency p50/p95 in ms and throughput in examples/s, the batch-1 probabilities of the first ``n``)."""
    times, probs = [], []
    with torch.inference_mode():
        for i in range(-WARMUP, n):
            batch = _inputs(split, np.array([max(i, 0)]), pad_id, device)
            _sync(device)
            start = time.perf_counter()
            with autocast_for(device, precision):
                logits = model(**batch).logits
            _sync(device)
            if i >= 0:
                times.append(time.perf_counter() - start)
                probs.append(torch.softmax(logits.float(), -1)[0].cpu().numpy())
        index = np.resize(np.arange(n), THROUGHPUT_BATCH)  # the same examples, cycled when fewer than a batch
        batch = _inputs(split, index, pad_id, device)
        with autocast_for(device, precision):
            model(**batch)  # warm-up at this width
        _sync(device)
        start = time.perf_counter()
        for _ in range(THROUGHPUT_BATCHES):
            with autocast_for(device, precision):
                model(**batch)
        _sync(device)
        elapsed = time.perf_counter() - start
    ms = np.asarray(times) * 1000
    return ({"latency_ms_p50": round(float(np.percentile(ms, 50)), 3),
             "latency_ms_p95": round(float(np.percentile(ms, 95)), 3),
             "throughput_per_s": round(THROUGHPUT_BATCH * THROUGHPUT_BATCHES / elapsed, 2)}, np.stack(probs))


def _inputs(split: EncodedSplit, index: np.ndarray, pad_id: int, device: torch.device) -> dict[str, torch.Tensor]:
    batch = collate(split, index, pad_id, device)
    batch.pop("labels")
    return batch


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def served_bytes(model: nn.Module, merged: bool) -> int:
    """Bytes of the parameters a served model holds.  Unmerged: every parameter (for a peft model, the base,
    the adapter and the trained head beside its original).  Merged: what ``merge_and_unload`` leaves — the
    adapter layers' own parameters and the originals of the trained copies (peft's ``original_module``) gone."""
    if not merged:
        return sum(p.numel() * p.element_size() for p in model.parameters())
    from peft.tuners.tuners_utils import BaseTunerLayer

    dropped: set[int] = set()
    for name, module in model.named_modules():
        if isinstance(module, BaseTunerLayer):
            for layer_name in module.adapter_layer_names:
                part = getattr(module, layer_name, None)
                if isinstance(part, nn.Module):
                    dropped.update(id(p) for p in part.parameters())
                elif isinstance(part, nn.ParameterDict | dict):
                    dropped.update(id(p) for p in part.values() if isinstance(p, nn.Parameter))
        if name.endswith("original_module"):
            dropped.update(id(p) for p in module.parameters())
    return sum(p.numel() * p.element_size() for p in model.parameters() if id(p) not in dropped)
