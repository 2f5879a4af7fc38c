"""CUDA out of memory (simulated), a full disk (simulated) and two studies on one output folder."""

from __future__ import annotations

import errno
import json
import os
import socket
import subprocess
import sys

from tunebench.spec.study import StudySpec
from tunebench.study import driver as study_module
from tunebench.study import run as run_module
from tunebench.study.lock import LOCK_NAME, StudyLock

from ..conftest import cli
from .common import error_sentence, flags, integrity_ok, oom, stored, write_reviews


def small_spec(model, csv, out, strategies=("head", "partial:k=1")) -> StudySpec:
    return StudySpec(name="t", data={"source": str(csv)}, model={"name": str(model), "max_length": 32},
                     strategies=list(strategies), training={"epochs": 1, "batch_size": 8},
                     output={"dir": str(out), "save_checkpoints": False})


def test_out_of_memory_is_retried_once_with_half_the_batch(tiny_bert, tmp_path, monkeypatch):
    real = study_module.engine.train_and_evaluate
    seen = []

    def oom_once(*args, **kwargs):
        seen.append((args[5].batch_size, args[5].grad_accumulation))
        if len(seen) == 1:
            raise oom()
        return real(*args, **kwargs)

    monkeypatch.setattr(study_module.engine, "train_and_evaluate", oom_once)
    record = study_module.run_study(small_spec(tiny_bert, write_reviews(tmp_path), tmp_path / "out", ["head"]))[0]
    assert seen == [(8, 1), (4, 2)]  # the same effective batch
    assert record["status"] == "finished"
    assert record["oom_retry"] == {"error": "OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB",
                                   "from_batch_size": 8, "batch_size": 4, "grad_accumulation": 2}
    assert (record["resolved"]["batch_size"], record["resolved"]["grad_accumulation"]) == (4, 2)


def test_out_of_memory_twice_fails_the_run_and_the_study_goes_on(tiny_bert, tmp_path, monkeypatch):
    real = study_module.engine.train_and_evaluate
    calls = []

    def oom_in_first_run(*args, **kwargs):
        calls.append(1)
        if len(calls) <= 2:
            raise oom()
        return real(*args, **kwargs)

    monkeypatch.setattr(study_module.engine, "train_and_evaluate", oom_in_first_run)
    records = study_module.run_study(small_spec(tiny_bert, write_reviews(tmp_path), tmp_path / "out"))
    assert [r["status"] for r in records] == ["failed", "finished"]
    assert records[0]["failure"]["error"].startswith("OutOfMemoryError: CUDA out of memory")
    assert records[0]["oom_retry"]["batch_size"] == 4 and "oom_retry" not in records[1]


def _no_space(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")


def test_disk_full_while_saving_a_resume_checkpoint(capsys, tiny_bert, tmp_path, monkeypatch):
    import torch

    from tunebench.cli import console

    csv, out = write_reviews(tmp_path), tmp_path / "out"
    real_save, real_finished = torch.save, console.RichReporter.run_finished
    full = {"now": False}
    monkeypatch.setattr(torch, "save", lambda *a, **k: _no_space() if full["now"] else real_save(*a, **k))
    monkeypatch.setattr(console.RichReporter, "run_finished",  # the disk fills up after the first run
                        lambda self, record: (real_finished(self, record), full.update(now=True)))
    code, _, err = cli(capsys, *flags(tiny_bert, csv, out, "-s", "head partial:k=1", "--checkpoint-every", "2"))
    assert code == 2
    records = stored(out)
    text = error_sentence(err)
    assert text.startswith(f"error: no space left on the device while saving a resume checkpoint to '{out}/resume/")
    assert text.endswith(".pt'; free some space and run the same command again (finished runs are kept in the store)")
    assert [(r["strategy"], r["status"]) for r in records] == [("head", "finished")]
    assert integrity_ok(out)
    assert not [p for p in (out / "resume").iterdir() if p.name.endswith(".tmp")]  # no half-written file left

    monkeypatch.undo()  # space again: the same command finishes the study, the finished run untouched
    code, _, err = cli(capsys, *flags(tiny_bert, csv, out, "-s", "head partial:k=1", "--checkpoint-every", "2"))
    assert code == 0, err
    after = stored(out)
    assert [r["status"] for r in after] == ["finished", "finished"] and after[0] == records[0]


def test_disk_full_while_saving_the_best_checkpoint(capsys, tiny_bert, tmp_path, monkeypatch):
    csv, out = write_reviews(tmp_path), tmp_path / "out"
    def half_saved(model, tokenizer, folder, meta):
        folder.mkdir(parents=True)
        (folder / "model.safetensors").write_bytes(b"half a file")
        _no_space()

    monkeypatch.setattr(run_module, "save_checkpoint", half_saved)
    argv = [a for a in flags(tiny_bert, csv, out, "-s", "head") if a != "--no-checkpoints"]
    code, _, err = cli(capsys, *argv)
    assert code == 2
    text = error_sentence(err)
    assert text.startswith(f"error: no space left on the device while saving the best checkpoint to '{out}/runs/00-head-")
    assert stored(out) == [] and integrity_ok(out)
    assert list((out / "runs").iterdir()) == []  # the half-written temporary folder is gone


def test_a_second_study_on_the_same_folder_names_the_process_holding_it(capsys, tiny_bert, tmp_path):
    out = tmp_path / "out"
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from tunebench.study.lock import StudyLock; "
         f"lock = StudyLock({str(out)!r}).acquire(); print('locked', flush=True); time.sleep(60)"],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        code, _, err = cli(capsys, *flags(tiny_bert, write_reviews(tmp_path), out, "-s", "head"))
    finally:
        holder.kill()
        holder.wait()
    assert code == 2
    assert error_sentence(err) == (f"error: output folder '{out}' is in use by another tunebench run (process {holder.pid} "
                              f"on host {socket.gethostname()}); wait for it to finish or choose another --output")
    assert not (out / "tunebench.sqlite").exists()  # nothing was touched


def test_a_lock_left_by_a_dead_process_is_taken_over(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    (tmp_path / LOCK_NAME).write_text(json.dumps({"pid": int(dead.stdout), "host": socket.gethostname()}))
    with StudyLock(tmp_path) as lock:
        assert lock.previous == {"pid": int(dead.stdout), "host": socket.gethostname()}
        assert json.loads((tmp_path / LOCK_NAME).read_text())["pid"] == os.getpid()
