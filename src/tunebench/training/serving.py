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
from pathlib import Path
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
                    precision: str, onnx: bool = False) -> dict[str, Any] | None:
    """The run's serving figures (see the module's docstring), or None for an empty split; ``onnx``: also the
    model (merged where it merges) exported to ONNX and run by ONNX Runtime on the CPU (:func:`onnx_form`)."""
    if not len(split):
        return None
    model.eval()
    n = min(len(split), LATENCY_EXAMPLES)
    plain, probs = _timed(model, split, n, pad_id, device, precision)
    out: dict[str, Any] = {"device": device.type, "precision": precision, "latency_examples": n,
                           "batch": THROUGHPUT_BATCH, **plain, "deploy_bytes": served_bytes(model, merged=False)}
    if not hasattr(model, "peft_config"):
        if onnx:
            out["onnx"] = onnx_form(model, split, n, pad_id, probs)
        return out
    try:
        model.merge_adapter()
    except Exception as exc:  # prompt methods have no weights to merge; peft raises several kinds
        out["merged"] = None
        out["merge_note"] = f"cannot merge: {_reason(exc)}"
        if onnx:
            out["onnx"] = onnx_form(model, split, n, pad_id, probs)
        return out
    try:
        merged, merged_probs = _timed(model, split, n, pad_id, device, precision)
        if onnx:  # what is deployed: the merged weights
            out["onnx"] = onnx_form(model, split, n, pad_id, probs)
    finally:
        model.unmerge_adapter()
    out["merged"] = {**merged, "deploy_bytes": served_bytes(model, merged=True),
                     "max_prob_diff": float(np.abs(merged_probs - probs).max())}
    return out


def measure_fitted_serving(run: Any, n_examples: int, device: torch.device, deploy_bytes: int,
                           onnx: bool = False) -> dict[str, Any] | None:
    """A fitted method's serving figures (``embed-logreg``, ``setfit``, the baselines): ``run(index) -> logits``
    predicts the validation examples at ``index`` the way the fitted predictor serves them (encoder and
    scikit-learn head), timed as :func:`measure_serving` times a network; None for an empty split.  Its head is
    not a torch model: not exported to ONNX, which ``onnx`` says in a note."""
    if not n_examples:
        return None
    n = min(n_examples, LATENCY_EXAMPLES)
    plain, _ = _clocked(run, n)
    out: dict[str, Any] = {"device": device.type, "precision": "fp32", "latency_examples": n,
                           "batch": THROUGHPUT_BATCH, **plain, "deploy_bytes": int(deploy_bytes)}
    if onnx:
        out["onnx"] = {"note": "not exported to ONNX: a fitted method's scikit-learn head is not a torch model"}
    return out


def require_onnx_runtime(what: str) -> None:
    """One sentence before any work when ``what`` (an option) needs ONNX Runtime and it is not installed."""
    import importlib.util

    from tunebench.errors import SpecError

    if importlib.util.find_spec("onnxruntime") is None:
        raise SpecError(f"{what} needs ONNX Runtime, which is not installed: pip install 'tunebench[onnx]'")


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return shifted / shifted.sum(axis=-1, keepdims=True)


def _reason(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {str(exc).splitlines()[0][:160] if str(exc) else ''}"


class _Logits(nn.Module):
    """The model as ONNX sees it: token tensors in, logits out (a peft model's forward takes other positionals)."""

    def __init__(self, model: nn.Module, names: list[str]) -> None:
        super().__init__()
        self.model, self.names = model, names

    def forward(self, *tensors: torch.Tensor) -> torch.Tensor:
        return self.model(**dict(zip(self.names, tensors, strict=True))).logits


def export_onnx(model: nn.Module, batch: dict[str, torch.Tensor], path: str | Path) -> None:
    """Write ``model`` (token tensors in, logits out) to ``path`` with ``torch.onnx.export``: fp32, opset 17, the
    batch and sequence axes dynamic, traced on ``batch`` (CPU tensors); the model is on the CPU while it traces and
    goes back to its device after.  What the tracer cannot follow raises."""
    import warnings

    names = list(batch)
    device = next(model.parameters()).device
    try:
        model.to("cpu")
        with warnings.catch_warnings():  # the tracer's notes on Python control flow: not the user's to act on
            warnings.simplefilter("ignore")
            torch.onnx.export(_Logits(model, names).eval(), tuple(batch[k] for k in names), str(path),
                              input_names=names, output_names=["logits"], opset_version=17, dynamo=False,
                              dynamic_axes={**{k: {0: "batch", 1: "sequence"} for k in names}, "logits": {0: "batch"}})
    finally:
        model.to(device)


def onnx_form(model: nn.Module, split: EncodedSplit, n: int, pad_id: int, probs: np.ndarray) -> dict[str, Any]:
    """The model exported (:func:`export_onnx`) and timed in an ONNX Runtime CPU session as :func:`_timed` times
    torch; its probabilities against the model's on the timed examples, and the file's bytes.  A model the
    exporter cannot trace is a ``note`` instead."""
    import tempfile

    import onnxruntime as ort

    with tempfile.TemporaryDirectory() as tmp:
        path = f"{tmp}/model.onnx"
        try:
            export_onnx(model, _inputs(split, np.arange(min(n, 2)), pad_id, torch.device("cpu")), path)
        except Exception as exc:  # an architecture or method the tracer cannot follow
            return {"note": f"cannot export to ONNX: {_reason(exc)}"}
        session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
        size = Path(path).stat().st_size

        def run(index: np.ndarray) -> np.ndarray:
            feed = {k: v.numpy() for k, v in _inputs(split, index, pad_id, torch.device("cpu")).items()}
            return session.run(None, feed)[0]

        timed, onnx_probs = _clocked(run, n)
    return {**timed, "device": "cpu", "deploy_bytes": size,
            "max_prob_diff": float(np.abs(onnx_probs - probs).max())}


def _timed(model: nn.Module, split: EncodedSplit, n: int, pad_id: int, device: torch.device,
           precision: str) -> tuple[dict[str, float], np.ndarray]:
    """(latency p50/p95 in ms and throughput in examples/s, the batch-1 probabilities of the first ``n``)."""

    def run(index: np.ndarray) -> np.ndarray:
        batch = _inputs(split, index, pad_id, device)
        with autocast_for(device, precision):
            logits = model(**batch).logits
        _sync(device)
        return logits.float().cpu().numpy()

    with torch.inference_mode():
        _sync(device)
        return _clocked(run, n)


def _clocked(run: Any, n: int) -> tuple[dict[str, float], np.ndarray]:
    """Time ``run(index) -> logits`` (synchronous): batch 1 over the first ``n`` examples after :data:`WARMUP`,
    then :data:`THROUGHPUT_BATCHES` batches of :data:`THROUGHPUT_BATCH`; with the batch-1 probabilities."""
    times, probs = [], []
    for i in range(-WARMUP, n):
        start = time.perf_counter()
        logits = run(np.array([max(i, 0)]))
        if i >= 0:
            times.append(time.perf_counter() - start)
            probs.append(softmax(logits)[0])
    index = np.resize(np.arange(n), THROUGHPUT_BATCH)  # the same examples, cycled when fewer than a batch
    run(index)  # warm-up at this width
    start = time.perf_counter()
    for _ in range(THROUGHPUT_BATCHES):
        run(index)
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
