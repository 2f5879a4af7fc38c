"""From a model's outputs to its answers, for both task shapes: the one place that knows how.

Single-label: the class of highest probability (``argmax``).  Multi-label: every label whose sigmoid
probability reaches that label's threshold, the thresholds chosen on the validation split
(:func:`choose_thresholds`) at the epoch the run keeps and applied unchanged to the test split, so the
test split never chooses anything.  The engine, the baselines, the statistics' test predictions and the
report all decide through :func:`decide`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

#: the thresholds a multi-label run may choose per label: a grid, not every distinct probability (that
#: overfits the validation split, one threshold per positive example); 0.5 included
THRESHOLD_GRID = np.round(np.arange(0.05, 0.951, 0.05), 2)


def is_multi_label(labels: Any) -> bool:
    """Whether ``labels`` (one row per example) are multi-label indicator rows (a 2-D array)."""
    return np.ndim(labels) == 2


def decide(probabilities: Any, thresholds: Sequence[float] | None = None) -> np.ndarray:
    """Answers from outputs: class ids (``thresholds`` None) or a 0/1 row per example (multi-label)."""
    p = np.asarray(probabilities, dtype=float)
    if thresholds is None:
        return p.argmax(axis=1) if len(p) else np.zeros(0, dtype=np.int64)
    return (p >= np.asarray(thresholds, dtype=float)[None, :]).astype(np.int64)


def choose_thresholds(labels: Any, probabilities: Any, grid: np.ndarray = THRESHOLD_GRID) -> list[float]:
    """Per label, the threshold of ``grid`` with the highest F1 on these (validation) examples; ties go to
    the one nearest 0.5, and a label with no positive example here keeps 0.5 (nothing to choose from).

    Written here rather than taken from scikit-learn: ``TunedThresholdClassifierCV`` tunes one threshold of
    a binary estimator by refitting it under cross-validation; a run has one fixed validation split and its
    probabilities, and needs one threshold per label from them."""
    y = np.asarray(labels, dtype=bool)
    p = np.asarray(probabilities, dtype=float)
    chosen = []
    for j in range(y.shape[1]):
        if not y[:, j].any():
            chosen.append(0.5)
            continue
        pred = p[:, j][None, :] >= grid[:, None]  # one row per candidate threshold
        tp = (pred & y[:, j][None, :]).sum(axis=1)
        f1 = 2 * tp / (pred.sum(axis=1) + y[:, j].sum())
        best = np.flatnonzero(np.isclose(f1, f1.max()))
        chosen.append(float(grid[best[np.argmin(np.abs(grid[best] - 0.5))]]))
    return chosen


def record_thresholds(record: dict[str, Any]) -> list[float] | None:
    """A multi-label run's thresholds (chosen on validation, kept in its validation metrics); None otherwise."""
    return (record.get("val") or {}).get("thresholds")


def record_predictions(record: dict[str, Any], probabilities: Any) -> np.ndarray:
    """A stored run's answers on the split of ``probabilities`` (its test predictions as stored)."""
    return decide(probabilities, record_thresholds(record))


def task_of(records: Sequence[dict[str, Any]]) -> str:
    """The task shape of a study's records (``data.task``; records of single-label studies do not say it)."""
    return next((str(r["data"]["task"]) for r in records if (r.get("data") or {}).get("task")), "single_label")
