"""What can go wrong inside a study, and what the study does about it.

A run ends in one of four statuses:

``finished``
    trained, evaluated, stored; never redone unless ``--force``.
``diverged``
    the training loss became NaN or infinite (:class:`Diverged`, raised by the engine with the
    step and the last finite loss); the study goes on with the next run.
``failed``
    any other exception inside the run (a bug, a library error, CUDA out of memory twice); the
    record holds the error in one line and the study goes on.  A :class:`TunebenchError` is
    different: it is about the user's input or environment (a strategy the model cannot take, a
    full disk), so it stops the study with its one sentence and exit code 2.
``interrupted``
    Ctrl-C or SIGTERM (:class:`InterruptGuard`): the engine stops at the next step (:class:`Interrupted`),
    the run is recorded, outputs are written, and the study ends (:class:`StudyInterrupted`).

Runs that are not ``finished`` are attempted again by the next ``tunebench run``.
"""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from tunebench.errors import TunebenchError

STATUSES = ("finished", "diverged", "failed", "interrupted")


class RunStopped(Exception):
    """The engine stopped a run early; carries where it was."""

    status = "failed"

    def __init__(self, message: str, *, epoch: int, batch: int, step: int,
                 last_finite_loss: float | None = None, curves: list[dict[str, float]] | None = None) -> None:
        super().__init__(message)
        self.epoch, self.batch, self.step = epoch, batch, step
        self.last_finite_loss = last_finite_loss
        self.curves = curves or []

    def details(self) -> dict[str, Any]:
        return {"error": str(self), "epoch": self.epoch, "batch": self.batch, "step": self.step,
                "last_finite_loss": self.last_finite_loss}


class Diverged(RunStopped, FloatingPointError):
    """The training loss became NaN or infinite."""

    status = "diverged"


class Interrupted(RunStopped):
    """The user pressed Ctrl-C; the engine stopped at the next step."""

    status = "interrupted"


class StudyInterrupted(TunebenchError):
    """The study stopped after Ctrl-C (the current run is recorded as interrupted)."""

    exit_code = 130


class RunsUnfinishedError(TunebenchError):
    """The study ran to its end but some runs diverged or failed (exit code 1)."""

    exit_code = 1


def unfinished_error(records: list[dict[str, Any]]) -> RunsUnfinishedError | None:
    """One sentence naming the runs that did not finish, or None when all did.

    ``records`` may carry ``attempts`` (a study's :class:`~tunebench.study.driver.StudyRecords`): reruns
    that did not finish while their row keeps an earlier finished result; they are named too.
    """
    bad = [r for r in records if r.get("status") != "finished"]
    masked = list(getattr(records, "attempts", []))
    if not bad and not masked:
        return None
    reruns = "; ".join(f"{_what_happened(r)} (its earlier finished result is kept)" for r in masked)
    if not bad:
        return RunsUnfinishedError(f"{len(masked)} rerun(s) did not finish: {reruns}; the outputs show the "
                                   "finished results")
    also = f"; also {reruns}" if masked else ""
    return RunsUnfinishedError(f"{len(bad)} of {len(records)} runs did not finish: "
                               f"{'; '.join(_what_happened(r) for r in bad)}{also}; the finished runs are in the "
                               "outputs, and the next 'tunebench run' tries the others again")


def _what_happened(r: dict[str, Any]) -> str:
    failure = r.get("failure") or {}
    where = f" at step {failure['step']}" if failure.get("step") is not None else ""
    why = f" ({failure['error']})" if r.get("status") == "failed" and failure.get("error") else ""
    return f"{r['strategy']} {r['status']}{where}{why}"


class DiskFullError(TunebenchError):
    """No space left while writing a checkpoint or a result."""


def error_line(exc: BaseException) -> str:
    """``Type: first line of the message``: how a failed run's error is stored and shown."""
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__


def is_cuda_oom(exc: BaseException) -> bool:
    import torch

    oom = getattr(torch.cuda, "OutOfMemoryError", None)
    return oom is not None and isinstance(exc, oom)


def is_disk_full(exc: BaseException | None) -> bool:
    """True when ``exc``, or an exception it was raised from, is "no space left" (or a full quota).

    Libraries wrap the OS error: safetensors raises ``SafetensorError("... No space left on device
    (os error 28)")``, ``torch.save`` into a file raises ``RuntimeError("... unexpected pos ...")``
    from the ``OSError`` it hit, SQLite says "database or disk is full".  Each was seen on a full
    tmpfs (tests/faults/test_full_disk.py).
    """
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if getattr(exc, "errno", None) in (errno.ENOSPC, errno.EDQUOT):
            return True
        if getattr(exc, "sqlite_errorname", None) == "SQLITE_FULL":
            return True
        text = str(exc)
        if any(mark in text for mark in ("No space left on device", "os error 28", "database or disk is full",
                                         "Disk quota exceeded")):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def disk_full_error(what: str, path: Path | str | None = None) -> DiskFullError:
    """The one sentence for a full disk (the guards below, and the CLI for a write no guard named)."""
    where = f" to '{path}'" if path else ""
    return DiskFullError(f"no space left on the device while saving {what}{where}; free some space and run the same "
                         "command again (finished runs are kept in the store)")


#: what the file system says, in words, for the errors a path given by the user can meet
_OS_REASONS = {errno.ENAMETOOLONG: "a name in it is longer than the file system allows (255 bytes a name)",
               errno.EACCES: "permission denied", errno.EPERM: "permission denied",
               errno.EROFS: "the file system is read-only", errno.EISDIR: "it is a folder where a file is written",
               errno.ENOTDIR: "part of its path is a file, not a folder", errno.ENOENT: "no such file or folder",
               errno.ELOOP: "too many symbolic links"}


class PathError(TunebenchError):
    """A path the user gave cannot be used as it is (too long, not writable, a folder where a file goes)."""


def path_error(exc: BaseException | None) -> PathError | None:
    """One sentence for an ``OSError`` on a path (or SQLite unable to open its file), anywhere in the chain of
    ``exc``; None when it is not one: the CLI's last net before a traceback."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, OSError) and exc.errno in _OS_REASONS:
            where = exc.filename if exc.filename is not None else "a path"
            return PathError(f"cannot use '{str(where)[:300]}': {_OS_REASONS[exc.errno]}; check the path, or choose "
                             "another (--output, --dataset, --model)")
        if getattr(exc, "sqlite_errorname", "") in ("SQLITE_CANTOPEN", "SQLITE_READONLY"):
            return PathError(f"the study store cannot be opened for writing ({str(exc)[:120]}); check that the output "
                             "folder exists and is writable, or choose another --output")
        exc = exc.__cause__ or exc.__context__
    return None


@contextlib.contextmanager
def disk_guard(what: str, path: Path | str) -> Iterator[None]:
    """Turn "no space left" (or a full quota) while writing ``what`` into one :class:`DiskFullError`."""
    try:
        yield
    except TunebenchError:
        raise
    except Exception as exc:
        if is_disk_full(exc):
            raise disk_full_error(what, path) from None
        raise


class InterruptGuard:
    """Ctrl-C handling for a study: the first SIGINT asks the current run to stop, the second exits.

    Use as a context manager around the study; call the guard (``guard()``) to ask whether a stop
    was requested.  Outside the main thread (where signal handlers cannot be installed) it only
    reports ``False``.
    """

    #: SIGTERM (what Slurm, Kubernetes and ``timeout`` send) is treated like Ctrl-C
    SIGNALS = (signal.SIGINT, signal.SIGTERM)
    #: the signal that last asked a study to stop (the CLI exits 143 for SIGTERM, 130 for Ctrl-C)
    received: int | None = None

    def __init__(self) -> None:
        self.requested = False
        self._previous: dict[int, Any] = {}
        self._installed = False

    def __call__(self) -> bool:
        return self.requested

    def _handle(self, signum: int, frame: Any) -> None:
        InterruptGuard.received = signum
        if self.requested:  # the second Ctrl-C: leave at once
            raise KeyboardInterrupt
        self.requested = True

    def __enter__(self) -> InterruptGuard:
        if threading.current_thread() is threading.main_thread():
            self._previous = {s: signal.signal(s, self._handle) for s in self.SIGNALS}
            self._installed = True
        return self

    def __exit__(self, *exc: object) -> None:
        if self._installed:
            for s, previous in self._previous.items():
                signal.signal(s, previous)
            self._installed = False


def _umask() -> int:
    """The process's umask (read by setting it, so set straight back)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write(path: Path | str, content: str | bytes | Callable[[Path], None]) -> None:
    """Write ``path`` so that a reader (or a crash) never sees half a file: a temporary file in the
    same folder, fsync, ``os.replace``.  ``content``: text, bytes, or a function that writes the
    temporary path it is given (a figure's ``savefig``, ``pyarrow.parquet.write_table``).

    The one atomic-write helper of the project (tables, report, profile, dataset cache).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    tmp = Path(name)
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600: the file follows the umask like any other
        if callable(content):
            os.close(fd)
            content(tmp)
            with open(tmp, "rb+") as fh:
                os.fsync(fh.fileno())
        else:
            mode, data = ("w", content) if isinstance(content, str) else ("wb", content)
            with os.fdopen(fd, mode, **({"encoding": "utf-8", "newline": ""} if mode == "w" else {})) as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
