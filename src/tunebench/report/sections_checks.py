"""The report's "Convergence checks" section: every run's diagnosis, a pure function of stored records
(the tuning search's section is :mod:`tunebench.report.sections_tuning`)."""

from __future__ import annotations

from typing import Any

from tunebench.report.document import Bullets, Para, Section, cell, text_table
from tunebench.report.sections import Context
from tunebench.results.diagnosis import (
    COLLAPSE_MARGIN,
    COLLAPSE_SHARE,
    CONSTANT_SPREAD,
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
    regression = (runs[0].get("data") or {}).get("task") == "regression"
    if regression:  # the same checks on R², against the mean baseline; a constant prediction is a collapse
        rule = (f"Collapsed: the kept epoch's validation predictions vary by less than {100 * CONSTANT_SPREAD:.0f} % "
                f"of the target's standard deviation (a constant), or its validation R² within {COLLAPSE_MARGIN} of "
                f"the mean baseline's. Still improving: the best epoch is the last and validation R² gained at least "
                f"{100 * IMPROVING_GAIN:.0f} point in it")
    section = Section("convergence", "Convergence checks", [Para(
        "A run that did not train is no evidence against its strategy. Every check reads training and validation "
        "data only (the test split decides nothing but the final scores). " + (rule if regression else (
            f"Collapsed: at least {100 * COLLAPSE_SHARE:.0f} % of the kept epoch's validation predictions are one "
            f"class (unless the validation labels are too), or its validation macro-F1 within {COLLAPSE_MARGIN} of "
            f"the majority baseline's. Still improving: the best epoch is the last and validation macro-F1 gained "
            f"at least {100 * IMPROVING_GAIN:.0f} point in it"))
        + " (a one-epoch run: against epoch 0, the score before training). "
        f"Overfitting: the last validation loss is at least {100 * OVERFIT_RISE:.0f} % (and {OVERFIT_MIN_RISE}) "
        "above its minimum, reached earlier, while training loss fell. The recommendation does not rank a "
        "collapsed or still-improving run as beaten."),
        text_table(["run", "diagnosis", "best epoch / run", "last-epoch gain (points)", "val loss vs its min %",
                    "top predicted class % (val)", *(["val R²", "mean-baseline val R²"] if regression else
                                                     ["val macro-F1", "majority val macro-F1"])], rows,
                   key="convergence")])
    flagged = flagged_runs(runs)
    if flagged:
        section.add(Para("What to do:"), Bullets([advice_for(f, d["evidence"], _label(r))
                                                  for r, d in flagged for f in d["flags"]]))
    else:
        section.add(Para("No run was flagged."))
    return section
