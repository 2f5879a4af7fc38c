"""Convergence diagnostics: still improving, collapsed, overfitting; from curves, predictions or a stored record."""

from __future__ import annotations

import pandas as pd
import pytest

from tunebench.results import diagnosis as dg
from tunebench.results.outputs import config_frame, display_rows, results_frame


def curve(f1s, val_loss=None, train_loss=None):
    n = len(f1s)
    val_loss = val_loss or [1.0 - 0.1 * i for i in range(n)]
    train_loss = train_loss or [1.2 - 0.15 * i for i in range(n)]
    return [{"epoch": i + 1, "train_loss": t, "val_loss": v, "val_accuracy": f, "val_macro_f1": f}
            for i, (f, v, t) in enumerate(zip(f1s, val_loss, train_loss, strict=True))]


BALANCED = [0, 1, 2] * 20  # 60 validation labels, three classes


def test_an_under_trained_curve_is_still_improving_with_the_numbers_in_the_advice():
    d = dg.diagnose(curve([0.40, 0.52, 0.561]), label="full")
    assert d["diagnosis"] == "still improving" and d["flags"] == ["still improving"]
    assert d["evidence"]["best_epoch"] == 3 and d["evidence"]["epochs_run"] == 3
    assert d["evidence"]["last_gain"] == pytest.approx(0.041)
    assert d["advice"] == ("full did not converge: best epoch = last (3 of 3), +4.1 points of validation macro-F1 "
                           "in it; rerun with --tune or more epochs.")
    # the gain must reach one point; and the best epoch must be the last
    assert dg.diagnose(curve([0.40, 0.52, 0.525]))["diagnosis"] == "ok"
    assert dg.diagnose(curve([0.40, 0.60, 0.58]))["diagnosis"] == "ok"
    assert dg.diagnose(curve([0.40, 0.50, 0.51]))["diagnosis"] == "still improving"  # exactly one point counts


def test_a_tuned_run_is_told_to_train_longer_not_to_tune_again():
    d = dg.diagnose(curve([0.40, 0.52, 0.561]), label="full:lr=0.000158", tuned=True)
    assert d["evidence"]["tuned"] is True
    assert d["advice"] == ("full:lr=0.000158 did not converge: best epoch = last (3 of 3), +4.1 points of validation "
                           "macro-F1 in it; its rate is already tuned: rerun with more epochs.")
    collapsed = dg.diagnose([], [1] * len(BALANCED), BALANCED, label="full", tuned=True)
    assert "even at its tuned learning rate" in collapsed["advice"] and "--tune" not in collapsed["advice"]
    # the stored evidence re-renders the same advice for another label (the report does this)
    assert dg.advice_for("still improving", d["evidence"], "x").endswith("already tuned: rerun with more epochs.")


def test_one_epoch_is_judged_against_epoch_0_and_without_it_is_not_shown_converged():
    # the R8 twin's full:lr=1e-7, one epoch: 0.169 validation macro-F1 after it, from 0.150 before it
    d = dg.diagnose(curve([0.169]), initial={"epoch": 0, "val_macro_f1": 0.150}, label="full:lr=1e-07")
    assert d["flags"] == ["still improving"] and d["evidence"]["last_gain"] == pytest.approx(0.019)
    assert d["advice"].startswith("full:lr=1e-07 did not converge: best epoch = last (1 of 1), +1.9 points")
    assert dg.diagnose(curve([0.6]), initial={"val_macro_f1": 0.595})["diagnosis"] == "ok"  # half a point
    # no epoch 0 (a record stored before it was measured): nothing shows the run converged
    d = dg.diagnose(curve([0.6]))
    assert d["flags"] == ["still improving"] and d["evidence"]["unverified"] is True
    assert "no evidence that it converged" in d["advice"]
    assert any(u.startswith("collapse:") for u in d["undecided"])  # no predictions given


def test_predictions_all_one_class_are_collapsed():
    preds = [1] * len(BALANCED)
    d = dg.diagnose(curve([0.2, 0.19, 0.18]), preds, BALANCED, label="full")
    assert d["diagnosis"] == "collapsed" and "collapsed" in d["flags"]
    assert d["evidence"]["top_class_share"] == 1.0 and d["evidence"]["val_macro_f1"] == pytest.approx(1 / 6, abs=1e-3)
    assert d["evidence"]["majority_basis"] == "validation labels"
    assert d["advice"].startswith("full collapsed: 100 % of its validation predictions are one class (class 1)")
    assert "--tune" in d["advice"]
    # 90 % one class is enough; a good run is not collapsed
    mostly = [1] * 54 + [0, 2] * 3
    assert "collapsed" in dg.diagnose([], mostly, BALANCED)["flags"]
    assert dg.diagnose([], BALANCED, BALANCED)["flags"] == []


def test_collapse_by_macro_f1_close_to_the_majority_baseline_and_imbalanced_labels():
    # predictions spread over classes but no better than the majority baseline's macro-F1
    d = dg.diagnose([], majority_macro_f1=0.30, val_macro_f1=0.315)
    assert d["flags"] == ["collapsed"] and "against the majority baseline's 0.300" in d["advice"]
    assert dg.diagnose([], majority_macro_f1=0.30, val_macro_f1=0.33)["flags"] == []
    # labels 95 % one class: predicting it 95 % of the time is the data, judged by macro-F1 only
    labels = [0] * 57 + [1] * 3
    preds = [0] * 57 + [1] * 3
    d = dg.diagnose([], preds, labels)
    assert d["flags"] == [] and d["evidence"]["top_class_label_share"] == 0.95


def test_an_overfitting_curve_and_the_threshold():
    d = dg.diagnose(curve([0.70, 0.72, 0.71, 0.70], val_loss=[0.50, 0.45, 0.55, 0.62],
                          train_loss=[0.9, 0.5, 0.3, 0.1]), label="lora")
    assert d["flags"] == ["overfitting"]
    e = d["evidence"]
    assert (e["val_loss_min"], e["val_loss_min_epoch"], e["val_loss_last"]) == (0.45, 2, 0.62)
    assert e["val_loss_rise_pct"] == pytest.approx(37.8)
    assert d["advice"].startswith("lora overfits: validation loss rose from 0.450 (epoch 2) to 0.620 (+38 %)")
    # under 10 % above the minimum: not "well above"
    assert dg.diagnose(curve([0.7, 0.72, 0.71], val_loss=[0.5, 0.45, 0.48], train_loss=[0.9, 0.5, 0.3]))["flags"] == []
    # training loss did not fall: not overfitting (the run is just unstable)
    assert dg.diagnose(curve([0.7, 0.72, 0.71], val_loss=[0.5, 0.45, 0.6], train_loss=[0.9, 0.5, 0.6]))["flags"] == []


def _metrics(confusion):
    m = [list(r) for r in confusion]
    n = sum(map(sum, m))
    macro = sum(2 * m[i][i] / (sum(m[i]) + sum(r[i] for r in m)) for i in range(len(m))) / len(m)
    return {"macro_f1": macro, "accuracy": sum(m[i][i] for i in range(len(m))) / n, "confusion_matrix": m}


def record(strategy="full", f1s=(0.4, 0.5, 0.6), confusion=((18, 2), (3, 17)), kind=None, status="finished",
           test_confusion=None, **extra):
    """``confusion``: the kept epoch's validation confusion matrix (the diagnosis reads it);
    ``test_confusion``: the test split's (default: the same)."""
    return {"run_id": f"id-{strategy}", "study": "s", "strategy": strategy, "label": strategy, "status": status,
            "spec": {"kind": kind or strategy.split(":")[0]},
            "resolved": {"lr": 1e-3, "scheduler": "linear", "epochs": len(f1s), "seed": 0, "device": "cpu"},
            "curves": curve(list(f1s)) if kind not in dg.BASELINE_KINDS else [], "best_epoch": len(f1s),
            "test": _metrics(test_confusion or confusion), "val": _metrics(confusion), **extra}


def test_the_diagnosis_never_reads_test_data():
    """A run whose validation is fine but whose test predictions are all one class is not collapsed."""
    r = record(f1s=(0.5, 0.8, 0.805), confusion=((18, 2), (3, 17)), test_confusion=((20, 0), (20, 0)))
    d = dg.diagnose_record(r)
    assert d["flags"] == [] and d["diagnosis"] == "ok"
    # and the other way round: one class on validation is collapsed whatever the test split says
    r = record(f1s=(0.5, 0.5, 0.5), confusion=((20, 0), (20, 0)), test_confusion=((18, 2), (3, 17)))
    assert dg.diagnose_record(r)["diagnosis"] == "collapsed"
    # a diagnosis stored before 0.2 judged collapse on the test split: it is recomputed, not trusted
    judged_on_test = {"diagnosis": "collapsed", "flags": ["collapsed"], "advice": "",
                      "evidence": {"test_macro_f1": 0.33, "majority_macro_f1": 0.33}}
    fine = record(f1s=(0.5, 0.8, 0.805), confusion=((18, 2), (3, 17)), diagnosis=judged_on_test)
    assert dg.diagnose_record(fine)["diagnosis"] == "ok"


def test_a_stored_record_is_diagnosed_from_its_curves_and_confusion_matrix():
    old = record(f1s=(0.4, 0.5, 0.6), confusion=((20, 0), (19, 1)))  # written before diagnostics existed
    d = dg.diagnose_record(old)
    assert d["flags"] == ["collapsed", "still improving"] and d["diagnosis"] == "collapsed"
    assert d["evidence"]["top_class_share"] == pytest.approx(39 / 40, abs=1e-4)
    assert d["advice"].startswith("full collapsed:") and "full did not converge" in d["advice"]
    stored = {**old, "diagnosis": {"diagnosis": "ok", "flags": [], "evidence": {}, "advice": ""}}
    assert dg.diagnose_record(stored)["diagnosis"] == "ok"  # the stored one wins
    assert dg.diagnose_record(stored, recompute=True)["diagnosis"] == "collapsed"
    majority = record("majority", f1s=(), confusion=((20, 0), (20, 0)), kind="majority", baseline=True)
    assert dg.diagnose_record(majority)["diagnosis"] == "baseline"  # a baseline is one class by design
    assert dg.diagnose_record(record(status="failed")) is None
    # without a confusion matrix collapse is undecided, the curve still decides the rest
    bare = record()
    del bare["val"]["confusion_matrix"]
    d = dg.diagnose_record(bare)
    assert d["flags"] == ["still improving"]


def test_the_diagnosis_column_in_results_csv_the_config_frame_and_the_terminal_table():
    records = [record("full", (0.4, 0.5, 0.6)), record("lora", (0.6, 0.7, 0.69)),
               record("majority", (), ((20, 0), (20, 0)), kind="majority", baseline=True),
               record("head", status="failed")]
    frame = results_frame(records)
    assert list(frame["diagnosis"][:3]) == ["still improving", "ok", "baseline"] and pd.isna(frame["diagnosis"][3])
    assert frame.loc[0, "diagnosis_advice"].startswith("full did not converge")
    headers, rows = display_rows(frame)
    assert headers[-1] == "check"
    assert [r[-1] for r in rows] == ["⚠ still improving", "ok", "reference", "—"]
    # per configuration over its seeds: collapsed on any seed, another flag on most of them
    extra = {"resources": {"train_time_s": 1.0, "eval_time_s": 0.1, "train_examples_per_s": 9.0,
                           "train_tokens_per_s": 90.0}, "params": {"trainable": 5, "total": 10, "share_pct": 50.0}}
    overfit = {"diagnosis": {"diagnosis": "overfitting", "flags": ["overfitting"], "advice": "b overfits."}}
    seeds = [record("full", (0.4, 0.5, 0.6), group="a", **extra), record("lora", (0.6, 0.7, 0.69), group="b", **extra),
             record("full", (0.6, 0.7, 0.69), group="a", **extra), {**record("lora", (0.6, 0.7, 0.69), group="b",
                                                                           **extra), **overfit},
             record("full", (0.4, 0.5, 0.6), group="a", **extra), record("lora", (0.6, 0.7, 0.69), group="b", **extra)]
    for i, r in enumerate(seeds):
        r["resolved"] = {**r["resolved"], "seed": i // 2}
    configs = config_frame(results_frame(seeds))
    assert list(configs["diagnosis"]) == ["still improving", "ok"]  # 2 of 3 seeds; 1 of 3 seeds


def test_a_configuration_is_flagged_by_most_of_its_seeds_but_collapsed_by_any():
    from tunebench.results.outputs import config_diagnosis

    assert config_diagnosis(["still improving", "ok", "ok"]) == "ok"  # one noisy seed in three
    assert config_diagnosis(["still improving", "still improving + overfitting", "ok"]) == "still improving"
    assert config_diagnosis(["overfitting", "still improving + overfitting", "overfitting"]) == "overfitting"
    assert config_diagnosis(["collapsed", "ok", "ok"]) == "collapsed"  # a rate that collapses one seed
    assert config_diagnosis(["still improving", "ok"]) == "ok" and config_diagnosis(["still improving"] * 2) \
        == "still improving"  # two seeds: both
    assert config_diagnosis(["baseline"]) == "baseline" and config_diagnosis([None]) is None
