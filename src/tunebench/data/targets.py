"""Regression data (``data.task: regression``): a numeric target per row, read, checked and split.

After :func:`numeric_targets` every label is a float.  Splits and limits are stratified on the target's
deciles (:func:`strata`): a plain random split of a few hundred rows can leave the tails of the target
to one side, and stratifying on every distinct value is impossible (most occur once).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from tunebench.errors import DataError, shorten

#: the number of quantile bins a regression split is stratified on
BINS = 10


def numeric_targets(parts: dict[str, Any], where: str, label_column: str) -> None:
    """Every split's labels as floats; one sentence for a value that is not a finite number or a constant target."""
    for rows in parts.values():
        values = []
        for v in rows.labels:
            try:
                x = float(v) if not isinstance(v, (bool, tuple)) else math.nan
            except (TypeError, ValueError):
                x = math.nan
            if not math.isfinite(x):
                raise DataError(f"column '{label_column}' of {where} holds {shorten(repr(v), 60)}, which is not a "
                                "finite number; a regression target (--task regression) must be one in every row")
            values.append(x)
        rows.labels = values
    train = parts["train"].labels
    if len(set(train)) < 2:
        raise DataError(f"the training data of {where} has a single target value ({train[0]:g}) in column "
                        f"'{label_column}'; a regression needs at least two")


def strata(labels: Sequence[float], bins: int = BINS) -> np.ndarray:
    """Each row's quantile bin of the target (at most ``bins``, fewer where values repeat): what a split stratifies on."""
    y = np.asarray(labels, dtype=float)
    edges = np.unique(np.quantile(y, np.linspace(0, 1, bins + 1)[1:-1])) if len(y) else np.zeros(0)
    return np.searchsorted(edges, y, side="right").astype(np.int64)


def is_target(value: Any) -> bool:
    """Whether ``value`` is a regression row's label (cleaned labels of a classification are int, str or tuple)."""
    return isinstance(value, float)


def summary(labels: Sequence[float]) -> str:
    """``mean 4.2, sd 1.3, 0.5 to 9`` for a split's notes."""
    y = np.asarray(labels, dtype=float)
    return f"mean {y.mean():.4g}, sd {y.std(ddof=1) if len(y) > 1 else 0.0:.4g}, {y.min():.4g} to {y.max():.4g}"


def sizes_note(splits: dict[str, Any], column: str) -> str:
    """The note of a regression's split sizes and each split's target summary."""
    return ("sizes train/validation/test: " + "/".join(f"{len(split):,}" for split in splits.values())
            + f"; task: regression of '{column}' (" + "; ".join(f"{name} {summary(split.labels)}"
                                                                for name, split in splits.items()) + ")")
