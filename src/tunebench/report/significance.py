"""Which configurations really differ: per-configuration statistics over seeds and the family of
comparisons a report makes, from stored records and test predictions.  Pure functions, no I/O.

A *configuration* (a record's ``group``) is one strategy with its settings; its runs differ only in
their seed.  The test split decides nothing but the final scores, so the *reference* every other
configuration is compared with is the one with the highest mean **validation** score among the
candidates (the configurations that converged); each other fine-tuning configuration is compared
with it on the test examples, and each is compared with the *floor* (the best baseline, also chosen
on validation).  Every comparison is :func:`tunebench.results.stats.paired_test` on the verdict's
metric; the family's p-values are Holm-corrected together, and each comparison ends in one of four
outcomes (:func:`tunebench.results.stats.outcome`): better, worse, equivalent (within ±margin),
inconclusive.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tunebench.results import stats
from tunebench.results.decisions import record_predictions, task_of
from tunebench.results.outputs import seed_metrics


def compared(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The fine-tuning runs (every run but the baselines, which are the floor, not candidates)."""
    from tunebench.results.diagnosis import is_baseline

    return [r for r in runs if not is_baseline(r)]


def group_of(record: dict[str, Any]) -> str:
    return record.get("group") or record.get("label") or record["strategy"]


def groups(runs: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Runs by configuration, in study order; within one, by seed."""
    out: dict[str, list[dict[str, Any]]] = {}
    for r in runs:
        out.setdefault(group_of(r), []).append(r)
    return {g: sorted(rs, key=lambda r: r["resolved"].get("seed") or 0) for g, rs in out.items()}


def summaries(runs: list[dict[str, Any]]) -> dict[str, dict[str, stats.Summary]]:
    """For each configuration, each metric of :func:`~tunebench.results.outputs.seed_metrics` (from the metric
    table) summarised over its seeds (t intervals): ``{"test_macro_f1": Summary, ...}``."""
    task = task_of(runs)
    return {g: {f"{part}_{key}": stats.summarize([r[part][key] for r in rs]) for part, key in seed_metrics(task)}
            for g, rs in groups(runs).items()}


@dataclass(frozen=True)
class Comparison:
    """``group`` minus ``against`` on the family's metric: the test, its Holm-adjusted p-values, the outcome.

    ``test`` is None when the two have no paired test predictions (``note`` says why); ``settle``: for an
    inconclusive outcome, roughly what would settle it."""

    group: str
    against: str
    test: stats.PairedTest | None
    p_adjusted: float | None = None
    p_equivalence_adjusted: float | None = None
    outcome: str = "inconclusive"
    note: str = ""
    settle: str = ""


@dataclass
class Family:
    """Every comparison one report makes, corrected together (Holm) at ``alpha``.

    ``reference``: the candidate with the highest mean validation score (None: no candidate);
    ``floor``: the baseline with the highest validation score (None: no baseline ran);
    ``comparisons``: each other fine-tuning configuration against the reference;
    ``floors``: each fine-tuning configuration against the floor."""

    metric: str
    margin: float
    alpha: float
    reference: str | None
    floor: str | None
    comparisons: list[Comparison] = field(default_factory=list)
    floors: list[Comparison] = field(default_factory=list)

    @property
    def size(self) -> int:
        """How many hypotheses the Holm correction covers (comparisons with seed-level evidence)."""
        return sum(1 for c in self.comparisons + self.floors if c.test is not None and c.test.seed_level)

    def against_reference(self, group: str) -> Comparison | None:
        return next((c for c in self.comparisons if c.group == group), None)

    def against_floor(self, group: str) -> Comparison | None:
        return next((c for c in self.floors if c.group == group), None)

    def equivalent(self) -> list[str]:
        """The reference and the configurations shown equivalent to it (reference first)."""
        if self.reference is None:
            return []
        return [self.reference] + [c.group for c in self.comparisons if c.outcome == "equivalent"]

    def outcomes(self) -> dict[str, str]:
        return {c.group: c.outcome for c in self.comparisons}

    @property
    def bases(self) -> list[str]:
        return sorted({c.test.basis for c in self.comparisons + self.floors if c.test is not None})


def family(runs: list[dict[str, Any]], predictions: dict[str, tuple[list[int], list[list[float]]]],
           candidates: list[str] | None = None, metric: str = "macro_f1", margin: float = stats.MARGIN,
           alpha: float = stats.ALPHA, n_resamples: int = stats.N_RESAMPLES) -> Family:
    """The report's family of comparisons over ``runs`` (baselines included: they are the floor).

    ``candidates``: the configurations the reference may be chosen from (the converged ones; None: every
    fine-tuning configuration)."""
    from tunebench.results.diagnosis import is_baseline

    tuned = groups(compared(runs))
    base = groups([r for r in runs if is_baseline(r)])
    pool = [g for g in tuned if candidates is None or g in candidates]
    reference = _best_on_validation(tuned, pool, metric)
    floor = _best_on_validation(base, list(base), metric)
    out = Family(metric, margin, alpha, reference, floor)
    draws: dict[int, np.ndarray] = {}  # one set of test-example draws for the whole family (common random numbers)
    for g, rs in tuned.items():
        if reference is not None and g != reference:
            out.comparisons.append(_compare(g, rs, reference, tuned[reference], predictions, metric, margin,
                                            n_resamples, False, draws))
        if floor is not None:
            # a floor fitted once is seed-free; one fitted per draw of the training subset (data.data_seeds)
            # pairs with each seed's runs like any configuration
            out.floors.append(_compare(g, rs, floor, base[floor], predictions, metric, margin, n_resamples,
                                       len(base[floor]) == 1, draws))
    _correct(out)
    return out


def _best_on_validation(by_group: dict[str, list[dict[str, Any]]], pool: list[str], metric: str) -> str | None:
    if not pool:
        return None
    mean = {g: float(np.mean([r["val"][metric] for r in by_group[g]])) for g in pool}
    return max(pool, key=lambda g: (mean[g], -pool.index(g)))


def _compare(group: str, runs: list[dict[str, Any]], against: str, others: list[dict[str, Any]],
             predictions: dict[str, tuple[list[int], list[list[float]]]], metric: str, margin: float,
             n_resamples: int, seed_free: bool, draws: dict[int, np.ndarray]) -> Comparison:
    """``group`` minus ``against``, its seeds paired with the same seeds of ``against`` (a baseline,
    ``seed_free``, pairs with every seed; with no seed in common, the runs in seed order)."""
    mine = [r for r in runs if r["run_id"] in predictions]
    theirs = [r for r in others if r["run_id"] in predictions]
    if not mine or not theirs:
        return Comparison(group, against, None, note="no stored test predictions to pair")
    if seed_free:
        a, b = mine, theirs[:1]
    else:
        by_seed = {r["resolved"].get("seed"): r for r in theirs}
        common = [r for r in mine if r["resolved"].get("seed") in by_seed]
        pairs = [(r, by_seed[r["resolved"].get("seed")]) for r in common] or list(zip(mine, theirs, strict=False))
        a, b = [p for p, _ in pairs], [q for _, q in pairs]
    labels = predictions[a[0]["run_id"]][0]
    if any(predictions[r["run_id"]][0] != labels for r in a + b):
        return Comparison(group, against, None, note="their test examples differ: no paired test")
    n_classes = len(a[0]["data"]["label_names"])
    pa = [record_predictions(r, predictions[r["run_id"]][1]) for r in a]  # multi-label: at each run's thresholds
    pb = [record_predictions(r, predictions[r["run_id"]][1]) for r in b]
    if len(labels) not in draws:
        draws[len(labels)] = stats.test_draws(len(labels), n_resamples)
    test = stats.paired_test(labels, pa, pb, metric=metric, margin=margin, n_classes=n_classes,
                             seed_free_b=seed_free, draws=draws[len(labels)])
    return Comparison(group, against, test)


def _correct(fam: Family) -> None:
    """Holm over the family's seed-level comparisons (difference and equivalence p-values each), then outcomes."""
    every = fam.comparisons + fam.floors
    tested = [i for i, c in enumerate(every) if c.test is not None and c.test.seed_level]
    p_diff = stats.holm([every[i].test.p_value for i in tested])
    p_eq = stats.holm([every[i].test.p_equivalence for i in tested])
    adjusted = {i: (p_diff[j], p_eq[j]) for j, i in enumerate(tested)}
    done = []
    for i, c in enumerate(every):
        if c.test is None:
            done.append(c)
            continue
        pd_, pe = adjusted.get(i, (None, None))
        result = stats.outcome(c.test, pd_ if pd_ is not None else 1.0, pe if pe is not None else 1.0, fam.alpha)
        note = c.note or ("" if c.test.seed_level else "one seed: the test speaks for this seed's models only")
        done.append(Comparison(c.group, c.against, c.test, pd_, pe, result, note,
                               stats.settle(c.test, fam.alpha) if result == "inconclusive" else ""))
    fam.comparisons, fam.floors = done[:len(fam.comparisons)], done[len(fam.comparisons):]


def fmt_summary(s: stats.Summary, digits: int = 3) -> str:
    """``0.812 ± 0.010`` (or just the mean for one seed)."""
    if s.n < 2:
        return f"{s.mean:.{digits}f}"
    return f"{s.mean:.{digits}f} ± {s.std:.{digits}f}"


def fmt_interval(low: float, high: float, digits: int = 3, signed: bool = False) -> str:
    if math.isnan(low):
        return "—"
    f = f"+.{digits}f" if signed else f".{digits}f"
    return f"[{low:{f}}, {high:{f}}]"


def fmt_p(p: float | None) -> str:
    """A p-value as a report prints it (``< 0.001`` below that; ``—`` when there is none)."""
    if p is None or (isinstance(p, float) and math.isnan(p)):
        return "—"
    return "< 0.001" if p < 0.001 else f"{p:.3f}"
