"""Metrics from scikit-learn (and scipy's correlations), in one JSON-ready dictionary: single-label, multi-label
and regression.

Its keys include every row of the metric table (:data:`tunebench.spec.metrics.METRICS`): a row names
where its value lives here, in a record's ``val``/``test`` and in results.csv.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.metrics import (
    accuracy_score,
    classification_report,
    confusion_matrix,
    f1_score,
    hamming_loss,
    multilabel_confusion_matrix,
    precision_recall_fscore_support,
)

from tunebench.results.decisions import choose_thresholds, decide, is_multi_label


def evaluate_outputs(labels: np.ndarray, probabilities: np.ndarray, label_names: list[str],
                     thresholds: list[float] | None = None) -> dict[str, Any]:
    """The metrics of a split from the model's outputs, for either task shape.

    Single-label: :func:`classification_metrics` of the argmax.  Multi-label (``labels`` 0/1 rows):
    ``thresholds`` None chooses one per label on these examples (a validation split: the run's choice,
    returned as ``thresholds``); given (a test split), they are applied unchanged.
    """
    y = np.asarray(labels)
    if y.ndim == 1 and y.dtype.kind == "f":  # a regression's targets: the outputs are its predictions
        return regression_metrics(y, decide(probabilities, regression=True))
    if not is_multi_label(labels):
        return classification_metrics(labels, decide(probabilities), label_names)
    chosen = choose_thresholds(labels, probabilities) if thresholds is None else [float(t) for t in thresholds]
    return {**multilabel_metrics(labels, decide(probabilities, chosen), label_names), "thresholds": chosen}


def regression_metrics(targets: np.ndarray, predictions: np.ndarray) -> dict[str, Any]:
    """R² (scikit-learn's ``r2_score``: 1 - MSE / the split's variance of the target), Pearson and Spearman
    correlations (scipy), RMSE and MAE, in the target's units; ``prediction_sd`` / ``target_sd`` say whether the
    predictions are a constant (a collapse)."""
    from scipy.stats import pearsonr, spearmanr
    from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score

    y, p = np.asarray(targets, dtype=float), np.asarray(predictions, dtype=float)
    constant = len(y) < 2 or np.ptp(p) == 0 or np.ptp(y) == 0  # a correlation of a constant is undefined: 0
    return {"r2": float(r2_score(y, p)) if len(y) > 1 else 0.0,
            "pearson": 0.0 if constant else float(pearsonr(y, p).statistic),
            "spearman": 0.0 if constant else float(spearmanr(y, p).statistic),
            "rmse": float(np.sqrt(mean_squared_error(y, p))), "mae": float(mean_absolute_error(y, p)),
            "n": int(len(y)), "prediction_sd": float(p.std()), "target_sd": float(y.std())}


def multilabel_metrics(labels: np.ndarray, preds: np.ndarray, label_names: list[str]) -> dict[str, Any]:
    """Multi-label metrics under the keys single-label uses, so every table, test and verdict reads them alike.

    ``accuracy`` is subset accuracy (every label of a row right); ``macro_*`` average over the labels
    **present in** ``labels`` (as :func:`classification_metrics` averages over present classes);
    ``weighted_*`` weight labels by support; ``micro_f1`` pools every decision; ``hamming_loss`` is the
    share of wrong decisions.  ``per_class``: each label's precision, recall, F1 and support;
    ``label_confusion``: each label's ``[[tn, fp], [fn, tp]]``; ``predicted_sets``: how many distinct label
    sets the model answered (1: the same answer for every example, a collapse).
    """
    y, p = np.asarray(labels, dtype=np.int64), np.asarray(preds, dtype=np.int64)
    label_ids = list(range(len(label_names)))
    present = [j for j in label_ids if y[:, j].any()] or label_ids
    out: dict[str, Any] = {"accuracy": float(accuracy_score(y, p)), "n": int(len(y))}
    for average in ("macro", "weighted"):
        pr, rc, f, _ = precision_recall_fscore_support(y, p, labels=present, average=average, zero_division=0)
        out[f"{average}_precision"], out[f"{average}_recall"], out[f"{average}_f1"] = float(pr), float(rc), float(f)
    out["micro_f1"] = float(f1_score(y, p, average="micro", zero_division=0))
    out["hamming_loss"] = float(hamming_loss(y, p))
    out["absent_classes"] = [label_names[j] for j in label_ids if j not in set(present)]
    report = classification_report(y, p, labels=label_ids, target_names=label_names, output_dict=True, zero_division=0)
    out["per_class"] = {name: {k: float(v) for k, v in report[name].items()} for name in label_names}
    out["label_confusion"] = multilabel_confusion_matrix(y, p, labels=label_ids).tolist()
    out["predicted_sets"] = int(len({row.tobytes() for row in p}))
    out["labels_per_row"] = float(p.sum(axis=1).mean()) if len(p) else 0.0
    return out


def classification_metrics(labels: np.ndarray, preds: np.ndarray, label_names: list[str]) -> dict[str, Any]:
    """Accuracy; macro and weighted F1/precision/recall; per-class report; confusion matrix.

    Macro averages are over the classes **present in** ``labels``: a class the split does not hold
    scores 0 under ``zero_division=0`` whatever the model does, so counting it would measure the
    split, not the model (one absent class of 52 costs 1.9 points).  ``absent_classes`` names those
    classes.  Every class still appears in ``per_class`` and the confusion matrix (zero support), so
    every run of a study reports the same classes in the same order.
    """
    label_ids = list(range(len(label_names)))
    labels, preds = np.asarray(labels), np.asarray(preds)
    present = sorted({int(v) for v in labels}) or label_ids
    out: dict[str, Any] = {"accuracy": float(accuracy_score(labels, preds)), "n": int(len(labels))}
    for average in ("macro", "weighted"):
        p, r, f, _ = precision_recall_fscore_support(
            labels, preds, labels=present, average=average, zero_division=0)
        out[f"{average}_precision"] = float(p)
        out[f"{average}_recall"] = float(r)
        out[f"{average}_f1"] = float(f)
    out["absent_classes"] = [label_names[i] for i in label_ids if i not in set(present)]
    report = classification_report(labels, preds, labels=label_ids, target_names=label_names,
                                   output_dict=True, zero_division=0)
    out["per_class"] = {name: {k: float(v) for k, v in report[name].items()} for name in label_names}
    out["confusion_matrix"] = confusion_matrix(labels, preds, labels=label_ids).tolist()
    return out
