"""The report's sections 5 and 6 for a regression (``data.task: regression``): predictions against targets, and
where the errors are.

A regression has no classes, so the single-label sections 5 and 6 (:func:`tunebench.report.sections.confusion`,
:func:`tunebench.report.sections_data.errors`) step aside for these: each run's test predictions against the
targets (a panel per run), its error by the target's quartile (a model that predicts the mean is right in the
middle and wrong at the ends), the test examples with the largest errors, and the words over-represented among
each run's largest errors.
"""

from __future__ import annotations

import numpy as np

from tunebench.report import error_analysis as ea
from tunebench.report import figures_errors
from tunebench.report.document import Figure, Para, Section, cell, text_table
from tunebench.report.sections import Context, answers, short
from tunebench.results.diagnosis import is_baseline

WORDS_PER_RUN = 10
#: the share of each run's test examples, by absolute error, that the word test calls its errors
LARGEST_ERRORS = 0.25


def is_regression(ctx: Context) -> bool:
    return bool(ctx.records) and ctx.records[0]["data"].get("task") == "regression"


def predictions(ctx: Context) -> Section | None:
    """5. Each run's test predictions against the targets, and its error by the target's quartile."""
    if not is_regression(ctx):
        return None
    section = Section("confusion", "5. Predictions against targets")
    y, predicted = answers(ctx)
    if y is None or not predicted:
        return section.add(Para("No test predictions are stored for these runs."))
    name = ctx.names[0]
    section.add(Figure(figures_errors.predicted_vs_target({run: (y, p) for run, p in predicted.items()},
                                                          ctx.figure("predicted_vs_target.png"), name),
                       "Test predictions against the targets; on the dashed line a prediction is exact."))
    edges = np.quantile(y, [0.25, 0.5, 0.75])
    bins = np.searchsorted(edges, y, side="right")
    quarters = [f"{lo:.4g} to {hi:.4g}" for lo, hi in zip([y.min(), *edges], [*edges, y.max()], strict=True)]
    rows = [[run] + [cell(float(np.sqrt(np.mean((p[bins == q] - y[bins == q]) ** 2))) if (bins == q).any() else None,
                          ".4g") for q in range(4)] + [cell(float(np.mean(p - y)), "+.4g")] for run, p in predicted.items()]
    section.add(text_table(["run"] + [f"RMSE, target {q}" for q in quarters] + ["mean error (bias)"], rows,
                           key="error-by-quartile",
                           caption="RMSE within each quarter of the test targets (by their quartiles) and the mean "
                                   "signed error: a run that predicts near the mean is right in the middle quarters "
                                   "and wrong at the ends."))
    return section


def errors(ctx: Context) -> Section | None:
    """6. The largest errors, and the words over-represented among them."""
    if not is_regression(ctx):
        return None
    section = Section("errors", "6. Error analysis")
    y, predicted = answers(ctx)
    if y is None or not predicted:
        return section.add(Para("No test predictions are stored for these runs."))
    texts = ctx.inputs.texts.texts
    section.add(Para(ctx.inputs.texts.note))
    baselines = {r["strategy"] for r in ctx.records if is_baseline(r)}
    tuned = {run: p for run, p in predicted.items() if run not in baselines} or predicted
    worst = np.argsort(-np.mean([np.abs(p - y) for p in tuned.values()], axis=0), kind="stable")[:10]
    rows = [[int(i), short(texts[i]) if texts else "(text unavailable)", cell(float(y[i]), ".4g")]
            + [cell(float(p[i]), ".4g") for p in predicted.values()] for i in worst]
    section.add(text_table(["#", "text", "target"] + list(predicted), rows, key="largest-errors",
                           caption="The test examples with the largest mean absolute error over the fine-tuned runs."))
    if texts is not None:
        lift_rows = []
        for run, p in tuned.items():
            error = np.abs(p - y)
            wrong = (error >= np.quantile(error, 1 - LARGEST_ERRORS)).tolist()
            lifts = ea.word_lift(texts, wrong, top=WORDS_PER_RUN)
            lift_rows += [[run, w.word, cell(w.lift, ".2f"), w.in_errors, w.in_all, cell(w.p, ".2g"), cell(w.q, ".2g")]
                          for w in lifts] or [[run, "(no word beyond chance among its largest errors)", None, None,
                                               None, None, None]]
        section.add(text_table(["run", "word", "lift", "errors containing it", "examples containing it", "p", "q"],
                               lift_rows, key="word-lift",
                               caption=f"Words over-represented among each fine-tuned run's largest errors (its "
                                       f"{100 * LARGEST_ERRORS:.0f} % of test examples with the largest absolute "
                                       f"error), beyond chance (one-sided Fisher exact p, Benjamini-Hochberg q ≤ "
                                       f"{ea.MAX_Q:g}; words in at least {ea.MIN_SUPPORT} test examples)."))
    return section
