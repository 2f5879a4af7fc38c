"""The fair verdict, end to end on a tiny model: equal-budget tuning that never sees the test split,
early stopping, the head at its own rate, baselines as reference rows, diagnoses from real runs."""

from __future__ import annotations

import pytest

from tunebench.errors import SpecError
from tunebench.results.store import STORE_NAME, Store
from tunebench.spec.study import StudySpec
from tunebench.study import driver
from tunebench.training import engine

from .conftest import cli, easy_reviews, one_error


@pytest.fixture(scope="module")
def reviews400(tmp_path_factory):
    path = tmp_path_factory.mktemp("verdict") / "reviews.csv"
    easy_reviews(400).to_csv(path, index=False)
    return path


def spec_for(model, csv, out, strategies=("full",), baselines=(), **fields) -> StudySpec:
    training = {"epochs": 2, "batch_size": 8, **fields.pop("training", {})}
    return StudySpec(name="v", data={"source": str(csv)}, model={"name": str(model), "max_length": 32},
                     strategies=list(strategies), training=training, output={"dir": str(out)},
                     baselines=list(baselines), **fields)


class EngineSpy:
    """Wraps the engine: what each run was given, and which splits it predicted on."""

    def __init__(self, monkeypatch):
        self.calls: list[dict] = []
        self._predicted: list[int] = []
        real_train, real_predict = engine.train_and_evaluate, engine.predict

        def predict(model, split, *args, **kwargs):
            self._predicted.append(id(split))
            return real_predict(model, split, *args, **kwargs)

        def train_and_evaluate(model, train, validation, test, label_names, cfg, *args, **kwargs):
            self._predicted.clear()
            result = real_train(model, train, validation, test, label_names, cfg, *args, **kwargs)
            self.calls.append({"cfg": cfg, "test_predicted": id(test) in self._predicted,
                               "validation_predicted": id(validation) in self._predicted})
            return result

        monkeypatch.setattr(engine, "predict", predict)
        monkeypatch.setattr(engine, "train_and_evaluate", train_and_evaluate)


def chosen(trials: list[dict], default: float, margin: float = 0.01) -> float:
    """The rate the tuning rule picks: of the trials within ``margin`` of the best, the nearest ``default``."""
    import math

    top = max(r["val"]["macro_f1"] for r in trials)
    close = [r for r in trials if top - r["val"]["macro_f1"] <= margin]
    return min(close, key=lambda r: (abs(math.log10(r["tuning"]["lr"] / default)), r["tuning"]["trial"]))["tuning"]["lr"]


def test_tuning_gives_every_strategy_the_same_trials_which_never_see_the_test_split(
        tiny_bert, reviews400, tmp_path, monkeypatch):
    spy = EngineSpy(monkeypatch)
    spec = spec_for(tiny_bert, reviews400, tmp_path / "out", strategies=["full", "head"],
                    tuning={"lr": [3e-4, 1e-3, 3e-3], "halving": False, "tune_head": False, "seeds": 1,
                            "extend": 0})
    records = driver.run_study(spec)

    trials = [c for c in spy.calls if not c["cfg"].evaluate_test]
    finals = [c for c in spy.calls if c["cfg"].evaluate_test]
    assert len(trials) == 6 and len(finals) == 2
    assert not any(c["test_predicted"] for c in trials) and all(c["validation_predicted"] for c in trials)
    assert all(c["test_predicted"] for c in finals)
    with Store(tmp_path / "out" / STORE_NAME) as store:
        stored = store.records("v:tuning")
    per_strategy = {}
    for r in stored:
        assert r["test"] is None and r["checkpoint"] is None and r["tuning"]["epochs_run"] == 2
        per_strategy.setdefault(r["tuning"]["strategy"], []).append(r["tuning"]["lr"])
    assert per_strategy == {"full": [3e-4, 1e-3, 3e-3], "head": [3e-4, 1e-3, 3e-3]}
    # each final run is its strategy's best trial rate, and only the final runs have test metrics
    for final in records:
        kind = final["spec"]["kind"]
        mine = [r for r in stored if r["tuning"]["strategy"] == kind]
        assert final["resolved"]["lr"] == chosen(mine, default=5e-5 if kind == "full" else 1e-3)
        assert final["test"]["macro_f1"] is not None
        assert final["diagnosis"]["evidence"]["tuned"] is True  # its advice never says "rerun with --tune"
    assert not any(r["diagnosis"]["evidence"].get("tuned") for r in stored)

    spy.calls.clear()  # the same command again: every trial and run is reused, nothing trains
    again = driver.run_study(spec)
    assert spy.calls == [] and [r["label"] for r in again] == [r["label"] for r in records]

    import tunebench as tb  # the folder's study is the tuned one, not its trials or its baselines
    loaded = tb.load(tmp_path / "out")
    assert loaded.study == "v" and loaded.best.record["resolved"]["lr"] in (3e-4, 1e-3, 3e-3)


def test_early_stopping_stops_at_the_patience_and_says_why(tiny_bert, reviews400, tmp_path):
    spec = spec_for(tiny_bert, reviews400, tmp_path / "out",
                    training={"epochs": 6, "lr": 3e-3, "early_stopping": {"patience": 1}})
    record, = driver.run_study(spec)
    f1 = [c["val_macro_f1"] for c in record["curves"]]
    assert f1[0] == 1.0  # the best epoch is the first; one epoch without a gain ends the run
    assert record["stopping"] == {"epochs_run": 2, "max_epochs": 6, "reason": "early stopping"}
    assert record["best_epoch"] == 1 and len(record["seeds"]["data_order"]) == 2


def test_a_run_without_early_stopping_trains_every_epoch(tiny_bert, reviews400, tmp_path):
    record, = driver.run_study(spec_for(tiny_bert, reviews400, tmp_path / "out", training={"lr": 3e-3}))
    assert record["stopping"] == {"epochs_run": 2, "max_epochs": 2, "reason": "max epochs"}


def test_diagnoses_of_real_runs_under_trained_and_absurd_rate(tiny_bert, reviews400, tmp_path):
    under, absurd = driver.run_study(spec_for(
        tiny_bert, reviews400, tmp_path / "out", strategies=["full:lr=0.0015", "full:lr=5"]))
    assert under["diagnosis"]["diagnosis"] == "still improving", under["curves"]
    assert "best epoch" in under["diagnosis"]["advice"]
    assert absurd["diagnosis"]["diagnosis"] == "collapsed", absurd["curves"]


def test_baselines_are_reference_rows_with_the_expected_values(tiny_bert, reviews400, tmp_path):
    records = driver.run_study(spec_for(tiny_bert, reviews400, tmp_path / "out", training={"lr": 3e-3},
                                        baselines=["majority", "tfidf-logreg"]))
    assert [r["strategy"] for r in records] == ["full"]  # the study's own rows
    with Store(tmp_path / "out" / STORE_NAME) as store:
        majority, tfidf = store.records("v:baselines")
    assert majority["strategy"] == "majority" and majority["baseline"] is True
    test_labels = majority["test"]["per_class"]
    supports = [row["support"] for name, row in test_labels.items() if name in ("neg", "pos")]
    assert majority["test"]["accuracy"] == pytest.approx(max(supports) / sum(supports))
    assert majority["test"]["macro_f1"] == pytest.approx(majority["test"]["accuracy"] / (1 + majority["test"]["accuracy"]))
    assert tfidf["strategy"] == "tfidf-logreg" and tfidf["test"]["accuracy"] == 1.0  # the word decides the label
    assert tfidf["params"]["trainable"] > 0 and tfidf["save_bytes"] > 0 and tfidf["curves"] == []


def test_the_head_trains_at_its_own_rate(tiny_bert):
    from tunebench.methods import build_strategy
    from tunebench.spec.strategy import parse_strategy
    from tunebench.training.modeling import load_classifier
    from tunebench.training.optim import build_optimizer

    for label, head_params in (("full", {"classifier.weight", "classifier.bias", "bert.pooler.dense.weight",
                                         "bert.pooler.dense.bias"}), ("lora:r=4", None)):
        method = build_strategy(parse_strategy(label))
        model = method.prepare(load_classifier(str(tiny_bert), ["neg", "pos"]))
        hooks = method.hooks(model)
        if head_params is not None:
            assert set(hooks.head_names) == head_params
        optimizer = build_optimizer(model, 1e-5, 0.01, 1e-3, hooks)
        names = {id(p): n for n, p in model.named_parameters()}
        by_lr: dict[float, set[str]] = {}
        for group in optimizer.param_groups:
            by_lr.setdefault(group["lr"], set()).update(names[id(p)] for p in group["params"])
        assert set(by_lr) == {1e-5, 1e-3}
        assert by_lr[1e-3] == set(hooks.head_names) and by_lr[1e-3]
        assert all("classifier" in n or "pooler" in n for n in by_lr[1e-3])
        without = build_optimizer(model, 1e-5, 0.01, None, hooks)
        assert {g["lr"] for g in without.param_groups} == {1e-5}


def test_run_ids_of_earlier_runs_are_unchanged_and_head_lr_is_a_new_computation(tiny_bert, reviews400, tmp_path):
    from tunebench.spec.parts import stable_hash
    from tunebench.study.plan import HASHED_ELSEWHERE, identity_settings, run_config

    spec = spec_for(tiny_bert, reviews400, tmp_path / "out")
    lr = run_config(spec, spec.strategies[0], "fp32").lr
    # a run of before heads had a rate of their own trained its head at lr: said so, it keeps its id
    same = spec_for(tiny_bert, reviews400, tmp_path, training={"head_lr": lr})
    cfg = run_config(same, same.strategies[0], "fp32")
    before = {k: v for k, v in vars(cfg).items()  # the fields ids were made of
              if k not in engine.LATER_FIELDS and k not in HASHED_ELSEWHERE}
    assert cfg.head_lr is None and stable_hash(identity_settings(cfg)) == stable_hash(before)
    head = run_config(spec_for(tiny_bert, reviews400, tmp_path, training={"head_lr": 1e-3}), spec.strategies[0], "fp32")
    assert head.head_lr == 1e-3 and stable_hash(identity_settings(head)) != stable_hash(before)


def test_the_default_head_rate_is_the_measured_one_never_below_the_body_and_not_for_head_only():
    from tunebench.spec.rates import DEFAULT_HEAD_LR, head_rate
    from tunebench.spec.strategy import parse_strategy

    assert DEFAULT_HEAD_LR == 3e-3
    assert head_rate(parse_strategy("full"), 5e-5) == 3e-3
    assert head_rate(parse_strategy("lora:r=8"), 5e-3) is None  # a body above it: one rate, the body's
    assert head_rate(parse_strategy("full"), 5e-5, given=1e-3) == 1e-3  # training.head_lr
    assert head_rate(parse_strategy("full:head_lr=0.01"), 5e-5, given=1e-3) == 1e-2  # the strategy's own first
    assert head_rate(parse_strategy("vera"), 2e-2) == 1e-2  # VeRA's own, from peft's notebook
    assert head_rate(parse_strategy("head"), 1e-4) is None  # head-only: its lr is the head's, tuned as such
    assert head_rate(parse_strategy("majority"), 0.0) is None


def test_tuning_and_a_sweep_together_are_one_sentence(tiny_bert, reviews400, tmp_path):
    with pytest.raises(SpecError, match="cannot be combined with a sweep"):
        from tunebench.spec.study import spec_from_dict
        spec_from_dict({"strategies": ["full"], "tuning": {}, "sweep": {"grid": {"lr": [1e-4, 1e-3]}}})


def test_cli_tune_runs_and_bad_tuning_lists_are_one_sentence(tiny_bert, reviews400, tmp_path, capsys):
    code, out, err = cli(capsys, "run", "--quick", "--model", str(tiny_bert), "--dataset", str(reviews400), "-s", "head",
                         "--epochs", "1", "--tune", "--patience", "1", "-o", str(tmp_path / "out"))
    assert code == 0, err
    assert (out + err).count("head lr=") >= 12  # six candidates x two seeds, one line each at least
    with Store(tmp_path / "out" / STORE_NAME) as store:
        trials = [r for r in store.records() if r["study"].endswith(":tuning")]
    rates = {r["tuning"]["lr"] for r in trials}
    assert 6 <= len(rates) <= 8 and len(trials) == 2 * len(rates)  # the grid, its edge, each on two seeds
    study = tmp_path / "study.yaml"
    study.write_text(f"data: {{source: {reviews400}}}\nmodel: {{name: {tiny_bert}}}\ntuning: {{lr: [0.001]}}\n")
    code, _, err = cli(capsys, "run", str(study))
    assert code == 2 and "tuning.lr must list at least two positive learning rates" in one_error(err)


def test_tfidf_logreg_weighs_rare_classes_by_default_for_a_macro_f1_floor():
    from tunebench.data.bundle import DatasetBundle, Split
    from tunebench.methods import build_strategy
    from tunebench.spec.strategy import parse_strategy

    # 95 common documents, 5 rare ones whose word also appears in common documents: an unweighted
    # fit is pulled to the common class; weighting the rare class 19x lets it be predicted
    texts = [f"market report {'shares' if i % 3 else 'rare'} day {i}" for i in range(95)]
    texts += [f"rare merger notice {i}" for i in range(5)]
    labels = [0] * 95 + [1] * 5
    test = Split([f"rare merger item {i}" for i in range(10)], None, [1] * 10)
    bundle = DatasetBundle("imbalanced", ["common", "rare"], Split(texts, None, labels), test, test, [], "test")
    balanced = build_strategy(parse_strategy("tfidf-logreg")).fit_predict(bundle)["test"].argmax(1)
    plain = build_strategy(parse_strategy("tfidf-logreg:class_weight=none")).fit_predict(bundle)["test"].argmax(1)
    assert list(balanced) == [1] * 10 and list(plain) == [0] * 10


def test_run_ids_do_not_move_when_a_kind_gains_an_option():
    """Ids of runs stored by this code's predecessors (computed there, frozen here): a new option of one
    kind (tfidf-logreg's class_weight) must not make every stored run train again."""
    from types import SimpleNamespace

    import torch

    from tunebench.study.plan import ID_OPTION_KEYS, identity_options, run_config, run_id_for

    spec = StudySpec(name="ids", data={"source": "rotten-tomatoes", "train_limit": 100},
                     model={"name": "minilm-l6", "max_length": 64},
                     strategies=["full", "lora:r=8", "partial:k=2", "majority", "vera"], training={"epochs": 2})
    bundle = SimpleNamespace(hashes=lambda: {"train": "t", "validation": "v", "test": "x"})
    ids = {s.label: run_id_for(spec, s, bundle, run_config(spec, s, "fp32"), torch.device("cpu"))
           for s in spec.strategies}
    assert ids == {"full": "566f4a82a07d", "lora:r=8": "e6752fad5fac", "partial:k=2": "64279aba147f",
                   "majority": "360b478cf9ce", "vera": "71336701a4fd"}  # as commit 80f06d4 computed them
    later = set(spec.strategies[0].model_dump()) - ID_OPTION_KEYS
    assert "class_weight" in later and not later & set(identity_options(spec.strategies[0]))


def test_a_stored_trial_is_found_behind_a_newer_attempt_of_another_computation(tmp_path):
    from types import SimpleNamespace

    from tunebench.study.run import stored_result

    def attempt(run_id, when, status="finished"):
        return {"run_id": run_id, "study": "v:tuning", "label": "full lr=5e-05", "position": 0, "strategy": "full",
                "status": status, "finished_at": when}

    def planned(run_id):
        return SimpleNamespace(label="full lr=5e-05", run_id=run_id, position=0, group="full", params={})

    with Store(tmp_path / STORE_NAME) as store:
        store.put(attempt("ours", "2026-12-02T14:50:00+00:00"))
        store.put(attempt("pruned", "2026-12-02T15:00:00+00:00", "pruned"))
        store.put(attempt("other-code", "2026-12-02T16:20:00+00:00"))  # newer, same label, not this computation
        spec = SimpleNamespace(name="v:tuning", to_dict=dict)
        found = stored_result(store, spec, planned("ours"), force=False)  # copied back into its row
        assert found["run_id"] == "ours" and found["reused_from"]["finished_at"] == "2026-12-02T14:50:00+00:00"
        assert store.current("v:tuning", "full lr=5e-05")["run_id"] == "ours"
        assert stored_result(store, spec, planned("ours"), force=True) is None
        assert stored_result(store, spec, planned("new"), force=False) is None
        # a pruned attempt is a result only for a caller that prunes (and replays it to its pruner)
        assert stored_result(store, spec, planned("pruned"), force=False) is None
        assert stored_result(store, spec, planned("pruned"), force=False, pruned=True)["status"] == "pruned"


def test_a_tuning_trial_stored_before_a_crash_is_not_trained_again(tiny_bert, reviews400, tmp_path, monkeypatch):
    spy = EngineSpy(monkeypatch)
    counted = engine.train_and_evaluate

    def crash_at_the_second_trial(*args, **kwargs):
        if len(spy.calls) == 1:  # the study stops (an error about the environment, as a full disk would)
            raise SpecError("the disk went away")
        return counted(*args, **kwargs)

    spec = spec_for(tiny_bert, reviews400, tmp_path / "out", tuning={"lr": [3e-4, 1e-3, 3e-3], "halving": False,
                                                                      "tune_head": False, "seeds": 1, "extend": 0})
    monkeypatch.setattr(engine, "train_and_evaluate", crash_at_the_second_trial)
    with pytest.raises(SpecError, match="the disk went away"):
        driver.run_study(spec)
    assert [c["cfg"].lr for c in spy.calls] == [3e-4]  # the first trial finished and was stored
    monkeypatch.setattr(engine, "train_and_evaluate", counted)
    spy.calls.clear()
    final, = driver.run_study(spec)
    trained = [c["cfg"].lr for c in spy.calls if not c["cfg"].evaluate_test]
    assert trained == [1e-3, 3e-3]  # the stored trial is reused, the other two train
    with Store(tmp_path / "out" / STORE_NAME) as store:
        trials = store.records("v:tuning")
    assert [(r["tuning"]["lr"], r["status"], r["position"]) for r in trials] == [
        (3e-4, "finished", 0), (1e-3, "finished", 1), (3e-3, "finished", 2)]
    assert final["resolved"]["lr"] == chosen(trials, default=5e-5)
