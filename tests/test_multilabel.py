"""Multi-label data (issue 28, part 1): label sets read and split, BCE with per-label weights, thresholds chosen
on validation, metrics against hand-computed values, the statistics on 0/1 rows, a study and its report end to
end on the tiny model, and every bad input one sentence with exit 2."""

from __future__ import annotations

import json
import random

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.metrics import f1_score

from tunebench.data.labelsets import as_label_set, multi_hot
from tunebench.data.loading import load_dataset_bundle
from tunebench.errors import DataError, ModelError
from tunebench.results import stats
from tunebench.results.decisions import choose_thresholds, decide
from tunebench.spec.parts import DataSpec
from tunebench.training.loop import Objective
from tunebench.training.metrics import evaluate_outputs, multilabel_metrics

from .conftest import NEGATIVE, POSITIVE, SUBJECTS, cli, one_error
from .test_report_figures import check_reads_cleanly

MUSIC = ["song", "tune", "melody"]


def tagged_reviews(n: int = 160, seed: int = 0) -> pd.DataFrame:
    """A multi-label task with a known answer: ``pos`` when a positive word is there (else ``neg``), and ``music``
    whenever a music word is there (a keyword label, on about a third of the rows, beside either sentiment)."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        positive = i % 2 == 0
        words = [rng.choice(SUBJECTS), "was", rng.choice(POSITIVE if positive else NEGATIVE)]
        labels = ["pos" if positive else "neg"]
        if i % 3 == 0:
            words += ["with", "a", rng.choice(MUSIC)]
            labels.append("music")
        rows.append({"text": " ".join(words), "labels": "|".join(labels)})
    return pd.DataFrame(rows)


@pytest.fixture()
def tagged_csv(tmp_path):
    path = tmp_path / "tagged.csv"
    tagged_reviews().to_csv(path, index=False)
    return path


# --- data ------------------------------------------------------------------------------------------------


def test_label_sets_are_read_from_separated_text_json_lists_and_python_lists():
    assert as_label_set("pos|music", "|") == ("pos", "music")
    assert as_label_set(' a ; b ;; a ', ";") == ("a", "b")  # stripped, empty names dropped, duplicates once
    assert as_label_set('["x", "y"]', None) == ("x", "y")
    assert as_label_set("['x', 'y']", None) == ("x", "y")
    assert as_label_set("[]", None) == ()
    assert as_label_set(("a", 3), None) == ("a", "3")


def test_a_separated_csv_becomes_sorted_label_sets_split_by_iterative_stratification(tagged_csv):
    spec = DataSpec(source=str(tagged_csv), label_column="labels", label_sep="|")
    assert spec.task == "multi_label"  # a separator of labels implies multi-label
    bundle = load_dataset_bundle(spec, seed=0)
    assert bundle.task == "multi_label" and bundle.label_names == ["music", "neg", "pos"]
    frame = tagged_reviews()
    truth = {t: tuple(sorted(bundle.label_names.index(x) for x in lab.split("|")))
             for t, lab in zip(frame.text, frame.labels, strict=True)}
    for split in (bundle.train, bundle.validation, bundle.test):
        assert all(truth[t] == lab for t, lab in zip(split.texts, split.labels, strict=True))
    whole = multi_hot([truth[t] for t in frame.text], 3).mean(axis=0)
    for name in ("train", "validation", "test"):  # each label's share kept in every split, within a row and a half
        split = getattr(bundle, name)
        assert multi_hot(split.labels, 3).mean(axis=0) == pytest.approx(whole, abs=1.5 / len(split)), name
    assert any("iterative stratification" in note for note in bundle.notes)


def test_json_lines_lists_are_multi_label_rows(tmp_path):
    path = tmp_path / "tags.jsonl"
    frame = tagged_reviews(60)
    with open(path, "w", encoding="utf-8") as fh:
        for text, labels in zip(frame.text, frame.labels, strict=True):
            fh.write(json.dumps({"text": text, "label": labels.split("|")}) + "\n")
    bundle = load_dataset_bundle(DataSpec(source=str(path), task="multi_label"), seed=0)
    assert bundle.label_names == ["music", "neg", "pos"] and len(bundle.train) + len(bundle.validation) + len(
        bundle.test) == 60
    with pytest.raises(DataError, match="lists of labels .* use --task multi_label"):
        load_dataset_bundle(DataSpec(source=str(path)), seed=0)


def test_bad_multi_label_inputs_are_one_sentence_and_exit_2(capsys, tmp_path, tagged_csv, tiny_bert):
    code, _, err = cli(capsys, "run", "--dataset", str(tagged_csv), "--label-column", "labels", "--label-sep", ";",
                       "-o", str(tmp_path / "o"))
    assert code == 2
    line = one_error(err)
    assert "no row with more than one label when split on ';'" in line and "'|'" in line and "--label-sep" in line
    single = tmp_path / "single.csv"
    pd.DataFrame({"text": [f"text {i}" for i in range(40)], "labels": ["a|a"] * 20 + ["a"] * 20}).to_csv(single)
    code, _, err = cli(capsys, "run", "--dataset", str(single), "--label-column", "labels", "--label-sep", "|",
                       "-o", str(tmp_path / "o2"))
    assert code == 2 and "no row with more than one label" in one_error(err)
    one = tmp_path / "one.csv"
    pd.DataFrame({"text": [f"text {i}" for i in range(40)], "labels": ["a|a|"] * 20 + ['["a", "a"]'] * 20}).to_csv(one)
    with pytest.raises(DataError, match="no row with more than one label"):
        load_dataset_bundle(DataSpec(source=str(one), label_column="labels", label_sep="|"), seed=0)
    duo = tmp_path / "duo.csv"  # rows with two labels, yet one label in all: not a multi-label task either
    pd.DataFrame({"text": [f"text {i}" for i in range(40)], "labels": ["a|b"] * 40}).to_csv(duo)
    assert len(load_dataset_bundle(DataSpec(source=str(duo), label_column="labels", label_sep="|"), 0).label_names) == 2
    solo = tmp_path / "solo.jsonl"
    solo.write_text("".join(json.dumps({"text": f"t{i}", "label": ["a", "a"] if i % 2 else ["a"]}) + "\n"
                            for i in range(40)), encoding="utf-8")
    with pytest.raises(DataError, match="no row with more than one label"):
        load_dataset_bundle(DataSpec(source=str(solo), task="multi_label"), 0)
    code, _, err = cli(capsys, "run", "--dataset", str(tagged_csv), "--label-column", "labels", "--label-sep", "|",
                       "--metric", "micro_f1", "-s", "setfit", "--model", str(tiny_bert), "-o", str(tmp_path / "o3"))
    assert code == 2 and "setfit does not fit multi_label data" in one_error(err)
    code, _, err = cli(capsys, "run", "--dataset", str(tagged_csv), "--metric", "micro_f1", "-o", str(tmp_path / "o4"))
    assert code == 2 and "micro_f1 is a metric of multi_label data" in one_error(err)


# --- loss, thresholds, metrics -------------------------------------------------------------------------


def test_the_multi_label_loss_is_bce_with_each_labels_positive_weight():
    logits = torch.tensor([[2.0, -1.0, 0.5], [-0.5, 1.5, 0.0], [0.3, 0.2, -2.0]])
    targets = np.array([[1, 0, 1], [0, 1, 0], [1, 1, 0]], dtype=np.float32)
    weights = (0.5, 2.0, 3.0)
    objective = Objective(weights, targets, torch.device("cpu"))
    y, w = torch.as_tensor(targets), torch.tensor(weights)
    by_hand = -(w * y * torch.log(torch.sigmoid(logits)) + (1 - y) * torch.log(1 - torch.sigmoid(logits))).mean()
    assert float(objective.loss(logits, y)) == pytest.approx(float(by_hand), rel=1e-6)
    plain = Objective(None, targets, torch.device("cpu"))
    unweighted = -(y * torch.log(torch.sigmoid(logits)) + (1 - y) * torch.log(1 - torch.sigmoid(logits))).mean()
    assert float(plain.loss(logits, y)) == pytest.approx(float(unweighted), rel=1e-6)
    assert objective.share(np.array([0]), np.arange(3)) == pytest.approx(1 / 3)  # a shard counts by its examples


def test_balanced_multi_label_weights_are_negatives_over_positives():
    from types import SimpleNamespace

    from tunebench.study.plan import Prepared

    labels = multi_hot([(0,), (0, 1), (0,), (0, 2)], 4).astype(np.float32)  # labels 0 (always), 3 (never): 1
    prepared = Prepared(bundle=SimpleNamespace(label_names=list("abcd"), task="multi_label"), model_source="m",
                        tokenizer=None,
                        train=SimpleNamespace(labels=labels), validation=None, test=None,
                        device=torch.device("cpu"), precision="fp32")
    assert prepared.class_weights("balanced") == pytest.approx((1.0, 3 / 1, 3 / 1, 1.0))
    assert prepared.class_weights("none") is None


def test_thresholds_are_chosen_per_label_on_the_split_given_and_then_applied_unchanged():
    y = np.array([[1, 0], [1, 0], [0, 1], [0, 0], [0, 1]])
    p = np.array([[0.30, 0.9], [0.25, 0.1], [0.10, 0.8], [0.05, 0.2], [0.15, 0.7]])
    # label 0: positives at 0.30 and 0.25, negatives at most 0.15 -> any threshold in (0.15, 0.25]; nearest 0.5 is 0.25
    # label 1: positives at 0.8 and 0.7, negatives at 0.9, 0.2, 0.1: any threshold in (0.2, 0.7] keeps both positives
    # and one false alarm (F1 0.8, the best); the one of 0.25 ... 0.70 nearest 0.5 is 0.5
    assert choose_thresholds(y, p) == [0.25, 0.5]
    assert choose_thresholds(np.zeros((2, 1)), np.array([[0.9], [0.1]])) == [0.5]  # no positive: nothing to choose
    val = evaluate_outputs(y, p, ["a", "b"])
    assert val["thresholds"] == [0.25, 0.5] and val["macro_f1"] == pytest.approx((1 + 0.8) / 2)
    test = evaluate_outputs(y, p, ["a", "b"], thresholds=[0.9, 0.9])  # given: applied, not chosen
    assert test["thresholds"] == [0.9, 0.9] and test["macro_f1"] == 0.0
    assert decide(p, [0.25, 0.5]).tolist() == [[1, 1], [1, 0], [0, 1], [0, 0], [0, 1]]


def test_multi_label_metrics_against_values_computed_by_hand():
    y = np.array([[1, 0, 1], [0, 1, 0], [1, 1, 0], [0, 0, 0]])
    p = np.array([[1, 0, 0], [0, 1, 0], [1, 0, 0], [0, 0, 1]])
    m = multilabel_metrics(y, p, ["a", "b", "c"])
    assert m["accuracy"] == pytest.approx(1 / 4)  # subset accuracy: only row 1 is right on every label
    # per label (tp, fp, fn): a (2, 0, 0) -> F1 1; b (1, 0, 1) -> 2/3; c (0, 1, 1) -> 0
    assert m["macro_f1"] == pytest.approx((1 + 2 / 3 + 0) / 3)
    assert m["weighted_f1"] == pytest.approx((2 * 1 + 2 * 2 / 3 + 1 * 0) / 5)
    assert m["micro_f1"] == pytest.approx(2 * 3 / (2 * 3 + 1 + 2))  # tp 3, fp 1, fn 2
    assert m["hamming_loss"] == pytest.approx(3 / 12)
    assert m["per_class"]["b"]["recall"] == pytest.approx(0.5) and m["per_class"]["c"]["support"] == 1
    assert m["label_confusion"][2] == [[2, 1], [1, 0]]
    assert m["predicted_sets"] == 3 and "confusion_matrix" not in m


def test_the_statistics_draw_multi_label_metrics_on_0_1_rows():
    rng = np.random.default_rng(0)
    y = (rng.random((200, 4)) < 0.3).astype(np.int64)
    a = np.where(rng.random((200, 4)) < 0.85, y, 1 - y)
    b = np.where(rng.random((200, 4)) < 0.6, y, 1 - y)
    ones = np.ones((1, 200))
    present = [j for j in range(4) if y[:, j].any()]
    assert stats.weighted_metric("macro_f1", y, a, ones)[0] == pytest.approx(
        f1_score(y, a, average="macro", labels=present, zero_division=0))
    assert stats.weighted_metric("micro_f1", y, a, ones)[0] == pytest.approx(f1_score(y, a, average="micro"))
    assert stats.weighted_metric("accuracy", y, a, ones)[0] == pytest.approx((y == a).all(axis=1).mean())
    test = stats.paired_test(y, [a, a], [b, b], metric="micro_f1", n_resamples=200)
    assert test.delta == pytest.approx(f1_score(y, a, average="micro") - f1_score(y, b, average="micro"))
    assert test.low > 0 and test.p_value < 0.05


# --- a study end to end ---------------------------------------------------------------------------------


def test_a_multi_label_study_trains_reports_and_predicts(tiny_bert, tmp_path, capsys, tagged_csv, captured):
    from tunebench.report import build_report
    from tunebench.results.store import STORE_NAME, Store
    from tunebench.spec.study import StudySpec
    from tunebench.study.driver import run_study

    spec = StudySpec(name="tags", data={"source": str(tagged_csv), "label_column": "labels", "label_sep": "|"},
                     model={"name": str(tiny_bert), "max_length": 32}, strategies=["full:lr=3e-3", "embed-logreg"],
                     baselines=["majority", "tfidf-logreg"], output={"dir": str(tmp_path / "out")},
                     training={"epochs": 10, "batch_size": 8}, sweep={"seeds": [0, 1]})
    records = run_study(spec)
    full = [r for r in records if r["strategy"].startswith("full")]
    assert len(full) == 2 and all(r["status"] == "finished" for r in full)
    embedded = [r for r in records if r["strategy"] == "embed-logreg"]  # one-vs-rest on frozen embeddings
    assert len(embedded) == 2 and all(r["status"] == "finished" and len(r["val"]["thresholds"]) == 3 for r in embedded)
    assert embedded[0]["params"]["trainable"] == 3 * (embedded[0]["params"]["trainable"] // 3)  # a head per label
    for r in full:
        assert r["data"]["task"] == "multi_label" and r["resolved"]["class_weights"] is not None
        assert r["test"]["macro_f1"] >= 0.75  # a random tiny encoder learns the words (the floor's 1.0, below)
        assert r["test"]["thresholds"] == r["val"]["thresholds"]  # chosen on validation, applied to test
        assert r["diagnosis"]["diagnosis"] != "collapsed"
    with Store(tmp_path / "out" / STORE_NAME, readonly=True) as store:
        labels, probs = store.predictions_of(full[0])
        floor = {r["strategy"]: r for r in store.records("tags:baselines")}
    majority = floor["majority"]
    assert floor["tfidf-logreg"]["test"]["macro_f1"] == 1.0  # the words decide every label: a bag of words is exact
    assert majority["test"]["macro_f1"] < 0.5 and all(r["test"]["macro_f1"] > majority["test"]["macro_f1"] + 0.2
                                                      for r in full)
    answers = decide(probs, full[0]["val"]["thresholds"])
    assert multilabel_metrics(np.asarray(labels), answers, full[0]["data"]["label_names"])["macro_f1"] == \
        pytest.approx(full[0]["test"]["macro_f1"])
    assert majority["val"]["thresholds"] == [0.5, 0.5, 0.5]  # the majority per label, not tuned into "say all"
    frame = pd.read_csv(tmp_path / "out" / "results.csv")
    assert {"test_micro_f1", "test_hamming_loss"} <= set(frame.columns)
    build_report(tmp_path / "out")
    report = (tmp_path / "out" / "report.md").read_text(encoding="utf-8")
    assert "Per-label F1 and thresholds" in report and "missed / said wrongly" in report
    assert "Confusion matrices" not in report and "labels, multi-label" in report
    assert "Recommended:" in report
    assert {"per_class_f1.png", "error_labels.png", "comparison.png"} <= set(captured)
    assert "confusion.png" not in captured and "probability_gaps.png" not in captured
    for name, fig in captured.items():  # plain text, no empty legend entry, as every report figure
        check_reads_cleanly(name, fig)
    assert "micro-F1" in check_reads_cleanly("comparison.png", captured["comparison.png"])
    from tunebench.training.inference import evaluate_checkpoint

    again = evaluate_checkpoint(full[0]["checkpoint"])  # the test split at the run's own thresholds
    assert again["macro_f1"] == pytest.approx(full[0]["test"]["macro_f1"]) and again["thresholds"] == \
        full[0]["val"]["thresholds"]
    code, out, _ = cli(capsys, "predict", full[0]["checkpoint"], "the film was good with a song")
    answer, _, shown = out.strip().split("\t")
    probs = {name: float(p) for name, p in (part.split(" ") for part in shown.strip("()").split(", "))}
    names, thresholds = full[0]["data"]["label_names"], full[0]["val"]["thresholds"]
    assert code == 0 and answer == "|".join(n for n, t in zip(names, thresholds, strict=True) if probs[n] >= t)
    assert "pos" in answer.split("|") and "neg" not in answer.split("|")
    import tunebench as tb
    from tunebench.training.inference import predict_texts

    result = tb.load(tmp_path / "out")
    run = result.run(full[0]["label"])  # the Python API answers as the command does: a label set
    assert run.predict(["the film was good with a song"]) == [answer]
    if result.best.strategy == "embed-logreg":  # fitted, no model saved: one sentence, not "checkpoints off"
        with pytest.raises(ModelError, match="fitted by its own recipe and saves no model"):
            result.best.predict(["the film was good"])
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, pipeline

    from tunebench.api.export import export_run

    dest = tmp_path / "exported"
    export_run(full[0]["checkpoint"], dest)
    model = AutoModelForSequenceClassification.from_pretrained(dest).eval()
    assert model.config.problem_type == "multi_label_classification"
    texts = ["the film was good with a song", "this meal was awful", "our trip was poor with a tune"]
    ours = predict_texts(full[0]["checkpoint"], texts)
    scores = pipeline("text-classification", model=str(dest), tokenizer=AutoTokenizer.from_pretrained(dest),
                      top_k=None)(texts)  # plain transformers: a sigmoid per label for a multi-label config
    for (answer, probs), theirs in zip(ours, scores, strict=True):
        assert {s["label"]: s["score"] for s in theirs} == pytest.approx(probs, abs=1e-5)
        said = [n for n, t in zip(names, thresholds, strict=True) if {s["label"]: s["score"] for s in theirs}[n] >= t]
        assert "|".join(said) == answer
    card = (dest / "README.md").read_text(encoding="utf-8")
    assert "Multi-label text classification" in card and "threshold" in card and "top_k=None" in card
    assert "micro-F1" in card and "binary cross-entropy per label" in card
