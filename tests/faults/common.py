"""Helpers shared by the fault tests: a tiny study, the CLI in a killable process, store checks."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import torch

from tunebench.results.store import STORE_NAME, Store

from ..conftest import easy_reviews

DRIVER = Path(__file__).with_name("driver.py")


def write_reviews(folder: Path, n: int = 60) -> Path:
    path = folder / "reviews.csv"
    easy_reviews(n).to_csv(path, index=False)
    return path


def flags(model, csv, out, *extra) -> list[str]:
    """``tunebench run`` on the tiny model and data: 2 epochs of 5 batches, no checkpoints (fast)."""
    return ["run", "--quick", "--model", str(model), "--dataset", str(csv), "--epochs", "2", "--batch-size", "8",
            "--max-length", "32", "--lr", "0.003", "--no-checkpoints", "--output", str(out), *extra]


def start_driver(argv: list[str], fault: str = "", **kwargs) -> subprocess.Popen:
    env = {**os.environ, "TB_FAULT": fault, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, str(DRIVER), *argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env, **kwargs)


def wait_for_step(proc: subprocess.Popen, position: int, n: int) -> None:
    """Read the driver's stdout until it reports batch ``n`` of the run at ``position``."""
    for line in proc.stdout:
        if line.strip() == f"STEP {position} {n}":
            return
    raise AssertionError(f"the study ended before run {position} reached batch {n}: {proc.stderr.read()}")


def stored(out: Path) -> list[dict]:
    """The rows of the studies in ``out`` (not their reference baselines, stored as ``<name>:baselines``)."""
    with Store(out / STORE_NAME) as store:
        return [r for r in store.records() if not r["study"].endswith(":baselines")]


def integrity_ok(out: Path) -> bool:
    db = sqlite3.connect(out / STORE_NAME)
    try:
        return db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    finally:
        db.close()


def comparable(record: dict) -> dict:
    """What must be equal between two runs of the same spec and seed (times and dates left out)."""
    curves = [{k: v for k, v in c.items() if k != "train_time_s"} for c in record["curves"]]
    return {"status": record["status"], "test": record["test"], "val": record["val"], "curves": curves,
            "best_epoch": record["best_epoch"], "params": record["params"], "seeds": record.get("seeds")}


def predictions(out: Path, run_id: str):
    with Store(out / STORE_NAME) as store:
        return store.predictions(run_id)


def oom(message: str = "CUDA out of memory. Tried to allocate 2.00 GiB") -> Exception:
    return torch.cuda.OutOfMemoryError(message)


def error_sentence(err: str) -> str:
    """The ``error: ...`` sentence that ends stderr (checked to be one sentence, no traceback), on one line."""
    from ..conftest import one_error

    text = one_error(err)
    return text[text.rindex("error: "):]


def fail_on_call(monkeypatch, n: int, exc: Exception) -> list[int]:
    """Make the engine's ``train_and_evaluate`` raise ``exc`` on its ``n``-th call (the others train);
    return the list of calls so far."""
    from tunebench.training import engine

    real, calls = engine.train_and_evaluate, []

    def failing(*args, **kwargs):
        calls.append(1)
        if len(calls) == n:
            raise exc
        return real(*args, **kwargs)

    monkeypatch.setattr(engine, "train_and_evaluate", failing)
    return calls
