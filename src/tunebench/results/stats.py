"""Which differences are real: statistics over seeds and between configurations.

A verdict is a claim about *methods*, not about one pair of trained models, so its noise has two
sources: the seeds (initialisation, data order; and training-subset draws when a study has them) and
the test examples.  Everything here is plain numpy and scipy; every function is seeded, so a
report built twice from the same store shows the same numbers.

- :func:`summarize`: a metric over a configuration's seeds — mean, standard deviation and a
  t-based 95 % interval of the mean (n − 1 degrees of freedom).  A percentile bootstrap of the mean
  of three values is about [min, max] and covers the true mean about 75 % of the time; the t
  interval covers it 95 % of the time when the seeds' scores are roughly normal.
- :func:`paired_test`: configuration A minus configuration B on the same test examples, on one
  metric (:data:`METRICS`), as a two-level comparison:

  * the *seed level*: the per-seed paired differences ``d_i`` (A and B trained with seed ``i``, or A's
    seeds against one seed-free reference such as a baseline); their variance over seeds, divided by
    the number of seeds, with ``n − 1`` degrees of freedom;
  * the *test-example level*: the variance of the mean difference over a paired bootstrap of the test
    examples (one draw of examples shared by every seed of A and B: the pairing);

  the two variances are added and the degrees of freedom combined by Welch–Satterthwaite (the
  bootstrap part counted as exactly known).  The seed variance already holds some test-example noise
  (the seed × example interaction), so the sum counts that part twice: slightly conservative.  A fully
  resampled hierarchical bootstrap (seeds, then examples) was not used because with 3 seeds it
  resamples from 3 values, the same under-coverage :func:`summarize` avoids.
  From the combined standard error: a two-sided t test of "no difference", a 95 % interval, and two
  one-sided tests (TOST) of "the difference lies within ±margin" (equivalence).
- :func:`holm`: Holm–Bonferroni adjusted p-values for a family of comparisons.
- :func:`outcome`: *better*, *worse*, *equivalent* or *inconclusive* from a test and its adjusted
  p-values.  With one seed on a trained side there is no seed variance to measure: the test speaks
  for that seed only, and the outcome is never more than *inconclusive*.
- :func:`settle`: roughly how many seeds (or test examples) an inconclusive comparison needs.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats as sps

from tunebench.spec import metrics as table

CONFIDENCE = 0.95
N_RESAMPLES = 2000
ALPHA = 0.05
#: the default equivalence margin: ±1 point of the metric (0.01 on a 0–1 scale)
MARGIN = 0.01
#: power assumed when :func:`settle` estimates what would settle a comparison
POWER = 0.8


@dataclass(frozen=True)
class Summary:
    """A metric over ``n`` seeds: mean, sample standard deviation and a t-based CI (NaN for n < 2)."""

    mean: float
    std: float
    low: float
    high: float
    n: int


def summarize(values: Sequence[float], confidence: float = CONFIDENCE) -> Summary:
    """Mean ± standard deviation and the t interval of the mean of ``values`` (one per seed)."""
    x = np.asarray(values, dtype=float)
    if x.size == 0:
        return Summary(math.nan, math.nan, math.nan, math.nan, 0)
    mean = float(x.mean())
    if x.size < 2:
        return Summary(mean, math.nan, math.nan, math.nan, 1)
    std = float(x.std(ddof=1))
    half = float(sps.t.ppf(0.5 + confidence / 2, x.size - 1)) * std / math.sqrt(x.size)
    return Summary(mean, std, mean - half, mean + half, int(x.size))


# --- metrics on weighted draws of the test examples -------------------------------------------------

def _indicators(ids: np.ndarray, n_classes: int) -> np.ndarray:
    """Class ids as one-hot rows; multi-label 0/1 rows (2-D) as they are."""
    return ids if ids.ndim == 2 else np.eye(n_classes)[ids]


def _f1_per_class(labels: np.ndarray, preds: np.ndarray, weights: np.ndarray, n_classes: int) -> tuple[np.ndarray, ...]:
    true_1h, pred_1h = _indicators(labels, n_classes), _indicators(preds, n_classes)
    tp, n_true, n_pred = weights @ (true_1h * pred_1h), weights @ true_1h, weights @ pred_1h
    denom = n_true + n_pred
    return np.divide(2 * tp, denom, out=np.zeros_like(tp), where=denom > 0), n_true


def _accuracy(labels, preds, weights, classes, n_classes):
    right = labels == preds if labels.ndim == 1 else (labels == preds).all(axis=1)  # multi-label: subset accuracy
    return weights @ right.astype(float) / weights.sum(axis=1)


def _macro_f1(labels, preds, weights, classes, n_classes):
    f1, _ = _f1_per_class(labels, preds, weights, n_classes)
    return f1[:, classes].mean(axis=1)


def _weighted_f1(labels, preds, weights, classes, n_classes):
    f1, support = _f1_per_class(labels, preds, weights, n_classes)
    return (f1 * support).sum(axis=1) / support.sum(axis=1)


def _weighted_moments(labels, preds, weights):
    """Per draw (row of ``weights``): the weighted means of y and p and the weighted sums of squares about them."""
    w = weights.sum(axis=1)
    my, mp = weights @ labels / w, weights @ preds / w
    syy = weights @ labels ** 2 - w * my ** 2
    spp = weights @ preds ** 2 - w * mp ** 2
    syp = weights @ (labels * preds) - w * my * mp
    return syy, spp, syp


def _r2(labels, preds, weights, classes, n_classes):
    sse = weights @ (labels - preds) ** 2
    syy, _, _ = _weighted_moments(labels, preds, weights)
    return 1 - np.divide(sse, syy, out=np.full_like(sse, np.inf), where=syy > 0)


def _pearson(labels, preds, weights, classes, n_classes):
    syy, spp, syp = _weighted_moments(labels, preds, weights)
    denom = np.sqrt(np.clip(syy, 0, None) * np.clip(spp, 0, None))
    return np.divide(syp, denom, out=np.zeros_like(syp), where=denom > 0)


def _micro_f1(labels, preds, weights, classes, n_classes):
    true_1h, pred_1h = _indicators(labels, n_classes), _indicators(preds, n_classes)
    tp = (weights @ (true_1h * pred_1h)).sum(axis=1)
    denom = (weights @ true_1h).sum(axis=1) + (weights @ pred_1h).sum(axis=1)
    return np.divide(2 * tp, denom, out=np.zeros_like(tp), where=denom > 0)


#: each metric of the table (:mod:`tunebench.spec.metrics`) that can select, on weighted draws:
#: name -> f(labels, preds, weights, classes, n_classes).  Each computes the metric for every row of
#: ``weights`` (how often each test example is drawn) at once; macro-F1 averages over ``classes``, the
#: classes present in the test split (see training.metrics).  ``labels``/``preds``: class ids, or multi-label
#: 0/1 rows (one column per label), for which accuracy is subset accuracy; a regression's R² and Pearson r take the
#: targets and predictions as numbers (weighted sums of squares: a draw's R² is 1 - its SSE / its SST about its mean).
ON_DRAWS: dict[str, Callable[..., np.ndarray]] = {"accuracy": _accuracy, "macro_f1": _macro_f1,
                                                  "weighted_f1": _weighted_f1, "micro_f1": _micro_f1,
                                                  "r2": _r2, "pearson": _pearson}
#: the metrics a verdict can be drawn on: the table's rows that can select (each must have its function above)
METRICS: dict[str, Callable[..., np.ndarray]] = {name: ON_DRAWS[name] for name in table.names(can_select=True)}


def _classes(labels: np.ndarray, preds: Sequence[np.ndarray], n_classes: int | None) -> tuple[int, np.ndarray]:
    """The number of classes (labels) and the ones present in ``labels``: the columns macro-F1 averages over."""
    if labels.dtype.kind == "f" and labels.ndim == 1:  # a regression: no classes
        return 1, np.zeros(0, dtype=np.int64)
    if labels.ndim == 2:
        return labels.shape[1], np.flatnonzero(labels.sum(axis=0) > 0)
    return int(n_classes or max(int(labels.max()), *(int(p.max()) for p in preds)) + 1), np.unique(labels)


def margin_text(margin: float) -> str:
    """``0.01`` -> ``±1 point``, ``0.02`` -> ``±2 points`` (a margin on the 0–1 scale, in points)."""
    value = 100 * margin
    return f"±{value:g} point" + ("" if value == 1 else "s")


def metric_name(metric: str) -> str:
    """``macro_f1`` -> ``macro-F1`` (the words a report uses: the table's)."""
    return table.display(metric)


def weighted_metric(metric: str, labels: np.ndarray, preds: np.ndarray, weights: np.ndarray,
                    classes: np.ndarray | None = None, n_classes: int | None = None) -> np.ndarray:
    """``metric`` of ``preds`` against ``labels`` for each row of ``weights`` (a draw of the test examples)."""
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}; use one of {', '.join(METRICS)}")
    k, present = _classes(labels, [preds], n_classes)
    classes = present if classes is None else np.asarray(classes)
    return METRICS[metric](labels, preds, weights, classes, k)


# --- the two-level paired comparison ------------------------------------------------------------------

@dataclass(frozen=True)
class PairedTest:
    """A minus B on ``metric``: the mean paired difference, its standard error and what follows from it.

    ``seed_variance``: the seed-level part of the squared standard error (0 with one seed pair);
    ``test_variance``: the test-example part (paired bootstrap); ``df``: Welch–Satterthwaite degrees
    of freedom (inf when the seed part is 0); ``p_value``: two-sided, "no difference";
    ``p_equivalence``: TOST, "the difference is at least ``margin`` in size" (small: equivalent).
    ``seeds``: paired seeds; ``seed_level``: whether both trained sides had at least two seeds, so the
    test is about the methods and not about one seed's models.
    """

    metric: str
    delta: float
    se: float
    df: float
    low: float
    high: float
    p_value: float
    p_equivalence: float
    margin: float
    seeds: int
    test_examples: int
    seed_variance: float
    test_variance: float
    seed_level: bool
    n_resamples: int

    @property
    def basis(self) -> str:
        """"two-level test over 3 seeds × 1,000 test examples, macro-F1" (or "this seed only")."""
        what = metric_name(self.metric)
        if not self.seed_level:
            return (f"test-set noise only ({self.test_examples:,} test examples, paired bootstrap, {what}): "
                    "speaks for this seed only")
        return (f"two-level test over {self.seeds} seeds × {self.test_examples:,} test examples (seed variance, t; "
                f"test-example variance, paired bootstrap of {self.n_resamples:,}), {what}")


def test_draws(n: int, n_resamples: int = N_RESAMPLES, seed: int = 0) -> np.ndarray:
    """``n_resamples`` bootstrap draws of ``n`` test examples, as counts: row ``b``, column ``i`` is how often
    example ``i`` is in draw ``b``.  One set serves every comparison of a family (common random numbers)."""
    rng = np.random.default_rng(seed)
    out = np.empty((n_resamples, n))
    rows = max(1, 1_000_000 // max(n, 1))
    for start in range(0, n_resamples, rows):
        size = min(rows, n_resamples - start)
        idx = rng.integers(0, n, size=(size, n)) + n * np.arange(size)[:, None]
        out[start:start + size] = np.bincount(idx.ravel(), minlength=size * n).reshape(size, n)
    return out


def paired_test(labels: Sequence[int], preds_a: Sequence[Sequence[int]], preds_b: Sequence[Sequence[int]],
                metric: str = "macro_f1", margin: float = MARGIN, n_classes: int | None = None,
                n_resamples: int = N_RESAMPLES, confidence: float = CONFIDENCE, seed: int = 0,
                seed_free_b: bool = False, draws: np.ndarray | None = None) -> PairedTest:
    """The two-level comparison of A and B (see the module docstring) on the same test examples ``labels``.

    ``preds_a`` / ``preds_b``: one prediction vector per seed, paired by position.  A side with a single
    vector against several on the other is paired with each of them: right for a seed-free reference
    (``seed_free_b``: B is a baseline whose fit does not depend on the seed, so it adds no seed noise);
    otherwise that side's seed noise is unmeasured and the test is not ``seed_level``.  ``draws``: the
    bootstrap draws of the test examples (:func:`test_draws`; None: drawn here from ``seed``).
    """
    y = np.asarray(labels)
    # a regression's targets (numbers, one per example) and predictions stay numbers; 0/1 rows are counts
    kind = np.float64 if y.dtype.kind == "f" and y.ndim == 1 else np.int64
    y = y.astype(kind)
    a = [np.asarray(p, dtype=kind) for p in preds_a]
    b = [np.asarray(p, dtype=kind) for p in preds_b]
    if not a or not b or (len(a) != len(b) and 1 not in (len(a), len(b))) or any(len(p) != len(y) for p in a + b):
        raise ValueError("paired_test needs the same number of seeds for A and B (or one for either), "
                         "each predicting every label")
    s = max(len(a), len(b))
    a, b = a * (s // len(a)), b * (s // len(b))
    seed_level = s >= 2 and (len(preds_b) == s or seed_free_b) and len(preds_a) == s
    k, classes = _classes(y, a + b, n_classes)
    n = len(y)
    weights = test_draws(n, n_resamples, seed) if draws is None else draws
    both = np.vstack([np.ones((1, n)), weights])  # row 0: the test split itself
    per_seed = np.array([weighted_metric(metric, y, pa, both, classes, k) - weighted_metric(metric, y, pb, both, classes, k)
                         for pa, pb in zip(a, b, strict=True)])
    diffs, d = per_seed.mean(axis=0), per_seed[:, 0]  # the mean difference in every draw; each seed's on the split
    test_var = float(diffs[1:].var(ddof=1)) if len(weights) > 1 else 0.0
    seed_var = float(d.var(ddof=1) / s) if s >= 2 else 0.0
    return _from_variances(metric, float(diffs[0]), seed_var, test_var, s, n, margin, confidence, seed_level,
                           len(weights))


def _from_variances(metric: str, delta: float, seed_var: float, test_var: float, s: int, n: int, margin: float,
                    confidence: float, seed_level: bool, n_resamples: int) -> PairedTest:
    se = math.sqrt(seed_var + test_var)
    # Welch–Satterthwaite: the seed part has s - 1 degrees of freedom, the bootstrap part is taken as known
    df = math.inf if seed_var <= 0 or s < 2 else (seed_var + test_var) ** 2 / (seed_var ** 2 / (s - 1))
    if se == 0:  # identical predictions in every seed and every draw
        p, p_eq = (1.0, 0.0) if delta == 0 else (0.0, 0.0 if abs(delta) < margin else 1.0)
        return PairedTest(metric, delta, 0.0, df, delta, delta, p, p_eq, margin, s, n, seed_var, test_var, seed_level,
                          n_resamples)
    t = sps.t if math.isfinite(df) else sps.norm
    args = (df,) if math.isfinite(df) else ()
    p = float(min(1.0, 2 * t.sf(abs(delta) / se, *args)))
    p_eq = float(max(t.sf((delta + margin) / se, *args), t.sf((margin - delta) / se, *args)))
    half = float(t.ppf(0.5 + confidence / 2, *args)) * se
    return PairedTest(metric, delta, se, df, delta - half, delta + half, p, p_eq, margin, s, n, seed_var, test_var,
                      seed_level, n_resamples)


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm–Bonferroni adjusted p-values, in the order given: the i-th smallest times (m − i + 1), made
    monotone, capped at 1.  Written here rather than taken from statsmodels' ``multipletests`` (which
    tests/test_stats.py checks it against) because that function runs ``gc.collect()`` on every Holm
    call: 0.1–1 s each in a process that holds a model, and a report or a simulation calls it often."""
    p = np.asarray(p_values, dtype=float)
    if not p.size:
        return []
    order = np.argsort(p, kind="stable")
    scaled = np.minimum(1.0, np.maximum.accumulate(p[order] * np.arange(p.size, 0, -1)))
    out = np.empty_like(p)
    out[order] = scaled
    return [float(v) for v in out]


#: the four outcomes of a comparison, in the words the report prints
OUTCOMES = ("better", "worse", "equivalent", "inconclusive")


def outcome(test: PairedTest, p_adjusted: float, p_equivalence_adjusted: float, alpha: float = ALPHA) -> str:
    """A against B: *equivalent* when TOST shows the difference lies within ±margin (adjusted p < alpha);
    else *better* / *worse* when the difference test does; else *inconclusive*.  Without seed-level
    evidence (one seed on a trained side) always *inconclusive*: a test-set p-value speaks for that seed."""
    if not test.seed_level:
        return "inconclusive"
    if p_equivalence_adjusted < alpha:
        return "equivalent"
    if p_adjusted < alpha:
        return "better" if test.delta > 0 else "worse"
    return "inconclusive"


def settle(test: PairedTest, alpha: float = ALPHA, power: float = POWER) -> str:
    """Roughly what would settle an inconclusive comparison: seeds, or test examples, for ``power`` at ``alpha``.

    Normal approximation: to show a difference of the observed size |Δ| (when |Δ| ≥ margin / 2) the
    standard error must fall to |Δ| / (z(1 − α/2) + z(power)); to show equivalence (|Δ| < margin / 2)
    to (margin − |Δ|) / (z(1 − α) + z(power)).  The seed part shrinks with more seeds, the test part with
    more test examples.  Holm's correction is not included, so it is a lower bound for a family."""
    if not test.seed_level:
        return "at least 2 seeds per configuration (3 or more to measure seed noise)"
    size = abs(test.delta)
    showing_difference = size >= test.margin / 2
    z_power = sps.norm.ppf(power)
    target = (size / (sps.norm.ppf(1 - alpha / 2) + z_power) if showing_difference
              else (test.margin - size) / (sps.norm.ppf(1 - alpha) + z_power))
    what = (f"a difference of {100 * size:.1f} points" if showing_difference
            else f"equivalence within {margin_text(test.margin)}")
    if target <= 0:
        return f"no feasible number: {what} cannot be shown"
    seed_total = test.seed_variance * test.seeds  # the variance of one seed's difference
    budget = target ** 2 - test.test_variance
    if budget > 0 and seed_total > 0:
        seeds = max(test.seeds + 1, math.ceil(seed_total / budget))
        if seeds <= 100:
            return f"about {seeds} seeds for {what} ({100 * power:.0f} % power, α = {alpha:g})"
    budget = target ** 2 - test.seed_variance
    if budget <= 0 or test.test_variance <= 0:
        return f"more seeds and more test examples for {what}"
    factor = test.test_variance / budget
    return (f"about {math.ceil(factor * test.test_examples):,} test examples for {what} "
            f"({100 * power:.0f} % power, α = {alpha:g})")
