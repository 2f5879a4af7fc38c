"""The report's trust sections: convergence checks of every run, and the learning-rate sensitivity of
the tuning trials (with the budget each strategy had).  Both are pure functions of stored records."""

from __future__ import annotations

from typing import Any

from tunebench.report import figures
from tunebench.report.document import Bullets, Figure, Para, Section, cell, text_table
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


def tuning_trials(records: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Tuning-trial records by strategy (``record["tuning"]["strategy"]``), trials in order."""
    out: dict[str, list[dict[str, Any]]] = {}
    for r in records:
        t = r.get("tuning")
        if isinstance(t, dict) and t.get("strategy") is not None and t.get("lr") is not None:
            out.setdefault(str(t["strategy"]), []).append(r)
    for trials in out.values():
        trials.sort(key=lambda r: (r["tuning"].get("trial") or 0, r["tuning"]["lr"]))
    return out


def _epochs(record: dict[str, Any]) -> int:
    t = record["tuning"]
    return int(t.get("epochs_run") if t.get("epochs_run") is not None else len(record.get("curves") or []))


def budget_sentence(by_strategy: dict[str, list[dict[str, Any]]]) -> str:
    counts = {s: len(ts) for s, ts in by_strategy.items()}
    epochs = {s: sum(_epochs(r) for r in ts) for s, ts in by_strategy.items()}
    each = "; ".join(f"{s}: {counts[s]} trials, {epochs[s]} epochs" for s in by_strategy)
    if len(set(counts.values())) == 1:
        return (f"Every strategy had the same budget: {next(iter(counts.values()))} learning-rate trials "
                f"(epochs trained in tuning, after pruning: {each}).")
    return f"The strategies did not have the same number of trials: {each}."


def lr_section(ctx: Context) -> Section | None:
    """Validation macro-F1 against learning rate per strategy, and each strategy's tuning budget."""
    by_strategy = tuning_trials(ctx.inputs.tuning)
    if not by_strategy:
        return None
    points = {s: [(float(r["tuning"]["lr"]), r["tuning"].get("value"), r.get("status") == "pruned"
                   or r["tuning"].get("pruned_at") is not None) for r in ts] for s, ts in by_strategy.items()}
    fig = figures.lr_sensitivity(points, ctx.figure("lr_sensitivity.png"))
    budget, trials = [], []
    for s, ts in by_strategy.items():
        scored = [r for r in ts if r["tuning"].get("value") is not None]
        best = max(scored, key=lambda r: r["tuning"]["value"]) if scored else None
        pruned = sum(1 for r in ts if r.get("status") == "pruned" or r["tuning"].get("pruned_at") is not None)
        budget.append([s, len(ts), len(ts) - pruned, pruned, sum(_epochs(r) for r in ts),
                       cell(None if best is None else best["tuning"]["lr"], "g"),
                       cell(None if best is None else best["tuning"]["value"], ".3f")])
        trials += [[s, r["tuning"].get("trial"), cell(r["tuning"]["lr"], "g"), cell(r["tuning"].get("value"), ".3f"),
                    r.get("status", "—"), r["tuning"].get("pruned_at") or "—", _epochs(r)] for r in ts]
    return Section("lr-sensitivity", "Learning-rate sensitivity", [
        Para("Each strategy's learning-rate trials, scored on validation macro-F1 with the tuning seed (the test split "
             "is never seen in tuning); its best rate is the one the final runs used. " + budget_sentence(by_strategy)),
        Figure(fig, "Best validation macro-F1 reached at each learning rate (log scale), one line per strategy; "
                    "hollow: a trial stopped early by successive halving."),
        text_table(["strategy", "trials", "completed", "pruned", "epochs trained in tuning", "best lr",
                    "best val macro-F1"], budget, key="tuning-budget"),
        text_table(["strategy", "trial", "lr", "val macro-F1", "status", "pruned at epoch", "epochs run"], trials,
                   key="tuning-trials")])
