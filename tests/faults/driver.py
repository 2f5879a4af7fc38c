"""``python tests/faults/driver.py ARGV...``: the real ``tunebench`` CLI in a process a test can kill.

Prints ``STEP <run position> <step count>`` on stdout after every training batch, so a test knows
when the study is inside a run.  ``TB_FAULT`` injects a fault from inside the process:

``kill:POSITION:N``   SIGKILL itself at the N-th batch of the run at POSITION
``kill-in-put:N``     SIGKILL itself inside the N-th store transaction, after the INSERT, before COMMIT
``kill-in-write:NAME`` SIGKILL itself after writing the temporary file of NAME, before the rename
``stuck``             after the first batch, ignore the graceful stop: sleep 120 s per batch
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time

from tunebench import faults
from tunebench.cli import console
from tunebench.results import store

FAULT = os.environ.get("TB_FAULT", "")
_state = {"position": -1, "batches": 0, "puts": 0}


def _kill() -> None:
    sys.stdout.flush()
    os.kill(os.getpid(), signal.SIGKILL)


_run_started = console.RichReporter.run_started


def run_started(self, position, *args, **kwargs):
    _state["position"], _state["batches"] = position, 0
    return _run_started(self, position, *args, **kwargs)


def step(self, info):
    _state["batches"] += 1
    print(f"STEP {_state['position']} {_state['batches']}", flush=True)
    if FAULT.startswith("kill:"):
        _, position, n = FAULT.split(":")
        if _state["position"] == int(position) and _state["batches"] == int(n):
            _kill()
    if FAULT == "stuck":
        time.sleep(120)
    if FAULT == "slow":  # half a second per batch: a signal sent after a STEP line lands in the same epoch
        time.sleep(0.5)


console.RichReporter.run_started = run_started
console.RichReporter.step = step

if FAULT.startswith("kill-in-put:"):
    _transaction = store.Store._transaction

    @contextlib.contextmanager
    def transaction(self):
        with _transaction(self) as db:
            yield db
            _state["puts"] += 1
            if _state["puts"] == int(FAULT.split(":")[1]):
                _kill()  # the INSERTs are done, the COMMIT is not

    store.Store._transaction = transaction

if FAULT.startswith("kill-in-write:"):
    _replace = os.replace

    def replace(src, dst, *args, **kwargs):
        if os.path.basename(dst) == FAULT.split(":", 1)[1] and os.path.exists(dst):
            _kill()  # the temporary file is complete; the rename has not happened
        return _replace(src, dst, *args, **kwargs)

    faults.os.replace = replace

if __name__ == "__main__":
    from tunebench.cli.app import main

    sys.exit(main(sys.argv[1:]))
