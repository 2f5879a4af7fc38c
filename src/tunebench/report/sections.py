"""The report's sections, built from :class:`ReportInputs` into the document model.

One function per section; numbers come from the stored records (through the same results frame
as results.csv), figures are drawn into ``OUTPUT/figures``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from tunebench.report import analysis, figures, significance
from tunebench.report.cost import RELATIVE_SPEED, device_key, prefix_shares, study_cost_by_device
from tunebench.report.document import Bullets, Cell, Code, Figure, Para, Section, Table, cell, text_table
from tunebench.report.inputs import ReportInputs
from tunebench.report.verdict import verdict
from tunebench.results.choices import AttentionChoice, CompileChoice
from tunebench.results.decisions import record_predictions, task_of
from tunebench.results.diagnosis import is_baseline
from tunebench.results.outputs import _fmt_bytes as format_bytes
from tunebench.results.outputs import selection_names
from tunebench.spec import metrics

MANY_CLASSES = 15
TEXT_CHARS = 300


@dataclass
class Context:
    inputs: ReportInputs
    prices: dict[str, float]
    frame: pd.DataFrame
    fig_dir: Path

    @property
    def records(self) -> list[dict[str, Any]]:
        return self.inputs.records

    @property
    def names(self) -> list[str]:
        return self.records[0]["data"]["label_names"]

    def figure(self, name: str) -> Path:
        return self.fig_dir / name


def short(text: str, n: int = TEXT_CHARS) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


def settings(record: dict[str, Any]) -> str:
    if is_baseline(record):
        return "reference: no fine-tuning"
    r = record["resolved"]
    weighted = ", class-weighted" if r.get("class_weights") else ""
    if record.get("fitted"):  # its own recipe: embed-logreg has no rate nor epochs; setfit its own
        rate = f": lr {r['lr']:g}, {r['epochs']} ep, batch {r['batch_size']}" if r.get("lr") is not None else ""
        return f"fitted by its own recipe{rate}{weighted}"
    return f"lr {r['lr']:g}, {r['scheduler']}, {r['epochs']} ep, batch {r['batch_size']}{weighted}"


def marked(record: dict[str, Any], diagnosis: Any) -> str:
    """The run's name as the headline shows it: "full ⚠" when flagged, "majority (baseline)" for a reference."""
    if is_baseline(record):
        return f"{record['strategy']} (baseline)"
    flagged = isinstance(diagnosis, str) and diagnosis not in ("ok", "baseline", "")
    return f"{record['strategy']} ⚠" if flagged else record["strategy"]


def _metric(part: str, name: str, short: bool = False, header: str | None = None) -> tuple[str, str, str]:
    """(header, frame column, format) of metric ``name`` on ``part``, as the metric table shows it."""
    row = metrics.by_name(name)
    return header or row.header(part, short), f"{part}_{name}", row.fmt


HEADLINE = [  # (header, frame column, format): what a reader compares first; the rest in HEADLINE_MORE
    ("trainable", "trainable_params", ",d"), ("share %", "trainable_share_pct", ".2f"),
    ("train s", "train_time_s", ".1f"), ("memory MB", "train_memory_mb", ".0f"),
    _metric("val", metrics.DEFAULT_SELECTION), _metric("test", metrics.DEFAULT_SELECTION),
    _metric("test", "accuracy", short=True), ("cost $", "cost_usd", ".3g"),
]
HEADLINE_MORE = [
    ("total params", "total_params", ",d"), ("ex/s", "examples_per_s", ".1f"),
    ("process peak MB", "peak_memory_mb", ".0f"), ("save", "save_bytes", "bytes"),
    *(_metric("test", m.name, header=m.short or m.display) for m in metrics.METRICS  # every test metric not above
      if f"test_{m.name}" not in {col for _, col, _ in HEADLINE}),
    ("$ / F1 point", "cost_per_f1_point", ".3g"),
]


def headline_more(task: str = "single_label") -> list[tuple[str, str, str]]:
    """The secondary numbers of a study of ``task`` (a metric of another task shape is not a column)."""
    other = {f"test_{n}" for n in metrics.names()} - {f"test_{n}" for n in metrics.names(task=task)}
    return [c for c in HEADLINE_MORE if c[1] not in other]


def _rows(ctx: Context, columns: list[tuple[str, str, str]], marks: dict[str, set[int]]) -> list[list[Cell]]:
    """One row per configuration: its name, then ``columns`` (★ on the best; "—" where missing)."""
    summ = significance.summaries(ctx.inputs.runs) if ctx.inputs.repeated else {}
    rows = []
    for i, (rec, (_, row)) in enumerate(zip(ctx.records, ctx.frame.iterrows(), strict=True)):
        cells = [Cell(marked(rec, row.get("diagnosis")))]
        for _, col, fmt in columns:
            best = i in marks.get(col, set())
            c = cell(row[col], "" if fmt == "bytes" else fmt, best)
            if fmt == "bytes" and c.value is not None:
                c = Cell(format_bytes(c.value), c.value, best)
            if summ and col in summ[rec["strategy"]]:  # a quality column summarised over seeds (seed_metrics)
                c = Cell(significance.fmt_summary(summ[rec["strategy"]][col]), c.value, best)
            cells.append(c)
        rows.append(cells)
    return rows


def headline_columns(task: str = "single_label") -> list[tuple[str, str, str]]:
    """The headline's columns for a study of ``task``: :data:`HEADLINE`, a regression's with R² and RMSE."""
    if task != "regression":
        return HEADLINE
    return [*HEADLINE[:4], _metric("val", "r2"), _metric("test", "r2"), _metric("test", "rmse"), HEADLINE[-1]]


def headline(ctx: Context) -> Section:
    marks = analysis.best_rows(ctx.frame)
    task = task_of(ctx.records)
    columns = headline_columns(task)
    rows = _rows(ctx, columns, marks)
    for rec, cells in zip(ctx.records, rows, strict=True):
        cells.insert(1, Cell(settings(rec)))
    caption = ("★ marks the best value of each column. Cost is the measured train time times the price of the "
               f"run's device (see Cost). memory MB: {analysis.memory_measure(ctx.records)[1]}. More numbers per "
               "run in the table below.")
    if any(is_baseline(r) for r in ctx.records):
        caption += (" Rows marked (baseline) are references, not candidates: the floor every fine-tuning must clear "
                    "(never marked ★, recommended only when no fine-tuning clears them); they train no network, so "
                    "their trainable share, throughput and cost per F1 point are —.")
    if "diagnosis" in ctx.frame and any(marked(r, d).endswith("⚠") for r, d in zip(ctx.records, ctx.frame["diagnosis"],
                                                                                    strict=True)):
        caption += (" ⚠ marks a configuration flagged by the convergence checks (see Convergence checks): a collapsed "
                    "or still-improving one is not ranked as beaten; an overfitting one is (its best epoch is kept).")
    headers = ["strategy", "settings"] + [h for h, _, _ in columns]
    if ctx.inputs.repeated:
        headline_name = metrics.by_name(metrics.default_for(task)).header("test")
        summ = significance.summaries(ctx.inputs.runs)
        for rec, cells in zip(ctx.records, rows, strict=True):
            ci = summ[rec["strategy"]][f"test_{metrics.default_for(task)}"]
            cells[2:2] = [cell(ci.n), Cell(significance.fmt_interval(ci.low, ci.high))]
        caption += (" Several seeds: every number is the mean over a configuration's seeds; ± is their standard "
                    f"deviation; the interval is a 95% t interval of the mean {headline_name} (n − 1 degrees of freedom).")
        headers = ["configuration", "settings", "seeds", f"{headline_name} 95% CI"] + [h for h, _, _ in columns]
    more_columns = headline_more(task_of(ctx.records))
    more = _rows(ctx, more_columns, marks)
    more_caption = ("process peak MB: the whole process's peak memory as results.csv stores it (on the CPU it "
                    "includes Python, torch and the loaded model). save: the size of what the run saves.")
    return Section("headline", "1. Headline", [
        Table(headers, rows, key="headline", caption=caption),
        Table([headers[0]] + [h for h, _, _ in more_columns], more, key="headline-more", caption=more_caption)])


def comparison(ctx: Context) -> Section:
    quality = {"regression": figures.QUALITY_REGRESSION,  # multi-label: micro- and macro-F1, not subset accuracy
               "multi_label": (("test_micro_f1", "micro-F1"), ("test_macro_f1", "macro-F1"))}
    fig = figures.comparison(ctx.frame, ctx.figure("comparison.png"), quality.get(task_of(ctx.records), figures.QUALITY))
    return Section("comparison", "2. Comparison", [Figure(fig, "Quality, parameter efficiency (log scale; — for a "
                                                              "baseline, which trains no network), training time and "
                                                              "estimated cost per run.")])


def pareto(ctx: Context) -> Section:
    memory = analysis.memory_measure(ctx.records)[0]
    metric = metrics.default_for(task_of(ctx.records))
    fig = figures.pareto(ctx.frame, ctx.figure("pareto.png"), memory, metric)
    f1 = list(ctx.frame[f"test_{metric}"])
    rows = []
    for col, label, log in figures.PARETO_AXES:
        label = memory if col == "train_memory_mb" else label
        xs = figures.axis_values(ctx.frame, col, log)
        front = analysis.pareto_front(xs, f1)
        rows.append([label, ", ".join(ctx.frame["strategy"].iloc[i] for i in front) or "—"])
    return Section("pareto", "3. Pareto fronts", [
        Figure(fig, f"Test {metrics.display(metric)} against cost; the dashed line joins the runs no other run beats on "
                    "both axes. Memory is each run's own (see the headline); a run with no parameters is left out of the "
                    "log-scale parameters panel."),
        text_table(["cost axis", "non-dominated runs (cheapest first)"], rows, key="pareto")])


def curves(ctx: Context) -> Section:
    regression = task_of(ctx.records) == "regression"
    fig = figures.curves(ctx.records, ctx.figure("curves.png"), figures.CURVES_REGRESSION if regression
                         else figures.CURVES)
    shown = [metrics.by_name(name) for name in metrics.names()
             if any(metrics.curve_key(name) in c for r in ctx.records for c in r["curves"])]  # accuracy, macro-F1, ...
    rows = [[r["strategy"], c["epoch"], cell(c.get("train_loss"), ".4f"), cell(c.get("val_loss"), ".4f"),
             *(cell(c.get(metrics.curve_key(m.name)), m.fmt) for m in shown), cell(c.get("train_time_s"), ".1f"),
             "★" if c["epoch"] == r["best_epoch"] else ""]
            for r in ctx.records for c in r["curves"]]
    return Section("curves", "4. Training curves", [
        Figure(fig, "Per-epoch train loss, validation loss and validation R²." if regression else
               "Per-epoch train loss, validation loss, validation accuracy and macro-F1."),
        text_table(["run", "epoch", "train loss", "val loss", *(m.header("val", short=m.name == "accuracy") for m in shown),
                    "epoch s", "best"], rows, key="curves",
                   caption=f"★ the epoch kept (best validation {selection_names(ctx.records)}), evaluated on test.")])


def confusion(ctx: Context) -> Section | None:
    if ctx.records[0]["data"].get("task") in ("multi_label", "regression"):  # sections_labels / sections_targets
        return None
    section = Section("confusion", "5. Confusion matrices and per-class F1")
    table = analysis.per_class_f1(ctx.records)
    if len(ctx.names) <= MANY_CLASSES:
        section.add(Figure(figures.confusion_grid(ctx.records, ctx.figure("confusion.png")),
                           "Row-normalised: each row shows where the examples of one true class went."),
                    Figure(figures.per_class_f1(table, ctx.figure("per_class_f1.png")), "Per-class test F1."))
        rows = [[name] + [cell(v, ".3f") for v in table.loc[name]] for name in table.index]
        section.add(text_table(["class"] + list(table.columns), rows, key="per-class-f1"))
        return section
    worst = analysis.worst_classes(ctx.records, MANY_CLASSES)
    section.add(Para(f"{len(ctx.names)} classes are too many for a readable grid: the {len(worst)} classes with the "
                     "lowest mean F1 and the most confused pairs are shown instead."),
                Figure(figures.per_class_f1(worst, ctx.figure("per_class_f1.png"), "Worst classes: test F1"),
                       "Test F1 of the worst classes, per run."))
    rows = [[name] + [cell(v, ".3f") for v in worst.loc[name]] for name in worst.index]
    section.add(text_table(["class"] + list(worst.columns), rows, key="worst-classes"))
    pairs = [[r["strategy"], t, p, n, cell(s, ".2f")] for r in ctx.records for t, p, n, s in analysis.confused_pairs(r)]
    section.add(text_table(["run", "true", "predicted as", "count", "share of true class"], pairs, key="confused-pairs"))
    return section


def cost(ctx: Context) -> Section:
    measured = {device_key(r, ctx.prices) for r in ctx.records}
    prices = [[name, cell(usd, ".3f"), cell(RELATIVE_SPEED.get(name), "g"), "yes" if name in measured else ""]
              for name, usd in ctx.prices.items()]
    per_run = [[r["strategy"], r["environment"]["device"], device_key(r, ctx.prices) or "not priced",
                cell(row["train_time_s"], ".1f"), cell(row["cost_usd"], ".3g"), cell(row["cost_per_f1_point"], ".3g")]
               for r, (_, row) in zip(ctx.records, ctx.frame.iterrows(), strict=True)]
    study = [[d.device, cell(d.usd_per_hour, ".3f"), cell(None if d.hours is None else d.hours * 3600, ".1f"),
              cell(d.usd, ".3g"), d.basis] for d in study_cost_by_device(ctx.records, ctx.prices)]
    shares = [[s.layers, ", ".join(s.strategies), s.runs, s.computed, cell(s.seconds, ".1f"), cell(s.amortised, ".2f")]
              for s in prefix_shares(ctx.inputs.runs or ctx.records, ctx.inputs.tuning)]
    shared = [Para("Frozen-prefix caches: runs with the same frozen layers (every tuning trial and seed of a strategy "
                   "that freezes them) train on one cache of those layers' outputs, computed once per study. Each "
                   "run's train time counts the cache's seconds in full, as a run alone would pay them; the last "
                   "column is what was actually spent on it per run."),
              text_table(["frozen layers", "strategies", "runs on it", "computed", "s per computation (in each "
                          "run's time)", "amortised s per run"], shares, key="prefix-cache")] if shares else []
    return Section("cost", "8. Cost", [
        Para("Prices are approximate public on-demand rates per device and hour (one GPU); edit them with "
             "`tunebench report OUTPUT --price NAME=USD_PER_HOUR` (e.g. --price T4=0.35). Relative speeds are "
             "rough assumptions used only to estimate time on devices the study did not run on."),
        text_table(["device", "$/hour", "relative speed (assumed, T4 = 1)", "study ran here"], prices, key="prices"),
        text_table(["run", "device", "priced as", "train s", "cost $", "$ per macro-F1 point"], per_run, key="run-cost"),
        text_table(["device", "$/hour", "study train s", "study cost $", "basis"], study, key="study-cost",
                   caption="What training every run of this study would cost on each device."), *shared])


def recommendation(ctx: Context) -> Section:
    found = verdict(ctx.inputs, ctx.frame)
    return Section("recommendation", "9. Recommendation",
                   [Bullets(found.picks), Para("Caveats:"), Bullets(found.caveats)])


def attention_text(record: dict[str, Any]) -> str:
    """Which attention kernel the runs used and why (``model.attention``); a run recorded before the choice
    was measured shows the kernel it loaded."""
    choice = (record.get("environment") or {}).get("attention")
    if isinstance(choice, dict):
        return AttentionChoice(**choice).sentence().removeprefix("attention kernel: ")
    return str((record.get("resources") or {}).get("attention") or "unknown")


def compile_text(records: list[dict[str, Any]]) -> str:
    """Whether the runs were compiled (``training.compile``) and why; how many when they differ."""
    flags = [bool((r.get("resources") or {}).get("compiled")) for r in records]
    choice = (records[0].get("environment") or {}).get("compile")
    if isinstance(choice, dict) and len(set(flags)) <= 1:
        return CompileChoice(**choice).sentence().removeprefix("torch.compile: ")
    if all(flags) or not any(flags):
        return "on" if all(flags) else "off"
    return f"on in {sum(flags)} of {len(flags)} runs"


def environment(ctx: Context) -> Section:
    first = ctx.records[0]
    env = first["environment"]
    facts = [["python", env.get("python")], ["platform", env.get("platform")], ["device", env.get("device")],
             ["torch threads", env.get("torch_threads")], ["attention kernel", attention_text(first)],
             ["torch.compile", compile_text(ctx.records)],
             ["tunebench commit", env.get("git_commit") or "unknown"],
             ["model", f"{first['model']['name']} ({first['model']['n_layers']} layers)"]]
    facts += [[f"{split} split hash", h] for split, h in first["data"]["hashes"].items()]
    facts += [[f"package {k}", v] for k, v in sorted((env.get("packages") or {}).items())]
    runs = [[r["strategy"], r["run_id"], r["finished_at"], r["environment"].get("device")] for r in ctx.records]
    spec = yaml.safe_dump(first["study_spec"], sort_keys=False, allow_unicode=True)
    return Section("environment", "10. Environment", [
        text_table(["what", "value"], facts, key="environment"),
        text_table(["run", "run id", "finished (UTC)", "device"], runs, key="runs"),
        Para("The full study spec:"), Code(spec)])


def answers(ctx: Context) -> tuple[np.ndarray | None, dict[str, np.ndarray]]:
    """The test labels as stored (class ids, 0/1 rows, a regression's targets) and each run's answers, decided
    as it decides (:func:`tunebench.results.decisions.record_predictions`: at a multi-label run's thresholds)."""
    labels, found = None, {}
    for r in ctx.records:
        stored = ctx.inputs.predictions.get(r["run_id"])
        if stored is not None:
            labels = np.asarray(stored[0], dtype=float if task_of(ctx.records) == "regression" else np.int64)
            found[r["strategy"]] = record_predictions(r, stored[1])
    return labels, found


def intro(ctx: Context) -> list[str]:
    first = ctx.records[0]
    data, sizes = first["data"], first["data"]["sizes"]
    tuned = [r["strategy"] for r in ctx.records if not is_baseline(r)]
    refs = [r["strategy"] for r in ctx.records if is_baseline(r)]
    beside = f" beside {len(refs)} baseline{'s' * (len(refs) != 1)} ({', '.join(refs)})" if refs else ""
    model = next((r["model"]["name"] for r in ctx.records if not is_baseline(r)), first["model"]["name"])
    kinds = {"multi_label": "labels, multi-label", "regression": "numeric target, regression"}.get(
        data.get("task", ""), "classes")
    return [f"Study '{ctx.inputs.study}': {len(tuned)} strategies ({', '.join(tuned)}) fine-tuning {model}{beside} on "
            f"{data['name']} ({len(data['label_names'])} {kinds}; train {sizes['train']:,}, validation "
            f"{sizes['validation']:,}, test {sizes['test']:,}), same splits, seed and evaluation for every run, "
            f"on {first['environment']['device']}."]
