"""One run diverges or fails: it is recorded with its status, the study goes on, the report shows it."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import torch

from tunebench.results.outputs import summary_markdown
from tunebench.spec.study import StudySpec
from tunebench.study import driver as study_module

from ..conftest import cli
from .common import error_sentence, fail_on_call, flags, stored, write_reviews


def nan_loss_at(monkeypatch, n: int) -> None:
    """Make the engine's n-th training loss NaN.

    Evaluation (no grad) is left alone, and so is the loss transformers computes inside the model
    (it passes keyword arguments; the engine passes two positional ones).
    """
    real = torch.nn.functional.cross_entropy
    calls = {"n": 0}

    def loss(*args, **kwargs):
        out = real(*args, **kwargs)
        if torch.is_grad_enabled() and not kwargs:
            calls["n"] += 1
            if calls["n"] == n:
                return out * float("nan")
        return out

    monkeypatch.setattr(torch.nn.functional, "cross_entropy", loss)


def test_divergence_is_recorded_and_the_study_goes_on(capsys, tiny_bert, tmp_path, monkeypatch):
    csv, out = write_reviews(tmp_path), tmp_path / "out"
    nan_loss_at(monkeypatch, 3)
    code, stdout, err = cli(capsys, *flags(tiny_bert, csv, out, "-s", "head partial:k=1"))
    assert code == 1
    assert error_sentence(err) == (
        "error: 1 of 2 runs did not finish: head diverged at step 2; the finished runs are in the outputs, "
        "and the next 'tunebench run' tries the others again")
    head, partial = sorted(stored(out), key=lambda r: r["position"])
    assert head["status"] == "diverged" and partial["status"] == "finished"
    failure = head["failure"]
    assert (failure["epoch"], failure["batch"], failure["step"]) == (1, 3, 2)
    assert isinstance(failure["last_finite_loss"], float) and failure["last_finite_loss"] > 0
    assert failure["error"].startswith("loss became nan at epoch 1, batch 3 (step 2)")

    frame = pd.read_csv(out / "results.csv")  # outputs list every run with its status
    assert frame["status"].tolist() == ["diverged", "finished"]
    assert frame.loc[0, "failure"].endswith(f"at step 2, last finite loss {failure['last_finite_loss']:.4g}")
    assert [r["status"] for r in json.loads((out / "results.json").read_text())["runs"]] == ["diverged", "finished"]
    summary = (out / "summary.md").read_text()
    assert "Best test macro-F1 (one run): **partial:k=1**" in summary and "- **head**: diverged" in summary
    report = (out / "report.md").read_text()
    assert "Runs that did not finish" in report and "| head | diverged | 1 | 2 |" in report
    assert "head (diverged)" in stdout  # the terminal table marks it too

    monkeypatch.undo()  # the next run retries the diverged run only (it finishes this time)
    code, _, err = cli(capsys, *flags(tiny_bert, csv, out, "-s", "head partial:k=1"))
    assert code == 0, err
    assert [r["status"] for r in sorted(stored(out), key=lambda r: r["position"])] == ["finished", "finished"]


def test_an_exception_in_one_run_marks_it_failed_and_the_next_run_still_runs(tiny_bert, tmp_path, monkeypatch):
    csv = write_reviews(tmp_path)
    spec = StudySpec(name="t", data={"source": str(csv)}, model={"name": str(tiny_bert), "max_length": 32},
                     strategies=["head", "partial:k=1"], training={"epochs": 1, "batch_size": 8},
                     output={"dir": str(tmp_path / "out"), "save_checkpoints": False})
    fail_on_call(monkeypatch, 1, RuntimeError("weights went missing\nsecond line"))
    records = study_module.run_study(spec)
    assert [r["status"] for r in records] == ["failed", "finished"]
    assert records[0]["failure"] == {"error": "RuntimeError: weights went missing"}
    assert records[0]["seeds"]["torch"] == 0 and records[0]["test"] is None
    text = summary_markdown(records)  # the ranking ignores the failed run
    assert "Best test macro-F1 (one run): **partial:k=1**" in text
    assert "- **head**: failed — RuntimeError: weights went missing" in text


def test_a_method_the_model_cannot_take_is_refused_before_any_run_trains(capsys, tiny_bert, tmp_path, monkeypatch):
    csv, out = write_reviews(tmp_path), tmp_path / "out"
    trained = []
    real = study_module.engine.train_and_evaluate
    monkeypatch.setattr(study_module.engine, "train_and_evaluate", lambda *a, **k: (trained.append(1), real(*a, **k))[1])
    for strategies, sentence in [
        ("head partial:k=9 partial:k=1", "strategy 'partial:k=9' asks for the top 9 layers but the model has only 3; "
                                         "use k between 1 and 3 (or 'full')"),
        ("head lora:r=100", "strategy 'lora:r=100' asks for rank 100, but the layers it adapts (query, value) are 32 "
                            "wide; use r between 1 and 32"),
    ]:
        code, _, err = cli(capsys, *flags(tiny_bert, csv, out, "-s", strategies))
        assert (code, error_sentence(err)) == (2, f"error: {sentence}")
    assert trained == [] and stored(out) == []  # checked on a weightless copy of the model, before 'head' trained


def test_a_user_error_inside_a_run_still_stops_the_study_with_exit_2(capsys, tiny_bert, tmp_path, monkeypatch):
    from tunebench.errors import DataError

    csv, out = write_reviews(tmp_path), tmp_path / "out"
    fail_on_call(monkeypatch, 2, DataError("the data went away mid-study"))
    code, _, err = cli(capsys, *flags(tiny_bert, csv, out, "-s", "head partial:k=1 full"))
    assert (code, error_sentence(err)) == (2, "error: the data went away mid-study")
    assert [r["strategy"] for r in stored(out)] == ["head"]  # what finished before it is kept


@pytest.mark.parametrize("status", ["diverged", "failed", "interrupted"])
def test_outputs_and_terminal_table_accept_every_status(status):
    from tunebench.results.outputs import display_rows, results_frame

    record = {"run_id": "x", "study": "s", "strategy": "head", "status": status, "spec": {"kind": "head"},
              "resolved": {"lr": 1e-3, "scheduler": "linear", "epochs": 1, "precision": "fp32", "device": "cpu",
                           "seed": 0, "batch_size": 8, "max_length": 32},
              "failure": {"error": "boom", "step": 4, "epoch": 1, "batch": 5, "last_finite_loss": 0.5}}
    frame = results_frame([record])
    assert frame.loc[0, "failure"] == "boom at step 4, last finite loss 0.5"
    _, rows = display_rows(frame)
    assert rows[0][0] == f"head ({status})" and rows[0][-1] == "—"
