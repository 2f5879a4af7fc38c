"""Equal-budget tuning as a search: synchronous successive halving over rungs of epochs, the head's rate
tuned with the body's, the edge of the grid extended, choices on the mean over seeds and never on noise.

The search is checked on a synthetic task whose best rates are known: the tiny model trains for real
(the runs, their store rows and their epochs are real), and its validation score is then replaced by a
known function of (lr, head lr, epoch) -- a task where lr 1e-2 is clearly best from epoch 2 on but the
worst after epoch 1."""

from __future__ import annotations

import math
import signal

import pytest

from tunebench.results.store import STORE_NAME, Store
from tunebench.spec.study import StudySpec
from tunebench.study import driver, tuning
from tunebench.study.tuning import Candidate, choose
from tunebench.training import engine

from .conftest import cli, easy_reviews
from .faults.common import integrity_ok, start_driver, stored


def known_score(lr: float, head_lr: float | None, epoch: int) -> float:
    """Best at lr 1e-2 (falling 0.1 a decade either side) and head lr 3e-3 (+0.02) from epoch 2 on;
    after one epoch the order of the rates is reversed (a slow starter)."""
    if epoch < 2:
        return 0.6 - 0.1 * math.log10(lr / 1e-4)
    return 0.8 - 0.1 * abs(math.log10(lr / 1e-2)) + (0.02 if head_lr == 3e-3 else 0.0)


@pytest.fixture()
def synthetic(monkeypatch):
    """The engine trains for real; its validation scores become :func:`known_score`.  Returns the
    configurations trained, in order."""
    real, trained = engine.train_and_evaluate, []

    def train_and_evaluate(model, train, validation, test, label_names, cfg, *args, **kwargs):
        result = real(model, train, validation, test, label_names, cfg, *args, **kwargs)
        trained.append(cfg)
        for point in result.curves:
            point["val_macro_f1"] = known_score(cfg.lr, cfg.head_lr, point["epoch"])
        best = max(result.curves, key=lambda p: p["val_macro_f1"])
        result.best_epoch, result.val_metrics = best["epoch"], {**result.val_metrics,
                                                                  "macro_f1": best["val_macro_f1"]}
        return result

    monkeypatch.setattr(engine, "train_and_evaluate", train_and_evaluate)
    return trained


@pytest.fixture(scope="module")
def reviews200(tmp_path_factory):
    path = tmp_path_factory.mktemp("tuning") / "reviews.csv"
    easy_reviews(200).to_csv(path, index=False)
    return path


def spec_for(model, csv, out, strategies=("full",), training=None, **tuning) -> StudySpec:
    return StudySpec(name="t", data={"source": str(csv)}, model={"name": str(model), "max_length": 32},
                     strategies=list(strategies), baselines=[], output={"dir": str(out)},
                     training={"epochs": 3, "batch_size": 16, **(training or {})}, tuning=tuning)


def trials(out, study="t:tuning") -> list[dict]:
    with Store(out / STORE_NAME) as store:
        return store.records(study)


def test_the_search_finds_the_known_best_rates_in_rungs_of_equal_epochs(synthetic, tiny_bert, reviews200,
                                                                         tmp_path):
    # the best body rate is the last of the grid and the farthest from full fine-tuning's default (5e-5)
    spec = spec_for(tiny_bert, reviews200, tmp_path / "out", lr=[1e-4, 1e-3, 1e-2], head_lr=[1e-3, 3e-3])
    final, = driver.run_study(spec)
    assert (final["resolved"]["lr"], final["resolved"]["head_lr"]) == (1e-2, 3e-3)
    assert final["label"] == "full:lr=0.01,head_lr=0.003"  # the chosen pair is in the label

    rows = trials(tmp_path / "out")
    by_rung = {}
    for r in rows:
        t = r["tuning"]
        by_rung.setdefault(t["rung"], []).append(r)
        assert t["epochs_run"] == t["epochs"] == t["rungs"][t["rung"]] == len(r["curves"])  # a rung's epochs, all
        assert r["test"] is None
    assert rows[0]["tuning"]["rungs"] == [2, 3]
    first = {(r["tuning"]["lr"], r["tuning"]["head_lr"]) for r in by_rung[0]}
    # 3 x 2 candidates, then the edge of the grid: lr 1e-2 is the top end (1e-1 tried), then head 3e-3 (9e-3)
    assert first == {(lr, h) for lr in (1e-4, 1e-3, 1e-2) for h in (1e-3, 3e-3)} | {(0.1, 3e-3), (1e-2, 9e-3)}
    assert len(by_rung[0]) == 8 * 2 and {r["tuning"]["seed"] for r in by_rung[0]} == {0, 1}  # two seeds each
    # the best ceil(6 / 3) = 2 candidates of the first rung, the same count for every strategy, train 3 epochs
    # (1e-2, 1e-3) and (1e-2, 9e-3) tie at 0.80, as far from the default head rate: the earlier candidate goes on
    assert {(r["tuning"]["lr"], r["tuning"]["head_lr"]) for r in by_rung[1]} == {(1e-2, 3e-3), (1e-2, 1e-3)}
    assert len(by_rung[1]) == 4
    assert {c.epochs for c in synthetic if not c.evaluate_test} == {2, 3}  # each trial's schedule is its rung's


def test_every_strategy_gets_the_same_number_of_candidates_and_head_only_a_wider_grid(
        synthetic, tiny_bert, reviews200, tmp_path):
    spec = spec_for(tiny_bert, reviews200, tmp_path / "out", strategies=["full", "head"], seeds=1,
                    halving=False, extend=0, training={"selection_metric": "accuracy"})
    full, head = (tuning.candidates(spec, s) for s in spec.strategies)
    assert len(full) == len(head) == 6
    assert sorted({c.rates[0] for c in full}) == [1.58e-5, 5e-5, 0.000158]  # 5e-5 times 10^-0.5, 1, 10^0.5
    assert sorted({c.rates[1] for c in full}) == [0.000949, 0.003]  # the head's default 3e-3 and 10^-0.5 below
    # head-only has one rate: 1e-3's grid widened by its own half-decade step, up, down, up
    assert [c.rates for c in head] == [(v, None) for v in (0.0001, 0.000316, 0.001, 0.00316, 0.01, 0.0316)]
    driver.run_study(spec)
    counts = {}
    for r in trials(tmp_path / "out"):
        counts[r["tuning"]["strategy"]] = counts.get(r["tuning"]["strategy"], 0) + 1
        assert r["tuning"]["epochs_run"] == 3  # no halving: every candidate trains every epoch
        # scored on the study's selection metric, not on a literal macro-F1
        assert r["tuning"]["metric"] == "accuracy" and r["tuning"]["value"] == r["val"]["accuracy"]
    assert counts == {"full": 6, "head": 6}


def test_a_slow_starter_is_not_cut_by_a_one_epoch_rung_by_default(synthetic, tiny_bert, reviews200, tmp_path):
    # after one epoch lr 1e-2 is the worst of the three; the first rung is at two epochs, where it leads
    spec = spec_for(tiny_bert, reviews200, tmp_path / "out", lr=[1e-4, 1e-3, 1e-2], tune_head=False, seeds=1,
                    extend=0, reduction_factor=3)
    final, = driver.run_study(spec)
    assert final["resolved"]["lr"] == 1e-2
    # one candidate goes on to the last rung: it decides nothing and is not trained (it would repeat the final
    # run: the same rates, epochs and seed), so the three 2-epoch trials are all the tuning trained
    rows = trials(tmp_path / "out")
    assert [r["tuning"]["epochs"] for r in rows] == [2, 2, 2] and rows[0]["tuning"]["rungs"] == [2, 3]
    assert len(final["curves"]) == 3 and tuning.most_trials(spec) == 3
    cut = spec_for(tiny_bert, reviews200, tmp_path / "cut", lr=[1e-4, 1e-3, 1e-2], tune_head=False, seeds=1,
                   extend=0, min_epochs=1)  # what a first rung at epoch 1 does on this task
    early, = driver.run_study(cut)
    assert early["resolved"]["lr"] == 1e-4
    assert trials(tmp_path / "cut")[0]["tuning"]["rungs"] == [1, 3]


def test_choices_within_the_margin_go_to_the_default_and_say_so():
    near = {Candidate(1e-4, None, 0): 0.801, Candidate(5e-5, None, 1): 0.797, Candidate(1e-5, None, 2): 0.70}
    distance = {0: 0.3, 1: 0.0, 2: 0.7}
    pick, why = choose(near, lambda c: distance[c.number], margin=0.01)
    assert pick.lr == 5e-5 and "within the margin (0.01) of the best (0.8010 at lr 0.0001)" in why
    pick, why = choose(near, lambda c: distance[c.number], margin=0.001)
    assert pick.lr == 1e-4 and why == "the best mean validation score"
    assert choose({Candidate(1e-4, None, 0): None}, lambda c: 0, 0.01) == (None, "no trial finished")


def test_rungs_and_grids_from_the_spec():
    spec = StudySpec(strategies=["lora"], training={"epochs": 10}, tuning={})
    assert tuning.rungs(spec) == [2, 6, 10] and tuning.seeds(spec) == [0, 1]
    assert tuning.rungs(spec.model_copy(update={"tuning": spec.tuning.model_copy(update={"halving": False})})) == [10]
    ranged = StudySpec(strategies=["lora"], tuning={"lr": {"low": 1e-5, "high": 1e-3, "log": True}, "trials": 3})
    assert tuning.body_rates(ranged, ranged.strategies[0]) == pytest.approx([1e-5, 1e-4, 1e-3])
    # 2 seeds x (the grid, its edge, then 2); the last rung's one candidate is not trained (its final runs are)
    assert tuning.most_trials(spec) == 2 * (6 + 2 + 2)
    assert tuning.widen([1e-4, 1e-3], 5) == pytest.approx([1e-5, 1e-4, 1e-3, 1e-2, 1e-1])


def test_a_tuning_trial_killed_by_sigkill_resumes_and_nothing_trains_twice(capsys, tiny_bert, reviews200, tmp_path):
    out = tmp_path / "out"
    study = tmp_path / "study.yaml"
    study.write_text(f"name: k\ndata: {{source: {reviews200}}}\nmodel: {{name: {tiny_bert}, max_length: 32}}\n"
                     "strategies: [head]\nbaselines: []\ntraining: {epochs: 2, batch_size: 16, checkpoint_every: 2}\n"
                     "tuning: {lr: [0.001, 0.01], tune_head: false, seeds: 1, halving: false, extend: 0}\n"
                     "output: {save_checkpoints: false}\n")
    argv = ["run", str(study), "--output", str(out)]
    proc = start_driver(argv, fault="kill:1:9")  # SIGKILL in the second trial, epoch 2 (state saved at step 8)
    proc.communicate(timeout=300)
    assert proc.returncode == -signal.SIGKILL
    before = stored(out)
    assert [(r["tuning"]["lr"], r["status"]) for r in before] == [(0.001, "finished")]
    assert integrity_ok(out)

    code, _, err = cli(capsys, *argv)
    assert code == 0, err
    rows = trials(out, "k:tuning")
    assert [(r["tuning"]["lr"], r["status"]) for r in rows] == [(0.001, "finished"), (0.01, "finished")]
    assert rows[0] == before[0]  # kept, not trained again
    assert rows[1]["resumed_from"]["step"] == 8  # the killed trial went on from its saved state
    with Store(out / STORE_NAME) as store:
        finished = [r["run_id"] for r in store.history() if r["status"] == "finished"]
    assert len(finished) == len(set(finished)) == 3  # two trials and the final run, each trained once
