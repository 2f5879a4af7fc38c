"""Which differences are real: statistics over seeds and between configurations.

- :func:`summarize`: mean ± standard deviation and a 95% bootstrap confidence interval of a metric
  over a configuration's seeds (scipy's percentile bootstrap);
- :func:`paired_bootstrap`: the difference in accuracy or macro-F1 between two configurations on
  the same test set, with a confidence interval from resampling test examples (and seeds, when
  both configurations ran several): the usual way to compare two classifiers on one test set;
- :func:`mcnemar`: McNemar's test on the examples where exactly one of two classifiers is right
  (exact binomial below 25 such examples, chi-square with continuity correction above).

Everything is seeded, so a report built twice from the same store shows the same intervals.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats as sps

CONFIDENCE = 0.95
N_RESAMPLES = 2000
ALPHA = 0.05


@dataclass(frozen=True)
class Summary:
    """A metric over ``n`` seeds: mean, sample standard deviation and a bootstrap CI (NaN for n < 2)."""

    mean: float
    std: float
    low: float
    high: float
    n: int


def summarize(values: Sequence[float], confidence: float = CONFIDENCE, seed: int = 0) -> Summary:
    """Mean ± std and a percentile-bootstrap confidence interval of the mean of ``values``."""
    x = np.asarray(values, dtype=float)
    if x.size == 0:
        return Summary(math.nan, math.nan, math.nan, math.nan, 0)
    mean = float(x.mean())
    if x.size < 2:
        return Summary(mean, math.nan, math.nan, math.nan, 1)
    std = float(x.std(ddof=1))
    if np.ptp(x) == 0:
        return Summary(mean, std, mean, mean, int(x.size))
    res = sps.bootstrap((x,), np.mean, confidence_level=confidence, n_resamples=N_RESAMPLES, method="percentile",
                        rng=np.random.default_rng(seed))
    return Summary(mean, std, float(res.confidence_interval.low), float(res.confidence_interval.high), int(x.size))


@dataclass(frozen=True)
class Difference:
    """Metric of A minus metric of B on the same test examples, with its bootstrap interval."""

    metric: str
    delta: float
    low: float
    high: float

    @property
    def includes_zero(self) -> bool:
        return self.low <= 0 <= self.high


def macro_f1_weighted(labels: np.ndarray, preds: np.ndarray, weights: np.ndarray, n_classes: int) -> np.ndarray:
    """Macro-F1 for each row of ``weights`` (how often each example is drawn), all at once.

    Classes with no true and no predicted example in a draw score 0, as in
    :func:`tunebench.training.metrics.classification_metrics` (``labels=`` every class, ``zero_division=0``).
    """
    eye = np.eye(n_classes)
    true_1h, pred_1h = eye[labels], eye[preds]
    hit_1h = true_1h * pred_1h
    tp, n_true, n_pred = weights @ hit_1h, weights @ true_1h, weights @ pred_1h
    denom = n_true + n_pred
    f1 = np.divide(2 * tp, denom, out=np.zeros_like(tp), where=denom > 0)
    return f1.mean(axis=1)


def _metric(name: str, labels: np.ndarray, preds: np.ndarray, weights: np.ndarray, n_classes: int) -> np.ndarray:
    if name == "accuracy":
        return weights @ (labels == preds).astype(float) / weights.sum(axis=1)
    if name == "macro_f1":
        return macro_f1_weighted(labels, preds, weights, n_classes)
    raise ValueError(f"unknown metric {name!r}; use accuracy or macro_f1")


def paired_bootstrap(labels: Sequence[int], preds_a: Sequence[Sequence[int]], preds_b: Sequence[Sequence[int]],
                     metrics: Sequence[str] = ("accuracy", "macro_f1"), n_classes: int | None = None,
                     n_resamples: int = N_RESAMPLES, confidence: float = CONFIDENCE, seed: int = 0
                     ) -> dict[str, Difference]:
    """Difference (A − B) in each metric, averaged over seeds, with a paired bootstrap CI.

    ``preds_a`` / ``preds_b``: one prediction vector per seed, paired by position (seed ``i`` of A
    with seed ``i`` of B), all on the same test examples ``labels``.  Each resample draws the test
    examples with replacement (the same draw for A and B: the pairing), and with several seeds also
    draws the seed pairs with replacement, so the interval covers both test-set and seed noise.
    """
    y = np.asarray(labels, dtype=np.int64)
    a = [np.asarray(p, dtype=np.int64) for p in preds_a]
    b = [np.asarray(p, dtype=np.int64) for p in preds_b]
    if not a or len(a) != len(b) or any(len(p) != len(y) for p in a + b):
        raise ValueError("paired_bootstrap needs the same number of seeds for A and B, each predicting every label")
    k = int(n_classes or max(int(y.max()), *(int(p.max()) for p in a + b)) + 1)
    rng = np.random.default_rng(seed)
    n, s = len(y), len(a)
    full = np.ones((1, n))
    seed_draws = rng.integers(0, s, size=(n_resamples, s)) if s > 1 else np.zeros((n_resamples, 1), dtype=int)
    out = {}
    per_seed = {m: np.empty((s, n_resamples)) for m in metrics}
    point = {m: np.empty(s) for m in metrics}
    chunk = max(1, 2_000_000 // max(n, 1))
    for start in range(0, n_resamples, chunk):
        size = min(chunk, n_resamples - start)
        weights = rng.multinomial(n, np.full(n, 1.0 / n), size=size).astype(float)
        for m in metrics:
            for i in range(s):
                per_seed[m][i, start:start + size] = (_metric(m, y, a[i], weights, k) - _metric(m, y, b[i], weights, k))
    tail = (1 - confidence) / 2
    for m in metrics:
        for i in range(s):
            point[m][i] = (_metric(m, y, a[i], full, k) - _metric(m, y, b[i], full, k))[0]
        draws = per_seed[m][seed_draws, np.arange(n_resamples)[:, None]].mean(axis=1)
        low, high = np.quantile(draws, [tail, 1 - tail])
        out[m] = Difference(m, float(point[m].mean()), float(low), float(high))
    return out


@dataclass(frozen=True)
class McNemar:
    """``only_a``: examples only A got right; ``only_b``: only B; ``exact``: binomial test used."""

    only_a: int
    only_b: int
    statistic: float
    p_value: float
    exact: bool


def mcnemar(labels: Sequence[int], preds_a: Sequence[int], preds_b: Sequence[int], exact_below: int = 25) -> McNemar:
    """McNemar's test of equal accuracy for two classifiers on the same examples.

    Exact two-sided binomial test on the discordant pairs when there are fewer than
    ``exact_below`` of them; otherwise the chi-square statistic with continuity correction
    (1 degree of freedom).  Identical predictions give p = 1.
    """
    y, a, b = (np.asarray(v) for v in (labels, preds_a, preds_b))
    right_a, right_b = a == y, b == y
    only_a = int(np.sum(right_a & ~right_b))
    only_b = int(np.sum(~right_a & right_b))
    n = only_a + only_b
    if n == 0:
        return McNemar(only_a, only_b, 0.0, 1.0, True)
    if n < exact_below:
        p = sps.binomtest(min(only_a, only_b), n, 0.5).pvalue
        return McNemar(only_a, only_b, float(min(only_a, only_b)), float(min(p, 1.0)), True)
    stat = (abs(only_a - only_b) - 1) ** 2 / n
    return McNemar(only_a, only_b, float(stat), float(sps.chi2.sf(stat, 1)), False)
