"""The report's figures: matplotlib (Agg, no pyplot state), one PNG per function, byte-identical
for identical inputs (no timestamp or software tag in the file)."""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, LogLocator, MaxNLocator, NullFormatter
from matplotlib.transforms import ScaledTranslation

from tunebench.errors import printable
from tunebench.report.analysis import normalised_confusion, pareto_front

#: mathtext stays on for matplotlib's own text; every piece of text from the data goes through :func:`plain`
#: (a "$\\foo$" class name or strategy label is drawn as text), and log axes get plain-number ticks
#: (:func:`log_axis`), so no drawn string is mathtext.
_RC = {"svg.hashsalt": "tunebench", "font.size": 9, "axes.titlesize": 10, "figure.dpi": 100}
COLORS = matplotlib.colormaps["tab10"].colors
F = TypeVar("F", bound=Callable[..., Path])


def styled(fn: F) -> F:
    """Draw under the report's fixed style, whatever the user's matplotlibrc says."""
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Path:
        with matplotlib.rc_context(_RC):
            return fn(*args, **kwargs)
    return wrapper  # type: ignore[return-value]


def plain(labels: list[Any]) -> list[str]:
    """Names from the data (classes, strategies, runs), drawn as text: a "$5 & $6" label must not be
    parsed as math (an escaped dollar is drawn as a dollar), and a control character (ESC, a newline) is
    drawn escaped (matplotlib's missing-glyph warning would carry it raw to the terminal)."""
    return [text(x) for x in labels]


def text(value: Any) -> str:
    """One name from the data as matplotlib text (see :func:`plain`)."""
    return printable(str(value)).replace("$", r"\$")


def tick_number(value: float, _pos: Any = None) -> str:
    """A log-axis tick as plain text: 0.01, 1, 100, 10k, 2M, 1e-05 (never mathtext)."""
    if value <= 0:
        return ""
    for scale, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if value >= scale:
            return f"{value / scale:g}{suffix}"
    return f"{value:g}"


def log_axis(ax, which: str, values: list[float | None], headroom: float = 1.5) -> None:
    """Log scale on ``which`` ("x"/"y"): whole decades around the positive ``values``, ≥ 2 ticks (tick_number)."""
    positive = [float(v) for v in values if v is not None and v == v and v > 0]
    if not positive:
        return
    axis = ax.xaxis if which == "x" else ax.yaxis
    (ax.set_xscale if which == "x" else ax.set_yscale)("log")
    low, high = math.floor(math.log10(min(positive))), math.ceil(math.log10(max(positive)))
    high = max(high, low + 1)
    (ax.set_xlim if which == "x" else ax.set_ylim)(10.0 ** low / 1.5, 10.0 ** high * headroom)
    axis.set_major_locator(LogLocator(base=10, numticks=12))
    axis.set_major_formatter(FuncFormatter(tick_number))
    axis.set_minor_formatter(NullFormatter())


def color(i: int) -> tuple[float, ...]:
    return COLORS[i % len(COLORS)]


def _new(ncols: int, nrows: int = 1, width: float = 4.0, height: float = 3.2) -> tuple[Figure, np.ndarray]:
    fig = Figure(figsize=(width * ncols, height * nrows), layout="constrained")
    FigureCanvasAgg(fig)
    return fig, np.atleast_1d(fig.subplots(nrows, ncols, squeeze=False)).ravel()


def save(fig: Figure, path: Path) -> Path:
    """Write ``fig`` as a PNG with no metadata that could change between identical builds."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png", metadata={"Software": None}, dpi=100)
    return path


def tick_labels(labels: list[Any]) -> list[str]:
    """Strategy labels as tick text: each of a tuned label's rates on a line of its own (``full:lr=1e-4,head_lr=3e-3``
    → ``full`` / ``lr=1e-4`` / ``head_lr=3e-3``), so labels stay narrow; every label stays whole and distinct."""
    out = []
    for label in plain(labels):
        kind, sep, rest = label.partition(":")
        opts = rest.split(",")
        rates = [o for o in opts if o.startswith(("lr=", "head_lr="))]
        if not sep or not rates:
            out.append(label)
            continue
        kept = [o for o in opts if o not in rates]
        out.append(kind + (":" + ",".join(kept) if kept else "") + "\n" + "\n".join(rates))
    return out


def _bars(ax, labels: list[str], values: list[float], title: str, fmt: str, log: bool = False) -> None:
    xs = np.arange(len(labels))
    vals = [0.0 if v is None or v != v else float(v) for v in values]
    ax.bar(xs, vals, color=[color(i) for i in range(len(labels))])
    ax.set_xticks(xs, tick_labels(labels), rotation=30, ha="right", fontsize=8)
    ax.set_title(title)
    if log:
        log_axis(ax, "y", vals, headroom=4.0)  # room for the value written above the tallest bar
    for x, v, raw in zip(xs, vals, values, strict=True):
        if raw is None or raw != raw:  # no value: "—" on the axis' floor (a log axis has no 0 to put it at)
            ax.annotate("—", (x, 0), xycoords=("data", "axes fraction"), ha="center", va="bottom", fontsize=8,
                        xytext=(0, 2), textcoords="offset points")
        else:
            ax.annotate(format(v, fmt), (x, v), ha="center", va="bottom", fontsize=8, xytext=(0, 2),
                        textcoords="offset points")


#: the quality panel's two bars: (frame column, legend) each; a regression's (QUALITY_REGRESSION): R², Pearson r
QUALITY = (("test_accuracy", "accuracy"), ("test_macro_f1", "macro-F1"))
QUALITY_REGRESSION = (("test_pearson", "Pearson r"), ("test_r2", "R²"))


@styled
def comparison(frame: pd.DataFrame, path: Path, quality: tuple[tuple[str, str], ...] = QUALITY) -> Path:
    """Four panels as the financial-sentiment study drew them: quality (``quality``'s two metrics), parameters,
    time, cost.

    A baseline's trainable share is "—" (it trains no network).  Above :data:`COMPARISON_COLUMNS_MAX` configurations,
    or names with tuned rates, the bars lie down (a row each, its name once): rotated long names ran into each other."""
    labels = list(frame["strategy"])
    if len(labels) > COMPARISON_COLUMNS_MAX or any("\n" in t for t in tick_labels(labels)):  # tuned: long names
        return _comparison_rows(frame, labels, path, quality)
    fig, axes = _new(4, width=3.6)
    xs = np.arange(len(labels))
    ax = axes[0]
    for dx, (col, name), shade in zip((-0.2, 0.2), quality, ("#4c72b0", "#dd8452"), strict=True):
        ax.bar(xs + dx, frame[col], 0.4, label=name, color=shade)
    ax.set_xticks(xs, tick_labels(labels), rotation=30, ha="right", fontsize=8)
    ax.set_ylim(min(0.0, *(float(v) for c, _ in quality for v in frame[c] if v == v)), 1.05)  # R² can be negative
    ax.set_title("Quality (test)")
    ax.legend(fontsize=7, loc="lower right")
    _bars(axes[1], labels, list(frame["trainable_share_pct"]), "Trainable parameters (%)", ".2f", log=True)
    _bars(axes[2], labels, list(frame["train_time_s"]), "Training time (s)", ".1f")
    _bars(axes[3], labels, list(frame["cost_usd"]), "Training cost (USD, est.)", ".4f")
    return save(fig, path)


#: the most configurations drawn as upright bars in the comparison figure
COMPARISON_COLUMNS_MAX = 8


def _comparison_rows(frame: pd.DataFrame, labels: list[str], path: Path, quality: tuple[tuple[str, str], ...]) -> Path:
    """The comparison figure for many configurations: horizontal bars, one row each, top to bottom."""
    fig, axes = _new(4, width=3.3, height=1.4 + 0.3 * len(labels))
    ys = np.arange(len(labels))
    ax = axes[0]
    for dy, (col, name), shade in zip((-0.2, 0.2), quality, ("#4c72b0", "#dd8452"), strict=True):
        ax.barh(ys + dy, frame[col], 0.4, label=name, color=shade)
    ax.set_xlim(min(0.0, *(float(v) for c, _ in quality for v in frame[c] if v == v)), 1.05)
    ax.set_title("Quality (test)")
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, 0), ncol=2,  # 20 pt under the axis, its ticks
              bbox_transform=ax.transAxes + ScaledTranslation(0, -20 / 72, fig.dpi_scale_trans))
    panels = [(axes[1], "trainable_share_pct", "Trainable parameters (%)", ".2f", True),
              (axes[2], "train_time_s", "Training time (s)", ".1f", False),
              (axes[3], "cost_usd", "Training cost (USD, est.)", ".4f", False)]
    for panel, col, title, fmt, log in panels:
        raw = list(frame[col])
        vals = [0.0 if v is None or v != v else float(v) for v in raw]
        panel.barh(ys, vals, color=[color(i) for i in range(len(labels))])
        panel.set_title(title)
        if log:
            log_axis(panel, "x", vals, headroom=4.0)
        for y, v, r in zip(ys, vals, raw, strict=True):
            shown = "—" if r is None or r != r else format(v, fmt)
            panel.annotate(shown, (0 if shown == "—" else v, y), xycoords=("axes fraction" if shown == "—" else "data",
                           "data"), ha="left", va="center", fontsize=7, xytext=(2, 0), textcoords="offset points")
    for i, panel in enumerate(axes):
        panel.set_yticks(ys, [text(label) for label in labels] if i == 0 else [], fontsize=7)
        panel.invert_yaxis()  # the first configuration on top, as in the tables
    return save(fig, path)


PARETO_AXES = [("train_time_s", "train time (s)", False), ("train_memory_mb", "memory (MB)", False),
               ("trainable_params", "trainable parameters", True)]


def axis_values(frame: pd.DataFrame, col: str, log: bool) -> list[float | None]:
    """A cost axis's values (None where missing, or not positive on a log axis: nothing to draw there)."""
    out = []
    for v in frame[col]:
        x = None if v is None or v != v else float(v)
        out.append(None if x is None or (log and x <= 0) else x)
    return out


@styled
def pareto(frame: pd.DataFrame, path: Path, memory_label: str = "memory (MB)", metric: str = "macro_f1") -> Path:
    """Test ``metric`` (macro-F1; a regression's R²) against each cost axis; the non-dominated runs joined by a line.

    ``memory_label``: what the memory axis measures (:func:`tunebench.report.analysis.memory_measure`)."""
    fig, axes = _new(3)
    f1, shown = list(frame[f"test_{metric}"]), {"r2": "R²"}.get(metric, "macro-F1")
    for ax, (col, label, log) in zip(axes, PARETO_AXES, strict=True):
        label = memory_label if col == "train_memory_mb" else label
        xs = axis_values(frame, col, log)
        for i, (x, y) in enumerate(zip(xs, f1, strict=True)):
            if x is not None:
                ax.scatter(x, y, color=color(i), s=40, zorder=3, label=text(frame["strategy"].iloc[i]))
        front = pareto_front(xs, f1)
        if front:
            ax.plot([xs[i] for i in front], [f1[i] for i in front], "k--", lw=1, zorder=2, label="Pareto front")
        if log:
            log_axis(ax, "x", xs)
        ax.set_xlabel(label)
        ax.set_ylabel(f"test {shown}")
        ax.set_title(f"{shown} vs {label.split(' (')[0]}")
    handles, labels = axes[0].get_legend_handles_labels()
    if len(handles) > LEGEND_IN_PANEL_MAX:  # 22 strategies' entries covered the panels: a legend below them
        fig.set_figheight(fig.get_figheight() + 0.2 * math.ceil(len(handles) / 3))
        fig.legend(handles, labels, loc="outside lower center", ncol=3, fontsize=7)
    elif handles:
        axes[0].legend(fontsize=7)
    return save(fig, path)


#: the most legend entries a panel holds; more go below the panels, in columns
LEGEND_IN_PANEL_MAX = 9


CURVES = [("train_loss", "train loss"), ("val_loss", "validation loss"), ("val_accuracy", "validation accuracy"),
          ("val_macro_f1", "validation macro-F1")]
#: a regression's: its losses are the standardised target's mean squared error
CURVES_REGRESSION = [("train_loss", "train loss (MSE, standardised)"), ("val_loss", "validation loss (same)"),
                     ("val_r2", "validation R²")]


@styled
def curves(records: list[dict[str, Any]], path: Path, panels: list[tuple[str, str]] = CURVES) -> Path:
    """Per-epoch curves, one line per run that has them (a baseline has none: no line, no legend entry);
    epochs are whole numbers on the axis.  The legend sits in the first panel that has a line."""
    fig, axes = _new(len(panels), width=3.4)
    for ax, (key, title) in zip(axes, panels, strict=True):
        for i, r in enumerate(records):  # colours by position, as in the other figures
            pts = [(c["epoch"], c[key]) for c in r.get("curves") or [] if c.get(key) is not None]
            if pts:
                ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", ms=3, color=color(i),
                        label=text(r["strategy"]))
        ax.set_title(title)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    with_lines = [ax for ax in axes if ax.get_legend_handles_labels()[0]]
    if with_lines:
        with_lines[0].legend(fontsize=7)
    return save(fig, path)


@styled
def confusion_grid(records: list[dict[str, Any]], path: Path) -> Path:
    """Row-normalised confusion matrices, one panel per run (for up to ~15 classes)."""
    names = plain(records[0]["data"]["label_names"])
    n = len(records)
    cols = min(n, 4)
    side = 1.0 + 0.45 * len(names)
    fig, axes = _new(cols, -(-n // cols), width=max(3.0, side), height=max(2.8, side))
    for ax, r in zip(axes, records, strict=False):
        m = normalised_confusion(r["test"]["confusion_matrix"])
        ax.imshow(m, vmin=0, vmax=1, cmap="Blues")
        ax.set_xticks(range(len(names)), names, rotation=45, ha="right", fontsize=7)
        ax.set_yticks(range(len(names)), names, fontsize=7)
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        ax.set_title(text(r["strategy"]))
        for (i, j), v in np.ndenumerate(m):
            ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=7, color="white" if v > 0.6 else "black")
    for ax in axes[n:]:
        ax.set_visible(False)
    return save(fig, path)


@styled
def per_class_f1(table: pd.DataFrame, path: Path, title: str = "Per-class test F1") -> Path:
    """Grouped bars: classes on x, one bar per run."""
    runs = [c for c in table.columns if c != "mean"]
    fig, axes = _new(1, width=max(5.0, 0.5 * len(table) * max(1, len(runs)) / 2 + 2))
    ax = axes[0]
    xs = np.arange(len(table))
    w = 0.8 / max(len(runs), 1)
    for i, run in enumerate(runs):
        ax.bar(xs + (i - (len(runs) - 1) / 2) * w, table[run].fillna(0), w, color=color(i), label=text(run))
    ax.set_xticks(xs, plain(list(table.index)), rotation=45, ha="right")
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("F1")
    ax.set_title(title)
    ax.legend(fontsize=7)
    return save(fig, path)


@styled
def text_lengths(split_texts: dict[str, list[str]], path: Path) -> Path:
    """Histogram of words per example, per split."""
    fig, axes = _new(1, width=5.0)
    ax = axes[0]
    lengths = {s: [len(t.split()) for t in texts] for s, texts in split_texts.items()}
    top = max((max(v) for v in lengths.values() if v), default=1)
    bins = np.linspace(0, top + 1, min(30, top + 2))
    for i, (s, v) in enumerate(lengths.items()):
        ax.hist(v, bins=bins, alpha=0.5, color=color(i), label=text(s), density=True)
    ax.set_xlabel("words per example")
    ax.set_title("Text length (words)")
    ax.legend(fontsize=7)
    return save(fig, path)


@styled
def lr_sensitivity(trials: dict[str, list[tuple[float, float | None, bool, int]]], path: Path,
                   metric: str = "macro-F1", finals: set[str] | frozenset[str] = frozenset()) -> Path:
    """Validation macro-F1 against learning rate (log x), one line per strategy and rung.

    ``trials``: strategy -> [(lr, mean validation macro-F1 over the tuning seeds, cut, epochs)]: a point
    per candidate and rung.  At each rate the best score of the rung (over head rates) is drawn; the
    last rung's points (fully trained) filled on a solid line, an earlier rung's hollow on a dashed one.
    ``finals``: the strategies whose last-rung point is their final runs' mean (a last rung of one).
    Up to :data:`LR_PANEL_MAX` strategies share one panel, one colour each; more get a panel each (small
    multiples on shared axes), since 22 strategies' legend entries would cover one panel whole."""
    drawable = {s: [(lr, v, cut, e) for lr, v, cut, e in pts if v is not None and lr and lr > 0]
                for s, pts in trials.items()}
    drawable = {s: pts for s, pts in drawable.items() if pts}
    shared = len(drawable) <= LR_PANEL_MAX
    if shared:
        fig, axes = _new(1, width=5.6, height=3.6)
        panels = [axes[0]] * len(drawable)
    else:
        ncols = 4
        nrows = -(-len(drawable) // ncols)
        fig, axes = _new(ncols, nrows, width=2.9, height=2.3)
        panels = list(axes[:len(drawable)])
        for ax in axes[len(drawable):]:
            ax.set_visible(False)
    drawn: list[float] = []
    for i, ((strategy, pts), ax) in enumerate(zip(drawable.items(), panels, strict=True)):
        drawn += _rung_lines(ax, pts, color(i if shared else 0), strategy if shared else "", strategy in finals)
        if not shared:
            ax.set_title(text(strategy), fontsize=8)
    scores = [v for pts in drawable.values() for _, v, *_ in pts]
    for ax in dict.fromkeys(panels):
        if drawn:
            log_axis(ax, "x", drawn)
        if scores and not shared:
            ax.set_ylim(min(scores) - 0.02, max(scores) + 0.02)
            ax.tick_params(labelsize=7)
    if shared:
        panels[0].set_xlabel("learning rate (log scale)")
        panels[0].set_ylabel(text(f"validation {metric} (mean over seeds)"))
        panels[0].set_title("Learning-rate sensitivity (tuning trials)")
        if panels[0].get_legend_handles_labels()[0]:
            panels[0].legend(fontsize=6)
    elif panels:
        fig.supxlabel("learning rate (log scale)", fontsize=9)
        fig.supylabel(text(f"validation {metric} (mean over seeds)"), fontsize=9)
        fig.suptitle("Learning-rate sensitivity (tuning trials; hollow, dashed: a rung cut short; filled: the last "
                     "rung or the final runs)", fontsize=9)
        for ax in panels:
            if ax.get_legend_handles_labels()[0]:
                ax.legend(fontsize=5, loc="lower left")
    return save(fig, path)


#: the most strategies drawn together in one learning-rate panel
LR_PANEL_MAX = 6


def _rung_lines(ax: Axes, pts: list[tuple[float, float, bool, int]], colour: Any, name: str,
                from_finals: bool) -> list[float]:
    """One strategy's rungs on ``ax``: the best score per rate of each rung; return the rates drawn."""
    last = max(e for _, _, cut, e in pts if not cut) if any(not cut for *_, cut, _ in pts) else None
    drawn: list[float] = []
    for epochs in sorted({e for *_, e in pts}):
        best: dict[float, float] = {}
        for lr, v, _, e in pts:
            if e == epochs:
                best[lr] = max(v, best.get(lr, v))
        rates = sorted(best)
        drawn += rates
        final = epochs == last
        what = (" (final runs)" if from_finals else "") if final else " (rung)"
        ax.plot(rates, [best[r] for r in rates], color=colour, marker="o", ms=5 if final else 4,
                linestyle="-" if final else "--", linewidth=1.4 if final else 0.8,
                markerfacecolor=colour if final else "white", markeredgecolor=colour,
                label=text(f"{name + ', ' if name else ''}{epochs} epochs{what}"))
    return drawn
