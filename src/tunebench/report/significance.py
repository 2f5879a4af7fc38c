"""Which configurations really differ: per-configuration statistics over seeds and pairwise tests
against the best one, from stored records and test predictions.  Pure functions, no I/O.

A *configuration* (a record's ``group``) is one strategy with its settings; its runs differ only in
their seed.  The best configuration has the highest mean test macro-F1; every other one is
compared with it on the same test examples (paired bootstrap of the difference, McNemar's test),
and is *tied* with it when the difference's interval includes 0 or McNemar's p ≥ 0.05.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from tunebench.results import stats

#: metrics summarised over seeds: record section, key, display name
METRICS = [("test", "macro_f1", "test macro-F1"), ("test", "accuracy", "test accuracy"),
           ("val", "macro_f1", "val macro-F1"), ("test", "weighted_f1", "test weighted F1")]



def compared(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The runs the significance tests compare: every run but the baselines, which are the floor the
    report states beside the ranking, not candidates in it."""
    from tunebench.results.diagnosis import is_baseline

    return [r for r in runs if not is_baseline(r)]

def group_of(record: dict[str, Any]) -> str:
    return record.get("group") or record.get("label") or record["strategy"]


def groups(runs: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Runs by configuration, in study order; within one, by seed."""
    out: dict[str, list[dict[str, Any]]] = {}
    for r in runs:
        out.setdefault(group_of(r), []).append(r)
    return {g: sorted(rs, key=lambda r: r["resolved"]["seed"]) for g, rs in out.items()}


def summaries(runs: list[dict[str, Any]]) -> dict[str, dict[str, stats.Summary]]:
    """For each configuration, each metric of :data:`METRICS` summarised over its seeds."""
    return {g: {f"{part}_{key}": stats.summarize([r[part][key] for r in rs]) for part, key, _ in METRICS}
            for g, rs in groups(runs).items()}


@dataclass(frozen=True)
class Comparison:
    """The best configuration minus ``group``: differences with intervals, McNemar, and the verdict."""

    group: str
    seeds: int
    macro_f1: stats.Difference | None
    accuracy: stats.Difference | None
    mcnemar_p: float | None  # the largest over the paired seeds (conservative)
    tied: bool
    basis: str


def compare_with_best(runs: list[dict[str, Any]], predictions: dict[str, tuple[list[int], list[list[float]]]]
                      ) -> tuple[str, list[Comparison]]:
    """The best configuration (highest mean test macro-F1) and every other one compared with it."""
    by_group = groups(runs)
    summ = summaries(runs)
    best = max(by_group, key=lambda g: (summ[g]["test_macro_f1"].mean, -list(by_group).index(g)))
    out = []
    for g, rs in by_group.items():
        if g == best:
            continue
        out.append(_compare(best, by_group[best], g, rs, predictions, summ))
    return best, out


def _compare(best: str, best_runs: list[dict[str, Any]], group: str, runs: list[dict[str, Any]],
             predictions: dict[str, tuple[list[int], list[list[float]]]],
             summ: dict[str, dict[str, stats.Summary]]) -> Comparison:
    seeds_a = {r["resolved"]["seed"]: r for r in best_runs}
    seeds_b = {r["resolved"]["seed"]: r for r in runs}
    common = sorted(set(seeds_a) & set(seeds_b))
    # the same seeds paired; with no seed in common, the runs in seed order
    pairs = [(seeds_a[s], seeds_b[s]) for s in common] or list(zip(best_runs, runs, strict=False))
    pairs = [(a, b) for a, b in pairs if a["run_id"] in predictions and b["run_id"] in predictions]
    labels = [predictions[a["run_id"]][0] for a, _ in pairs]
    if not pairs or any(lab != labels[0] for lab in labels) or \
            any(predictions[b["run_id"]][0] != labels[0] for _, b in pairs):
        a_ci, b_ci = summ[best]["test_macro_f1"], summ[group]["test_macro_f1"]
        overlap = not (math.isnan(a_ci.low) or math.isnan(b_ci.low)) and a_ci.low <= b_ci.high
        return Comparison(group, len(runs), None, None, None, overlap,
                          "no paired test predictions: seed intervals compared")
    y = np.asarray(labels[0])
    n_classes = len(best_runs[0]["data"]["label_names"])
    pa = [np.asarray(predictions[a["run_id"]][1]).argmax(1) for a, _ in pairs]
    pb = [np.asarray(predictions[b["run_id"]][1]).argmax(1) for _, b in pairs]
    diff = stats.paired_bootstrap(y, pa, pb, n_classes=n_classes)
    p = max(stats.mcnemar(y, a, b).p_value for a, b in zip(pa, pb, strict=True))
    tied = diff["macro_f1"].includes_zero or p >= stats.ALPHA
    basis = f"{len(pairs)} paired seed(s), {len(y):,} test examples"
    return Comparison(group, len(runs), diff["macro_f1"], diff["accuracy"], p, tied, basis)


def tied_with_best(comparisons: list[Comparison]) -> list[str]:
    return [c.group for c in comparisons if c.tied]


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
