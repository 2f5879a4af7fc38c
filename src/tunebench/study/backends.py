"""Where a study's runs execute: here, one after another (``local``), or as Ray tasks on a cluster (``ray``).

A backend is a context manager (connect / disconnect) with two methods: ``placement(spec)`` says on
which device and precision the runs will train (``None``: this machine's), and ``run(...)``
executes the planned runs and hands each result to ``keep`` as it arrives.  ``keep`` belongs to
:func:`tunebench.study.execute.execute`: the driver's process alone writes the store and the
outputs, whatever the backend.  ``watches_epochs``: whether ``run`` calls an ``on_epoch`` hook (a
search's pruner) at each epoch of a run; the Ray backend does not (a trial trains all its epochs).

With Ray, each planned run is one task asking for ``gpus_per_run`` GPUs (CUDA) or ``cpus_per_run``
CPUs; the tokenized splits travel once through the object store, and every worker trains with the
same code as the local backend, so results are identical.  A task whose worker dies (node lost,
killed, out of memory) is retried ``max_retries`` times, then recorded as ``failed`` with the reason
while the other runs go on.  An exception inside a run is not retried (it would fail again): the run
is recorded as failed with the exception.  Checkpoints are written by the workers into the output
folder, which must therefore be on storage every node sees (see docs/SCALING.md).
"""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

import torch

from tunebench.errors import SpecError, first_line
from tunebench.spec.parts import ExecutionSpec
from tunebench.spec.study import StudySpec

#: What ``run`` hands back for each run: the record and, when it trained, the test labels and probabilities.
Keep = Callable[[dict[str, Any], "list[int] | None", "list[list[float]] | None"], None]


def backend_for(execution: ExecutionSpec) -> LocalBackend | RayBackend:
    if execution.backend == "ray":
        return RayBackend(address=execution.address, max_retries=execution.max_retries,
                          cpus_per_run=execution.cpus_per_run, gpus_per_run=execution.gpus_per_run)
    return LocalBackend()


class LocalBackend:
    """The runs one after another in this process (or in each process of a DDP launch)."""

    name = "local"
    watches_epochs = True

    def __enter__(self) -> LocalBackend:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def placement(self, spec: StudySpec) -> tuple[torch.device, str] | None:
        return None

    def run(self, spec: StudySpec, todo: list[Any], total: int, prepared: Any, env: dict[str, Any],
            reporter: Any, keep: Keep, stop: Callable[[], bool] | None = None,
            on_epoch: Callable[[dict[str, Any]], None] | None = None) -> None:
        from tunebench.faults import StudyInterrupted
        from tunebench.study.run import attempt_run

        for planned in todo:
            if stop is not None and stop():
                raise StudyInterrupted(f"interrupted before run '{planned.label}' started; finished runs are kept "
                                       "and the same command continues the study")
            keep(*attempt_run(spec, planned, total, prepared, env, reporter, stop, on_epoch=on_epoch))


class RayBackend:
    """Each run a Ray task; results come back to the driver, which alone writes.

    ``address``: a running cluster (``host:port``, ``ray://host:10001``, ``auto``); ``None`` uses the
    Ray instance this process already joined, else starts a local one.  ``run`` replaces
    :func:`tunebench.study.run.attempt_run` inside the workers (tests use it to kill a worker).
    """

    name = "ray"
    watches_epochs = False
    #: said once, the first time a search hands the Ray backend a per-epoch hook
    NO_PRUNING = ("on the ray backend a search's pruner cannot watch a trial's epochs: every trial trains all "
                  "its epochs (the local backend prunes)")

    def __init__(self, address: str | None = None, max_retries: int = 2, cpus_per_run: int | None = None,
                 gpus_per_run: float = 1.0, run: Callable[..., Any] | None = None) -> None:
        self.address = address
        self.max_retries = max_retries
        self.cpus_per_run = cpus_per_run
        self.gpus_per_run = gpus_per_run
        self._run = run
        self._started_ray = False
        self._said_no_pruning = False

    def __enter__(self) -> RayBackend:
        ray = import_ray()
        if ray.is_initialized():
            return self
        if self.address not in (None, "auto"):
            check_reachable(self.address)
        try:
            ray.init(address=self.address, include_dashboard=False, log_to_driver=False,
                     **({} if self.address else {"_node_ip_address": "127.0.0.1"}))
        except ConnectionError as exc:
            raise SpecError(f"no Ray cluster to join at '{self.address}' ({first_line(exc)}); "
                            "start one with 'ray start --head' or pass --address HOST:PORT") from None
        self._started_ray = True
        return self

    def __exit__(self, *exc: object) -> None:
        if self._started_ray:
            import_ray().shutdown()
            self._started_ray = False

    def placement(self, spec: StudySpec) -> tuple[torch.device, str]:
        """CUDA when the cluster has GPUs (unless the spec says cpu), with the precision a GPU worker reports."""
        import ray

        from tunebench.training import engine

        requested, precision = spec.training.device, spec.training.precision
        gpus = ray.cluster_resources().get("GPU", 0)
        if requested in ("auto", "cuda") and gpus > 0:
            if precision == "auto":
                probe = ray.remote(_cuda_precision).options(num_gpus=min(self.gpus_per_run, 1), num_cpus=0)
                precision = ray.get(probe.remote())
            return torch.device("cuda"), precision
        if requested == "cuda":
            raise SpecError("--device cuda was asked for but the Ray cluster has no GPUs")
        device = torch.device("mps" if requested == "mps" else "cpu")
        return device, engine.resolve_precision(precision, device)

    def run(self, spec: StudySpec, todo: list[Any], total: int, prepared: Any, env: dict[str, Any],
            reporter: Any, keep: Keep, stop: Callable[[], bool] | None = None,
            on_epoch: Callable[[dict[str, Any]], None] | None = None) -> None:
        if not todo:
            return
        if on_epoch is not None and not self._said_no_pruning:
            self._said_no_pruning = True
            reporter.message(self.NO_PRUNING)
        import ray
        from ray.util.queue import Queue

        from tunebench.faults import StudyInterrupted
        from tunebench.study.run import attempt_run, failed_record

        cuda = prepared.device.type == "cuda"
        cpus = self.cpus_per_run or 1
        options = {"max_retries": self.max_retries, "retry_exceptions": False,
                   "num_gpus": self.gpus_per_run if cuda else 0, "num_cpus": 1 if cuda else cpus}
        progress = Queue(actor_options={"num_cpus": 0})
        shared = ray.put(prepared)  # the tokenized splits: sent once per node, not once per run
        task = ray.remote(_run_in_worker)
        pending: dict[Any, tuple[Any, datetime]] = {}
        for planned in todo:
            ref = task.options(name=f"tunebench {planned.label}", **options).remote(
                spec, planned, total, shared, progress, None if cuda else cpus, self._run or attempt_run)
            pending[ref] = (planned, datetime.now(timezone.utc))
        try:
            while pending:
                if stop is not None and stop():
                    raise StudyInterrupted(f"interrupted with {len(pending)} runs still on the Ray cluster (cancelled); "
                                           "finished runs are kept and the same command continues the study")
                done, _ = ray.wait(list(pending), num_returns=1, timeout=0.25)
                _forward_progress(progress, reporter)
                for ref in done:
                    planned, submitted = pending.pop(ref)
                    try:
                        record, labels, probs = ray.get(ref)
                    except ray.exceptions.RayError as exc:
                        reason = _failure(exc, self.max_retries)
                        record = failed_record(spec, planned, prepared, reason, submitted, env)
                        labels = probs = None
                    keep(record, labels, probs)
        finally:
            for ref in pending:  # interrupted: stop what still runs
                ray.cancel(ref, force=True)
            ray.kill(progress.actor)


def import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise SpecError("the ray backend needs Ray, which is not installed; "
                        "install it with: pip install 'tunebench[ray]'") from None
    return ray


def check_reachable(address: str, timeout: float = 5.0) -> None:
    """One sentence when nothing answers at ``address`` (host:port or ray://host:port), before Ray waits long."""
    hostport = address.split("://", 1)[-1].rstrip("/")
    host, sep, port = hostport.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise SpecError(f"--address must look like HOST:PORT or ray://HOST:PORT (got '{address}')")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
    except OSError as exc:
        raise SpecError(f"cannot reach the Ray cluster at '{address}' ({exc.strerror or exc}); "
                        "start it with 'ray start --head' there, or check the address and port") from None



def _failure(exc: Exception, retries: int) -> str:
    """One sentence for why a Ray task produced no result."""
    import ray

    if isinstance(exc, ray.exceptions.RayTaskError):  # the run raised: its own exception, not retried
        cause = exc.cause if isinstance(exc.cause, BaseException) else exc
        return f"{type(cause).__name__}: {first_line(cause)}"
    tries = retries + 1
    return (f"its Ray worker was lost {tries} time{'s' if tries > 1 else ''} "
            f"({type(exc).__name__}: {first_line(exc)})")


def _cuda_precision() -> str:
    from tunebench.training.engine import resolve_precision

    return resolve_precision("auto", torch.device("cuda"))


def _run_in_worker(spec: StudySpec, planned: Any, total: int, prepared: Any, progress: Any,
                   threads: int | None, run: Callable[..., Any]) -> Any:
    """Inside a Ray worker: train one run with the local code, reporting progress to the driver."""
    if threads:
        torch.set_num_threads(threads)
    env = prepared.environment()  # this worker's machine, not the driver's
    return run(spec, planned, total, prepared, env, _QueueReporter(progress, planned.position))


class _QueueReporter:
    """A worker's reporter: run starts and (at most a few per second) steps go to the driver's queue."""

    def __init__(self, queue: Any, position: int, every_s: float = 0.5) -> None:
        self.queue, self.position, self.every_s = queue, position, every_s
        self._last = 0.0

    def _send(self, item: tuple[Any, ...]) -> None:
        with contextlib.suppress(Exception):  # progress is best effort; never fail a run over it
            self.queue.put_nowait(item)

    def message(self, text: str) -> None:
        self._send(("message", self.position, text))

    def run_started(self, position: int, total: int, label: str, batches_per_epoch: int, epochs: int) -> None:
        self._send(("started", position, total, label, batches_per_epoch, epochs))

    def step(self, info: dict[str, Any]) -> None:
        now = time.monotonic()
        last_batch = info["batch"] == info["batches"]
        if now - self._last >= self.every_s or last_batch:
            self._last = now
            self._send(("step", self.position, info))

    def run_finished(self, record: dict[str, Any]) -> None:
        pass

    def run_skipped(self, label: str, run_id: str) -> None:
        pass


def _forward_progress(queue: Any, reporter: Any) -> None:
    """Replay the workers' progress on the driver's reporter."""
    n = queue.size()
    if not n:
        return
    for item in queue.get_nowait_batch(n):
        kind, position = item[0], item[1]
        if kind == "started":
            reporter.run_started(*item[1:])
        elif kind == "step":
            reporter.step({**item[2], "position": position})
        elif kind == "message":
            reporter.message(item[2])
