"""One run across several processes (DDP over ``torch.distributed``): launch, shard, all-reduce, one writer.

Every process runs the same study: the same seeded batch plan, the same initial weights.  Each
process trains on its shard of every batch (``shard``), so N processes with a per-process share of
``batch_size / N`` make exactly the single-process batch; gradients are summed across processes
by hand (``all_reduce_grads``) once per optimizer step, which works for any mix of frozen and
trainable parameters, for peft models and for the frozen-prefix cache, and needs no model wrapper.
Evaluation is repeated in every process (every process then picks the same best epoch without
talking); only rank 0 (``is_writer``) writes the store, outputs, checkpoints and the report.

Processes come from ``tunebench run --nproc N`` (which starts ``torch.distributed.run``, i.e.
torchrun, with this study), or from an outer ``torchrun`` / ``accelerate launch``: both set
``WORLD_SIZE``, ``RANK`` and ``LOCAL_RANK``, which :func:`session` reads.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

from tunebench.errors import SpecError


def launched_world_size() -> int:
    """Processes started by an outer launcher (torchrun, accelerate launch, ``--nproc``); 1 if none."""
    try:
        return max(int(os.environ.get("WORLD_SIZE", "1")), 1)
    except ValueError:
        return 1


def launched_rank() -> int:
    """This process's rank as the launcher set it (before joining the group); 0 if none."""
    try:
        return int(os.environ.get("RANK", "0"))
    except ValueError:
        return 0


def rank() -> int:
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def world_size() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def is_writer() -> bool:
    """Whether this process writes files: the only process, or rank 0 of several."""
    return rank() == 0


@contextlib.contextmanager
def session(device: str) -> Iterator[bool]:
    """Join the process group the launcher set up (if any) for the length of a study; yield ``is_writer()``.

    ``device`` is the study's requested device: CUDA processes use NCCL and the GPU ``LOCAL_RANK``,
    everything else gloo.
    """
    if launched_world_size() == 1 or dist.is_initialized():
        yield is_writer()
        return
    cuda = device in ("auto", "cuda") and torch.cuda.is_available()
    if cuda:
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    dist.init_process_group(backend="nccl" if cuda else "gloo")
    try:
        yield is_writer()
    finally:
        dist.destroy_process_group()


@contextlib.contextmanager
def writer_first() -> Iterator[None]:
    """Rank 0 does the body first (e.g. fills the dataset cache), then the others: no two processes race."""
    if world_size() > 1 and not is_writer():
        dist.barrier()
    yield
    if world_size() > 1 and is_writer():
        dist.barrier()


def from_writer(value: Any) -> Any:
    """Rank 0's ``value`` in every process (e.g. which runs to do, decided from the store rank 0 reads)."""
    if world_size() == 1:
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def shard(index: np.ndarray) -> np.ndarray:
    """This process's part of one batch: every N-th example (batches are length-sorted, so shards balance)."""
    n = world_size()
    return index if n == 1 else index[rank()::n]


def all_reduce_grads(params: list[torch.nn.Parameter]) -> None:
    """Sum the gradients of ``params`` over all processes (one flat buffer, one collective)."""
    if world_size() == 1 or not params:
        return
    grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat, op=dist.ReduceOp.SUM)
    offset = 0
    for p in params:
        n = p.numel()
        p.grad = flat[offset:offset + n].view_as(p).clone()
        offset += n


def sum_over_processes(*values: float) -> list[float]:
    """Per-process counters (loss sums, examples, tokens) summed over all processes."""
    if world_size() == 1:
        return list(values)
    on = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else torch.device("cpu")
    t = torch.tensor(values, dtype=torch.float64, device=on)  # NCCL reduces GPU tensors only
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t.tolist()


# --- tunebench run --nproc N: start torchrun on this study -------------------------------------


def check_nproc(nproc: int, device: str) -> None:
    """One sentence if ``nproc`` cannot make sense on this machine or under an outer launcher."""
    outer = launched_world_size()
    if outer > 1:
        if nproc not in (1, outer):
            raise SpecError(f"--nproc {nproc} disagrees with the {outer} processes this command was launched "
                            f"with (WORLD_SIZE={outer}); drop --nproc under torchrun or accelerate launch")
        return
    if nproc <= 1:
        return
    if device in ("auto", "cuda") and torch.cuda.is_available():
        gpus = torch.cuda.device_count()
        if nproc > gpus:
            raise SpecError(f"--nproc {nproc} asks for more processes than the {gpus} visible GPU(s); "
                            f"use at most {gpus}")
        return
    if device == "mps":
        raise SpecError("--nproc > 1 needs CUDA GPUs or CPU processes; Apple MPS runs in one process")
    cores = os.cpu_count() or 1
    if nproc > cores:
        raise SpecError(f"--nproc {nproc} asks for more processes than this machine's {cores} CPU cores; "
                        f"use at most {cores}")


#: ``torch.distributed.run`` whose failure is rank 0's exit code (else the highest), not a 7 KB
#: ChildFailedError traceback after the rank's own sentence
LAUNCHER = """import sys
from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
from torch.distributed.run import main
try:
    main(sys.argv[1:])
except ChildFailedError as exc:
    codes = {rank: failure.exitcode for rank, failure in exc.failures.items()}
    code = codes.get(0, 0) if 0 < codes.get(0, 0) < 256 else max([c for c in codes.values() if 0 < c < 256] or [1])
    sys.exit(code)
"""


def launch(spec_dict: dict[str, Any], nproc: int, force: bool) -> int:
    """Run this study as ``nproc`` processes under ``torch.distributed.run``; return their exit code.

    The resolved spec travels as a YAML file, so every process runs exactly the study the user asked
    for; each process is ``tunebench run SPEC`` and finds its rank in the environment.
    """
    import yaml

    with tempfile.TemporaryDirectory(prefix="tunebench-launch-") as tmp:
        path = Path(tmp) / "study.yaml"
        path.write_text(yaml.safe_dump(spec_dict, sort_keys=False), encoding="utf-8")
        command = [sys.executable, "-c", LAUNCHER, f"--nproc-per-node={nproc}",
                   "--nnodes=1", "--master-addr=127.0.0.1", f"--master-port={_free_port()}",
                   "-m", "tunebench", "run", str(path)] + (["--force"] if force else [])
        env = dict(os.environ)
        env.setdefault("LOGLEVEL", "CRITICAL")  # torch.distributed.run's own log lines repeat what the ranks said
        if "OMP_NUM_THREADS" not in env:  # share the cores between the processes instead of oversubscribing
            env["OMP_NUM_THREADS"] = str(max((os.cpu_count() or 1) // nproc, 1))
        return subprocess.run(command, env=env, check=False).returncode


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
