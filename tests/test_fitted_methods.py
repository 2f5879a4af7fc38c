"""Fitted candidates (issue 27, part 3): ``embed-logreg`` and ``setfit`` train by their own recipe, not the
engine, and are ranked like any fine-tuning method — never the floor, never tuned by rates."""

from __future__ import annotations

import json
import random
import socket

import numpy as np
import pytest

from tunebench.report.inputs import load_inputs
from tunebench.report.significance import family
from tunebench.results.diagnosis import diagnose, diagnose_record, is_baseline
from tunebench.results.store import STORE_NAME, Store
from tunebench.spec.rates import head_rate
from tunebench.spec.strategy import OPTIONS, parse_strategy
from tunebench.spec.study import BASELINES, StudySpec
from tunebench.study.driver import run_study
from tunebench.study.tuning import tunable

from .conftest import cli, easy_reviews


@pytest.fixture(scope="module")
def reviews(tmp_path_factory):
    path = tmp_path_factory.mktemp("fitted") / "reviews.csv"
    easy_reviews(160).to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def nli(tmp_path_factory):
    """A pair task: the hypothesis repeats the premise's word (entailment) or says another one."""
    rng = random.Random(0)
    words = ["red", "blue", "green", "black", "white", "grey"]
    rows = []
    for i in range(80):
        word = rng.choice(words)
        same = i % 2 == 0
        other = word if same else rng.choice([w for w in words if w != word])
        rows.append({"sentence1": f"the car is {word}", "sentence2": f"a {other} car", "label": ["yes", "no"][i % 2]})
    path = tmp_path_factory.mktemp("fitted-nli") / "nli.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    return path


def spec_for(model, csv, out, strategies, **fields) -> StudySpec:
    training = {"epochs": 1, "batch_size": 16, **fields.pop("training", {})}
    return StudySpec(name="f", data={"source": str(csv), **fields.pop("data", {})},
                     model={"name": str(model), "max_length": 32}, strategies=list(strategies), training=training,
                     output={"dir": str(out)}, baselines=fields.pop("baselines", []), **fields)


@pytest.fixture()
def no_network(monkeypatch):
    """Any connection attempt fails the test: a fitted method must never reach the hub."""
    def refuse(*args, **kwargs):
        raise AssertionError(f"network access attempted: {args[1:] or kwargs}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def test_the_two_kinds_are_fitted_candidates_not_baselines():
    for kind in ("embed-logreg", "setfit"):
        options = OPTIONS[kind]
        assert options.fitted and not options.baseline and kind not in BASELINES
        assert head_rate(parse_strategy(kind), 2e-5) is None  # no engine: no head rate
    assert all(OPTIONS[b].fitted for b in BASELINES)  # every baseline is fitted too
    spec = StudySpec(strategies=["head", "embed-logreg", "setfit", "majority"])
    assert [s.kind for s in tunable(spec)] == ["head"]
    assert parse_strategy("setfit:iterations=5,lr=3e-5").label == "setfit:iterations=5,lr=3e-05"
    assert parse_strategy("embed-logreg:C=0.5").C == 0.5


def test_tunebench_methods_lists_both(capsys):
    code, out, _ = cli(capsys, "methods")
    rows = {line.split("\t")[0]: line.split("\t") for line in out.splitlines()}
    assert code == 0 and "embed-logreg" in rows and "setfit" in rows
    assert rows["embed-logreg"][2] == "-" and rows["setfit"][2] == "2e-05"
    assert "iterations=20" in rows["setfit"][1] and "C=1" in rows["embed-logreg"][1]


def test_embed_logreg_on_a_tiny_random_encoder_is_a_ranked_record(tiny_bert, reviews, tmp_path, no_network):
    out = tmp_path / "out"
    [record] = run_study(spec_for(tiny_bert, reviews, out, ["embed-logreg"]))
    assert record["status"] == "finished" and record.get("fitted") is True and not is_baseline(record)
    assert record["curves"] == [] and record["best_epoch"] is None and record["checkpoint"] is None
    assert record["resolved"]["lr"] is None and record["resolved"]["epochs"] is None
    assert record["resolved"]["head_lr"] is None and record["resolved"]["seed"] == 0
    hidden = 32  # the tiny encoder's width: one binary logistic regression on it
    assert record["params"]["trainable"] == hidden + 1
    assert record["params"]["total"] > 100_000 > record["params"]["trainable"]
    assert record["val"]["macro_f1"] is not None and record["test"]["macro_f1"] is not None
    res = record["resources"]
    assert res["train_time_s"] > 0 and res["train_examples_per_s"] > 0 and res["optimizer_steps"] == 0
    assert record["save_bytes"] > 0 and record["serving"]["deploy_bytes"] > record["save_bytes"]
    assert record["serving"]["latency_ms_p50"] > 0
    d = record["diagnosis"]
    assert "still improving" not in d["flags"] and "overfitting" not in d["flags"]
    assert any("not applicable" in u for u in d["undecided"])
    with Store(out / STORE_NAME) as store:
        labels, probs = store.predictions(record["run_id"])
    assert len(labels) == len(probs) == record["data"]["sizes"]["test"]


def test_setfit_wraps_a_plain_transformers_encoder_and_joins_a_pair(tiny_bert, nli, tmp_path, no_network):
    """The tiny encoder is no sentence-transformers folder: mean pooling over it is built, offline."""
    [record] = run_study(spec_for(tiny_bert, nli, tmp_path / "out", ["setfit:iterations=2"]))
    assert record["status"] == "finished", record.get("failure")
    assert record["data"]["is_pair"] and record.get("fitted") is True
    assert record["resolved"]["lr"] == 2e-5 and record["resolved"]["epochs"] == 1  # setfit's defaults
    assert record["params"]["trainable"] == record["params"]["total"]  # body and head both trained
    assert record["save_bytes"] > 4 * record["params"]["trainable"] - 1
    assert record["curves"] == [] and record["test"]["accuracy"] is not None


def test_embed_logreg_embeds_each_side_of_a_pair(tiny_bert, nli, tmp_path):
    [record] = run_study(spec_for(tiny_bert, nli, tmp_path / "out", ["embed-logreg"]))
    assert record["params"]["trainable"] == 3 * 32 + 1  # [u, v, |u - v|] of the 32-wide tiny encoder


def test_a_fitted_run_that_predicts_one_class_on_validation_is_collapsed():
    d = diagnose([], pred_counts=[40, 0], label_counts=[20, 20], majority_macro_f1=0.33, val_macro_f1=0.33,
                 fitted=True, label="embed-logreg")
    assert d["flags"] == ["collapsed"] and "own recipe" in d["advice"] and "--tune" not in d["advice"]
    fine = diagnose([], pred_counts=[19, 21], label_counts=[20, 20], majority_macro_f1=0.33, val_macro_f1=0.9,
                    fitted=True)
    assert fine["flags"] == [] and fine["diagnosis"] == "ok"
    record = {"status": "finished", "fitted": True, "strategy": "setfit", "spec": {"kind": "setfit"},
              "val": {"macro_f1": 0.33, "confusion_matrix": [[20, 0], [20, 0]]}, "curves": []}
    assert diagnose_record(record, majority_macro_f1=0.33)["flags"] == ["collapsed"]


def test_tuning_leaves_a_fitted_candidate_at_its_defaults_and_says_so(tiny_bert, reviews, tmp_path):
    messages: list[str] = []

    class Reporter:
        def message(self, text):
            messages.append(text)

        def __getattr__(self, name):
            return lambda *args, **kwargs: None

    out = tmp_path / "out"
    spec = spec_for(tiny_bert, reviews, out, ["head", "embed-logreg"], training={"epochs": 2},
                    tuning={"lr": [1e-3, 3e-3], "seeds": 1, "min_epochs": 1, "extend": 0})
    records = run_study(spec, reporter=Reporter())
    with Store(out / STORE_NAME) as store:
        trials = store.records("f:tuning")
    assert trials and {t["tuning"]["strategy"] for t in trials} == {"head"}
    fitted = next(r for r in records if r["strategy"] == "embed-logreg")
    assert fitted["resolved"]["lr"] is None and fitted["spec"]["C"] == 1.0
    assert any("embed-logreg: not tuned: fitted by its own recipe" in m for m in messages)
    from tunebench.report.sections_tuning import _not_tuned

    [para] = _not_tuned(records)
    assert "Not tuned: embed-logreg" in para.text


@pytest.mark.slow
def test_real_minilm_embed_logreg_is_compared_with_head_as_a_candidate(reviews, tmp_path, no_network):
    out = tmp_path / "out"
    spec = spec_for("minilm-l6", reviews, out, ["head", "embed-logreg"], baselines=["majority"],
                    data={"train_limit": 64}, sweep={"seeds": [0, 1]})
    records = run_study(spec)
    fitted = [r for r in records if r["strategy"] == "embed-logreg"]
    assert len(fitted) == 2 and {r["resolved"]["seed"] for r in fitted} == {0, 1}
    assert fitted[0]["test"]["macro_f1"] == fitted[1]["test"]["macro_f1"]  # deterministic: same predictions
    assert fitted[0]["test"]["macro_f1"] >= 0.8  # MiniLM's sentence embeddings see the sentiment word
    inputs = load_inputs(out)
    fam = family(inputs.runs, inputs.predictions)
    assert fam.floor == "majority"  # the floor is the baseline, never a candidate
    compared = {c.group for c in fam.comparisons} | {fam.reference}
    assert compared == {"head", "embed-logreg"}
    assert {c.group for c in fam.floors} == {"head", "embed-logreg"}  # both tested against the floor
    assert all(c.test is not None for c in fam.floors)


@pytest.mark.slow
def test_real_minilm_setfit_learns_the_task_offline(reviews, tmp_path, no_network):
    spec = spec_for("minilm-l6", reviews, tmp_path / "out", ["setfit:iterations=2"], data={"train_limit": 48})
    [record] = run_study(spec)
    assert record["status"] == "finished", record.get("failure")
    assert record["test"]["macro_f1"] >= 0.8
    assert 22_000_000 < record["params"]["trainable"] < 23_000_000  # MiniLM-L6 and the head
    assert record["spec"]["iterations"] == 2 and record["data"]["sizes"]["train"] == 48  # what it was asked to fit
    assert np.isfinite(record["serving"]["throughput_per_s"])
