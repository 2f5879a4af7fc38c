"""The terminal side of a study: a rich progress bar per run and the final comparison table."""

from __future__ import annotations

from typing import Any

import pandas as pd
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from tunebench.outputs import display_rows


class RichReporter:
    """Shows one progress bar per run: strategy, epoch, running loss, examples/s."""

    def __init__(self, console: Console | None = None) -> None:
        self.console = console or Console(stderr=True)
        self._progress: Progress | None = None
        self._task: TaskID | None = None
        self._batches = 0

    def message(self, text: str) -> None:
        self.console.print(f"[dim]{escape(text)}[/dim]")  # text may come from data: never markup

    def run_started(self, position: int, total: int, label: str, batches_per_epoch: int,
                    epochs: int) -> None:
        self._close()
        self._batches = batches_per_epoch
        self._progress = Progress(
            TextColumn(f"[bold]{position + 1}/{total} {label}[/bold]"),
            BarColumn(),
            TextColumn("epoch {task.fields[epoch]}/{task.fields[epochs]}"),
            TextColumn("loss {task.fields[loss]}"),
            TextColumn("{task.fields[speed]} ex/s"),
            TimeElapsedColumn(), TimeRemainingColumn(),
            console=self.console, transient=False,
        )
        self._progress.start()
        self._task = self._progress.add_task(label, total=batches_per_epoch * epochs, epoch=1, epochs=epochs,
                                             loss="—", speed="—")

    def step(self, info: dict[str, Any]) -> None:
        if self._progress is None or self._task is None:
            return
        done = (info["epoch"] - 1) * self._batches + info["batch"]
        self._progress.update(self._task, completed=done, epoch=info["epoch"], loss=f"{info['loss']:.4f}",
                              speed=f"{info['examples_per_s']:.1f}")

    def run_finished(self, record: dict[str, Any]) -> None:
        self._close()
        if record["status"] != "finished":
            failure = record.get("failure") or {}
            self.console.print(f"  [red]✗[/red] {escape(record['strategy'])}: {record['status']} "
                               f"({escape(str(failure.get('error', '')))})")
            return
        res, test = record["resources"], record["test"]
        self.console.print(
            f"  [green]✓[/green] {record['strategy']}: test macro-F1 {test['macro_f1']:.3f}, "
            f"accuracy {test['accuracy']:.3f}, best epoch {record['best_epoch']}, "
            f"train {res['train_time_s']:.1f} s")

    def run_skipped(self, label: str, run_id: str) -> None:
        self.console.print(f"  [yellow]↷[/yellow] {label}: already finished in the store (run {run_id}); "
                           "--force redoes it")

    def _close(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None
            self._task = None

    def close(self) -> None:
        self._close()


def comparison_table(frame: pd.DataFrame, title: str = "Comparison") -> Table:
    headers, rows = display_rows(frame)
    table = Table(title=title, show_lines=False)
    for i, header in enumerate(headers):
        table.add_column(header, justify="left" if i == 0 else "right")
    for row in rows:
        table.add_row(*row)
    return table
