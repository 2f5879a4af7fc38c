"""Error analysis over stored test predictions (and the test texts, when they can be rebuilt).

Pure functions: labels are class indices, probabilities one row per example.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.stats import hypergeom

_WORD = re.compile(r"[^\W\d_]{2,}")


def words(text: str) -> set[str]:
    """The distinct lower-cased words (two letters or more) of ``text``."""
    return set(_WORD.findall(text.lower()))


#: a word must occur in at least this many test examples to be tested at all: below it, a lift is noise
MIN_SUPPORT = 10
#: and the Benjamini-Hochberg adjusted p-value over the words tested must be at most this to be shown
MAX_Q = 0.10


@dataclass(frozen=True)
class WordLift:
    word: str
    lift: float
    in_errors: int
    in_all: int
    p: float  # one-sided Fisher exact (hypergeometric) p-value: errors this common among its examples by chance
    q: float  # the same, Benjamini-Hochberg adjusted over every word tested


def word_lift(texts: Sequence[str], is_error: Sequence[bool], min_support: int = MIN_SUPPORT,
              max_q: float = MAX_Q, top: int = 15) -> list[WordLift]:
    """Words over-represented among misclassified examples beyond chance.

    Lift is the share of error examples containing the word divided by the share of all examples
    containing it (1.0 = no more common among errors).  Only words in at least ``min_support``
    examples are tested; each gets the one-sided Fisher exact p-value of seeing at least that many
    errors among its examples when errors fall at random (a hypergeometric tail), and the
    Benjamini-Hochberg adjusted q over the words tested.  Words with q above ``max_q`` or no more
    common among errors are left out; the rest are ranked by p (which weighs the lift by its
    support), then lift, then alphabetically, so the result is stable.
    """
    n_all, n_err = len(texts), int(sum(is_error))
    if n_err == 0 or n_err == n_all:
        return []
    all_counts: Counter[str] = Counter()
    err_counts: Counter[str] = Counter()
    for text, wrong in zip(texts, is_error, strict=True):
        ws = words(text)
        all_counts.update(ws)
        if wrong:
            err_counts.update(ws)
    tested = sorted(w for w, n in all_counts.items() if n >= min_support)
    if not tested:
        return []
    k = np.array([err_counts[w] for w in tested])
    n = np.array([all_counts[w] for w in tested])
    p = hypergeom.sf(k - 1, n_all, n_err, n)
    q = _bh(p)
    rows = [WordLift(w, float((k[i] / n_err) / (n[i] / n_all)), int(k[i]), int(n[i]), float(p[i]), float(q[i]))
            for i, w in enumerate(tested) if q[i] <= max_q and k[i] * n_all > n[i] * n_err]
    rows.sort(key=lambda r: (r.p, -r.lift, r.word))
    return rows[:top]


def _bh(p: np.ndarray) -> np.ndarray:
    """Benjamini-Hochberg adjusted p-values (monotone, at most 1)."""
    order = np.argsort(p, kind="stable")
    ranked = p[order] * len(p) / np.arange(1, len(p) + 1)
    adjusted = np.minimum.accumulate(ranked[::-1])[::-1]
    out = np.empty_like(adjusted)
    out[order] = np.minimum(adjusted, 1.0)
    return out


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
