"""The report's pictures as a reader sees them: every figure the report draws, rendered from a small
synthetic study (no training) and read back through the Figure's artists before it is saved — the
text matplotlib actually draws (tick labels, titles, axis labels, annotations, legend entries) has no
mathtext and no "$", and every legend entry stands for something drawn."""

from __future__ import annotations

import pandas as pd
import pytest
from matplotlib.collections import PathCollection
from matplotlib.container import BarContainer
from matplotlib.lines import Line2D

from tunebench.report import build_report, figures

from .test_report_checks import store_of, study, trial

#: every figure the report draws itself (the dataset profile's are drawn by ``tunebench data``)
DRAWN = {"comparison.png", "pareto.png", "curves.png", "confusion.png", "per_class_f1.png", "error_labels.png",
         "probability_gaps.png", "lr_sensitivity.png", "data_words.png"}


def drawn_texts(fig) -> list[tuple[str, bool]]:
    """(the string drawn, whether it went through mathtext) for every visible piece of text of ``fig``,
    after a draw has placed the ticks: what ``Text.draw`` itself renders (``_preprocess_math``)."""
    fig.canvas.draw()
    texts = list(fig.texts)
    for ax in fig.axes:
        if not ax.get_visible():
            continue
        for axis in (ax.xaxis, ax.yaxis):
            texts += tick_labels(axis) + [axis.label, axis.get_offset_text()]
        texts += [ax.title, ax._left_title, ax._right_title, *ax.texts]
        if ax.get_legend() is not None:
            texts += [*ax.get_legend().get_texts(), ax.get_legend().get_title()]
    out = []
    for t in texts:
        if t.get_visible() and t.get_text():
            out.append(t._preprocess_math(t.get_text()))
    return [(s, bool(ismath)) for s, ismath in out]


def tick_labels(axis) -> list:
    """The tick labels the axis draws: those of the ticks in its view (``Axis._update_ticks``, which the
    draw itself uses; ``get_ticklabels`` also holds the ticks just outside the view)."""
    return [label for tick in axis._update_ticks() for label in (tick.label1, tick.label2) if label.get_visible()]


def shown(axis) -> list[str]:
    return [t.get_text() for t in tick_labels(axis) if t.get_text()]


def has_data(handle) -> bool:
    if isinstance(handle, Line2D):
        return len(handle.get_xdata()) > 0
    if isinstance(handle, PathCollection):
        return len(handle.get_offsets()) > 0
    if isinstance(handle, BarContainer):
        return len(handle.patches) > 0
    return True


def legend_entries(fig) -> list[tuple[str, bool]]:
    """(label, whether its artist draws anything) of every legend entry of ``fig``."""
    out = []
    for ax in fig.axes:
        legend = ax.get_legend()
        if legend is None:
            continue
        handles, labels = ax.get_legend_handles_labels()
        assert [t.get_text() for t in legend.get_texts()] == labels  # the legend is the axes' own artists
        out += [(label, has_data(h)) for h, label in zip(handles, labels, strict=True)]
    return out


def check_reads_cleanly(name: str, fig) -> list[str]:
    texts = drawn_texts(fig)
    assert texts, name
    for s, ismath in texts:
        assert not ismath and "$" not in s and "mathdefault" not in s, (name, s)
    entries = legend_entries(fig)
    assert all(ok for _, ok in entries), (name, entries)
    return [s for s, _ in texts]


@pytest.fixture()
def report_figures(tmp_path, captured):
    tuning = [trial("full", lr, v, n, p) for n, (lr, v, p) in
              enumerate([(5e-5, 0.70, None), (1.6e-4, 0.78, None), (1.6e-5, 0.55, 1), (5e-4, 0.40, 1)])]
    tuning += [trial("lora:r=8", lr, v, 4 + n, p) for n, (lr, v, p) in
               enumerate([(5e-4, 0.80, None), (1.6e-3, 0.82, None), (1.6e-4, 0.61, 1)])]
    records = study(converged_full=True)
    for r in records:  # CPU runs, as the default study: the process had 600 MB before each run started
        r["resources"]["rss_at_start_mb"] = 600.0
    out = store_of(tmp_path, records, tuning)
    build_report(out)
    # the word-count histogram needs the study's texts, which a synthetic store cannot rebuild: drawn directly
    figures.text_lengths({"train": ["a b c", "a b", "one two three four"], "test": ["x y", "x"]},
                         out / "figures" / "data_words.png")
    return captured


def test_every_report_figure_draws_plain_text_and_no_empty_legend_entry(report_figures):
    assert set(report_figures) == DRAWN
    for name, fig in report_figures.items():
        check_reads_cleanly(name, fig)


def test_log_axes_tick_in_plain_numbers(report_figures):
    comparison = report_figures["comparison.png"]
    share = next(ax for ax in comparison.axes if ax.get_title() == "Trainable parameters (%)")
    assert share.get_yscale() == "log"
    ticks = shown(share.yaxis)
    assert len(ticks) >= 2 and all(t.replace(".", "").isdigit() for t in ticks), ticks
    # a baseline trains no network: its trainable share is "—", not 100 %
    written = [t.get_text() for t in share.texts]
    assert written == ["10.00", "20.00", "30.00", "—", "—"]
    pareto = report_figures["pareto.png"]
    params = next(ax for ax in pareto.axes if ax.get_xscale() == "log")
    labels = shown(params.xaxis)
    assert labels and set(labels) <= {"1", "10", "100", "1k", "10k", "100k"}, labels
    lr = report_figures["lr_sensitivity.png"].axes[0]
    assert set(shown(lr.xaxis)) >= {"1e-05", "0.0001", "0.001"}


def test_curves_tick_whole_epochs_and_list_only_runs_with_curves(report_figures):
    fig = report_figures["curves.png"]
    for ax in fig.axes:
        ticks = shown(ax.xaxis)
        assert ticks and all(t.isdigit() for t in ticks), ticks
    entries = legend_entries(fig)
    assert [label for label, _ in entries] == ["full", "lora:r=8", "head"]  # no majority, no tfidf-logreg


def test_pareto_memory_axis_says_what_it_measures(report_figures):
    axes = report_figures["pareto.png"].axes
    assert axes[1].get_xlabel() == "memory added (MB, peak RSS above start)"
    xs = sorted(float(x) for c in axes[1].collections for x, _ in c.get_offsets())
    assert xs == [300.0, 301.0, 302.0, 303.0, 304.0]  # 900-904 MB of process RSS, 600 MB there before the run


def test_names_from_the_data_are_drawn_as_text(tmp_path):
    hostile = ["$5 & $6", "$\\foo$", "plain"]
    table = pd.DataFrame({"lora:$x$": [0.5, 0.6, 0.7], "full": [0.4, 0.3, 0.2]}, index=hostile)
    fig = None

    def keep(f, path):
        nonlocal fig
        fig = f
        return path

    save, figures.save = figures.save, keep
    try:
        figures.per_class_f1(table, tmp_path / "x.png")
    finally:
        figures.save = save
    texts = drawn_texts(fig)
    assert not any(ismath for _, ismath in texts)
    shown = [s for s, _ in texts]
    assert "$5 & $6" in shown and "$\\foo$" in shown and "lora:$x$" in shown


def test_tuned_labels_put_their_rates_on_a_line_of_their_own():
    from tunebench.report.figures import tick_labels

    assert tick_labels(["full:lr=0.000158,head_lr=0.003", "lora:r=8,lr=0.005,head_lr=0.003", "head:lr=0.01",
                        "partial:k=2", "tfidf-logreg"]) == [
        "full\nlr=0.000158\nhead_lr=0.003", "lora:r=8\nlr=0.005\nhead_lr=0.003", "head\nlr=0.01", "partial:k=2",
        "tfidf-logreg"]


def test_many_strategies_get_a_learning_rate_panel_each_with_a_legend_of_their_own_rungs(tmp_path, captured):
    """22 strategies in one panel drew a legend of 44 entries over the whole plot (the PEFT-methods recipe):
    above LR_PANEL_MAX each strategy gets its own panel, titled, on shared axes, its legend its own rungs."""
    n = figures.LR_PANEL_MAX + 3
    trials = {f"method-{i}": [(1e-4, 0.6, True, 2), (1e-3, 0.7 + i / 100, True, 2), (1e-3, 0.75, False, 5)]
              for i in range(n)}
    figures.lr_sensitivity(trials, tmp_path / "lr.png", finals={"method-0"})
    fig = captured["lr.png"]
    check_reads_cleanly("lr.png", fig)
    shown_axes = [ax for ax in fig.axes if ax.get_visible()]
    assert [ax.get_title() for ax in shown_axes] == [f"method-{i}" for i in range(n)]
    assert len({ax.get_ylim() for ax in shown_axes}) == 1  # shared scores scale: panels compare by eye
    legends = [[t.get_text() for t in ax.get_legend().get_texts()] for ax in shown_axes]
    assert legends[0] == ["2 epochs (rung)", "5 epochs (final runs)"]
    assert all(entries == ["2 epochs (rung)", "5 epochs"] for entries in legends[1:])
    assert "hollow, dashed: a rung cut short" in fig.get_suptitle()

    # a few strategies still share one panel, one colour and legend entry per strategy and rung
    figures.lr_sensitivity(dict(list(trials.items())[:2]), tmp_path / "few.png")
    few = captured["few.png"]
    assert len(few.axes) == 1
    assert [t.get_text() for t in few.axes[0].get_legend().get_texts()] == [
        "method-0, 2 epochs (rung)", "method-0, 5 epochs", "method-1, 2 epochs (rung)", "method-1, 5 epochs"]


def test_a_pareto_figure_of_many_strategies_puts_its_legend_below_the_panels(tmp_path, captured):
    """22 strategies' entries in the first panel squashed all three panels (the PEFT-methods recipe)."""
    n = figures.LEGEND_IN_PANEL_MAX + 4
    frame = pd.DataFrame({"strategy": [f"method-{i}" for i in range(n)], "test_macro_f1": [0.5 + i / 100 for i in range(n)],
                          **{col: [10.0 + i for i in range(n)] for col, _, _ in figures.PARETO_AXES}})
    figures.pareto(frame, tmp_path / "pareto.png")
    fig = captured["pareto.png"]
    check_reads_cleanly("pareto.png", fig)
    assert all(ax.get_legend() is None for ax in fig.axes)
    [legend] = fig.legends
    assert [t.get_text() for t in legend.get_texts()] == [f"method-{i}" for i in range(n)] + ["Pareto front"]
    few = frame.head(3)
    figures.pareto(few, tmp_path / "few.png")
    assert not captured["few.png"].legends and captured["few.png"].axes[0].get_legend() is not None


def test_a_comparison_of_many_configurations_lays_its_bars_down_with_each_name_once(tmp_path, captured):
    """24 upright bars per panel with rotated two-line names overlapped into noise (the PEFT-methods recipe)."""
    n = figures.COMPARISON_COLUMNS_MAX + 5
    names = [f"method-{i}:lr=0.001" for i in range(n)]
    frame = pd.DataFrame({"strategy": names, "test_accuracy": [0.7] * n, "test_macro_f1": [0.6] * n,
                          "trainable_share_pct": [None] + [1.0] * (n - 1), "train_time_s": [10.0] * n,
                          "cost_usd": [0.001] * n})
    figures.comparison(frame, tmp_path / "comparison.png")
    fig = captured["comparison.png"]
    check_reads_cleanly("comparison.png", fig)
    first, *others = fig.axes
    assert [t.get_text() for t in first.get_yticklabels()] == names  # top to bottom, in the table's order
    assert first.yaxis_inverted()
    assert all(not [t.get_text() for t in ax.get_yticklabels() if t.get_text()] for ax in others)
    share = next(ax for ax in fig.axes if ax.get_title() == "Trainable parameters (%)")
    assert share.get_xscale() == "log" and [t.get_text() for t in share.texts][:2] == ["—", "1.00"]


@pytest.mark.parametrize("names, rows", [(["full:lr=0.000158,head_lr=0.003", "lora:r=8,lr=0.005,head_lr=0.003",
                                           "head:lr=0.001", "majority", "tfidf-logreg"], True),
                                         (["full", "lora:r=8", "head"], False)])
def test_tuned_names_lay_the_comparison_down_and_its_legend_clears_the_ticks(tmp_path, captured, names, rows):
    """The default study's three tuned names, rotated under upright bars, ran into each other (2026-12-06)."""
    n = len(names)
    frame = pd.DataFrame({"strategy": names, "test_accuracy": [0.7] * n, "test_macro_f1": [0.6] * n,
                          "trainable_share_pct": [1.0] * n, "train_time_s": [10.0] * n, "cost_usd": [0.001] * n})
    figures.comparison(frame, tmp_path / "comparison.png")
    fig = captured["comparison.png"]
    check_reads_cleanly("comparison.png", fig)
    first = fig.axes[0]
    named = first.get_yticklabels() if rows else first.get_xticklabels()  # rows: names on the y axis, once
    assert [t.get_text() for t in named] == names
    if rows:
        fig.canvas.draw()
        renderer = fig.canvas.get_renderer()
        legend = first.get_legend().get_window_extent(renderer)
        ticks = [t.get_window_extent(renderer) for t in first.get_xticklabels() if t.get_text()]
        assert ticks and all(legend.y1 < t.y0 for t in ticks)  # below the tick labels, not over them
