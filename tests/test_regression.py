"""Regression (issue 28, part 2): a numeric target read and split by its deciles, MSE on the standardised target,
R² / Pearson / Spearman / RMSE / MAE against hand-computed values, the statistics on numbers, the mean and tf-idf
ridge floor, a constant prediction diagnosed as collapsed, a study and its report end to end on the tiny model,
export in the target's units, and every bad input one sentence with exit 2."""

from __future__ import annotations

import random

import numpy as np
import pandas as pd
import pytest
import torch
from scipy.stats import pearsonr, spearmanr

from tunebench.data.loading import load_dataset_bundle
from tunebench.errors import DataError
from tunebench.results import stats
from tunebench.spec.parts import DataSpec
from tunebench.spec.study import StudySpec
from tunebench.training.loop import Objective
from tunebench.training.metrics import regression_metrics

from .conftest import cli, one_error
from .test_report_figures import check_reads_cleanly

WORDS = ["alpha", "beta", "gamma", "delta", "omega", "kappa", "sigma", "theta"]


def counted(n: int = 240, seed: int = 0) -> pd.DataFrame:
    """A regression whose answer is known: the target is the number of words (2 to 12)."""
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        k = rng.randint(2, 12)
        rows.append({"text": " ".join(rng.choice(WORDS) for _ in range(k)), "words": k})
    return pd.DataFrame(rows)


@pytest.fixture()
def counted_csv(tmp_path):
    path = tmp_path / "counted.csv"
    counted().to_csv(path, index=False)
    return path


def test_a_numeric_target_is_read_as_floats_and_split_by_its_deciles(counted_csv):
    bundle = load_dataset_bundle(DataSpec(source=str(counted_csv), label_column="words", task="regression"), seed=0)
    assert bundle.task == "regression" and bundle.label_names == ["words"]
    frame = counted()
    truth = dict(zip(frame.text, frame.words.astype(float), strict=True))
    for split in (bundle.train, bundle.validation, bundle.test):
        assert all(isinstance(v, float) and v == truth[t] for t, v in zip(split.texts, split.labels, strict=True))
    whole = frame.words.to_numpy(float)
    for split in (bundle.validation, bundle.test):  # stratified on the deciles: each split spans the range
        y = np.asarray(split.labels)
        assert y.min() <= np.quantile(whole, 0.1) and y.max() >= np.quantile(whole, 0.9)
        assert abs(y.mean() - whole.mean()) < 0.5
    assert any("task: regression of 'words'" in n for n in bundle.notes)


def test_bad_regression_inputs_are_one_sentence_and_exit_2(capsys, tmp_path, counted_csv):
    bad = tmp_path / "bad.csv"
    pd.DataFrame({"text": [f"t {i}" for i in range(30)], "score": ["1.5"] * 15 + ["high"] + ["2"] * 14}).to_csv(bad)
    code, _, err = cli(capsys, "run", "--dataset", str(bad), "--label-column", "score", "--task", "regression",
                       "-o", str(tmp_path / "o"))
    assert code == 2 and "column 'score' of bad.csv holds 'high', which is not a finite number" in one_error(err)
    constant = tmp_path / "constant.csv"
    pd.DataFrame({"text": [f"t {i}" for i in range(30)], "score": [3.0] * 30}).to_csv(constant)
    with pytest.raises(DataError, match="single target value"):
        load_dataset_bundle(DataSpec(source=str(constant), label_column="score", task="regression"), 0)
    floats = tmp_path / "floats.csv"
    pd.DataFrame({"text": [f"t {i}" for i in range(30)], "label": [0.5, 1.25, 2.0] * 10}).to_csv(floats)
    code, _, err = cli(capsys, "run", "--dataset", str(floats), "-o", str(tmp_path / "o2"))
    assert code == 2 and "--task regression" in one_error(err)
    code, _, err = cli(capsys, "run", "--dataset", str(counted_csv), "--label-column", "words", "--task",
                       "regression", "--metric", "accuracy", "-o", str(tmp_path / "o3"))
    assert code == 2 and "accuracy is a metric of single_label and multi_label data" in one_error(err)


def test_a_regression_spec_selects_on_r2_and_its_floor_is_the_mean_and_tfidf_ridge():
    spec = StudySpec(data={"task": "regression"})
    assert spec.training.selection_metric == spec.verdict.metric == "r2"
    assert spec.baselines == ["mean", "tfidf-ridge"] and StudySpec().baselines == ["majority", "tfidf-logreg"]
    with pytest.raises(Exception, match="baselines majority do not fit regression data"):
        StudySpec(data={"task": "regression"}, baselines=["majority"])
    with pytest.raises(Exception, match="baselines must be among majority, tfidf-logreg, mean, tfidf-ridge"):
        StudySpec(data={"task": "regression"}, baselines=["bogus"])  # named, before the task's defaults look it up
    assert StudySpec(data={"task": "regression"}, training={"selection_metric": "pearson"}).training.selection_metric \
        == "pearson"


def test_regression_metrics_against_values_computed_by_hand():
    y = np.array([1.0, 2.0, 3.0, 4.0, 6.0])
    p = np.array([1.5, 1.5, 3.5, 3.0, 5.0])
    m = regression_metrics(y, p)
    sse, sst = np.sum((y - p) ** 2), np.sum((y - y.mean()) ** 2)
    assert m["r2"] == pytest.approx(1 - sse / sst)
    assert m["rmse"] == pytest.approx(np.sqrt(sse / 5)) and m["mae"] == pytest.approx(np.mean(np.abs(y - p)))
    assert m["pearson"] == pytest.approx(pearsonr(y, p).statistic)
    assert m["spearman"] == pytest.approx(spearmanr(y, p).statistic)
    flat = regression_metrics(y, np.full(5, 3.0))  # a constant, off the mean 3.2: R² below 0
    assert flat["pearson"] == 0.0 and flat["prediction_sd"] == 0.0 and flat["r2"] < 0


def test_the_loss_is_the_mse_of_the_standardised_target():
    logits = torch.tensor([[0.5], [-1.0], [2.0]])
    y = np.array([10.0, 4.0, 16.0], dtype=np.float32)
    objective = Objective(None, y, torch.device("cpu"), target_scale=(10.0, 4.0))
    expected = np.mean((np.array([0.5, -1.0, 2.0]) - (y - 10.0) / 4.0) ** 2)
    assert float(objective.loss(logits, torch.as_tensor(y))) == pytest.approx(expected)


def test_the_statistics_draw_r2_and_pearson_on_numbers():
    rng = np.random.default_rng(1)
    y = rng.normal(size=300)
    a, b = y + rng.normal(scale=0.3, size=300), y + rng.normal(scale=1.0, size=300)
    ones = np.ones((1, 300))
    assert stats.weighted_metric("r2", y, a, ones)[0] == pytest.approx(regression_metrics(y, a)["r2"])
    assert stats.weighted_metric("pearson", y, a, ones)[0] == pytest.approx(pearsonr(y, a).statistic)
    twice = np.ones((1, 300)) * 2  # every example drawn twice: the same R²
    assert stats.weighted_metric("r2", y, a, twice)[0] == pytest.approx(regression_metrics(y, a)["r2"])
    test = stats.paired_test(y.tolist(), [a, a], [b, b], metric="r2", n_resamples=300)
    assert test.delta == pytest.approx(regression_metrics(y, a)["r2"] - regression_metrics(y, b)["r2"])
    assert test.low > 0


def test_a_constant_prediction_is_collapsed():
    from tunebench.results.diagnosis import diagnose

    d = diagnose([{"epoch": 1, "val_r2": -0.01, "val_loss": 1.0, "train_loss": 1.0}], val_macro_f1=-0.01,
                 majority_macro_f1=-0.001, metric="r2", spread=0.01, label="head")
    assert d["diagnosis"] == "collapsed" and "same value for every validation example" in d["advice"]
    assert "validation R² -0.010 against the mean baseline's -0.001" in d["advice"]
    fine = diagnose([{"epoch": 1, "val_r2": 0.2}, {"epoch": 2, "val_r2": 0.6}, {"epoch": 3, "val_r2": 0.6}],
                    val_macro_f1=0.6, majority_macro_f1=0.0, metric="r2", spread=0.8)
    assert fine["diagnosis"] == "ok"


def test_a_regression_study_trains_reports_predicts_and_exports(tiny_bert, tmp_path, capsys, counted_csv, captured):
    from transformers import pipeline

    from tunebench.api.export import export_run
    from tunebench.report import build_report
    from tunebench.results.store import STORE_NAME, Store
    from tunebench.study.driver import run_study
    from tunebench.training.inference import evaluate_checkpoint, predict_texts

    spec = StudySpec(name="count", data={"source": str(counted_csv), "label_column": "words", "task": "regression"},
                     model={"name": str(tiny_bert), "max_length": 32}, strategies=["full:lr=1e-3"],
                     output={"dir": str(tmp_path / "out")}, training={"epochs": 10, "batch_size": 8},
                     sweep={"seeds": [0, 1]})
    records = run_study(spec)
    full = [r for r in records if r["strategy"].startswith("full")]
    assert len(full) == 2 and all(r["status"] == "finished" for r in full)
    for r in full:
        assert r["data"]["task"] == "regression" and r["resolved"]["class_weights"] is None
        mean, sd = r["resolved"]["target_scale"]
        assert 6 < mean < 8 and 2.5 < sd < 4  # words 2 to 12, uniform: mean 7, sd about 3.2
        assert set(r["curves"][0]) >= {"val_r2"} and "val_macro_f1" not in r["curves"][0]
    best = max(full, key=lambda r: r["test"]["r2"])
    assert best["test"]["r2"] >= 0.5  # a random tiny encoder learns to count words
    with Store(tmp_path / "out" / STORE_NAME, readonly=True) as store:
        floor = {r["strategy"]: r for r in store.records("count:baselines")}
        targets, outputs = store.predictions_of(best)
    assert set(floor) == {"mean", "tfidf-ridge"} and abs(floor["mean"]["test"]["r2"]) < 0.05
    assert regression_metrics(np.asarray(targets), np.asarray(outputs)[:, 0])["r2"] == pytest.approx(
        best["test"]["r2"], abs=1e-5)
    frame = pd.read_csv(tmp_path / "out" / "results.csv")
    assert {"test_r2", "test_pearson", "test_spearman", "test_rmse", "test_mae", "val_r2"} <= set(frame.columns)
    assert "test_macro_f1" not in frame.columns
    build_report(tmp_path / "out")
    report = (tmp_path / "out" / "report.md").read_text(encoding="utf-8")
    assert "Predictions against targets" in report and "largest mean absolute error" in report
    assert "Confusion matrices" not in report and "numeric target, regression" in report
    assert "test R²" in report and (tmp_path / "out" / "figures" / "predicted_vs_target.png").is_file()
    assert {"predicted_vs_target.png", "comparison.png", "pareto.png", "curves.png"} <= set(captured)
    for name, fig in captured.items():  # plain text, no empty legend entry, as every report figure
        check_reads_cleanly(name, fig)
    assert "validation R²" in check_reads_cleanly("curves.png", captured["curves.png"])
    again = evaluate_checkpoint(best["checkpoint"])
    assert again["r2"] == pytest.approx(best["test"]["r2"], abs=1e-5)
    texts = ["alpha beta", "alpha beta gamma delta omega kappa sigma theta alpha beta"]
    ours = [value for _, p in predict_texts(best["checkpoint"], texts) for value in p.values()]
    assert ours[1] > ours[0]  # more words, a larger prediction
    dest = tmp_path / "exported"
    export_run(best["checkpoint"], dest)
    theirs = [out[0]["score"] for out in pipeline("text-classification", model=str(dest), top_k=None,
                                                  function_to_apply="none")(texts)]
    assert theirs == pytest.approx(ours, abs=1e-4)  # the target's scale folded into the head
    assert [v for _, p in predict_texts(dest, texts) for v in p.values()] == pytest.approx(ours, abs=1e-4)
    card = (dest / "README.md").read_text(encoding="utf-8")
    assert "Text regression" in card and 'function_to_apply="none"' in card and "R²" in card
    code, out, _ = cli(capsys, "predict", best["checkpoint"], texts[0])
    assert code == 0 and out.split("\t")[0] == f"{ours[0]:.6g}"
