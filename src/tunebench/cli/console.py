"""The terminal side of a study: rich progress bars (the study, each run) and the final comparison table."""

from __future__ import annotations

import time
from typing import Any

import pandas as pd
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.segment import Segment
from rich.table import Table

from tunebench.errors import terminal_safe
from tunebench.results.decisions import one_line
from tunebench.results.outputs import display_rows
from tunebench.spec import metrics

#: the metric the progress lines show: the table's headline (default selection) metric
HEADLINE = metrics.by_name(metrics.DEFAULT_SELECTION)


def _val_point(point: dict[str, Any]) -> str:
    """``val macro-F1 0.512`` (a regression's curve point holds R²: ``val R² 0.41``)."""
    row = metrics.by_name("r2") if metrics.curve_key("r2") in point else HEADLINE
    return f"{row.header('val')} {_number(point.get(metrics.curve_key(row.name)), row.fmt)}"


class SafeConsole(Console):
    """A console whose text never drives the terminal: ESC and the other control characters in what it
    prints (a label, a study name, a column name from data) are shown escaped, terminal or not, so
    ``tunebench run 2>&1 | tee log`` cannot set the title or clear the screen.  Rich's own control
    segments (the progress bars' cursor moves) and its styles are kept."""

    def _render_buffer(self, buffer):  # every print of every renderable ends here
        return super()._render_buffer(segment if segment.control else Segment(terminal_safe(segment.text),
                                                                               segment.style)
                                      for segment in buffer)


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    if seconds < 172800:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:,.0f} days"


def _number(value: Any, fmt: str) -> str:
    return "—" if value is None or (isinstance(value, float) and value != value) else format(value, fmt)


def epoch_line(point: dict[str, Any], examples_per_s: float | None = None, eta_s: float | None = None) -> str:
    """One plain line for one epoch of one run (the log when the output is not a terminal):
    ``[2/4] lora:r=8  epoch 1/3  train loss 0.6931  val macro-F1 0.512  61.2 ex/s  ETA 2 min``."""
    where = f"[{point['position'] + 1}/{point['total']}] " if point.get("total") and point.get("position") is not None \
        else ""
    eta = "—" if eta_s is None else ("done" if eta_s <= 0 else _duration(eta_s))
    return (f"{where}{point.get('label', '?')}  epoch {point['epoch']}/{point.get('epochs', '?')}  "
            f"train loss {_number(point.get('train_loss'), '.4f')}  "
            f"{_val_point(point)}  "
            f"{_number(examples_per_s, '.1f')} ex/s  ETA {eta}")


class RichReporter:
    """Progress for the whole study: a bar for the study's runs and one per run in progress.

    Runs may progress at the same time (the Ray backend); a step names its run with ``position``,
    else it belongs to the run started last.

    When ``console`` is not a terminal (``tunebench run 2> log``), there are no bars: one plain line per
    epoch (:func:`epoch_line`) goes to it instead.  ``log``: a console that gets those lines as well
    (e.g. stdout when it is redirected and stderr is a terminal).  The line is printed by
    :meth:`epoch`, called after each validation; until the study calls it, the line of an epoch is
    printed from the steps when the next epoch starts (or the run ends), with the validation
    macro-F1 taken from the finished record's curves where it has them.
    """

    def __init__(self, console: Console | None = None, log: Console | None = None) -> None:
        self.console = console or SafeConsole(stderr=True)
        self.bars = self.console.is_terminal
        self.log = log if log is not None else (None if self.bars else self.console)
        self._runs_meta: dict[int, dict[str, Any]] = {}  # position -> label, epochs, start, pending, printed
        self._total = 0
        self._progress: Progress | None = None
        self._study: TaskID | None = None
        self._runs: dict[int, TaskID] = {}
        self._batches: dict[int, int] = {}
        self._current: int | None = None
        self._done = 0
        self._estimated = False

    def message(self, text: str) -> None:
        self.console.print(f"[dim]{escape(text)}[/dim]")  # text may come from data: never markup

    def _bars(self, total: int) -> Progress | None:
        self._total = total
        if not self.bars:
            return None
        if self._progress is None:
            self._progress = Progress(
                TextColumn("[bold]{task.description}[/bold]"), BarColumn(), TextColumn("{task.fields[detail]}"),
                TimeElapsedColumn(), TimeRemainingColumn(), console=self.console, transient=False,
            )
            self._progress.start()
            if total > 1:
                self._study = self._progress.add_task("study", total=total, completed=self._done,
                                                      detail=f"{self._done}/{total} runs")
        return self._progress

    def run_started(self, position: int, total: int, label: str, batches_per_epoch: int,
                    epochs: int) -> None:
        self._runs_meta[position] = {"label": label, "epochs": epochs, "total": total, "start": time.monotonic(),
                                     "pending": None, "printed": set(), "examples_per_s": None}
        self._current = position
        bars = self._bars(total)
        if bars is None:
            return
        if position in self._runs:  # started again (a Ray retry)
            bars.remove_task(self._runs.pop(position))
        self._batches[position] = batches_per_epoch
        self._runs[position] = bars.add_task(f"{position + 1}/{total} {label}", total=batches_per_epoch * epochs,
                                             detail=f"epoch 1/{epochs}")
        self._current = position

    def step(self, info: dict[str, Any]) -> None:
        position = info.get("position", self._current)
        meta = self._runs_meta.get(position)
        if meta is not None and self.log is not None:
            meta["examples_per_s"] = info.get("examples_per_s")
            pending = meta["pending"]
            if pending is not None and info["epoch"] != pending["epoch"]:  # epoch() was not called for it
                self._print_epoch(position, pending)
            if info.get("batch") == info.get("batches"):  # the epoch's training is done; validation is next
                meta["pending"] = {"epoch": info["epoch"], "epochs": info.get("epochs", meta["epochs"]),
                                   "train_loss": info.get("loss"), "examples_per_s": info.get("examples_per_s")}
        if self._progress is None or position not in self._runs:
            return
        done = (info["epoch"] - 1) * self._batches[position] + info["batch"]
        self._progress.update(self._runs[position], completed=done,
                              detail=f"epoch {info['epoch']}/{info['epochs']}  loss {info['loss']:.4f}  "
                                     f"{info['examples_per_s']:.1f} ex/s")

    def epoch(self, point: dict[str, Any]) -> None:
        """One epoch of a run is validated: ``point`` is its curve dict (``epoch``, ``train_loss``,
        ``val_loss``, ``val_accuracy``, ``val_macro_f1``, ...) plus ``label`` and ``epochs`` (and
        ``position`` under a backend that runs several at once).  Prints one line when logging."""
        position = point.get("position", self._current)
        if self.log is None:
            return
        if position not in self._runs_meta:  # a run the reporter was not told about: still one line
            self._runs_meta[position] = {"label": point.get("label", "?"), "epochs": point.get("epochs"),
                                         "total": self._total, "start": None, "pending": None, "printed": set(),
                                         "examples_per_s": None}
        meta = self._runs_meta[position]
        pending = meta["pending"] if meta["pending"] is not None and meta["pending"]["epoch"] == point["epoch"] else {}
        self._print_epoch(position, {**pending, **{k: v for k, v in point.items() if v is not None}})

    def _print_epoch(self, position: int | None, point: dict[str, Any]) -> None:
        meta = self._runs_meta[position]
        if meta["pending"] is not None and meta["pending"]["epoch"] == point["epoch"]:
            meta["pending"] = None
        if point["epoch"] in meta["printed"] or self.log is None:
            return
        meta["printed"].add(point["epoch"])
        epochs = point.get("epochs") or meta["epochs"]
        eta = None
        if meta["start"] is not None and epochs:
            eta = (time.monotonic() - meta["start"]) / point["epoch"] * (epochs - point["epoch"])
        full = {"label": meta["label"], "epochs": epochs, "total": meta["total"], "position": position, **point}
        speed = point.get("examples_per_s", meta["examples_per_s"])
        self.log.print(epoch_line(full, speed, eta), markup=False, highlight=False, soft_wrap=True)

    def _flush(self, record: dict[str, Any]) -> None:
        """The run ended: the line of its last epoch if :meth:`epoch` did not print it."""
        position = record.get("position", self._current)
        meta = self._runs_meta.get(position)
        if meta is None or meta["pending"] is None:
            return
        pending = meta["pending"]
        curve = next((c for c in record.get("curves") or [] if c.get("epoch") == pending["epoch"]), {})
        self._print_epoch(position, {**pending, **{k: v for k, v in curve.items() if v is not None and k != "epoch"},
                                     "train_loss": curve.get("train_loss", pending.get("train_loss"))})

    def _ended(self, position: int | None) -> None:
        self._done += 1
        if self._progress is None:
            return
        if position in self._runs:
            self._progress.remove_task(self._runs.pop(position))
        if self._study is not None:
            total = self._progress.tasks[self._study].total
            self._progress.update(self._study, completed=self._done, detail=f"{self._done}/{total:.0f} runs")

    def run_finished(self, record: dict[str, Any]) -> None:
        self._flush(record)
        self._ended(record.get("position"))
        if record.get("status") == "pruned":  # a search or tuning trial stopped on purpose: not a failure
            epoch = (record.get("failure") or {}).get("epoch")
            self.console.print(f"  [dim]– {escape(record.get('label', record['strategy']))}: pruned after epoch "
                               f"{epoch} (behind the earlier trials)[/dim]")
            return
        if record.get("status", "finished") != "finished":
            failure = record.get("failure") or {}
            error = failure.get("error") or "no result"
            self.console.print(f"  [red]✗[/red] {escape(record.get('label', record['strategy']))}: {record['status']} "
                               f"({escape(str(error))})")
            return
        res, test = record["resources"], record["test"]
        if test is None:  # a tuning trial: validation only, by design
            chosen = metrics.by_name((record.get("resolved") or {}).get("selection_metric", HEADLINE.name))
            self.console.print(f"  [green]✓[/green] {escape(record.get('label', record['strategy']))}: validation "
                               f"{chosen.display} {format(record['val'][chosen.name], chosen.fmt)}, "
                               f"best epoch {record['best_epoch']}, train {res['train_time_s']:.1f} s")
            return
        self.console.print(
            f"  [green]✓[/green] {record['strategy']}: {one_line(record)}, best epoch {record['best_epoch']}, "
            f"train {res['train_time_s']:.1f} s")
        self._estimate(record)

    def _estimate(self, record: dict[str, Any]) -> None:
        """Once the first run has a time: what the rest of the study will take at that pace."""
        if self._estimated or self._total < 2:
            return
        self._estimated = True
        left = self._total - self._done
        if left > 0 and record.get("wall_time_s"):
            self.console.print(f"  [dim]the first run took {record['wall_time_s']:.0f} s: the {left:.0f} runs left "
                               f"need about {_duration(record['wall_time_s'] * left)} at that pace[/dim]")

    def run_skipped(self, label: str, run_id: str) -> None:
        self._done += 1
        self.console.print(f"  [yellow]↷[/yellow] {label}: already finished in the store (run {run_id}); "
                           "--force redoes it")

    def close(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None
            self._runs.clear()


def comparison_table(frame: pd.DataFrame, title: str = "Comparison") -> Table:
    headers, rows = display_rows(frame)
    table = Table(title=title, show_lines=False)
    for i, header in enumerate(headers):
        table.add_column(header, justify="left" if i == 0 else "right")
    for row in rows:
        table.add_row(*row)
    return table


#: the command line's two consoles: results on stdout, progress and errors on stderr
out = SafeConsole()
err = SafeConsole(stderr=True)
