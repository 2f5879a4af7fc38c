"""The report's sections 5 and 6 for multi-label data: per-label F1 and thresholds, and the errors per label.

A multi-label run has no confusion matrix (a row can be right on some labels and wrong on others), so the
single-label sections 5 and 6 (:func:`tunebench.report.sections.confusion`,
:func:`tunebench.report.sections_data.errors`) step aside for these: each label's test F1 per run and the
threshold each run chose for it on validation; per label, the examples a run missed (false negatives) and
the ones it said wrongly (false positives); the words over-represented among examples with any wrong label;
the test examples where the strategies answer different label sets.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from tunebench.report import error_analysis as ea
from tunebench.report import figures, figures_errors, sections
from tunebench.report.analysis import per_class_f1
from tunebench.report.document import Figure, Para, Section, cell, text_table
from tunebench.report.sections import MANY_CLASSES, Context, short
from tunebench.results.decisions import record_thresholds
from tunebench.results.diagnosis import is_baseline

WORDS_PER_RUN = 10


def is_multi_label(ctx: Context) -> bool:
    return bool(ctx.records) and ctx.records[0]["data"].get("task") == "multi_label"


def per_label(ctx: Context) -> Section | None:
    """5. Each label's test F1 per run, its test support and the threshold each run chose on validation."""
    if not is_multi_label(ctx):
        return None
    section = Section("confusion", "5. Per-label F1 and thresholds")
    table = per_class_f1(ctx.records)
    shown = table if len(ctx.names) <= MANY_CLASSES else table.assign(
        mean=table.mean(axis=1)).sort_values("mean", kind="stable").head(MANY_CLASSES).drop(columns="mean")
    title = "Per-label test F1" if len(shown) == len(table) else f"The {len(shown)} labels of lowest mean test F1"
    section.add(Figure(figures.per_class_f1(shown, ctx.figure("per_class_f1.png"), title),
                       f"{title}: each label is its own yes/no decision, at the run's threshold for it."))
    support = {n: int(v.get("support", 0)) for n, v in ctx.records[0]["test"]["per_class"].items()}
    thresholds = {r["strategy"]: record_thresholds(r) for r in ctx.records}
    index = {n: i for i, n in enumerate(ctx.names)}
    rows = [[name, support.get(name, 0)] + [
        f"{table.loc[name, r]:.3f} @ {thresholds[r][index[name]]:.2f}" if thresholds.get(r)
        else cell(table.loc[name, r], ".3f") for r in table.columns] for name in shown.index]
    section.add(text_table(["label", "test rows"] + list(table.columns), rows, key="per-class-f1",
                           caption="Test F1 @ the threshold chosen for the label on the validation split (the best "
                                   "F1 there among 0.05, 0.10, …, 0.95; the test split chooses nothing). The "
                                   "majority baseline keeps 0.5: each label's majority answer. Accuracy elsewhere in "
                                   "this report is subset accuracy: every label of a row right."))
    return section


def errors(ctx: Context) -> Section | None:
    """6. Where each run is wrong, label by label."""
    if not is_multi_label(ctx):
        return None
    section = Section("errors", "6. Error analysis")
    labels, answers = sections.answers(ctx)
    if labels is None or not answers:
        return section.add(Para("No test predictions are stored for these runs."))
    names, texts = ctx.names, ctx.inputs.texts.texts
    section.add(Para(ctx.inputs.texts.note))
    counts = {run: (((labels == 1) & (p == 0)).sum(axis=0).tolist(), ((labels == 0) & (p == 1)).sum(axis=0).tolist())
              for run, p in answers.items()}
    baselines = {r["strategy"] for r in ctx.records if is_baseline(r)}
    drawn = {run: c for run, c in counts.items() if run not in baselines} or counts  # a floor's errors: the table
    errors_per_label = np.sum([np.add(*c) for c in drawn.values()], axis=0)
    top = sorted(np.argsort(-errors_per_label, kind="stable")[:MANY_CLASSES].tolist())  # the most errors, in order
    shown = {run: ([fn[k] for k in top], [fp[k] for k in top]) for run, (fn, fp) in drawn.items()}
    more = f" (the {len(top)} labels with the most errors; every label in the table)" if len(top) < len(names) else ""
    section.add(Figure(figures_errors.error_labels(shown, [names[k] for k in top], ctx.figure("error_labels.png"),
                                                   legend=("missed (false negative)", "said wrongly (false positive)")),
                       f"Per label{more}: the test examples each fine-tuned run missed and the ones it said the label "
                       "for wrongly."))
    rows = [[name] + [f"{fn[k]} / {fp[k]}" for fn, fp in counts.values()] for k, name in enumerate(names)]
    section.add(text_table(["label"] + [f"{run} (missed / said wrongly)" for run in counts], rows, key="error-labels"))
    if texts is not None:
        section.add(_word_lift(ctx, answers, labels, texts))
    section.add(_disagreements(answers, labels, names, texts))
    return section


def _word_lift(ctx: Context, answers: dict[str, np.ndarray], labels: np.ndarray, texts: list[str]) -> Any:
    rows = []
    baselines = {r["strategy"] for r in ctx.records if is_baseline(r)}
    for run, p in answers.items():
        if run in baselines:
            continue
        wrong = (p != labels).any(axis=1).tolist()
        lifts = ea.word_lift(texts, wrong, top=WORDS_PER_RUN)
        rows += [[run, w.word, cell(w.lift, ".2f"), w.in_errors, w.in_all, cell(w.p, ".2g"), cell(w.q, ".2g")]
                 for w in lifts]
        if not lifts:
            rows.append([run, f"(no word beyond chance among its {sum(wrong)} examples with an error)", None, None,
                         None, None, None])
    return text_table(["run", "word", "lift", "errors containing it", "examples containing it", "p", "q"], rows,
                      key="word-lift",
                      caption=f"Words over-represented among each fine-tuned run's test examples with at least one "
                              f"wrong label, beyond chance (lift, one-sided Fisher exact p, Benjamini-Hochberg q ≤ "
                              f"{ea.MAX_Q:g}; words in at least {ea.MIN_SUPPORT} test examples). Baselines are left out.")


def _label_set(row: np.ndarray, names: list[str]) -> str:
    return ", ".join(names[j] for j in np.flatnonzero(row)) or "(none)"


def _disagreements(answers: dict[str, np.ndarray], labels: np.ndarray, names: list[str], texts: list[str] | None):
    if len(answers) < 2:
        return Para("One run only: there is no disagreement between strategies to show.")
    stacked = np.stack(list(answers.values()))  # runs × examples × labels
    distinct = np.array([len({row.tobytes() for row in stacked[:, i]}) for i in range(len(labels))])
    right = (stacked == labels[None]).all(axis=2).sum(axis=0)
    idx = sorted((i for i in range(len(labels)) if distinct[i] > 1), key=lambda i: (-distinct[i], right[i], i))[:10]
    if not idx:
        return Para("The strategies answer the same label set for every test example.")
    rows = [[i, short(texts[i]) if texts else "(text unavailable)", _label_set(labels[i], names)] +
            [_label_set(p[i], names) + ("" if (p[i] == labels[i]).all() else " ✗") for p in answers.values()]
            for i in idx]
    return text_table(["#", "text", "true"] + list(answers), rows, key="disagreements",
                      caption="Test examples where the strategies answer different label sets (✗ = not every label "
                              "right).")
