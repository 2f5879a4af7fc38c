"""The report's "Learning-rate sensitivity" section: each strategy's tuning search from its stored trials.

What each strategy was tried at (every candidate pair of body and head rates), what each rung scored
(the mean over the tuning seeds of the best validation score (the selection metric) within the rung's epochs), which
candidates were cut at which rung and which were trained through the last, what was chosen and why,
and the budget as compute: trials, epochs and training seconds spent in tuning, and their ratio to
the strategy's final runs.  A pure function of stored records; trials stored by the earlier
asynchronous search (one record per rate, ``pruned`` when Optuna stopped it) are shown as they were.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from tunebench.report import figures
from tunebench.report.cost import untuned_label
from tunebench.report.document import Figure, Para, Section, cell, text_table
from tunebench.report.sections import Context
from tunebench.results.diagnosis import is_fitted_candidate
from tunebench.spec.metrics import DEFAULT_SELECTION, display


@dataclass
class Tried:
    """One candidate of one strategy: its rates, and per rung (epochs) its trials' validation scores."""

    lr: float
    head_lr: float | None
    extra: bool = False
    scores: dict[int, list[float | None]] = field(default_factory=dict)

    def mean(self, epochs: int) -> float | None:
        values = self.scores.get(epochs) or []
        if not values or any(v is None for v in values):
            return None
        return sum(values) / len(values)  # type: ignore[arg-type]

    @property
    def reached(self) -> int:
        return max(self.scores)


@dataclass
class Search:
    """One strategy's search: its candidates, its rungs (epochs), seeds, and its trials' cost."""

    strategy: str
    tried: dict[tuple[float, float | None, int], Tried]
    rungs: list[int]
    seeds: int
    trials: int
    epochs: int
    seconds: float

    @property
    def last(self) -> int:
        return self.rungs[-1]


#: the outcome of a candidate chosen before the last rung, left alone there (tunebench.study.tuning)
LEFT_ALONE = "chosen: the last rung's only candidate, trained there by the final runs"


def _seconds(record: dict[str, Any]) -> float:
    return float((record.get("resources") or {}).get("train_time_s") or 0.0)


def searches(records: list[dict[str, Any]]) -> dict[str, Search]:
    """Tuning-trial records (``record["tuning"]``) as one :class:`Search` per strategy, in trial order."""
    out: dict[str, Search] = {}
    for r in sorted(records, key=lambda r: r.get("position") or 0):
        t = r.get("tuning")
        if not isinstance(t, dict) or t.get("strategy") is None or t.get("lr") is None:
            continue
        epochs = int(t.get("epochs") or t.get("epochs_run") or len(r.get("curves") or []) or 0)
        s = out.setdefault(str(t["strategy"]), Search(str(t["strategy"]), {}, list(t.get("rungs") or []), 0, 0, 0, 0.0))
        key = (float(t["lr"]), t.get("head_lr"), int(t.get("candidate", t.get("trial")) or 0))
        tried = s.tried.setdefault(key, Tried(key[0], key[1], bool(t.get("extra"))))
        # the earlier asynchronous search: a pruned trial scored where it stopped, at the epochs it ran
        value = t.get("value") if r.get("status") in ("finished", "pruned") else None
        tried.scores.setdefault(epochs if t.get("rungs") else int(t.get("epochs_run") or epochs), []).append(value)
        s.trials += 1
        s.epochs += int(t.get("epochs_run") if t.get("epochs_run") is not None else len(r.get("curves") or []))
        s.seconds += _seconds(r)
        s.seeds = max(s.seeds, len(tried.scores[max(tried.scores)]))
    for s in out.values():
        if not s.rungs:  # old records: one "rung" per distinct epochs count
            s.rungs = sorted({e for c in s.tried.values() for e in c.scores})
    return out




def _final_seconds(records: list[dict[str, Any]], strategy: str) -> tuple[float, dict[str, Any] | None]:
    mine = [r for r in records if untuned_label(str(r.get("strategy") or "")) == untuned_label(strategy)]
    return sum(_seconds(r) for r in mine), (mine[0] if mine else None)


def _chosen(s: Search, final: dict[str, Any] | None) -> Tried | None:
    if final is None:
        return None
    res = final.get("resolved") or {}
    for c in s.tried.values():
        head = c.head_lr is None or math.isclose(c.head_lr, res.get("head_lr") or -1)
        if math.isclose(c.lr, res.get("lr") or -1) and head:
            return c
    return None


def lr_section(ctx: Context) -> Section | None:
    """The validation score against learning rate per strategy and rung; each strategy's search and budget."""
    found = searches(ctx.inputs.tuning)
    if not found:
        return None
    metric_key = next((r["tuning"].get("metric") for r in ctx.inputs.tuning if isinstance(r.get("tuning"), dict)
                       and r["tuning"].get("metric")), DEFAULT_SELECTION)
    on = display(metric_key)
    points = {name: [(c.lr, c.mean(e), e != s.last, e) for c in s.tried.values() for e in c.scores]
              for name, s in found.items()}
    from_finals: set[str] = set()
    for name, s in found.items():  # a last rung of one was not trained: its final runs are that training
        pick = _chosen(s, _final_seconds(ctx.inputs.runs or ctx.records, name)[1])
        if pick is not None and pick.mean(s.last) is None:
            finals = [float(r["val"][metric_key]) for r in (ctx.inputs.runs or ctx.records)
                      if untuned_label(str(r.get("strategy") or "")) == untuned_label(name)
                      and (r.get("val") or {}).get(metric_key) is not None]
            if finals:
                points[name].append((pick.lr, sum(finals) / len(finals), False, s.last))
                from_finals.add(name)
    fig = figures.lr_sensitivity(points, ctx.figure("lr_sensitivity.png"), metric=on, finals=from_finals)
    budget, rows, choices = [], [], []
    for name, s in found.items():
        final_s, final = _final_seconds(ctx.inputs.runs or ctx.records, name)
        pick = _chosen(s, final)
        fully = [c for c in s.tried.values() if c.mean(s.last) is not None]
        best = max(fully, key=lambda c: c.mean(s.last) or 0.0, default=None)
        budget.append([name, len(s.tried), sum(c.extra for c in s.tried.values()), s.seeds, s.trials, s.epochs,
                       cell(s.seconds, ".0f"), cell(final_s or None, ".0f"),
                       cell(s.seconds / final_s if final_s else None, ".1f")])
        for c in s.tried.values():
            for e in sorted(c.scores):
                state = ("chosen" if c is pick else "trained to the end") if e == s.last else (
                    "went on" if c.reached > e else LEFT_ALONE if c is pick else "cut")
                rows.append([name, cell(c.lr, "g"), cell(c.head_lr, "g"), e, len(c.scores[e]),
                             cell(c.mean(e), ".3f"), state + (" (edge of the grid)" if c.extra else "")])
        if pick is not None:
            head = "" if pick.head_lr is None else f", head lr {pick.head_lr:g}"
            why = ("" if best is None or pick is best else
                   f" — within the verdict's margin ({ctx.inputs.margin:g}) of the best ({best.mean(s.last):.3f} at "
                   f"lr {best.lr:g}) and nearer the method's default rates")
            at = s.last if pick.mean(s.last) is not None else pick.reached
            score = "—" if pick.mean(at) is None else f"{pick.mean(at):.3f}"
            alone = "" if at == s.last else (f"; the only candidate left for the last rung ({s.last} epochs), which "
                                              "was not trained: its final runs are that training")
            choices.append(f"{name}: lr {pick.lr:g}{head}, validation {on} {score} at "
                           f"{at} epochs (mean of {s.seeds} seed{'s' if s.seeds > 1 else ''}){why}{alone}.")
    return Section("lr-sensitivity", "Learning-rate sensitivity", [
        Para(f"Each strategy's tuning search, scored on validation {on} only (the test split is never seen in "
             "tuning): every candidate trains the first rung's epochs, the best go on to the next rung, and the "
             "final runs use the rates chosen at the last rung. " + budget_sentence(found)),
        Para("Chosen: " + " ".join(choices)) if choices else Para("No strategy's search finished a trial."),
        *_not_tuned(ctx.inputs.runs or ctx.records),
        Figure(fig, f"Mean validation {on} over the tuning seeds at each learning rate (log scale), one colour "
                    "per strategy: filled markers on solid lines are fully trained trials (the last rung; where one "
                    "candidate was left for it, the mean of its final runs over the study's seeds); hollow "
                    "markers on dashed lines are scores after an earlier rung's epochs, the cut candidates among "
                    "them (at each rate, the best head rate)."),
        text_table(["strategy", "candidates", "of them beyond the grid", "seeds", "trials", "epochs trained",
                    "training s in tuning", "training s of final runs", "tuning / final"], budget,
                   key="tuning-budget"),
        text_table(["strategy", "lr", "head lr", "epochs", "seeds", f"mean val {on}", "outcome"], rows,
                   key="tuning-trials")])


def _not_tuned(records: list[dict[str, Any]]) -> list[Para]:
    """The fitted candidates of the study (embed-logreg, setfit): ranked with the rest, but not tuned by rates."""
    names = list(dict.fromkeys(str(r["strategy"]) for r in records if is_fitted_candidate(r)))
    if not names:
        return []
    return [Para(f"Not tuned: {', '.join(names)} — fitted by {'its' if len(names) == 1 else 'their'} own recipe, at "
                 f"{'its' if len(names) == 1 else 'their'} own defaults (no engine learning rate to tune); compared "
                 "with the tuned strategies like any other.")]


def budget_sentence(found: dict[str, Search]) -> str:
    grids = {name: len([c for c in s.tried.values() if not c.extra]) for name, s in found.items()}
    each = "; ".join(f"{name}: {s.trials} trials, {s.epochs} epochs" for name, s in found.items())
    rungs = {tuple(s.rungs) for s in found.values()}
    if len(set(grids.values())) == 1 and len(rungs) == 1:
        n, r = next(iter(grids.values())), next(iter(rungs))
        return (f"Every strategy had the same budget: {n} candidates, rungs at {', '.join(map(str, r))} epochs "
                f"(trials and epochs trained in tuning: {each}).")
    return f"The strategies did not have the same number of candidates: {each}."
