"""Classification metrics from scikit-learn, in one JSON-ready dictionary."""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.metrics import (
    accuracy_score,
    classification_report,
    confusion_matrix,
    precision_recall_fscore_support,
)


def classification_metrics(labels: np.ndarray, preds: np.ndarray, label_names: list[str]) -> dict[str, Any]:
    """Accuracy; macro and weighted F1/precision/recall; per-class report; confusion matrix.

    Classes absent from both ``labels`` and ``preds`` still appear (zero support), so every run of
    a study reports the same classes in the same order.
    """
    label_ids = list(range(len(label_names)))
    out: dict[str, Any] = {"accuracy": float(accuracy_score(labels, preds)), "n": int(len(labels))}
    for average in ("macro", "weighted"):
        p, r, f, _ = precision_recall_fscore_support(
            labels, preds, labels=label_ids, average=average, zero_division=0)
        out[f"{average}_precision"] = float(p)
        out[f"{average}_recall"] = float(r)
        out[f"{average}_f1"] = float(f)
    report = classification_report(labels, preds, labels=label_ids, target_names=label_names,
                                   output_dict=True, zero_division=0)
    out["per_class"] = {name: {k: float(v) for k, v in report[name].items()} for name in label_names}
    out["confusion_matrix"] = confusion_matrix(labels, preds, labels=label_ids).tolist()
    return out
