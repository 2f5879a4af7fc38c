"""Measuring what a run costs: peak memory, and the environment it ran in."""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import gc
import platform
import subprocess
import threading
from importlib import metadata
from pathlib import Path
from typing import Any

import psutil
import torch

_CLEAR_REFS = Path("/proc/self/clear_refs")
_STATUS = Path("/proc/self/status")


class PeakMemory:
    """Peak memory of this process between ``start()`` and ``stop()``.

    CPU: peak resident set size.  On Linux the kernel's high-water mark (VmHWM) is reset
    through ``/proc/self/clear_refs`` so the figure is exact for the run; elsewhere a
    background thread samples RSS every 20 ms.  CUDA: ``max_memory_allocated`` and
    ``max_memory_reserved`` after resetting the peak statistics.
    """

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._sampled = 0
        self._kernel = False
        self._start_rss = 0

    def start(self) -> None:
        release_free_memory()
        self._start_rss = psutil.Process().memory_info().rss
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
        try:
            _CLEAR_REFS.write_text("5")
            self._kernel = _read_hwm() is not None
        except OSError:
            self._kernel = False
        if not self._kernel:
            self._sampled = psutil.Process().memory_info().rss
            self._stop.clear()
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()

    def _sample(self) -> None:
        proc = psutil.Process()
        while not self._stop.wait(0.02):
            self._sampled = max(self._sampled, proc.memory_info().rss)

    def stop(self) -> dict[str, float | str | None]:
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            self._thread = None
        peak = _read_hwm() if self._kernel else self._sampled
        out: dict[str, float | str | None] = {
            "peak_rss_mb": round(peak / 2**20, 1) if peak else None,
            "rss_at_start_mb": round(self._start_rss / 2**20, 1),
            "rss_method": "kernel VmHWM" if self._kernel else "sampled every 20 ms",
            "cuda_max_allocated_mb": None,
            "cuda_max_reserved_mb": None,
        }
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            out["cuda_max_allocated_mb"] = round(torch.cuda.max_memory_allocated(self.device) / 2**20, 1)
            out["cuda_max_reserved_mb"] = round(torch.cuda.max_memory_reserved(self.device) / 2**20, 1)
        return out


def release_free_memory() -> None:
    """Collect garbage and hand freed heap pages back to the OS (glibc ``malloc_trim``).

    Without it, memory a previous run freed stays in the process's heap, and every later run of
    a study would report the earlier run's peak as its own.
    """
    gc.collect()
    name = ctypes.util.find_library("c")
    if name:
        with contextlib.suppress(OSError, AttributeError):  # AttributeError: not glibc
            ctypes.CDLL(name).malloc_trim(0)


def _read_hwm() -> int | None:
    try:
        for line in _STATUS.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


_PACKAGES = ("tunebench", "torch", "transformers", "peft", "datasets", "accelerate", "scikit-learn",
             "numpy", "pandas", "pydantic")


def environment(device: torch.device) -> dict[str, Any]:
    """Package versions, device name, threads, git commit: enough to reproduce a number."""
    versions = {}
    for name in _PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "packages": versions,
        "device": device_name(device),
        "device_type": device.type,
        "torch_threads": torch.get_num_threads(),
        "cpu_count": psutil.cpu_count(logical=True),
        "git_commit": git_commit(),
    }


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    if device.type == "mps":
        return "Apple MPS"
    name = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                name = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"CPU: {name}"


def git_commit() -> str | None:
    """The commit of the tunebench checkout in use, if it runs from one."""
    here = Path(__file__).resolve().parent
    try:
        out = subprocess.run(["git", "-C", str(here), "rev-parse", "HEAD"], capture_output=True,
                             text=True, timeout=5, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0:
        return None
    dirty = subprocess.run(["git", "-C", str(here), "status", "--porcelain", "--untracked-files=no"],
                           capture_output=True, text=True, timeout=5, check=False).stdout.strip()
    return out.stdout.strip() + ("-dirty" if dirty else "")
