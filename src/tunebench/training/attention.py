"""``model.attention: auto``: the attention kernel that trains faster here, measured rather than guessed.

transformers picks ``sdpa`` wherever an architecture has it.  On a CPU the faster kernel depends on the
machine: with a padding mask sdpa runs its math kernel, and this project's sittings measured eager at 1.14x
sdpa's speed for full fine-tuning on one 2-core machine (AVX2) and at 0.83x on another (AVX512)
(BENCHMARKS.md).  So ``auto`` times both kernels on the study's own model, device, precision and a batch
of its own training data (a few forward + backward steps of the whole model, the kernels alternating, the
median step kept), uses the faster, and keeps the answer in ``$TUNEBENCH_HOME/attention.json`` under a key
of everything it depends on (machine, torch and transformers versions, threads, device, precision, the
model's shape, the batch's shape), so one machine pays the probe once per model and shape.  Within
10 % of each other the default (sdpa) is kept: a gap that small is noise, and a rerun should not flip the
kernel on it.  A model narrower than 128 units (a tiny test model) is not timed at all: attention is too
little of its step to matter, and its timings would follow the machine's load, not the kernel.

No library makes this choice from a measurement (transformers' default is a fixed preference and
``torch.backends`` picks among sdpa's own back ends only), so it is written here.
"""

from __future__ import annotations

import contextlib
import json
import statistics
import time
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tunebench.data.bundle import tunebench_home
from tunebench.faults import atomic_write
from tunebench.results.choices import KERNELS, MIN_HIDDEN, AttentionChoice, pick_kernel
from tunebench.spec.parts import stable_hash
from tunebench.training import batching
from tunebench.training.engine import autocast_for
from tunebench.training.resources import device_name

#: untimed steps per kernel (allocator, caches), then timed steps per kernel
WARMUP_STEPS = 2
TIMED_STEPS = 5
#: the probe cache's file name under $TUNEBENCH_HOME; its layout's version (a new one ignores old entries)
CACHE_FILE = "attention.json"
CACHE_VERSION = 1


def choose_attention(requested: str, load_model: Callable[[], torch.nn.Module], config: Any,
                     train: batching.EncodedSplit, batch_size: int, device: torch.device, precision: str,
                     pad_id: int, *, seed: int = 0, cache: Path | None = None,
                     probe_reason: str | None = None, say: Callable[[str], None] | None = None) -> AttentionChoice:
    """The kernel for ``requested`` (``auto``, ``sdpa`` or ``eager``).

    ``load_model``: loads the study's classifier with transformers' default kernel (called only when a
    probe runs); ``config``: its transformers config (the cache key's model shape).  ``probe_reason``: why
    no probe may run here (the runs train elsewhere, several processes); the kernel is then left to
    transformers and the choice says so.  ``say`` hears one line before a probe starts (it takes seconds).
    """
    if requested != "auto":
        return AttentionChoice(requested, requested, "asked")
    if probe_reason or len(train) == 0:
        return AttentionChoice(requested, None, "not probed", detail=probe_reason or "no training data")
    hidden = getattr(config, "hidden_size", None) or getattr(config, "dim", None)
    if isinstance(hidden, int) and hidden < MIN_HIDDEN:
        return AttentionChoice(requested, None, "too small", detail=f"{hidden} units")  # MPNet has no sdpa
    batch = _probe_batch(train, batch_size, pad_id, device, seed)
    shape = f"a batch of {batch['input_ids'].shape[0]} x {batch['input_ids'].shape[1]} tokens"
    key = stable_hash(_cache_key(config, device, precision, batch))
    path = cache or tunebench_home() / CACHE_FILE
    known = _read_cache(path).get(key)
    times = known.get("step_s") if isinstance(known, dict) else None
    if isinstance(times, dict) and set(times) == set(KERNELS) and all(isinstance(t, float) for t in times.values()):
        # the rule is applied again to the stored timings: a cache written under an earlier rule obeys this one
        return AttentionChoice(requested, pick_kernel(times), "cached", dict(times), shape)
    if say is not None:
        say(f"timing the attention kernels ({', '.join(KERNELS)}) on one training batch ({shape[len('a batch of '):]}); "
            "once per machine, model and batch shape")
    model = load_model()
    kernels = [k for k in KERNELS if _can_use(model, k)]
    if len(kernels) < 2:
        only = kernels[0] if kernels else None
        missing = " or ".join(k for k in KERNELS if k not in kernels)
        return AttentionChoice(requested, only, "one kernel" if only else "not probed",
                               detail=f"the model cannot switch to {missing}")
    step_s = _time_kernels(model, kernels, batch, device, precision)
    kernel = pick_kernel(step_s)
    _write_cache(path, key, {"kernel": kernel, "step_s": step_s, "shape": shape,
                             "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})
    return AttentionChoice(requested, kernel, "measured", step_s, shape)


def _probe_batch(train: batching.EncodedSplit, batch_size: int, pad_id: int, device: torch.device,
                 seed: int) -> dict[str, torch.Tensor]:
    """The training batch of median width among the study's own length-bucketed batches (what most steps see)."""
    plan = batching.batches(train, batch_size, shuffle=True, seed=seed)
    widths = np.array([int(train.lengths[idx].max()) for idx in plan])
    chosen = plan[int(np.argsort(widths, kind="stable")[len(widths) // 2])]
    return batching.collate(train, chosen, pad_id, device)


def _can_use(model: torch.nn.Module, kernel: str) -> bool:
    try:
        _set_kernel(model, kernel)
    except (ValueError, ImportError, NotImplementedError, AttributeError):
        return False
    return getattr(model.config, "_attn_implementation", None) == kernel


def _set_kernel(model: torch.nn.Module, kernel: str) -> None:
    model.set_attn_implementation(kernel)


def _time_kernels(model: torch.nn.Module, kernels: list[str], batch: dict[str, torch.Tensor],
                  device: torch.device, precision: str) -> dict[str, float]:
    """Median seconds of one forward + backward step of the whole model per kernel, kernels alternating
    so that a slow spell of the machine falls on both."""
    model.to(device)
    model.train()
    times: dict[str, list[float]] = {k: [] for k in kernels}
    try:
        for step in range(WARMUP_STEPS + TIMED_STEPS):
            for kernel in kernels:
                _set_kernel(model, kernel)
                _sync(device)
                start = time.perf_counter()
                with autocast_for(device, precision):
                    loss = model(**batch).loss
                loss.backward()
                _sync(device)
                if step >= WARMUP_STEPS:
                    times[kernel].append(time.perf_counter() - start)
                model.zero_grad(set_to_none=True)
    finally:
        _set_kernel(model, KERNELS[0])
        model.zero_grad(set_to_none=True)
    return {k: statistics.median(v) for k, v in times.items()}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _cache_key(config: Any, device: torch.device, precision: str,
               batch: dict[str, torch.Tensor]) -> dict[str, Any]:
    config = config.to_dict()
    shape_keys = ("model_type", "hidden_size", "dim", "num_hidden_layers", "n_layers", "num_attention_heads",
                  "n_heads", "intermediate_size", "hidden_dim")
    versions = {}
    for name in ("torch", "transformers"):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return {"version": CACHE_VERSION, "device": device_name(device), "device_type": device.type,
            "cpu_capability": torch.backends.cpu.get_cpu_capability() if device.type == "cpu" else None,
            "threads": torch.get_num_threads(), "precision": precision, "packages": versions,
            "model": {k: config.get(k) for k in shape_keys if config.get(k) is not None},
            "batch": list(batch["input_ids"].shape)}


def _read_cache(path: Path) -> dict[str, Any]:
    """The probe cache; a missing, unreadable or foreign file is an empty cache (it is only an optimisation)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _write_cache(path: Path, key: str, entry: dict[str, Any]) -> None:
    data = _read_cache(path)
    data[key] = entry
    # a read-only home: the choice still holds for this study, and is measured again next time
    with contextlib.suppress(OSError):
        atomic_write(path, json.dumps(data, indent=1, sort_keys=True))
