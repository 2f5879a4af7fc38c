"""From a model's outputs to its answers, for every task shape: the one place that knows how.

Single-label: the class of highest probability (``argmax``).  Regression: the output itself (one column).
Multi-label: every label whose sigmoid probability reaches that label's threshold, the thresholds chosen on
the validation split (:func:`choose_thresholds`) at the epoch the run keeps and applied unchanged to the test
split, so the test split never chooses anything.  The engine, the baselines, the statistics' test predictions and the
report all decide through :func:`decide`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from tunebench.spec import metrics

#: the thresholds a multi-label run may choose per label: a grid, not every distinct probability (that
#: overfits the validation split, one threshold per positive example); 0.5 included
THRESHOLD_GRID = np.round(np.arange(0.05, 0.951, 0.05), 2)


def is_multi_label(labels: Any) -> bool:
    """Whether ``labels`` (one row per example) are multi-label indicator rows (a 2-D array)."""
    return np.ndim(labels) == 2


def decide(probabilities: Any, thresholds: Sequence[float] | None = None, regression: bool = False) -> np.ndarray:
    """Answers from outputs: class ids (``thresholds`` None), a 0/1 row per example (multi-label) or, for a
    regression, the predicted value (the outputs' one column)."""
    p = np.asarray(probabilities, dtype=float)
    if regression:
        return p[:, 0] if p.ndim == 2 else p
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
    return decide(probabilities, record_thresholds(record), (record.get("data") or {}).get("task") == "regression")


def task_of(records: Sequence[dict[str, Any]]) -> str:
    """The task shape of a study's records (``data.task``; records of single-label studies do not say it)."""
    return next((str(r["data"]["task"]) for r in records if (r.get("data") or {}).get("task")), "single_label")


def headline(record: dict[str, Any]) -> str:
    """The metric a run is summed up by in one line: its task's default (macro-F1, a regression's R²)."""
    return metrics.default_for((record.get("data") or {}).get("task") or "single_label")


def one_line(record: dict[str, Any]) -> str:
    """``test macro-F1 0.812, accuracy 0.820`` (a regression: ``test R² 0.61, RMSE 1.2``) for progress lines."""
    test = record.get("test") or {}
    if headline(record) == "r2":
        return f"test R² {test['r2']:.3f}, RMSE {test['rmse']:.4g}"
    return f"test macro-F1 {test['macro_f1']:.3f}, accuracy {test['accuracy']:.3f}"
