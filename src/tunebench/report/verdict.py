"""The verdict, computed in one place for the report and the Python API (``tb.Study.run().recommendation``).

The configuration frame (one row per configuration, the mean over its seeds, baselines as reference
rows), the family of comparisons (:func:`tunebench.report.significance.family`: each configuration
against the reference chosen on validation, each against the baseline floor, Holm-corrected), and the
picks and caveats that follow.  Both callers read the same :class:`~tunebench.report.inputs.ReportInputs`,
so they cannot disagree.

The rule, in order:

1. No fine-tuning configuration is *better* than the floor, and every one is *worse* or *equivalent*
   (or, without seed-level evidence, scores no higher): the cheapest baseline is the answer.
2. A converged configuration *better* than the reference: the best of those (by mean test score).
3. A still-improving (not collapsed) configuration *better* than the reference: the provisional answer.
4. Otherwise the cheapest of the reference and the converged configurations shown *equivalent* to it
   (two one-sided tests within ±margin).  *Inconclusive* ones are never picked as cheaper substitutes;
   the sentence says what would settle them.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from tunebench.report import significance
from tunebench.report.analysis import (
    baseline_mask,
    caveats,
    flags_of,
    headline_frame,
    not_ranked,
    seed_means,
    unrankable_mask,
)
from tunebench.report.inputs import ReportInputs
from tunebench.results.decisions import task_of
from tunebench.results.stats import margin_text, metric_name
from tunebench.spec import metrics


def configuration_frame(inputs: ReportInputs, prices: dict[str, float]) -> pd.DataFrame:
    """The headline frame: one row per configuration; with several seeds, the mean over them."""
    frame = headline_frame(inputs.records, prices)
    if inputs.repeated:
        frame = seed_means(frame, headline_frame(inputs.runs, prices), [significance.group_of(r) for r in inputs.runs])
    return frame


def comparison_family(inputs: ReportInputs, frame: pd.DataFrame) -> significance.Family | None:
    """The report's family of comparisons (None: no fine-tuning configuration ran); computed once per inputs."""
    key = ("family", inputs.metric, inputs.margin, inputs.alpha)
    if key not in inputs.cache:
        runs = inputs.runs or inputs.records
        tuned = frame[~baseline_mask(frame)]
        candidates = tuned[~unrankable_mask(tuned)]["strategy"].tolist()
        inputs.cache[key] = (significance.family(runs, inputs.predictions, candidates, inputs.metric, inputs.margin,
                                                 inputs.alpha) if len(tuned) else None)
    return inputs.cache[key]


@dataclass
class Verdict:
    """The family of comparisons (None: nothing to compare), the picks and the caveats."""

    family: significance.Family | None
    picks: list[str]
    caveats: list[str]

    @property
    def equivalent(self) -> list[str]:
        """The reference and the configurations shown equivalent to it (reference first)."""
        return self.family.equivalent() if self.family is not None else []


def verdict(inputs: ReportInputs, frame: pd.DataFrame) -> Verdict:
    """The recommendation of ``inputs`` over its configuration ``frame`` (:func:`configuration_frame`)."""
    fam = comparison_family(inputs, frame)
    picks, notes = recommendation(frame, inputs.records, fam, tuned=bool(inputs.tuning))
    return Verdict(fam, picks, notes)


def delta_text(c: significance.Comparison) -> str:
    """"Δ −0.012 [−0.030, +0.006], Holm p = 0.210" (the test's numbers in one phrase)."""
    if c.test is None:
        return c.note
    t = c.test
    text = f"Δ {t.delta:+.3f} {significance.fmt_interval(t.low, t.high, signed=True)}"
    if c.p_adjusted is None:
        return text + f", test-set p {_eq(t.p_value)} (this seed only)"
    if c.outcome == "equivalent":
        return text + f", TOST Holm p {_eq(c.p_equivalence_adjusted)}"
    return text + f", Holm p {_eq(c.p_adjusted)}"


def _eq(p: float | None) -> str:
    """"= 0.210" or "< 0.001" (never "= < 0.001")."""
    shown = significance.fmt_p(p)
    return shown if shown.startswith("<") else f"= {shown}"


def recommendation(frame: pd.DataFrame, records: list[dict], fam: significance.Family | None = None,
                   tuned: bool = False) -> tuple[list[str], list[str]]:
    """Plain-word picks and caveats from the configuration ``frame`` and the family of comparisons ``fam``.

    Baseline rows are the floor, never picked unless no fine-tuning clears them; a collapsed or
    still-improving row is never ranked as beaten (its sentence says what to do instead).  ``tuned``:
    the learning rates came from tuning.  Without ``fam`` (nothing compared) only point estimates."""
    metric = fam.metric if fam is not None else metrics.default_for(task_of(records))
    col, name = f"test_{metric}", metric_name(metric)
    base, bad = baseline_mask(frame), unrankable_mask(frame)
    finetuned, ranked = frame[~base], frame[~base & ~bad]
    picks: list[str] = []
    fallback = baseline_pick(frame, finetuned, fam, col, name)
    if fallback is not None:
        picks.append(fallback)
    if ranked.empty:
        if fallback is None:
            cleared = [c.group for c in (fam.floors if fam else []) if c.outcome == "better"]
            extra = (f" Already better than the baseline floor ({fam.floor}) on test {name}: {', '.join(cleared)}; "
                     "fine-tuning is worth it here." if cleared else "")
            picks.append("No verdict: every fine-tuning strategy was flagged (collapsed or still improving), so none "
                         "can be called better or worse than another yet." + extra)
        return picks + not_ranked(frame), caveats(frame, records, tuned)
    top = ranked.loc[ranked[col].idxmax()]
    among = " among the strategies that converged" if bad.any() else ""
    second = (f"accuracy {top['test_accuracy']:.3f}" if "test_accuracy" in top else  # a regression: RMSE
              f"RMSE {top['test_rmse']:.4g}")
    picks.append(f"Highest mean test {name}{among}: {top['strategy']} (test {name} {top[col]:.3f}, {second}).")
    if fallback is None and fam is not None and fam.reference is not None:
        picks.append(_answer(frame, ranked, finetuned, fam, col, name))
    fast = finetuned.loc[finetuned["train_time_s"].idxmin()]
    picks.append(f"Fastest to train: {fast['strategy']} ({fast['train_time_s']:.1f} s, "
                 f"{fast['examples_per_s']:.1f} examples/s).")
    column = "train_memory_mb" if "train_memory_mb" in finetuned else "peak_memory_mb"
    mem = pd.to_numeric(finetuned[column], errors="coerce")
    if mem.notna().any():
        low = finetuned.loc[mem.idxmin()]
        what = "its own peak memory" if column == "train_memory_mb" else "peak"
        picks.append(f"Least memory: {low['strategy']} ({what} {low[column]:.0f} MB).")
    floor = floor_line(frame, fam, col, name)
    if floor is not None:
        picks.append(floor)
    return picks + not_ranked(frame), caveats(frame, records, tuned)


def _answer(frame: pd.DataFrame, ranked: pd.DataFrame, finetuned: pd.DataFrame, fam: significance.Family,
            col: str, name: str) -> str:
    """The "Recommended: …" sentence (rules 2–4 of the module docstring)."""
    ref = fam.reference
    converged = set(ranked["strategy"])
    better = [c for c in fam.comparisons if c.outcome == "better" and c.group in converged]
    if better:
        rows = ranked[ranked["strategy"].isin([c.group for c in better])]
        best = rows.loc[rows[col].idxmax()]
        c = fam.against_reference(best["strategy"])
        return (f"Recommended: {best['strategy']} — better on test {name} than {ref}, the best on validation "
                f"({delta_text(c)}; {c.test.basis}).")
    provisional = _provisional(finetuned, fam, col, name)
    if provisional is not None:
        return provisional
    if not any(c.test is not None and c.test.seed_level for c in fam.comparisons):
        others = "" if not fam.comparisons else " no comparison with it is a claim about the methods;"
        return (f"Recommended: {ref} — provisionally: the best on validation {name};{others} one seed per "
                "configuration measures no seed noise — run 3 or more seeds (--seeds 0 1 2) for a verdict.")
    return equivalent_pick(ranked, fam, col, name)


def _provisional(finetuned: pd.DataFrame, fam: significance.Family, col: str, name: str) -> str | None:
    """A still-improving, not collapsed, configuration *better* than the reference: more epochs are likely
    to widen its lead, not close it, so it is the provisional answer rather than an unranked one."""
    for c in fam.comparisons:
        rows = finetuned[finetuned["strategy"] == c.group]
        if c.outcome != "better" or rows.empty:
            continue
        flags = flags_of(rows).iloc[0]
        if "still improving" in flags and "collapsed" not in flags:
            return (f"Recommended: {c.group} — provisionally: it is better on test {name} than {fam.reference}, the "
                    f"best converged configuration on validation ({delta_text(c)}), and still improving, so more "
                    "epochs are likely to widen the gap, not close it; rerun with more epochs to measure it before "
                    "relying on its number.")
    return None


def _cost_column(rows: pd.DataFrame) -> tuple[str, str]:
    if rows["cost_usd"].notna().all() and rows["cost_usd"].min() > 0:
        return "cost_usd", "cheaper to train"
    return "train_time_s", "faster to train"


def equivalent_pick(ranked: pd.DataFrame, fam: significance.Family, col: str, name: str) -> str:
    """The cheapest of the reference and the configurations shown equivalent to it, and what the others are."""
    ref = fam.reference
    equivalent = [g for g in fam.equivalent() if g in set(ranked["strategy"])]
    rows = ranked[ranked["strategy"].isin(equivalent)]
    column, what = _cost_column(rows)
    cheap = rows.loc[rows[column].idxmin()]
    margin = margin_text(fam.margin)
    others = [c for c in fam.comparisons if c.group in set(ranked["strategy"]) and c.outcome == "inconclusive"
              and c.group != cheap["strategy"]]
    unsettled = ("; not shown equivalent or different: " + "; ".join(
        f"{c.group} ({delta_text(c)}; {c.settle} would settle it)" for c in others)) if others else ""
    worse = [c for c in fam.comparisons if c.group in set(ranked["strategy"]) and c.outcome == "worse"]
    unsettled = (f"; worse than {ref}: " + "; ".join(f"{c.group} ({delta_text(c)})" for c in worse)
                 if worse else "") + unsettled
    if cheap["strategy"] == ref:
        if len(rows) > 1:
            names = ", ".join(g for g in equivalent if g != ref)
            return (f"Recommended: {ref} — the best on validation {name}; {names} equivalent to it within {margin} "
                    f"of test {name}, and {ref} is the cheapest of them{unsettled}.")
        return f"Recommended: {ref} — the best on validation {name}; no other configuration is shown equivalent{unsettled}."
    c = fam.against_reference(cheap["strategy"])
    ref_row = ranked[ranked["strategy"] == ref].iloc[0]
    ratio = ref_row[column] / max(cheap[column], 1e-12)
    return (f"Recommended: {cheap['strategy']} — equivalent to {ref}, the best on validation, within {margin} of test "
            f"{name} ({delta_text(c)}), and {ratio:.1f}× {what}{unsettled}.")


def baseline_pick(frame: pd.DataFrame, finetuned: pd.DataFrame, fam: significance.Family | None, col: str,
                  name: str) -> str | None:
    """The cheapest baseline as the answer when fine-tuning does not clear the floor: no configuration is
    *better* than it and every one is *worse* or *equivalent* (or, with no seed-level evidence, none
    scores higher; said to be provisional).  A flagged run better than the floor shows fine-tuning is
    worth it, so it counts too.  None when some fine-tuning clears the floor, or no baseline ran."""
    base = frame[baseline_mask(frame)]
    if base.empty or finetuned.empty:
        return None
    floors = fam.floors if fam is not None else []
    if any(c.outcome == "better" for c in floors):
        return None
    shown = bool(floors) and all(c.outcome in ("worse", "equivalent") for c in floors)
    floor_score = base[col].max()
    if not shown and (any(c.test is not None and c.test.seed_level for c in floors)
                      or finetuned[col].max() > floor_score):
        return None
    pick = base[base[col] >= floor_score - 0.01]
    pick = pick.loc[pd.to_numeric(pick["train_time_s"], errors="coerce").fillna(0).idxmin()]
    top = finetuned.loc[finetuned[col].idxmax()]
    how = ("no fine-tuning strategy is better than the baseline floor (each is worse or equivalent, Holm-corrected)"
           if shown else "provisionally (one seed, no seed-level test): no fine-tuning strategy scores above the "
                         "baseline floor")
    return (f"Recommended: {pick['strategy']} (a baseline) — {how}: the best, {top['strategy']}, scores test {name} "
            f"{top[col]:.3f} against {pick[col]:.3f}; it trains in {pick['train_time_s']:.1f} s and needs no GPU. "
            "Fine-tuning is not worth its cost here unless a tuned rerun beats it.")


def floor_line(frame: pd.DataFrame, fam: significance.Family | None, col: str, name: str) -> str | None:
    """"Baseline floor: tfidf-logreg (test macro-F1 0.640); better than it: full, lora; not shown: head (…)."""
    base = frame[baseline_mask(frame)]
    if base.empty or fam is None or fam.floor is None:
        return None
    score = base.loc[base["strategy"] == fam.floor, col]
    text = f"Baseline floor: {fam.floor} (test {name} {float(score.iloc[0]) if len(score) else float('nan'):.3f})"
    by = {o: [c.group for c in fam.floors if c.outcome == o] for o in ("better", "equivalent", "worse", "inconclusive")}
    text += f"; better than it: {', '.join(by['better']) if by['better'] else 'no fine-tuning strategy'}"
    for outcome, words in (("equivalent", "equivalent to it"), ("worse", "worse than it"),
                           ("inconclusive", "not shown better")):
        if by[outcome]:
            text += f"; {words}: {', '.join(by[outcome])}"
    return text + " (each a two-level test against the floor, Holm-corrected with the ranking)."
