"""A metric is one row (spec.metrics.METRICS): outputs, report, verdict and the selection metric derive from it."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from tunebench.spec import metrics
from tunebench.spec.study import StudySpec, quick_study
from tunebench.study.plan import identity_settings, run_config, run_id_for
from tunebench.training import engine

from .conftest import cli, one_error
from .test_engine import _cfg, _train

BUNDLE = SimpleNamespace(hashes=lambda: {"train": "t", "validation": "v", "test": "x"})


def _ids(spec: StudySpec) -> dict[str, str]:
    return {s.label: run_id_for(spec, s, BUNDLE, run_config(spec, s, "fp32"), torch.device("cpu"))
            for s in spec.strategies}


def test_the_default_selection_metric_leaves_every_run_id_as_before():
    spec = quick_study()  # the earlier default study, whose run ids commit 82a97ba computed
    assert spec.training.selection_metric == "macro_f1"
    assert _ids(spec) == {"full": "b0a47e9d0c9d", "partial:k=2": "f6c928c85c9b", "lora:r=8": "34d74f78a957",
                          "head": "85d96bb76fdc"}  # as commit 82a97ba (before the setting) computed them
    cfg = run_config(spec, spec.strategies[0], "fp32")
    assert cfg.selection_metric == "macro_f1" and "selection_metric" not in identity_settings(cfg)
    other = spec.model_copy(update={"training": spec.training.model_copy(update={"selection_metric": "accuracy"})})
    assert identity_settings(run_config(other, other.strategies[0], "fp32"))["selection_metric"] == "accuracy"
    assert set(_ids(other).values()).isdisjoint(_ids(spec).values())  # another selection is another result


def _scripted(monkeypatch, scores: dict[str, list[float]]) -> None:
    """Validation metrics as scripted per call (epoch 0 first), on top of the real ones; then the test's, real."""
    real, calls = engine.evaluate_outputs, []

    def scripted(labels, probabilities, names, thresholds=None):
        out = real(labels, probabilities, names, thresholds)
        if len(calls) < len(next(iter(scores.values()))):
            out.update({name: values[len(calls)] for name, values in scores.items()})
            calls.append(1)
        return out

    monkeypatch.setattr(engine, "evaluate_outputs", scripted)


@pytest.mark.parametrize(("selection", "kept"), [("macro_f1", 2), ("accuracy", 1), ("weighted_f1", 3)])
def test_the_selection_metric_picks_the_kept_epoch(tiny_bert, monkeypatch, selection, kept):
    scores = {"macro_f1": [0.1, 0.5, 0.9, 0.6], "accuracy": [0.1, 0.8, 0.6, 0.7], "weighted_f1": [0.1, 0.2, 0.3, 0.4]}
    _scripted(monkeypatch, scores)
    _, result, _ = _train(tiny_bert, _cfg(epochs=3, selection_metric=selection))
    assert result.best_epoch == kept
    assert result.val_metrics[selection] == scores[selection][kept]
    assert [c[metrics.curve_key(selection)] for c in result.curves] == scores[selection][1:]
    assert result.initial[metrics.curve_key(selection)] == scores[selection][0]


def test_early_stopping_watches_the_selection_metric(tiny_bert, monkeypatch):
    # accuracy stops gaining after epoch 1; macro-F1 keeps gaining
    _scripted(monkeypatch, {"macro_f1": [0.1, 0.5, 0.6, 0.7, 0.8], "accuracy": [0.1, 0.9, 0.8, 0.7, 0.6]})
    _, by_accuracy, _ = _train(tiny_bert, _cfg(epochs=4, patience=1, selection_metric="accuracy"))
    assert (by_accuracy.stop_reason, len(by_accuracy.curves), by_accuracy.best_epoch) == ("early stopping", 2, 1)


def test_a_metric_that_cannot_select_is_one_sentence_with_exit_code_2(capsys, reviews_csv, tmp_path):
    code, _, err = cli(capsys, "run", "--dataset", str(reviews_csv), "--metric", "macro_recall",
                       "--output", str(tmp_path / "out"))
    assert code == 2
    assert one_error(err) == ("error: options: field 'training.selection_metric' must be one of 'accuracy', "
                              "'macro_f1', 'weighted_f1', 'micro_f1', 'r2' or 'pearson' (got 'macro_recall'); 1 more "
                              "problem(s) in the same spec")
    # (the other: verdict.metric, which --metric sets too)
    assert not (tmp_path / "out").exists()


def test_metric_sets_the_verdict_and_the_selection_unless_the_selection_is_given():
    from tunebench.api.spec import build_spec

    spec = build_spec(None, {"metric": "accuracy"})
    assert (spec.verdict.metric, spec.training.selection_metric) == ("accuracy", "accuracy")
    spec = build_spec(None, {"metric": "accuracy", "selection_metric": "weighted_f1"})
    assert (spec.verdict.metric, spec.training.selection_metric) == ("accuracy", "weighted_f1")


# --- every list of metrics is the table's ---------------------------------------------------------


def test_every_layer_lists_the_tables_metrics():
    from tunebench.report import analysis, sections, trackers
    from tunebench.results import outputs, stats
    from tunebench.spec.parts import VerdictSpec
    from tunebench.training.metrics import classification_metrics, multilabel_metrics

    everything, selectable = metrics.names(), metrics.names(can_select=True)
    single = metrics.names(task="single_label")
    assert set(single) <= set(classification_metrics([0, 1, 1], [0, 1, 0], ["a", "b"]))  # computed by training
    multi = multilabel_metrics(np.array([[1, 0], [0, 1]]), np.array([[1, 0], [1, 1]]), ["a", "b"])
    assert set(metrics.names(task="multi_label")) <= set(multi)  # multi-label rows: the same keys, and more
    assert [c for c in outputs.COLUMNS if c.startswith("test_")] == [f"test_{n}" for n in single]
    assert [c for c in outputs.columns("multi_label") if c.startswith("test_")] == [
        f"test_{n}" for n in metrics.names(task="multi_label")]
    assert list(trackers.TEST_KEYS) == [*everything, "loss"]
    assert set(stats.METRICS) == set(selectable)
    assert {f"test_{n}" for n in everything} <= set(analysis.BETTER)
    shown = [col for _, col, _ in sections.HEADLINE + sections.HEADLINE_MORE]
    assert [c for c in shown if c.startswith("test_")] == ["test_macro_f1", "test_accuracy", "test_macro_precision",
                                                           "test_macro_recall", "test_weighted_f1",
                                                           "test_weighted_precision", "test_weighted_recall",
                                                           "test_micro_f1", "test_hamming_loss", "test_r2",
                                                           "test_pearson", "test_spearman", "test_rmse", "test_mae"]
    assert [h for h, col, _ in sections.HEADLINE if "macro_f1" in col] == ["val macro-F1", "test macro-F1"]
    with pytest.raises(Exception, match="'accuracy', 'macro_f1', 'weighted_f1', 'micro_f1', 'r2' or 'pearson'"):
        VerdictSpec(metric="macro_recall")


def test_a_row_added_to_the_table_reaches_results_csv_and_the_summaries_over_seeds(monkeypatch):
    from tunebench.report import significance
    from tunebench.results.outputs import columns, config_frame, results_frame, seed_metrics

    from .test_diagnosis import record

    monkeypatch.setattr(metrics, "METRICS", (*metrics.METRICS, metrics.Metric("balanced", "balanced accuracy",
                                                                              can_select=True)))
    assert columns()[columns().index("test_weighted_recall") + 1] == "test_balanced"
    runs = [record("full", group="a"), record("full", group="a")]
    for seed, (run, value) in enumerate(zip(runs, (0.25, 0.75), strict=True)):
        for part in ("test", "val"):
            run[part].update({name: value for name in metrics.names()} | {"balanced": value})
        run["resolved"] = {**run["resolved"], "seed": seed}
        run["resources"] = {"train_time_s": 1.0, "eval_time_s": 0.1, "train_examples_per_s": 9.0,
                            "train_tokens_per_s": 90.0}
        run["params"] = {"trainable": 5, "total": 10, "share_pct": 50.0}
    frame = results_frame(runs)
    assert list(frame["test_balanced"]) == [0.25, 0.75]
    assert ("test", "balanced") in seed_metrics()
    assert config_frame(frame).loc[0, "test_balanced_mean"] == 0.5
    summary, = significance.summaries(runs).values()  # one configuration
    assert summary["test_balanced"].mean == 0.5


def test_the_report_says_which_metric_chose_the_best_epoch():
    from tunebench.results.outputs import selection_names

    from .test_diagnosis import record

    default, by_accuracy = record("full"), record("lora")
    by_accuracy["resolved"]["selection_metric"] = "accuracy"
    assert selection_names([default]) == "macro-F1"  # a record stored before the setting: macro-F1
    assert selection_names([default, by_accuracy]) == "macro-F1 / accuracy"
