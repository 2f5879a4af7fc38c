"""The data-efficiency curve (``data.train_sizes``): the verdict at each training size, and the line it draws.

Each size is a whole study in ``OUTPUT/n=<size>/`` (its own store, report and verdict: the same
protocol, splits and statistics as any study; only the training rows differ, a nested subset of one
pool).  This module reads those studies back and writes ``OUTPUT/curve.csv`` (one row per size and
configuration: mean test score over seeds with its t interval, its outcome at that size), ``curve.json``,
``curve.md`` (the answer, the verdict of every size, the table) and ``curve.png`` (test score against
training examples, log scale, one line per strategy with its seed interval).  A pure function of the
stores: ``tunebench report OUTPUT`` rebuilds it.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.ticker import NullFormatter

from tunebench.errors import SpecError
from tunebench.faults import atomic_write
from tunebench.report import figures, significance
from tunebench.report.analysis import baseline_mask, flags_of, unrankable_mask
from tunebench.report.inputs import load_inputs
from tunebench.report.verdict import configuration_frame, verdict
from tunebench.results.stats import metric_name
from tunebench.results.store import STORE_NAME
from tunebench.results.text import md
from tunebench.spec.strategy import strategy_spec

SIZE_FOLDER = re.compile(r"n=(\d+)")
CURVE_FILES = ("curve.csv", "curve.json", "curve.md", "curve.png")


def size_folder(out_dir: Path, size: int) -> Path:
    """Where the study at ``size`` training examples lives."""
    return Path(out_dir) / f"n={size}"


def curve_sizes(out_dir: Path) -> list[int]:
    """The sizes whose study is in ``out_dir`` (folders ``n=<size>`` holding a store), in increasing order."""
    found = [int(m.group(1)) for p in Path(out_dir).iterdir() if p.is_dir() and (m := SIZE_FOLDER.fullmatch(p.name))
             and (p / STORE_NAME).is_file()] if Path(out_dir).is_dir() else []
    return sorted(found)


@dataclass
class Curve:
    """``table``: one row per size and configuration; ``verdicts``: the recommendation sentence at each size;
    ``picks``: the configuration line it names (None: no verdict); ``answer``: the curve in one sentence."""

    metric: str
    sizes: list[int]
    table: pd.DataFrame
    verdicts: dict[int, str] = field(default_factory=dict)
    picks: dict[int, str | None] = field(default_factory=dict)
    bases: list[str] = field(default_factory=list)
    answer: str = ""
    draws: list[int] | None = None  # data.data_seeds: seed i trained on draw i of each size's subset


def line_name(spec: dict[str, Any]) -> str:
    """A configuration's line across sizes: its strategy without the rates tuning chose at each size
    (``full:lr=1e-4,head_lr=3e-3`` at one size and ``full:lr=3e-5,...`` at another are both ``full``)."""
    return strategy_spec({k: v for k, v in spec.items() if v is not None and k not in ("lr", "head_lr")}).label


#: "Recommended: <name> — …" or "Recommended: <name> (a baseline) — …": report.verdict's sentences carry the
#: pick as text only; reading it back here keeps one rule for both (a test pins the form)
_PICK = re.compile(r"Recommended: (.+?)(?: \(a baseline\))? — ")


def build_curve(out_dir: Path, sizes: list[int] | None = None, verdict_settings: dict[str, Any] | None = None) -> Curve:
    """Read every size's study in ``out_dir`` and compute the curve (nothing written); ``verdict_settings``: the
    report's overrides of the stored verdict settings (``metric``, ``margin``, ``alpha``)."""
    sizes = curve_sizes(out_dir) if sizes is None else [s for s in sizes if s in curve_sizes(out_dir)]
    rows, verdicts, picks, bases, metric, draws = [], {}, {}, set(), "macro_f1", None
    for size in list(sizes):
        try:
            inputs = load_inputs(size_folder(out_dir, size), verdict=verdict_settings)
        except SpecError:  # a size whose runs have not finished (interrupted, every run failed): not on the curve
            sizes.remove(size)
            continue
        metric = inputs.metric
        draws = ((inputs.runs[0].get("study_spec") or {}).get("data") or {}).get("data_seeds") if inputs.runs else None
        frame = configuration_frame(inputs, {})
        judged = verdict(inputs, frame)
        names = {significance.group_of(r): line_name(r["spec"]) for r in inputs.runs}
        summary = significance.summaries(inputs.runs)
        fam = judged.family
        base, bad, flags = baseline_mask(frame), unrankable_mask(frame), flags_of(frame)
        for i, row in frame.iterrows():
            group = row["strategy"]
            s = summary[group][f"test_{metric}"]
            if base[i]:
                outcome = "baseline" + (" (floor)" if fam is not None and fam.floor == group else "")
            elif bad[i]:
                outcome = "not ranked: " + " + ".join(flags[i])
            elif fam is not None and fam.reference == group:
                outcome = "reference"
            else:
                c = fam.against_reference(group) if fam is not None else None
                outcome = c.outcome if c is not None else "not compared"
            rows.append({"train_size": size, "strategy": names.get(group, group), "configuration": group,
                         "kind": row["kind"], "seeds": s.n, f"test_{metric}": s.mean, "low": s.low, "high": s.high,
                         "outcome": outcome})
        sentence = next((p for p in judged.picks if p.startswith(("Recommended", "No verdict"))), "No verdict.")
        verdicts[size] = sentence
        match = _PICK.match(sentence)
        picks[size] = names.get(match.group(1), match.group(1)) if match else None
        bases.update(fam.bases if fam is not None else [])
    curve = Curve(metric, sizes, pd.DataFrame(rows), verdicts, picks, sorted(bases), draws=draws)
    curve.answer = answer(curve)
    return curve


def answer(curve: Curve) -> str:
    """The curve in one sentence: which strategy each run of consecutive sizes recommends."""
    if not curve.sizes:
        return "No size of the curve has finished runs yet."
    spans: list[tuple[list[int], str | None]] = []
    for size in curve.sizes:
        pick = curve.picks.get(size)
        if spans and spans[-1][1] == pick:
            spans[-1][0].append(size)
        else:
            spans.append(([size], pick))
    parts = []
    for sizes, pick in spans:
        where = f"{sizes[0]:,}" if len(sizes) == 1 else f"{sizes[0]:,}–{sizes[-1]:,}"
        parts.append(f"at {where} training examples {pick or 'no verdict'}")
    basis = f" (each size's own verdict: {'; '.join(curve.bases)}, Holm-corrected)" if curve.bases else ""
    if len(spans) == 1:
        measured = ", ".join(f"{s:,}" for s in curve.sizes)
        return f"Recommended at every size measured ({measured} training examples): {spans[0][1] or 'no verdict'}{basis}."
    return "Recommended " + "; ".join(parts) + basis + "."


def write_curve(curve: Curve, out_dir: Path) -> dict[str, Path]:
    """``curve.csv``, ``curve.json``, ``curve.md`` and ``curve.png`` in ``out_dir``."""
    out_dir = Path(out_dir)
    paths = {name.split(".")[1]: out_dir / name for name in CURVE_FILES}
    atomic_write(paths["csv"], curve.table.to_csv(index=False, float_format="%.4f"))
    atomic_write(paths["json"], json.dumps({"metric": curve.metric, "sizes": curve.sizes, "answer": curve.answer,
                                            "verdicts": {str(k): v for k, v in curve.verdicts.items()},
                                            "picks": {str(k): v for k, v in curve.picks.items()},
                                            "rows": json.loads(curve.table.to_json(orient="records"))}, indent=2))
    draw(curve, paths["png"])
    atomic_write(paths["md"], markdown(curve))
    return paths


def markdown(curve: Curve) -> str:
    name = metric_name(curve.metric)
    lines = ["# Data-efficiency curve", "", md(curve.answer), "", "![test score by training examples](curve.png)", "",
             "## The verdict at each size", ""]
    lines += [f"- **{size:,} training examples** ([report](n={size}/report.md)): {md(curve.verdicts[size])}"
              for size in curve.sizes]
    lines += ["", f"## Test {name} by size (mean over seeds, 95 % t interval)", "",
              f"| training examples | strategy | configuration | seeds | test {name} | interval | outcome |",
              "|---:|---|---|---:|---:|---|---|"]
    for row in curve.table.itertuples(index=False):
        r = row._asdict()
        interval = "—" if np.isnan(r["low"]) else f"[{r['low']:.3f}, {r['high']:.3f}]"
        lines.append(f"| {r['train_size']:,} | {md(r['strategy'])} | {md(r['configuration'])} | {r['seeds']} | "
                     f"{r[f'test_{curve.metric}']:.3f} | {interval} | {md(r['outcome'])} |")
    lines += ["", "Outcomes are against the configuration with the best validation score at the same size "
              "(*reference*); a flagged run is not ranked. Each size's report holds the tests, costs and diagnostics."]
    if curve.draws:
        drawn = ", ".join(map(str, curve.draws))
        lines += ["", f"Each seed trained on its own draw of the training subset (data_seeds {drawn}; the baselines "
                  "were fitted per draw): the seed level of every test holds the draws' variance as well as the seeds'."]
    else:
        lines += ["", "Every seed trained on the same draw of the training subset at each size: the tests measure "
                  "seed noise, not the variance between draws of the training examples (data_seeds adds it)."]
    return "\n".join(lines) + "\n"


@figures.styled
def draw(curve: Curve, path: Path) -> Path:
    """Test score against training examples (log scale): one line per strategy, its seed interval as a band,
    baselines dashed, points not ranked at a size drawn hollow."""
    fig, axes = figures._new(1, width=7.6, height=4.0)
    ax = axes[0]
    col = f"test_{curve.metric}"
    table = curve.table
    for i, (name, rows) in enumerate(table.groupby("strategy", sort=False)) if len(table) else ():
        rows = rows.sort_values("train_size")
        colour = figures.color(i)
        dashed = rows["outcome"].str.startswith("baseline").all()
        ax.plot(rows["train_size"], rows[col], ls="--" if dashed else "-", color=colour,
                label=figures.text(name), lw=1.5)
        band = rows.dropna(subset=["low", "high"])
        if len(band):
            # a t interval can pass the metric's 0-1 range with 3 seeds; the band stops at it (curve.csv keeps it)
            ax.fill_between(band["train_size"], band["low"].clip(0, 1), band["high"].clip(0, 1), color=colour,
                            alpha=0.08, lw=0)
        hollow = rows["outcome"].str.startswith("not ranked")
        ax.scatter(rows["train_size"][~hollow], rows[col][~hollow], color=colour, s=18, zorder=3)
        ax.scatter(rows["train_size"][hollow], rows[col][hollow], facecolors="white", edgecolors=colour, s=24,
                   zorder=3)
    ax.set_xscale("log")  # ticks at the sizes measured, not at decades
    ax.set_xticks(curve.sizes, [f"{s:,}" for s in curve.sizes])
    ax.xaxis.set_minor_formatter(NullFormatter())
    if curve.sizes:
        ax.set_xlim(curve.sizes[0] / 1.3, curve.sizes[-1] * 1.3)
    ax.set_xlabel("training examples (log scale)")
    ax.set_ylabel(f"test {metric_name(curve.metric)}")
    ax.set_title(f"Test {metric_name(curve.metric)} by training examples (mean over seeds, 95 % t band; "
                 "hollow: not ranked)", fontsize=9)
    ax.grid(alpha=0.3)
    if len(table):
        ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)  # beside: no line hidden
    return figures.save(fig, path)
