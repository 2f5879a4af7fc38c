"""One identity rule: a run id is a computation, (study, label) is a row; attempts never overwrite a result.

* a ``--force`` rerun that is interrupted or fails keeps the finished result beside it;
* two study names (or a seed sweep and a plain run) in one folder each show their own rows, and
  neither deletes the other's;
* a store written in the first layout (one row per run id) opens with every run and prediction.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3

import pandas as pd
import pytest

from tunebench.cli import console
from tunebench.results.store import STORE_NAME, Store
from tunebench.study import driver as study_module

from ..conftest import cli
from .common import error_sentence, flags, integrity_ok, write_reviews


def history(out):
    """Every attempt at the studies' rows (not at their baselines' reference rows)."""
    with Store(out / STORE_NAME) as store:
        return [r for r in store.history() if not r["study"].endswith(":baselines")]


def current(out, study=None):
    """The current rows of ``study`` (default: of every study, not their baselines' reference rows)."""
    with Store(out / STORE_NAME) as store:
        return [r for r in store.records(study) if study is not None or not r["study"].endswith(":baselines")]


def stored_predictions(out, record):
    with Store(out / STORE_NAME) as store:
        return store.predictions_of(record)


@pytest.fixture()
def finished(capsys, tiny_bert, tmp_path):
    """A folder holding one finished 'head' run: (csv, out, its record, its predictions)."""
    csv, out = write_reviews(tmp_path), tmp_path / "out"
    code, _, err = cli(capsys, *flags(tiny_bert, csv, out, "-s", "head"))
    assert code == 0, err
    (record,) = current(out)
    return csv, out, record, stored_predictions(out, record)


def test_an_interrupted_force_rerun_keeps_the_finished_run(capsys, tiny_bert, finished, monkeypatch):
    csv, out, before, predictions = finished
    real_step = console.RichReporter.step
    monkeypatch.setattr(console.RichReporter, "step",  # a real Ctrl-C (SIGINT) at the rerun's first step
                        lambda self, info: (real_step(self, info), os.kill(os.getpid(), signal.SIGINT)))
    code, _, err = cli(capsys, *flags(tiny_bert, csv, out, "-s", "head", "--force"))
    assert code == 130
    assert error_sentence(err).startswith("error: interrupted during run 'head' at step 1 (recorded as interrupted; "
                                          "its earlier finished result is kept); finished runs are kept")
    assert current(out) == [before]  # the same attempt: record and predictions untouched
    assert stored_predictions(out, before) == predictions
    assert [r["status"] for r in history(out)] == ["finished", "interrupted"]  # the attempt is kept beside it
    assert pd.read_csv(out / "results.csv")["status"].tolist() == ["finished"]
    code, stdout, err = cli(capsys, "report", str(out))
    assert code == 0 and "report:" in stdout, err
    assert "interrupted" in (out / "report.md").read_text()  # the report says a later attempt stopped
    assert integrity_ok(out)


def test_a_failing_force_rerun_keeps_the_finished_run_and_exits_1(capsys, tiny_bert, finished, monkeypatch):
    csv, out, before, predictions = finished

    def broken(*args, **kwargs):
        raise RuntimeError("something broke in the rerun")

    monkeypatch.setattr(study_module.engine, "train_and_evaluate", broken)
    code, _, err = cli(capsys, *flags(tiny_bert, csv, out, "-s", "head", "--force"))
    assert code == 1
    assert error_sentence(err) == ("error: 1 rerun(s) did not finish: head failed (RuntimeError: something broke in the "
                                   "rerun) (its earlier finished result is kept); the outputs show the finished results")
    assert current(out) == [before] and stored_predictions(out, before) == predictions
    monkeypatch.undo()

    code, _, err = cli(capsys, *flags(tiny_bert, csv, out, "-s", "head", "--force"))  # a rerun that finishes
    assert code == 0, err
    (after,) = current(out)
    assert after["attempt"] != before["attempt"] and after["run_id"] == before["run_id"]
    assert [r["status"] for r in history(out)] == ["failed", "finished"]  # the new result replaced the old one


def test_two_study_names_in_one_folder_keep_their_own_runs(capsys, tiny_bert, finished):
    csv, out, a_record, a_predictions = finished
    study_a = a_record["study"]
    code, _, err = cli(capsys, *flags(tiny_bert, csv, out, "-s", "head", "--name", "studyB"))
    assert code == 0, err
    assert "the same computation finished as 'head' of study" in " ".join(err.split())
    (b_record,) = current(out, "studyB")
    assert b_record["run_id"] == a_record["run_id"] and b_record["reused_from"]["study"] == study_a
    assert b_record["test"] == a_record["test"]  # not retrained: the same computation's result
    assert stored_predictions(out, b_record) == a_predictions
    frame = pd.read_csv(out / "results.csv")
    assert frame["label"].tolist() == ["head"] and frame["status"].tolist() == ["finished"]  # not an empty table

    code, _, err = cli(capsys, *flags(tiny_bert, csv, out, "-s", "head", "--name", "studyB", "--force"))
    assert code == 0, err
    assert current(out, study_a) == [a_record]  # --force in B retrains B's row only
    assert stored_predictions(out, a_record) == a_predictions
    assert "reused_from" not in current(out, "studyB")[0]
    for study in (study_a, "studyB"):
        code, _, err = cli(capsys, "report", str(out), "--study", study)
        assert code == 0, err
        assert (out / "report.md").read_text().startswith(f"# tunebench report: {study}\n")


def test_a_seed_sweep_then_a_plain_run_each_show_their_own_rows(capsys, tiny_bert, tmp_path):
    csv, out = write_reviews(tmp_path), tmp_path / "out"
    sweep = ["sweep", *flags(tiny_bert, csv, out, "-s", "head")[1:], "--seeds", "0,1"]
    code, _, err = cli(capsys, *sweep)
    assert code == 0, err
    swept = current(out)
    assert [r["label"] for r in swept] == ["head seed=0", "head seed=1"]

    code, _, err = cli(capsys, *flags(tiny_bert, csv, out, "-s", "head"))  # seed 0: the same computation
    assert code == 0, err
    (plain,) = current(out)
    assert plain["label"] == "head" and plain["run_id"] == swept[0]["run_id"] and plain["test"] == swept[0]["test"]
    assert pd.read_csv(out / "results.csv")["label"].tolist() == ["head"]
    assert len(history(out)) == 3  # the sweep's rows are still in the store

    code, _, err = cli(capsys, *sweep)  # and the sweep again: nothing trained, its own two rows
    assert code == 0, err
    assert "already finished" in " ".join(err.split())
    assert [r["label"] for r in current(out)] == ["head seed=0", "head seed=1"] and len(history(out)) == 3
    assert pd.read_csv(out / "results.csv")["label"].tolist() == ["head seed=0", "head seed=1"]


V1_SCHEMA = """
CREATE TABLE runs (run_id TEXT PRIMARY KEY, study TEXT NOT NULL, position INTEGER NOT NULL, strategy TEXT NOT NULL,
                   status TEXT NOT NULL, finished_at TEXT NOT NULL, record TEXT NOT NULL);
CREATE TABLE predictions (run_id TEXT PRIMARY KEY REFERENCES runs(run_id) ON DELETE CASCADE, split TEXT NOT NULL,
                          labels TEXT NOT NULL, probabilities TEXT NOT NULL);
"""


def test_a_store_of_the_first_layout_is_migrated_with_every_run(tmp_path):
    path = tmp_path / STORE_NAME
    db = sqlite3.connect(path)
    db.executescript(V1_SCHEMA)
    rows = [("a1", "s", 0, "head", "finished", "2026-01-01T00:00:00", {"label": "head"}),
            ("b2", "s", 1, "full", "failed", "2026-01-01T00:01:00", {"label": "full"}),
            ("c3", "s", 2, "lora:r=8", "finished", "2026-01-01T00:02:00", {})]
    for run_id, study, position, strategy, status, at, extra in rows:
        record = {"run_id": run_id, "study": study, "position": position, "strategy": strategy, "status": status,
                  "finished_at": at, **extra}
        db.execute("INSERT INTO runs VALUES (?, ?, ?, ?, ?, ?, ?)",
                   (run_id, study, position, strategy, status, at, json.dumps(record)))
    db.execute("INSERT INTO predictions VALUES ('a1', 'test', '[0, 1]', '[[0.9, 0.1], [0.2, 0.8]]')")
    db.commit()
    db.close()
    with Store(path) as store:
        assert [(r["run_id"], r["status"]) for r in store.records()] == [("a1", "finished"), ("b2", "failed"),
                                                                         ("c3", "finished")]
        assert store.predictions("a1") == ([0, 1], [[0.9, 0.1], [0.2, 0.8]])
        assert store.current("s", "lora:r=8")["run_id"] == "c3" and store.finished("c3") and not store.finished("b2")
    with Store(path) as store:  # opening again changes nothing
        assert len(store.history()) == 3
