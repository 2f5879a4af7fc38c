"""Error analysis over stored test predictions (and the test texts, when they can be rebuilt).

Pure functions: labels are class indices, probabilities one row per example.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

_WORD = re.compile(r"[^\W\d_]{2,}")


def words(text: str) -> set[str]:
    """The distinct lower-cased words (two letters or more) of ``text``."""
    return set(_WORD.findall(text.lower()))


@dataclass(frozen=True)
class WordLift:
    word: str
    lift: float
    in_errors: int
    in_all: int


def word_lift(texts: Sequence[str], is_error: Sequence[bool], min_errors: int = 2, top: int = 15) -> list[WordLift]:
    """Words over-represented among misclassified examples.

    Lift is the share of error examples containing the word divided by the share of all examples
    containing it (1.0 = no more common among errors).  Words in fewer than ``min_errors`` errors
    are skipped, and so are words no more common among errors (lift <= 1); ties are broken by
    count, then alphabetically, so the result is stable.
    """
    n_all, n_err = len(texts), int(sum(is_error))
    if n_err == 0:
        return []
    all_counts: Counter[str] = Counter()
    err_counts: Counter[str] = Counter()
    for text, wrong in zip(texts, is_error, strict=True):
        ws = words(text)
        all_counts.update(ws)
        if wrong:
            err_counts.update(ws)
    rows = [WordLift(w, (c / n_err) / (all_counts[w] / n_all), c, all_counts[w])
            for w, c in err_counts.items() if c >= min_errors and c * n_all > all_counts[w] * n_err]
    rows.sort(key=lambda r: (-r.lift, -r.in_errors, r.word))
    return rows[:top]


def predictions(probabilities: Sequence[Sequence[float]]) -> np.ndarray:
    return np.asarray(probabilities, dtype=float).argmax(axis=1)


def error_label_counts(labels: Sequence[int], preds: Sequence[int], n_classes: int) -> tuple[list[int], list[int]]:
    """Among errors: how many have each true label, and how many were predicted as each label."""
    y, p = np.asarray(labels), np.asarray(preds)
    wrong = y != p
    true = np.bincount(y[wrong], minlength=n_classes)
    pred = np.bincount(p[wrong], minlength=n_classes)
    return true.tolist(), pred.tolist()


def probability_gaps(labels: Sequence[int], probabilities: Sequence[Sequence[float]]) -> dict[int, list[float]]:
    """Per true class, predicted-minus-true probability of each misclassified example (0 to 1)."""
    probs = np.asarray(probabilities, dtype=float)
    y = np.asarray(labels)
    pred = probs.argmax(axis=1)
    gaps: dict[int, list[float]] = {}
    for i in np.flatnonzero(pred != y):
        gaps.setdefault(int(y[i]), []).append(float(probs[i, pred[i]] - probs[i, y[i]]))
    return dict(sorted(gaps.items()))


def disagreements(preds_by_run: dict[str, Sequence[int]], labels: Sequence[int], top: int = 10) -> list[int]:
    """Test indices where the runs predict different labels: most distinct answers first, then fewest right."""
    if len(preds_by_run) < 2:
        return []
    matrix = np.asarray(list(preds_by_run.values()))
    y = np.asarray(labels)
    distinct = np.array([len(set(col)) for col in matrix.T])
    right = (matrix == y).sum(axis=0)
    idx = [i for i in range(len(y)) if distinct[i] > 1]
    idx.sort(key=lambda i: (-distinct[i], right[i], i))
    return idx[:top]


def confident_errors(labels: Sequence[int], probabilities: Sequence[Sequence[float]], top: int = 5) -> list[
        tuple[int, int, float]]:
    """The ``top`` misclassified examples with the highest predicted probability: (index, predicted, p)."""
    probs = np.asarray(probabilities, dtype=float)
    pred = probs.argmax(axis=1)
    conf = probs.max(axis=1)
    wrong = [i for i in range(len(labels)) if pred[i] != labels[i]]
    wrong.sort(key=lambda i: (-conf[i], i))
    return [(i, int(pred[i]), float(conf[i])) for i in wrong[:top]]
