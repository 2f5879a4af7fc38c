"""The metrics, one row each: every layer that lists, stores, shows, compares or selects on a metric reads it here.

A row names a metric as it lives in :func:`tunebench.training.metrics.classification_metrics`'s dictionary,
in a record (``record["val"][name]``, ``record["test"][name]``), in results.csv (``test_<name>``,
``val_<name>``) and in each epoch's curve point (:func:`curve_key`: ``val_<name>``).  It says which way
is better, how a report shows it (``display``, ``fmt``), whether it can select (the best epoch, early
stopping, tuning, the report's reference, the verdict drawn on weighted test draws by
:mod:`tunebench.results.stats`, the summaries over seeds) and whether every epoch's curve point holds it.

The selection metric is a setting: ``training.selection_metric`` (default :data:`DEFAULT_SELECTION`),
carried to the engine as ``RunConfig.selection_metric``; the verdict's metric is ``verdict.metric``.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Metric:
    name: str  # the key in classification_metrics(), a record's val/test, results.csv's test_<name>
    display: str  # how a report and the console write it: "macro-F1"
    short: str = ""  # in a narrow column's header ("test acc"); "": display
    fmt: str = ".3f"
    higher_is_better: bool = True
    can_select: bool = False  # best epoch, early stopping, tuning, reference, verdict, summaries over seeds
    in_curves: bool = False  # every epoch's curve point holds val_<name> (the selection metric always does)
    tasks: tuple[str, ...] = ("single_label", "multi_label")  # the task shapes (data.task) that have the metric

    def header(self, part: str, short: bool = False) -> str:
        """``part`` ("val", "test") and the metric's name, as a column header: "test macro-F1", "test acc"."""
        return f"{part} {self.short if short and self.short else self.display}"


#: every metric, in results.csv's column order
METRICS: tuple[Metric, ...] = (
    Metric("accuracy", "accuracy", "acc", can_select=True, in_curves=True),
    Metric("macro_f1", "macro-F1", "F1", can_select=True, in_curves=True),
    Metric("macro_precision", "macro precision", "macro P"),
    Metric("macro_recall", "macro recall", "macro R"),
    Metric("weighted_f1", "weighted F1", can_select=True),
    Metric("weighted_precision", "weighted precision", "weighted P"),
    Metric("weighted_recall", "weighted recall", "weighted R"),
    Metric("micro_f1", "micro-F1", can_select=True, tasks=("multi_label",)),
    Metric("hamming_loss", "Hamming loss", "Hamming", higher_is_better=False, tasks=("multi_label",)),
    Metric("r2", "R²", can_select=True, in_curves=True, tasks=("regression",)),
    Metric("pearson", "Pearson r", "Pearson", can_select=True, tasks=("regression",)),
    Metric("spearman", "Spearman ρ", "Spearman", tasks=("regression",)),
    Metric("rmse", "RMSE", higher_is_better=False, fmt=".4g", tasks=("regression",)),
    Metric("mae", "MAE", higher_is_better=False, fmt=".4g", tasks=("regression",)),
)
#: the task shapes (``data.task``); a multi-label run's ``accuracy`` is subset accuracy (training.metrics)
TASKS = ("single_label", "multi_label", "regression")
#: each task shape's default metric (selection and verdict): a regression's is R² (1 - MSE / the target's variance:
#: the loss it trains on, on a 0-1 scale where the verdict's ±1 point margin means what it means for F1)
TASK_DEFAULTS = {"single_label": "macro_f1", "multi_label": "macro_f1", "regression": "r2"}

#: the metric a study selects on unless ``training.selection_metric`` says otherwise; the report's headline metric
DEFAULT_SELECTION = "macro_f1"

assert all(m.higher_is_better for m in METRICS if m.can_select), "the engine keeps the highest selection value"


def default_for(task: str) -> str:
    """The metric a study of ``task`` selects on and draws its verdict on unless set: macro-F1, or R²."""
    return TASK_DEFAULTS.get(task, DEFAULT_SELECTION)


def by_name(name: str) -> Metric:
    """The row of ``name``; an unknown name is one sentence naming the known ones."""
    for m in METRICS:
        if m.name == name:
            return m
    raise ValueError(f"unknown metric {name!r}; use one of {', '.join(names())}")


def names(can_select: bool | None = None, task: str | None = None) -> tuple[str, ...]:
    """Every metric's name, in table order (``can_select`` True: only those that can select; ``task``: only
    those a study of that task shape has; None: every task's)."""
    return tuple(m.name for m in METRICS if (can_select is None or m.can_select == can_select)
                 and (task is None or task in m.tasks))


def display(name: str) -> str:
    """``macro_f1`` -> ``macro-F1`` (the words a report uses)."""
    return by_name(name).display


def columns(part: str, selectable: bool | None = None, task: str | None = None) -> list[str]:
    """results.csv's columns of ``part`` ("test", "val") for the table's metrics: ``test_accuracy``, ..."""
    return [f"{part}_{name}" for name in names(selectable, task)]


def curve_key(name: str) -> str:
    """The key of ``name``'s validation value in an epoch's curve point: ``val_macro_f1``."""
    return f"val_{name}"


def curve_metrics(selection: str = DEFAULT_SELECTION) -> tuple[str, ...]:
    """The metrics every epoch's curve point holds: the rows ``in_curves`` and the selection metric."""
    return tuple(m.name for m in METRICS if m.in_curves or m.name == selection)


def check_task(name: str, task: str, setting: str) -> None:
    """Refuse a metric the task shape does not have (``micro_f1`` in a single-label study): one sentence."""
    if task not in by_name(name).tasks:
        raise ValueError(f"{setting} {name} is a metric of {' and '.join(by_name(name).tasks)} data; this study's "
                         f"data.task is {task}: use one of {', '.join(names(can_select=True, task=task))}")
