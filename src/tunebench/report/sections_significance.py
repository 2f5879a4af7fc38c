"""The report's statistics sections: ranking with significance against the best configuration,
and, for sweeps, the metric by swept value.  Both are built from the stored runs alone."""

from __future__ import annotations

from typing import Any

import numpy as np

from tunebench.report import figures, significance
from tunebench.report.document import Cell, Figure, Para, Section, cell, text_table
from tunebench.report.sections import Context
from tunebench.report.verdict import comparison_family
from tunebench.results import stats
from tunebench.results.decisions import task_of
from tunebench.spec import metrics


def significance_section(ctx: Context) -> Section | None:
    """The family of comparisons: each configuration against the reference (chosen on validation) and
    against the baseline floor, with the four outcomes, the margin, Holm's correction and labelled p-values."""
    fam = comparison_family(ctx.inputs, ctx.frame)
    runs = significance.compared(ctx.inputs.runs or ctx.records)
    if fam is None or (len(significance.groups(runs)) < 2 and fam.floor is None):
        return None
    metric, name = fam.metric, stats.metric_name(fam.metric)
    summ = {g: stats.summarize([r["test"][metric] for r in rs]) for g, rs in significance.groups(runs).items()}
    rows_of = {row["strategy"]: row for _, row in ctx.frame.iterrows()}
    order = sorted(summ, key=lambda g: -summ[g].mean)
    rows = []
    for g in order:
        s, c, row = summ[g], fam.against_reference(g), rows_of.get(g)
        if g == fam.reference:
            outcome, delta, p, p_eq, settle = "reference (best on validation)", "—", "—", "—", ""
        elif c is None:
            outcome, delta, p, p_eq, settle = "not compared (flagged, no reference)", "—", "—", "—", ""
        else:
            outcome = c.outcome if c.test is None or c.test.seed_level else "inconclusive (one seed)"
            delta, settle = _delta(c.test), c.settle or c.note
            p, p_eq = _p(c.p_adjusted, c.test, "p_value"), _p(c.p_equivalence_adjusted, c.test, "p_equivalence")
        floor = fam.against_floor(g)
        rows.append([g, s.n, Cell(significance.fmt_summary(s), s.mean), significance.fmt_interval(s.low, s.high),
                     delta, p, p_eq, outcome, "—" if floor is None else floor.outcome, settle,
                     cell(None if row is None else row["train_time_s"], ".1f"),
                     cell(None if row is None else row["cost_usd"], ".3g")])
    floor_words = (f" Each is also compared with the floor, {fam.floor} (the baseline with the best validation "
                   f"{name}; a baseline's fit does not depend on the seed, so it pairs with every seed): it clears "
                   "the floor only when better than it." if fam.floor else "")
    basis = "; ".join(fam.bases) or "no paired test predictions"
    text = (f"Test {name} of each configuration (mean ± standard deviation over its seeds; 95% t interval of the "
            f"mean). The reference is {fam.reference or 'none (every configuration was flagged)'}: the highest mean "
            f"validation {name} among the configurations that converged — the test split chooses nothing. Δ is "
            f"the configuration minus the reference on the same test examples with a 95% interval, from a two-level "
            f"test: the variance of the per-seed paired differences over seeds (t) plus the variance of their mean "
            f"over a paired bootstrap of the test examples, degrees of freedom by Welch–Satterthwaite (docs/METHODS.md,"
            f" Statistics). Outcomes: equivalent when two one-sided tests put Δ within {stats.margin_text(fam.margin)} "
            f"(the margin, --margin); else better or worse when the difference test rejects Δ = 0; else "
            f"inconclusive, with roughly what would settle it. p-values are Holm–Bonferroni adjusted across the "
            f"family of {fam.size} comparisons with seed-level evidence this report makes (the ranking and the "
            f"floor together), at α = {fam.alpha:g}.{floor_words} With one seed a test speaks for that seed's "
            f"models only: no outcome is claimed from it. Basis: {basis}.")
    return Section("significance", "Ranking and significance", [
        Para(text),
        text_table(["configuration", "seeds", f"test {name}", "95% CI (t, seeds)", "Δ vs reference [95% CI]",
                    "p (Holm)", "p equivalence (TOST, Holm)", "outcome", "vs floor", "what would settle it",
                    "train s", "cost $"], rows, key="significance")])


def _delta(t: stats.PairedTest | None) -> str:
    if t is None:
        return "—"
    return f"{t.delta:+.3f} {significance.fmt_interval(t.low, t.high, signed=True)}"


def _p(adjusted: float | None, test: stats.PairedTest | None, which: str) -> str:
    """An adjusted p-value, or for a one-seed test its unadjusted test-set p-value, labelled as such."""
    if adjusted is not None:
        return significance.fmt_p(adjusted)
    if test is None:
        return "—"
    return f"{significance.fmt_p(getattr(test, which))} (test set, this seed only)"


def sweep_section(ctx: Context) -> Section | None:
    """For a sweep: mean test macro-F1 by each swept value, and a table of the first two keys."""
    runs = ctx.inputs.runs or ctx.records
    keys = list(dict.fromkeys(k for r in runs for k in (r.get("sweep") or {})))
    if not keys:
        return None
    summ = significance.summaries(runs)
    metric = metrics.default_for(task_of(runs))
    configs = {g: (rs[0].get("sweep") or {}, summ[g][f"test_{metric}"].mean) for g, rs in significance.groups(runs).items()}
    section = Section("sweep", "Sweep")
    section.add(Para(f"Swept: {', '.join(keys)}; {len(configs)} configurations. Mean test {metrics.display(metric)} "
                     "over the configurations with each value (and the best of them); a key that applies to one kind of "
                     "strategy (lora.r) counts only those."))
    for key in keys:
        values = _ordered([p[key] for p, _ in configs.values() if key in p])
        rows = []
        for v in values:
            hits = [(g, f1) for g, (p, f1) in configs.items() if key in p and _same(p[key], v)]
            best_g, best_f1 = max(hits, key=lambda h: h[1])
            rows.append([_show(v), len(hits), cell(float(np.mean([f for _, f in hits])), ".3f"), best_g,
                         cell(best_f1, ".3f")])
        section.add(text_table([key, "configurations", "mean test macro-F1", "best configuration", "its macro-F1"],
                               rows, key=f"sweep-{key}"))
    if len(keys) >= 2:
        a, b = keys[:2]
        va = _ordered([p[a] for p, _ in configs.values() if a in p])
        vb = _ordered([p[b] for p, _ in configs.values() if b in p])
        rows = []
        for x in va:
            line: list[Any] = [_show(x)]
            for y in vb:
                f1s = [f for p, f in configs.values() if a in p and b in p and _same(p[a], x) and _same(p[b], y)]
                line.append(cell(max(f1s) if f1s else None, ".3f"))
            rows.append(line)
        section.add(text_table([f"{a} \\ {b}"] + [_show(y) for y in vb], rows, key="sweep-grid",
                               caption=f"Best mean test macro-F1 for each pair of {a} and {b} values."))
    section.add(Figure(_figure(keys, configs, ctx.figure("sweep.png")),
                       "Mean test macro-F1 of each configuration against each swept value (the line: the mean)."))
    return section


def _ordered(values: list[Any]) -> list[Any]:
    unique = []
    for v in values:
        if not any(_same(v, u) for u in unique):
            unique.append(v)
    if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in unique):
        return sorted(unique)
    return unique


def _same(a: Any, b: Any) -> bool:
    return _show(a) == _show(b)


def _show(v: Any) -> str:
    if isinstance(v, list):
        return "+".join(map(str, v))
    return f"{v:g}" if isinstance(v, float) else str(v)


@figures.styled
def _figure(keys: list[str], configs: dict[str, tuple[dict[str, Any], float]], path):
    fig, axes = figures._new(len(keys))
    for ax, key in zip(axes, keys, strict=False):
        values = _ordered([p[key] for p, _ in configs.values() if key in p])
        xs = np.arange(len(values))
        for i, v in enumerate(values):
            f1s = [f for p, f in configs.values() if key in p and _same(p[key], v)]
            ax.scatter([i] * len(f1s), f1s, color=figures.color(0), s=14, alpha=0.6)
        means = [float(np.mean([f for p, f in configs.values() if key in p and _same(p[key], v)])) for v in values]
        ax.plot(xs, means, color=figures.color(1), marker="o")
        ax.set_xticks(xs, figures.plain([_show(v) for v in values]))
        ax.set_xlabel(key)
        ax.set_ylabel("test macro-F1")
        ax.set_title(f"by {key}")
    return figures.save(fig, path)

