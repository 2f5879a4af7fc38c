"""Real processes: Ctrl-C (SIGINT) once and twice, and SIGKILL during training and during a result write."""

from __future__ import annotations

import signal
import time

import pandas as pd

from ..conftest import cli
from .common import comparable, error_sentence, flags, integrity_ok, predictions, start_driver, stored, wait_for_step
from .common import write_reviews as reviews

TWO = ["-s", "head partial:k=1"]


def test_first_ctrl_c_stops_the_run_at_the_next_step_and_records_it(tiny_bert, tmp_path):
    out = tmp_path / "out"
    # slow batches: on a loaded machine the two batches left in epoch 1 must not end before the signal lands
    proc = start_driver(flags(tiny_bert, reviews(tmp_path), out, *TWO, "--epochs", "50"), fault="slow")
    wait_for_step(proc, 0, 3)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130
    assert "Traceback" not in err
    assert error_sentence(err).startswith("error: interrupted during run 'head' at step ")
    assert error_sentence(err).endswith(" (recorded as interrupted); finished runs are kept and the same command "
                                        "continues the study")
    (record,) = stored(out)
    assert record["status"] == "interrupted" and record["failure"]["epoch"] == 1
    assert 3 <= record["failure"]["step"] <= 5  # stopped at the next step, not at the end of the run
    assert pd.read_csv(out / "results.csv")["status"].tolist() == ["interrupted"]  # outputs consistent
    assert integrity_ok(out)


def test_second_ctrl_c_exits_at_once(tiny_bert, tmp_path):
    """The driver ignores the graceful stop (each batch then sleeps 120 s): only the second Ctrl-C ends it."""
    out = tmp_path / "out"
    proc = start_driver(flags(tiny_bert, reviews(tmp_path), out, "-s", "head"), fault="stuck")
    wait_for_step(proc, 0, 1)
    proc.send_signal(signal.SIGINT)
    time.sleep(1.0)
    assert proc.poll() is None  # the first one only asked the run to stop
    started = time.monotonic()
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert time.monotonic() - started < 30
    assert proc.returncode == 130
    assert error_sentence(err) == "error: interrupted; finished runs are kept in the store"


def test_sigkill_mid_run_then_rerun_resumes_and_loses_nothing(capsys, tiny_bert, tmp_path):
    csv = reviews(tmp_path)
    ref_out, out = tmp_path / "reference", tmp_path / "out"
    assert cli(capsys, *flags(tiny_bert, csv, ref_out, "-s", "partial:k=1"))[0] == 0  # the run that gets killed
    argv = flags(tiny_bert, csv, out, *TWO, "--checkpoint-every", "2")
    proc = start_driver(argv, fault="kill:1:7")  # SIGKILL in the second run, epoch 2 (state saved at step 6)
    proc.communicate(timeout=300)
    assert proc.returncode == -signal.SIGKILL
    before = stored(out)
    assert [(r["strategy"], r["status"]) for r in before] == [("head", "finished")]
    assert integrity_ok(out)

    code, _, err = cli(capsys, *argv)
    assert code == 0, err
    after = sorted(stored(out), key=lambda r: r["position"])
    assert len(after) == 2 and after[0] == before[0]  # not lost, not redone, not duplicated
    assert after[1]["resumed_from"]["step"] == 6
    (reference,) = stored(ref_out)
    assert reference["run_id"] == after[1]["run_id"] and comparable(reference) == comparable(after[1])
    assert predictions(ref_out, reference["run_id"]) == predictions(out, after[1]["run_id"])
    assert integrity_ok(out)


def test_sigkill_while_writing_a_result_keeps_the_store_and_outputs_whole(capsys, tiny_bert, tmp_path):
    csv, out = reviews(tmp_path), tmp_path / "out"
    argv = flags(tiny_bert, csv, out, *TWO, "--epochs", "1")
    # transaction 1 stores the study's plan, 2 its baselines' plan, 3-4 the two baselines, 5 the first run:
    # kill inside the second run's, before COMMIT
    proc = start_driver(argv, fault="kill-in-put:6")
    proc.communicate(timeout=300)
    assert proc.returncode == -signal.SIGKILL
    assert integrity_ok(out)
    assert [r["strategy"] for r in stored(out)] == ["head"]  # the uncommitted run is not half there

    proc = start_driver(argv, fault="kill-in-write:results.csv")  # the new results.csv is written, not renamed
    proc.communicate(timeout=300)
    assert proc.returncode == -signal.SIGKILL
    assert integrity_ok(out)
    frame = pd.read_csv(out / "results.csv")  # the previous, complete file
    assert frame["strategy"].tolist() == ["head"]

    code, _, err = cli(capsys, *argv)  # the same command finishes the study
    assert code == 0, err
    records = stored(out)
    assert sorted(r["strategy"] for r in records) == ["head", "partial:k=1"]
    assert len({r["run_id"] for r in records}) == 2 and all(r["status"] == "finished" for r in records)
    assert pd.read_csv(out / "results.csv")["strategy"].tolist() == ["head", "partial:k=1"]


def test_ctrl_c_in_a_run_planned_for_a_billion_epochs_is_recorded(capsys, tiny_bert, tmp_path, monkeypatch):
    """The record lists the data-order seed of each epoch that ran, not of each planned one (that was a
    MemoryError, and the run went unrecorded)."""
    import os

    from tunebench.cli import console

    real_step = console.RichReporter.step
    def step(self, info):
        real_step(self, info)
        if (info["epoch"], info["batch"]) == (2, 1):  # a real SIGINT in the second epoch
            os.kill(os.getpid(), signal.SIGINT)

    monkeypatch.setattr(console.RichReporter, "step", step)
    out = tmp_path / "out"
    code, _, err = cli(capsys, *flags(tiny_bert, reviews(tmp_path), out, "-s", "head", "--epochs", "1000000000"))
    assert code == 130, err
    assert error_sentence(err).startswith("error: interrupted during run 'head' at step ")
    (record,) = stored(out)
    assert record["status"] == "interrupted" and record["resolved"]["epochs"] == 1_000_000_000
    assert record["failure"]["epoch"] == 2
    assert len(record["seeds"]["data_order"]) == 2  # epochs 1 and 2 ran
