"""The report's figures: matplotlib (Agg, no pyplot state), one PNG per function, byte-identical
for identical inputs (no timestamp or software tag in the file)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from tunebench.errors import printable
from tunebench.report.analysis import normalised_confusion, pareto_front

#: text.parse_math off: labels and names come from data, and "$\\foo$" must not reach mathtext's parser
_RC = {"svg.hashsalt": "tunebench", "font.size": 9, "axes.titlesize": 10, "figure.dpi": 100, "text.parse_math": False}
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
    """Class names from the data, drawn as text: a "$5 & $6" label must not be parsed as math, and a
    control character (ESC, a newline) is drawn escaped (matplotlib's missing-glyph warning would
    carry it raw to the terminal)."""
    return [printable(str(x)).replace("$", r"\$") for x in labels]


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


def _bars(ax, labels: list[str], values: list[float], title: str, fmt: str, log: bool = False) -> None:
    xs = np.arange(len(labels))
    vals = [0.0 if v is None or v != v else float(v) for v in values]
    ax.bar(xs, vals, color=[color(i) for i in range(len(labels))])
    ax.set_xticks(xs, labels, rotation=30, ha="right")
    ax.set_title(title)
    if log and any(v > 0 for v in vals):
        ax.set_yscale("log")
    for x, v, raw in zip(xs, vals, values, strict=True):
        ax.annotate("—" if raw is None or raw != raw else format(v, fmt), (x, v), ha="center", va="bottom",
                    fontsize=8, xytext=(0, 2), textcoords="offset points")


@styled
def comparison(frame: pd.DataFrame, path: Path) -> Path:
    """Four panels as the financial-sentiment study drew them: quality, parameters, time, cost."""
    fig, axes = _new(4, width=3.6)
    labels = list(frame["strategy"])
    xs = np.arange(len(labels))
    ax = axes[0]
    ax.bar(xs - 0.2, frame["test_accuracy"], 0.4, label="accuracy", color="#4c72b0")
    ax.bar(xs + 0.2, frame["test_macro_f1"], 0.4, label="macro-F1", color="#dd8452")
    ax.set_xticks(xs, labels, rotation=30, ha="right")
    ax.set_ylim(0, 1.05)
    ax.set_title("Quality (test)")
    ax.legend(fontsize=7, loc="lower right")
    _bars(axes[1], labels, list(frame["trainable_share_pct"]), "Trainable parameters (%)", ".2f", log=True)
    _bars(axes[2], labels, list(frame["train_time_s"]), "Training time (s)", ".1f")
    _bars(axes[3], labels, list(frame["cost_usd"]), "Training cost (USD, est.)", ".4f")
    return save(fig, path)


PARETO_AXES = [("train_time_s", "train time (s)", False), ("peak_memory_mb", "peak memory (MB)", False),
               ("trainable_params", "trainable parameters", True)]


@styled
def pareto(frame: pd.DataFrame, path: Path) -> Path:
    """Test macro-F1 against each cost axis; the non-dominated runs joined by a line."""
    fig, axes = _new(3)
    f1 = list(frame["test_macro_f1"])
    for ax, (col, label, log) in zip(axes, PARETO_AXES, strict=True):
        xs = [None if v is None or v != v else float(v) for v in frame[col]]
        for i, (x, y) in enumerate(zip(xs, f1, strict=True)):
            if x is not None:
                ax.scatter(x, y, color=color(i), s=40, zorder=3, label=frame["strategy"].iloc[i])
        front = pareto_front(xs, f1)
        ax.plot([xs[i] for i in front], [f1[i] for i in front], "k--", lw=1, zorder=2, label="Pareto front")
        if log:
            ax.set_xscale("log")
        ax.set_xlabel(label)
        ax.set_ylabel("test macro-F1")
        ax.set_title(f"macro-F1 vs {label}")
    axes[0].legend(fontsize=7)
    return save(fig, path)


CURVES = [("train_loss", "train loss"), ("val_loss", "validation loss"), ("val_accuracy", "validation accuracy"),
          ("val_macro_f1", "validation macro-F1")]


@styled
def curves(records: list[dict[str, Any]], path: Path) -> Path:
    """Per-epoch curves, one line per run."""
    fig, axes = _new(4, width=3.4)
    for ax, (key, title) in zip(axes, CURVES, strict=True):
        for i, r in enumerate(records):
            pts = [(c["epoch"], c[key]) for c in r["curves"] if c.get(key) is not None]
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", ms=3, color=color(i), label=r["strategy"])
        ax.set_title(title)
        ax.set_xlabel("epoch")
    axes[0].legend(fontsize=7)
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
        ax.set_title(r["strategy"])
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
        ax.bar(xs + (i - (len(runs) - 1) / 2) * w, table[run].fillna(0), w, color=color(i), label=run)
    ax.set_xticks(xs, plain(list(table.index)), rotation=45, ha="right")
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("F1")
    ax.set_title(title)
    ax.legend(fontsize=7)
    return save(fig, path)


@styled
def error_labels(counts: dict[str, tuple[list[int], list[int]]], names: list[str], path: Path) -> Path:
    """Per run: how errors distribute over true labels and over predicted labels."""
    fig, axes = _new(len(counts), width=max(3.2, 0.4 * len(names) + 1.5))
    xs = np.arange(len(names))
    for ax, (run, (true, pred)) in zip(axes, counts.items(), strict=True):
        ax.bar(xs - 0.2, true, 0.4, label="true label", color="#4c72b0")
        ax.bar(xs + 0.2, pred, 0.4, label="predicted label", color="#c44e52")
        ax.set_xticks(xs, plain(names), rotation=45, ha="right", fontsize=7)
        ax.set_title(f"errors of {run}")
    axes[0].legend(fontsize=7)
    return save(fig, path)


@styled
def probability_gaps(gaps: dict[str, dict[int, list[float]]], names: list[str], path: Path) -> Path:
    """Per run: box plots of predicted-minus-true probability of errors, per true class."""
    fig, axes = _new(len(gaps), width=max(3.2, 0.4 * len(names) + 1.5))
    for ax, (run, by_class) in zip(axes, gaps.items(), strict=True):
        data = [by_class.get(k, []) for k in range(len(names))]
        ax.boxplot([d if d else [np.nan] for d in data], tick_labels=plain(names))
        ax.tick_params(axis="x", rotation=45, labelsize=7)
        ax.set_ylim(0, 1)
        ax.set_ylabel("p(predicted) − p(true)")
        ax.set_title(f"errors of {run}")
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
        ax.hist(v, bins=bins, alpha=0.5, color=color(i), label=s, density=True)
    ax.set_xlabel("words per example")
    ax.set_title("Text length (words)")
    ax.legend(fontsize=7)
    return save(fig, path)


@styled
def lr_sensitivity(trials: dict[str, list[tuple[float, float | None, bool]]], path: Path) -> Path:
    """Validation macro-F1 against learning rate (log x), one line per strategy.

    ``trials``: strategy -> [(lr, best validation macro-F1 reached, pruned)]; the line joins the best
    value at each rate, a pruned trial is drawn hollow (its value is where it was stopped)."""
    fig, axes = _new(1, width=5.6, height=3.6)
    ax = axes[0]
    for i, (strategy, points) in enumerate(trials.items()):
        pts = sorted((lr, v, pruned) for lr, v, pruned in points if v is not None and lr and lr > 0)
        if not pts:
            continue
        best: dict[float, float] = {}
        for lr, v, _ in pts:
            best[lr] = max(v, best.get(lr, v))
        ax.plot(list(best), list(best.values()), color=color(i), marker="o", ms=4, label=str(strategy))
        hollow = [(lr, v) for lr, v, pruned in pts if pruned]
        if hollow:
            ax.scatter([p[0] for p in hollow], [p[1] for p in hollow], s=36, facecolors="white",
                       edgecolors=[color(i)], zorder=3)
    ax.set_xscale("log")
    ax.set_xlabel("learning rate (log scale)")
    ax.set_ylabel("validation macro-F1")
    ax.set_title("Learning-rate sensitivity (tuning trials)")
    if trials:
        ax.legend(fontsize=7)
    return save(fig, path)
