"""One study process per output folder: an exclusive ``flock`` on ``OUTPUT/.tunebench.study.lock``.

The lock file holds the holder's PID and host, so a second ``tunebench run`` on the same folder
fails at once with one sentence naming them.  The kernel releases a ``flock`` when its process
dies (even by SIGKILL), so a lock file left behind by a dead process is simply taken over; the
file itself is never deleted (deleting it would let two processes lock two different files).
On systems without ``fcntl`` (Windows) the lock is skipped.
"""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path
from typing import Any

from tunebench.errors import TunebenchError

LOCK_NAME = ".tunebench.study.lock"


class StudyLockedError(TunebenchError):
    """Another process is running a study (or a store repair) in the same output folder."""

    def __init__(self, message: str, who: str = "another process") -> None:
        super().__init__(message)
        self.who = who


class StudyLock:
    """``with StudyLock(out_dir):`` holds the folder's lock for the duration of a study."""

    def __init__(self, out_dir: Path | str) -> None:
        self.path = Path(out_dir) / LOCK_NAME
        self._fd: int | None = None
        self.previous: dict[str, Any] | None = None  # what the file said before we took it over

    def acquire(self) -> StudyLock:
        try:
            import fcntl
        except ImportError:  # pragma: no cover - not POSIX
            return self
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise TunebenchError(f"cannot write in the output folder '{self.path.parent}' "
                                 f"({exc.strerror or type(exc).__name__}); choose another --output") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = _read(fd)
            os.close(fd)
            who = f"process {holder.get('pid', '?')} on host {holder.get('host', '?')}" if holder else "another process"
            raise StudyLockedError(f"output folder '{self.path.parent}' is in use by another tunebench run "
                                   f"({who}); wait for it to finish or choose another --output", who) from None
        self.previous = _read(fd) or None
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps({"pid": os.getpid(), "host": socket.gethostname()}).encode(), 0)
        os.fsync(fd)
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            os.ftruncate(self._fd, 0)
            os.close(self._fd)  # closing the descriptor releases the flock
            self._fd = None

    def __enter__(self) -> StudyLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


def _read(fd: int) -> dict[str, Any]:
    try:
        data = json.loads(os.pread(fd, 4096, 0).decode() or "{}")
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}
