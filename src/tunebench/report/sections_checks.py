"""The report's "Convergence checks" section: every run's diagnosis, a pure function of stored records
(the tuning search's section is :mod:`tunebench.report.sections_tuning`)."""

from __future__ import annotations

from typing import Any

from tunebench.report.document import Bullets, Para, Section, cell, text_table
from tunebench.report.sections import Context
from tunebench.results.diagnosis import (
    COLLAPSE_MARGIN,
    COLLAPSE_SHARE,
    IMPROVING_GAIN,
    OVERFIT_MIN_RISE,
    OVERFIT_RISE,
    advice_for,
    diagnose_record,
    is_baseline,
)


def _label(record: dict[str, Any]) -> str:
    return record.get("label") or record["strategy"]


def flagged_runs(runs: list[dict[str, Any]]) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """(record, diagnosis) of every run with at least one flag, in order."""
    out = []
    for r in runs:
        d = diagnose_record(r)
        if d is not None and d["flags"]:
            out.append((r, d))
    return out


def convergence_section(ctx: Context) -> Section | None:
    """Every run's diagnosis with its numbers; each flagged run listed with its advice."""
    runs = [r for r in (ctx.inputs.runs or ctx.records) if not is_baseline(r)]
    if not runs:
        return None
    rows = []
    for r in runs:
        d = diagnose_record(r) or {"diagnosis": "—", "flags": [], "evidence": {}}
        e = d["evidence"]
        share = e.get("top_class_share")
        rows.append([_label(r), ("⚠ " if d["flags"] else "") + (" + ".join(d["flags"]) or d["diagnosis"]),
                     f"{e['best_epoch']} / {e['epochs_run']}" if "best_epoch" in e else "—",
                     cell(None if e.get("last_gain") is None else 100 * e["last_gain"], "+.1f"),
                     cell(e.get("val_loss_rise_pct"), "+.0f"),
                     cell(None if share is None else 100 * share, ".0f"),
                     cell(e.get("val_macro_f1"), ".3f"), cell(e.get("majority_macro_f1"), ".3f")])
    section = Section("convergence", "Convergence checks", [Para(
        f"A run that did not train is no evidence against its strategy. Every check reads training and validation "
        f"data only (the test split decides nothing but the final scores). Collapsed: at least "
        f"{100 * COLLAPSE_SHARE:.0f} % of the kept epoch's validation predictions are one class (unless the "
        f"validation labels are too), or its validation macro-F1 within {COLLAPSE_MARGIN} of the majority "
        f"baseline's. Still improving: the best epoch is the last and validation macro-F1 gained at least "
        f"{100 * IMPROVING_GAIN:.0f} point in it (a one-epoch run: against epoch 0, the score before training). "
        f"Overfitting: the last validation loss is at least {100 * OVERFIT_RISE:.0f} % (and {OVERFIT_MIN_RISE}) "
        "above its minimum, reached earlier, while training loss fell. The recommendation does not rank a "
        "collapsed or still-improving run as beaten."),
        text_table(["run", "diagnosis", "best epoch / run", "last-epoch gain (points)", "val loss vs its min %",
                    "top predicted class % (val)", "val macro-F1", "majority val macro-F1"], rows,
                   key="convergence")])
    flagged = flagged_runs(runs)
    if flagged:
        section.add(Para("What to do:"), Bullets([advice_for(f, d["evidence"], _label(r))
                                                  for r, d in flagged for f in d["flags"]]))
    else:
        section.add(Para("No run was flagged."))
    return section
