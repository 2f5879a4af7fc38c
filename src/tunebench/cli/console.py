"""The terminal side of a study: rich progress bars (the study, each run) and the final comparison table."""

from __future__ import annotations

from typing import Any

import pandas as pd
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from tunebench.results.outputs import display_rows


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    if seconds < 172800:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:,.0f} days"


class RichReporter:
    """Progress for the whole study: a bar for the study's runs and one per run in progress.

    Runs may progress at the same time (the Ray backend); a step names its run with ``position``,
    else it belongs to the run started last.
    """

    def __init__(self, console: Console | None = None) -> None:
        self.console = console or Console(stderr=True)
        self._progress: Progress | None = None
        self._study: TaskID | None = None
        self._runs: dict[int, TaskID] = {}
        self._batches: dict[int, int] = {}
        self._current: int | None = None
        self._done = 0
        self._estimated = False

    def message(self, text: str) -> None:
        self.console.print(f"[dim]{escape(text)}[/dim]")  # text may come from data: never markup

    def _bars(self, total: int) -> Progress:
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
        bars = self._bars(total)
        if position in self._runs:  # started again (a Ray retry)
            bars.remove_task(self._runs.pop(position))
        self._batches[position] = batches_per_epoch
        self._runs[position] = bars.add_task(f"{position + 1}/{total} {label}", total=batches_per_epoch * epochs,
                                             detail=f"epoch 1/{epochs}")
        self._current = position

    def step(self, info: dict[str, Any]) -> None:
        position = info.get("position", self._current)
        if self._progress is None or position not in self._runs:
            return
        done = (info["epoch"] - 1) * self._batches[position] + info["batch"]
        self._progress.update(self._runs[position], completed=done,
                              detail=f"epoch {info['epoch']}/{info['epochs']}  loss {info['loss']:.4f}  "
                                     f"{info['examples_per_s']:.1f} ex/s")

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
        self._ended(record.get("position"))
        if record.get("status", "finished") != "finished":
            failure = record.get("failure") or {}
            error = failure.get("error") or "no result"
            self.console.print(f"  [red]✗[/red] {escape(record.get('label', record['strategy']))}: {record['status']} "
                               f"({escape(str(error))})")
            return
        res, test = record["resources"], record["test"]
        self.console.print(
            f"  [green]✓[/green] {record['strategy']}: test macro-F1 {test['macro_f1']:.3f}, "
            f"accuracy {test['accuracy']:.3f}, best epoch {record['best_epoch']}, "
            f"train {res['train_time_s']:.1f} s")
        self._estimate(record)

    def _estimate(self, record: dict[str, Any]) -> None:
        """Once the first run has a time: what the rest of the study will take at that pace."""
        if self._estimated or self._progress is None or self._study is None:
            return
        self._estimated = True
        left = self._progress.tasks[self._study].total - self._done
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
out = Console()
err = Console(stderr=True)
