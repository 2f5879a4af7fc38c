"""``sweep.search: optuna`` under faults: Ctrl-C, a failing trial, a full disk and SIGKILL, as for the driver's runs.

The search runs every run through ``study.run.attempt_run`` and stores it with ``study.run.store_result``;
these tests check what that gives a search (docs/RELIABILITY.md, "Guarantees").
"""

from __future__ import annotations

import signal
import sqlite3

import optuna
import pandas as pd
import pytest

from tunebench.errors import TunebenchError
from tunebench.faults import unfinished_error
from tunebench.results.store import STORE_NAME, Store
from tunebench.spec.study import StudySpec
from tunebench.study import driver as study_module
from tunebench.study.search import MAX_FAILED_IN_A_ROW, search_name
from tunebench.training import engine
from tunebench.training.resume import RESUME_DIR

from ..conftest import cli
from .common import error_sentence, flags, integrity_ok, start_driver, stored, wait_for_step
from .common import write_reviews as reviews

#: three lr values: the seeded sampler proposes 0.003, then 0.01 (a different run), then repeats them
GRID = ["--grid", "lr=0.001,0.003,0.01"]


def sweep_flags(model, csv, out, *extra) -> list[str]:
    """``tunebench sweep`` on the tiny model and data (the fault tests' ``run`` flags), one strategy."""
    return ["sweep", *flags(model, csv, out, "-s", "head", *GRID, *extra)[1:]]


def search_spec(model, csv, out, trials: int) -> StudySpec:
    """An Optuna search over a continuous lr range (no two trials share a run), one epoch per run."""
    return StudySpec(name="search", data={"source": str(csv)}, model={"name": str(model), "max_length": 32},
                     strategies=["head"], training={"epochs": 1, "batch_size": 8},
                     sweep={"search": "optuna", "trials": trials, "sampler_seed": 3,
                            "random": {"lr": {"low": 1e-4, "high": 1e-2, "log": True}}},
                     output={"dir": str(out), "save_checkpoints": False})


def trials_of(spec: StudySpec) -> list[optuna.trial.FrozenTrial]:
    url = f"sqlite:///{spec.output.dir}/{STORE_NAME}"
    return optuna.load_study(study_name=search_name(spec), storage=url).trials


def cli_trials(out) -> list[optuna.trial.FrozenTrial]:
    """The trials of the (only) Optuna study in a CLI sweep's store."""
    url = f"sqlite:///{out / STORE_NAME}"
    (summary,) = optuna.get_all_study_summaries(storage=url)
    return optuna.load_study(study_name=summary.study_name, storage=url).trials


def history(out) -> list[dict]:
    with Store(out / STORE_NAME) as store:
        return store.history()


def test_first_ctrl_c_stops_an_optuna_search_at_the_next_step_and_records_the_run(tiny_bert, tmp_path):
    out = tmp_path / "out"
    # slow batches: on a loaded machine the two batches left in epoch 1 must not end before the signal lands
    proc = start_driver(sweep_flags(tiny_bert, reviews(tmp_path), out, "--optuna", "3", "--epochs", "50"),
                        fault="slow")
    try:
        wait_for_step(proc, 0, 3)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    assert error_sentence(err).startswith("error: interrupted during run 'head lr=0.003' at step ")
    assert error_sentence(err).endswith(" (recorded as interrupted); finished runs are kept and the same command "
                                        "continues the study")
    (record,) = stored(out)
    assert record["status"] == "interrupted" and record["failure"]["epoch"] == 1 and record["trial"] == 0
    assert 3 <= record["failure"]["step"] <= 5  # stopped at the next step, not after 50 epochs
    assert pd.read_csv(out / "results.csv")["status"].tolist() == ["interrupted"]  # outputs consistent
    (trial,) = cli_trials(out)  # not COMPLETE: left RUNNING, to be asked again by the next start
    assert trial.state.name == "RUNNING" and trial.user_attrs == {"interrupted": True}
    assert integrity_ok(out)


def test_a_failing_trial_is_recorded_failed_and_the_search_completes_its_other_trials(tiny_bert, tmp_path,
                                                                                      monkeypatch):
    spec = search_spec(tiny_bert, reviews(tmp_path), tmp_path / "out", trials=3)
    real, calls = engine.train_and_evaluate, []

    def first_fails(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("weights went missing\nsecond line")
        return real(*args, **kwargs)

    monkeypatch.setattr(engine, "train_and_evaluate", first_fails)
    records = study_module.run_study(spec)
    assert [t.state.name for t in trials_of(spec)] == ["FAIL", "COMPLETE", "COMPLETE", "COMPLETE"]
    assert [r["status"] for r in records] == ["finished", "finished", "finished", "failed"]  # the failed one shown
    failed = records[-1]
    assert failed["failure"] == {"error": "RuntimeError: weights went missing"} and failed["trial"] == 0
    assert [r["trial"] for r in records[:3]] == [1, 2, 3] and len({r["run_id"] for r in records}) == 4
    problem = unfinished_error(records)  # the exit code is 1 and the sentence names it
    assert problem is not None and f"{failed['strategy']} failed (RuntimeError: weights went missing)" in str(problem)
    assert [r["status"] for r in history(tmp_path / "out")].count("failed") == 1
    assert pd.read_csv(tmp_path / "out" / "results.csv")["status"].tolist() == ["finished"] * 3 + ["failed"]


def test_a_search_whose_trials_all_fail_stops_after_a_few_in_a_row(tiny_bert, tmp_path, monkeypatch):
    spec = search_spec(tiny_bert, reviews(tmp_path), tmp_path / "out", trials=10)

    def always_fails(*args, **kwargs):
        raise RuntimeError("broken")

    monkeypatch.setattr(engine, "train_and_evaluate", always_fails)
    records = study_module.run_study(spec)
    assert [t.state.name for t in trials_of(spec)] == ["FAIL"] * MAX_FAILED_IN_A_ROW  # not 10, not for ever
    assert [r["status"] for r in records] == ["failed"] * MAX_FAILED_IN_A_ROW


def test_a_full_disk_while_storing_a_trial_is_one_sentence_and_the_trial_is_tried_again(tiny_bert, tmp_path,
                                                                                         monkeypatch):
    spec = search_spec(tiny_bert, reviews(tmp_path), tmp_path / "out", trials=2)
    real_put = Store.put

    def full(self, record, *args, **kwargs):
        if record["status"] == "finished":
            raise sqlite3.OperationalError("database or disk is full")
        return real_put(self, record, *args, **kwargs)

    monkeypatch.setattr(Store, "put", full)
    with pytest.raises(TunebenchError) as info:
        study_module.run_study(spec)
    assert str(info.value).startswith("no space left on the device while saving a run's result to ")
    assert [t.state.name for t in trials_of(spec)] == ["RUNNING"]
    assert integrity_ok(tmp_path / "out") and stored(tmp_path / "out") == []

    monkeypatch.undo()  # space again: the same call finishes the search, the stopped trial's configuration first
    records = study_module.run_study(spec)
    trials = trials_of(spec)
    assert [t.state.name for t in trials] == ["FAIL", "COMPLETE", "COMPLETE"]
    assert trials[1].params == trials[0].params and trials[1].user_attrs == {"retry_of": 0}
    assert [r["status"] for r in records] == ["finished", "finished"]


def test_sigkill_mid_trial_then_the_same_command_completes_the_search_and_loses_nothing(capsys, tiny_bert,
                                                                                        tmp_path):
    out = tmp_path / "out"
    argv = sweep_flags(tiny_bert, reviews(tmp_path), out, "--optuna", "3", "--checkpoint-every", "2")
    proc = start_driver(argv, fault="kill:1:7")  # SIGKILL in trial 1's run, epoch 2 (state saved at step 6)
    proc.communicate(timeout=300)
    assert proc.returncode == -signal.SIGKILL
    before = stored(out)
    assert [(r["label"], r["status"], r["trial"]) for r in before] == [("head lr=0.003", "finished", 0)]
    assert [t.state.name for t in cli_trials(out)] == ["COMPLETE", "RUNNING"]
    assert len(list((out / RESUME_DIR).glob("*.pt"))) == 1  # the killed run's saved state
    assert integrity_ok(out)

    code, _, err = cli(capsys, *argv)
    assert code == 0, err
    trials = cli_trials(out)
    assert [t.state.name for t in trials] == ["COMPLETE", "FAIL", "COMPLETE", "COMPLETE"]  # 3 trials completed
    assert trials[2].params == trials[1].params == {"lr": 0.01}  # the killed trial's configuration, first
    after = stored(out)
    assert all(r["status"] == "finished" for r in after) and after[0] == before[0]  # not lost, not redone
    (resumed,) = [r for r in after if r["trial"] == 2]
    assert resumed["label"] == "head lr=0.01" and resumed["resumed_from"]["step"] == 6  # not trained again
    finished = [r["run_id"] for r in history(out) if r["status"] == "finished"]
    assert sorted(finished) == sorted({r["run_id"] for r in after})  # each finished run stored once
    assert len(after) == len({r["run_id"] for r in after}) >= 2
    assert list((out / RESUME_DIR).glob("*")) == []  # stored: its resume state removed
    assert integrity_ok(out)
