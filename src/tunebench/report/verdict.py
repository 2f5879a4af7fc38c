"""The verdict, computed in one place for the report and the Python API (``tb.Study.run().recommendation``).

The configuration frame (one row per configuration, the mean over its seeds, baselines as reference
rows), which configurations the significance tests cannot tell apart from the best, and the picks and
caveats of :func:`tunebench.report.analysis.recommendation`.  Both callers read the same
:class:`~tunebench.report.inputs.ReportInputs`, so they cannot disagree.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from tunebench.report import significance
from tunebench.report.analysis import headline_frame, recommendation, seed_means
from tunebench.report.inputs import ReportInputs


def configuration_frame(inputs: ReportInputs, prices: dict[str, float]) -> pd.DataFrame:
    """The headline frame: one row per configuration; with several seeds, the mean over them."""
    frame = headline_frame(inputs.records, prices)
    if inputs.repeated:
        frame = seed_means(frame, headline_frame(inputs.runs, prices), [significance.group_of(r) for r in inputs.runs])
    return frame


def tied_configurations(inputs: ReportInputs) -> list[str] | None:
    """The best configuration and those tied with it (best first); None with one configuration to compare."""
    runs = significance.compared(inputs.runs or inputs.records)
    if len(significance.groups(runs)) < 2:
        return None
    best, comparisons = significance.compare_with_best(runs, inputs.predictions)
    return [best] + significance.tied_with_best(comparisons)


@dataclass
class Verdict:
    """The configurations tied with the best (best first; None: one to compare), the picks, the caveats."""

    tied: list[str] | None
    picks: list[str]
    caveats: list[str]


def verdict(inputs: ReportInputs, frame: pd.DataFrame) -> Verdict:
    """The recommendation of ``inputs`` over its configuration ``frame`` (:func:`configuration_frame`)."""
    tied = tied_configurations(inputs)
    picks, caveats = recommendation(frame, inputs.records, tied, tuned=bool(inputs.tuning))
    return Verdict(tied, picks, caveats)
