"""Fitted runs recorded like any run — the baselines (majority, tfidf-logreg: :mod:`tunebench.methods.baselines`,
reference rows) and the fitted candidates (embed-logreg, setfit: :mod:`tunebench.methods.sentence`, ranked like
any fine-tuning) — and every run's convergence diagnosis against the majority baseline of the same splits."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import numpy as np
import torch

from tunebench.methods import FitContext, build_strategy
from tunebench.results.diagnosis import baseline_diagnosis, diagnose, spread_of
from tunebench.spec.strategy import OPTIONS
from tunebench.spec.study import StudySpec
from tunebench.study.plan import PlannedRun, Prepared
from tunebench.study.records import RunRecord, base_record
from tunebench.training.metrics import (
    classification_metrics,
    evaluate_outputs,
    multilabel_metrics,
    regression_metrics,
)
from tunebench.training.resources import PeakMemory


def diagnose_run(curves: list[dict[str, Any]], val_metrics: dict[str, Any] | None, initial: dict[str, Any] | None,
                 prepared: Prepared, label: str = "this run", tuned: bool = False,
                 fitted: bool = False) -> dict[str, Any]:
    """The run's convergence diagnosis (:func:`tunebench.results.diagnosis.diagnose`) from training and
    validation only — its curves, the kept epoch's validation confusion matrix, the validation score
    before training (``initial``) — against the majority baseline on the same validation split
    (``tuned``: its rate came from the study's tuning; ``fitted``: a fitted candidate, no curves by design).
    Test predictions are never read."""
    val = val_metrics or {}
    matrix = np.asarray(val.get("confusion_matrix") or [], dtype=float)
    counts = (matrix.sum(axis=0), matrix.sum(axis=1)) if matrix.size else (None, None)
    sets = val.get("predicted_sets")  # multi-label: no confusion matrix; the label sets answered instead
    if prepared.bundle.task == "regression":  # against the mean baseline's validation R² (about 0)
        return diagnose(curves, majority_macro_f1=mean_r2(prepared), val_macro_f1=val.get("r2"), label=label,
                        tuned=tuned, initial=initial, fitted=fitted, metric="r2", spread=spread_of(val))
    return diagnose(curves, majority_macro_f1=majority_macro_f1(prepared) if matrix.size or sets else None,
                    val_macro_f1=val.get("macro_f1"), n_classes=len(prepared.bundle.label_names),
                    label=label, pred_counts=counts[0], label_counts=counts[1], tuned=tuned, initial=initial,
                    fitted=fitted, predicted_sets=sets)


def mean_r2(prepared: Prepared) -> float:
    """Validation R² of always saying the training split's mean target."""
    y = np.asarray(prepared.validation.labels, dtype=float)
    return float(regression_metrics(y, np.full(len(y), float(np.mean(prepared.train.labels))))["r2"])


def majority_macro_f1(prepared: Prepared) -> float:
    """Validation macro-F1 of always saying the training split's most frequent class (multi-label: of answering
    each label as most training rows do, the majority per label)."""
    names = prepared.bundle.label_names
    labels = np.asarray(prepared.validation.labels)
    if prepared.train.labels.ndim == 2:
        majority = (prepared.train.labels.mean(axis=0) > 0.5).astype(np.int64)
        return float(multilabel_metrics(labels, np.tile(majority, (len(labels), 1)), names)["macro_f1"])
    counts = np.bincount(np.asarray(prepared.train.labels, dtype=int), minlength=len(names))
    return float(classification_metrics(labels, np.full(len(labels), counts.argmax()), names)["macro_f1"])


def execute_fitted(spec: StudySpec, planned: PlannedRun, total: int, prepared: Prepared, env: dict[str, Any],
                   reporter: Any) -> tuple[RunRecord, list[int], list[list[float]]]:
    """A fitted run (options with ``fitted = True``): fit on the training texts by the method's own recipe
    (:meth:`tunebench.methods.base.FittedMethod.fit_predict`), predict validation and test, record it like a
    run (no curves, no checkpoint).  A baseline is a reference row; a fitted candidate (embed-logreg, setfit)
    is ranked like any fine-tuning: diagnosed on its validation confusion matrix, its serving measured."""
    started = datetime.now(timezone.utc)
    bundle, cfg = prepared.bundle, planned.cfg
    options = OPTIONS[planned.strategy.kind]
    reporter.run_started(planned.position, total, planned.label, 0, 0)
    memory = PeakMemory(torch.device("cpu") if options.baseline else prepared.device)  # scikit-learn alone: CPU
    memory.start()
    context = FitContext(model_source=str(prepared.model_source), seed=cfg.seed, max_length=cfg.max_length,
                         device=prepared.device, class_weights=cfg.class_weights, batch_size=cfg.batch_size,
                         eval_batch_size=cfg.eval_batch_size, trust_remote_code=spec.model.trust_remote_code,
                         serve=(not options.baseline and spec.output.measure_serving and cfg.evaluate_test),
                         serve_onnx=spec.output.serving_onnx)
    method = build_strategy(planned.strategy)
    out = method.fit_predict(bundle, context)
    # multi-label: thresholds chosen on validation as for any run, except the majority baseline's (0.5 per label:
    # the label's majority answer; chosen thresholds would turn it into "say every label")
    fixed = [0.5] * len(bundle.label_names) if planned.strategy.kind == "majority" else None
    val = evaluate_outputs(prepared.validation.labels, out["val"], bundle.label_names, fixed)
    labels = prepared.test.labels.astype(np.int64) if prepared.test.labels.ndim == 2 else np.asarray(bundle.test.labels)
    test = evaluate_outputs(labels, out["test"], bundle.label_names, val.get("thresholds"))
    words = sum(len(t.split()) for t in bundle.train.texts + (bundle.train.pairs or []))
    resources = {**memory.stop(), "train_time_s": out["train_time_s"], "eval_time_s": out["eval_time_s"],
                 "train_examples": len(bundle.train), "train_tokens": words, "optimizer_steps": 0,
                 "train_examples_per_s": len(bundle.train) / max(out["train_time_s"], 1e-9),
                 "train_tokens_per_s": words / max(out["train_time_s"], 1e-9),
                 "engine_notes": [method.engine_note]}
    n, whole = out["parameters"], out.get("total_parameters", out["parameters"])
    params = {"trainable": n, "total": whole, "share_pct": round(100.0 * n / max(whole, 1), 4)}
    if options.baseline:
        parts: dict[str, Any] = {"baseline": True, "model": {"name": planned.strategy.kind, "source": "scikit-learn"},
                                 "diagnosis": baseline_diagnosis()}
    else:
        parts = {"fitted": True, "model": {"name": spec.model.name, "source": prepared.model_source},
                 "diagnosis": diagnose_run([], val, None, prepared, planned.label, fitted=True)}
        if out.get("serving"):
            parts["serving"] = out["serving"]
    record = base_record(spec, planned, prepared, env, "finished", started, 0, params=params,
                         save_bytes=out["save_bytes"], checkpoint_bytes=None, checkpoint=None, curves=[],
                         best_epoch=None, val=val, test=test, resources=resources,
                         **parts)
    record["resolved"].update(out["resolved"])  # the rates and epochs the recipe used: None where none apply
    probs = [[round(float(x), 6) for x in row] for row in out["test"]]
    return record, labels.tolist(), probs
