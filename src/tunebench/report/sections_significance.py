"""The report's statistics sections: ranking with significance against the best configuration,
and, for sweeps, the metric by swept value.  Both are built from the stored runs alone."""

from __future__ import annotations

from typing import Any

import numpy as np

from tunebench.report import figures, significance
from tunebench.report.document import Cell, Figure, Para, Section, cell, text_table
from tunebench.report.sections import Context
from tunebench.results import stats


def significance_section(ctx: Context) -> Section | None:
    """Rank the configurations by mean test macro-F1 and say which are tied with the best."""
    runs = significance.compared(ctx.inputs.runs or ctx.records)
    if len(significance.groups(runs)) < 2:
        return None
    best, comparisons = significance.compare_with_best(runs, ctx.inputs.predictions)
    summ = significance.summaries(runs)
    by_group = {c.group: c for c in comparisons}
    rows_of = {rec["strategy"]: row for rec, (_, row) in zip(ctx.records, ctx.frame.iterrows(), strict=True)}
    order = sorted(summ, key=lambda g: -summ[g]["test_macro_f1"].mean)
    rows = []
    for position, g in enumerate(order, 1):
        s, c, row = summ[g]["test_macro_f1"], by_group.get(g), rows_of.get(g)
        if c is None:
            rank, verdict, d_f1, d_acc, p = "1", "best", "—", "—", None
        else:
            rank = "1 (tied)" if c.tied else str(position)
            verdict = "tied with the best" if c.tied else "worse than the best"
            d_f1 = _delta(c.macro_f1)
            d_acc = _delta(c.accuracy)
            p = c.mcnemar_p
        rows.append([rank, g, s.n, Cell(significance.fmt_summary(s), s.mean), significance.fmt_interval(s.low, s.high),
                     d_f1, d_acc, cell(p, ".3g"), verdict,
                     cell(None if row is None else row["train_time_s"], ".1f"),
                     cell(None if row is None else row["cost_usd"], ".3g")])
    basis = sorted({c.basis for c in comparisons})
    return Section("significance", "Ranking and significance", [
        Para(f"Configurations ranked by mean test macro-F1; each is compared with the best ({best}) on the same "
             f"test examples. Δ is the best minus the configuration, with a 95% paired bootstrap interval "
             f"({stats.N_RESAMPLES} resamples of the test examples, and of the seeds when there are several); "
             f"McNemar's test (exact binomial below 25 discordant examples) asks whether the two classify "
             f"equally often correctly — with several seeds the largest p over the paired seeds is shown. A "
             f"configuration is tied with the best when the interval of Δ macro-F1 includes 0 or p ≥ "
             f"{stats.ALPHA}: the data cannot tell them apart. Basis: {'; '.join(basis)}."),
        text_table(["rank", "configuration", "seeds", "test macro-F1", "95% CI (seeds)", "Δ macro-F1 [95% CI]",
                    "Δ accuracy [95% CI]", "McNemar p", "verdict", "train s", "cost $"], rows, key="significance")])


def _delta(d: stats.Difference | None) -> str:
    if d is None:
        return "—"
    return f"{d.delta:+.3f} {significance.fmt_interval(d.low, d.high, signed=True)}"


def sweep_section(ctx: Context) -> Section | None:
    """For a sweep: mean test macro-F1 by each swept value, and a table of the first two keys."""
    runs = ctx.inputs.runs or ctx.records
    keys = list(dict.fromkeys(k for r in runs for k in (r.get("sweep") or {})))
    if not keys:
        return None
    summ = significance.summaries(runs)
    configs = {g: (rs[0].get("sweep") or {}, summ[g]["test_macro_f1"].mean) for g, rs in significance.groups(runs).items()}
    section = Section("sweep", "Sweep")
    section.add(Para(f"Swept: {', '.join(keys)}; {len(configs)} configurations. Mean test macro-F1 over the "
                     "configurations with each value (and the best of them); a key that applies to one kind of "
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

