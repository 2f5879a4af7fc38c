"""The report: a pure function of the store.

``build_report(out_dir)`` reads ``OUTPUT/tunebench.sqlite`` (and ``dataset_profile.json`` if
present), draws the figures into ``OUTPUT/figures``, and writes ``report.html`` (self-contained:
figures inlined, no scripts, no external references) and ``report.md`` (figures linked).  The
same store gives byte-identical files: nothing in them depends on the time of the build.
"""

from __future__ import annotations

from pathlib import Path

from tunebench.faults import atomic_write
from tunebench.report import (
    sections,
    sections_checks,
    sections_data,
    sections_labels,
    sections_serving,
    sections_targets,
    sections_tuning,
)
from tunebench.report import sections_significance as significance_sections
from tunebench.report.cost import DEFAULT_PRICES
from tunebench.report.document import Document, Section, cell, text_table
from tunebench.report.html import render_html
from tunebench.report.inputs import load_inputs
from tunebench.report.markdown import render_markdown
from tunebench.report.verdict import configuration_frame

SECTIONS = [sections.headline, sections_checks.convergence_section, significance_sections.significance_section,
            significance_sections.sweep_section, sections.comparison, sections.pareto, sections.curves,
            sections.confusion, sections_labels.per_label, sections_targets.predictions,  # one of the three
            sections_data.errors, sections_labels.errors, sections_targets.errors,  # likewise: by data.task
            sections_data.dataset, sections.cost, sections_serving.serving_section, sections_tuning.lr_section,
            sections.recommendation, sections.environment]


def build_document(out_dir: Path, prices: dict[str, float] | None = None, study: str | None = None,
                   tuning: list[dict] | None = None, verdict: dict | None = None) -> Document:
    """Read the store and draw the figures; return the report as a :class:`Document`.

    ``tuning``: the tuning-trial records to show (None: the store's ``<study>:tuning`` records);
    ``verdict``: ``metric`` / ``margin`` / ``alpha`` instead of the stored spec's (spec.parts.VerdictSpec)."""
    out_dir = Path(out_dir)
    inputs = load_inputs(out_dir, study, verdict)
    if tuning is not None:
        inputs.tuning = list(tuning)
    prices = dict(DEFAULT_PRICES if prices is None else prices)
    frame = configuration_frame(inputs, prices)  # one row per configuration: the mean over its seeds
    ctx = sections.Context(inputs, prices, frame, out_dir / "figures")
    built = [section for build in SECTIONS if (section := build(ctx)) is not None]
    if inputs.unfinished:  # runs that diverged, failed or were interrupted, right after the headline table
        built.insert(1, unfinished_section(inputs.unfinished))
    for number, section in enumerate(built, 1):  # sections that apply only to some studies: number what is there
        section.title = f"{number}. {section.title.split('. ', 1)[-1]}"
    return Document(f"tunebench report: {inputs.study}", sections.intro(ctx), built)


def unfinished_section(records: list[dict]) -> Section:
    """One row per run that did not finish: status, where it stopped, the last finite loss, the error."""
    rows = []
    for r in records:
        failure = r.get("failure") or {}
        rows.append([r.get("label", r["strategy"]), r["status"], failure.get("epoch"), failure.get("step"),
                     cell(failure.get("last_finite_loss"), ".4g"), failure.get("error") or r.get("error", "")])
    table = text_table(["run", "status", "epoch", "step", "last finite loss", "error"], rows, key="unfinished",
                       caption="Not part of any ranking or recommendation; the next 'tunebench run' tries them again.")
    return Section("unfinished", "Runs that did not finish").add(table)


def build_report(out_dir: Path, prices: dict[str, float] | None = None, study: str | None = None,
                 tuning: list[dict] | None = None, verdict: dict | None = None) -> dict[str, Path]:
    """Write report.html and report.md (and figures/) into ``out_dir``; return their paths."""
    out_dir = Path(out_dir)
    doc = build_document(out_dir, prices, study, tuning, verdict)
    paths = {"html": out_dir / "report.html", "markdown": out_dir / "report.md"}
    atomic_write(paths["html"], render_html(doc))
    atomic_write(paths["markdown"], render_markdown(doc, out_dir))
    return paths
