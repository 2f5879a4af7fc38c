"""The report's figures of errors: where each run's errors fall (single-label and multi-label), and a
regression's predictions against its targets.  Drawn like :mod:`tunebench.report.figures` (its style, colours
and escaping); kept apart so that module stays readable."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from tunebench.report import figures
from tunebench.report.figures import _new, color, plain, styled, text


@styled
def error_labels(counts: dict[str, Any], names: list[str], path: Path, legend=("true label", "predicted label")) -> Path:
    """Per run: how errors distribute over true labels and over predicted labels (multi-label: missed, said wrongly)."""
    fig, axes = _new(len(counts), width=max(3.2, 0.4 * len(names) + 1.5))
    xs = np.arange(len(names))
    for ax, (run, (true, pred)) in zip(axes, counts.items(), strict=True):
        ax.bar(xs - 0.2, true, 0.4, label=legend[0], color="#4c72b0")
        ax.bar(xs + 0.2, pred, 0.4, label=legend[1], color="#c44e52")
        ax.set_xticks(xs, plain(names), rotation=45, ha="right", fontsize=7)
        ax.set_title(f"errors of {text(run)}")
        ax.margins(y=0.3)  # headroom above the bars: the legend sat on them (the default study's full run)
    axes[0].legend(fontsize=7, loc="upper right", ncol=2)
    return figures.save(fig, path)  # through the module: one place saves every figure


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
        ax.set_title(f"errors of {text(run)}")
    return figures.save(fig, path)  # through the module: one place saves every figure


@styled
def predicted_vs_target(points: dict[str, tuple[Any, Any]], path: Path, name: str = "target") -> Path:
    """A regression's test predictions against the targets, one panel per run; the dashed line is y = x."""
    fig, axes = _new(len(points), width=3.2, height=3.2)
    every = np.concatenate([np.concatenate([np.asarray(y, float), np.asarray(p, float)]) for y, p in points.values()])
    low, high = (float(every.min()), float(every.max())) if every.size else (0.0, 1.0)
    for i, (ax, (run, (y, p))) in enumerate(zip(axes, points.items(), strict=True)):
        ax.scatter(y, p, s=6, alpha=0.5, color=color(i))
        ax.plot([low, high], [low, high], "k--", lw=1)
        ax.set_xlim(low, high)
        ax.set_ylim(low, high)
        ax.set_xlabel(f"{text(name)} (test)")
        ax.set_ylabel("predicted")
        ax.set_title(text(run))
    return figures.save(fig, path)  # through the module: one place saves every figure
