"""Classification metrics from scikit-learn, in one JSON-ready dictionary.

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
    precision_recall_fscore_support,
)


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
