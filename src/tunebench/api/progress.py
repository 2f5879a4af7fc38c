"""Progress of a study run from Python: a tqdm bar per run (a widget in Jupyter when ipywidgets is
installed, a terminal bar on a TTY), else one plain line per epoch; a line per finished run."""

from __future__ import annotations

import importlib.util
import sys
from typing import Any


def in_jupyter() -> bool:
    """True inside a Jupyter kernel (notebook, lab, VS Code, nbclient)."""
    shell = sys.modules.get("IPython")
    try:
        ip = shell.get_ipython() if shell is not None else None  # type: ignore[attr-defined]
    except AttributeError:
        return False
    return ip is not None and type(ip).__name__ == "ZMQInteractiveShell"


def progress_reporter(progress: Any) -> Any:
    """``True``: :class:`ProgressReporter` with the best display available; ``False``/``None``: quiet;
    anything else: a reporter of the caller's (used as it is)."""
    from tunebench.study.run import SilentReporter

    if progress is True:
        if in_jupyter():
            bars = "notebook" if importlib.util.find_spec("ipywidgets") is not None else None
        else:
            bars = "terminal" if sys.stderr.isatty() else None
        return ProgressReporter(bars)
    if progress is False or progress is None:
        return SilentReporter()
    return progress


class ProgressReporter:
    """Bars (``bars``: "notebook", "terminal") or plain lines (None) on stdout."""

    def __init__(self, bars: str | None = None, file: Any = None) -> None:
        self.bars = bars
        self.file = file
        self._bar: dict[int, Any] = {}
        self._batches: dict[int, int] = {}
        self._current: int | None = None

    def _say(self, text: str) -> None:
        print(text, file=self.file or sys.stdout, flush=True)

    def message(self, text: str) -> None:
        self._say(text)

    def run_started(self, position: int, total: int, label: str, batches_per_epoch: int, epochs: int) -> None:
        self._close_bar(position)
        self._batches[position] = max(1, batches_per_epoch)
        self._current = position
        title = f"{position + 1}/{total} {label}"
        if self.bars is None:
            self._say(f"{title}: {epochs} epoch{'s' * (epochs != 1)} of {batches_per_epoch} batches")
            return
        if self.bars == "notebook":
            from tqdm.notebook import tqdm
        else:
            from tqdm import tqdm
        self._bar[position] = tqdm(total=self._batches[position] * epochs, desc=title, leave=True, mininterval=0.5)

    def step(self, info: dict[str, Any]) -> None:
        position = info.get("position", self._current)
        if position not in self._batches:
            return
        detail = f"epoch {info['epoch']}/{info['epochs']}  loss {info['loss']:.4f}  {info['examples_per_s']:.1f} ex/s"
        bar = self._bar.get(position)
        if bar is not None:
            bar.n = (info["epoch"] - 1) * self._batches[position] + info["batch"]
            bar.set_postfix_str(detail, refresh=False)
            bar.refresh()
        elif info["batch"] == info.get("batches", self._batches[position]):  # plain lines: one per epoch
            self._say(f"  {detail}")

    def _close_bar(self, position: int | None) -> None:
        bar = self._bar.pop(position, None) if position is not None else None
        if bar is not None:
            bar.close()

    def run_finished(self, record: dict[str, Any]) -> None:
        self._close_bar(record.get("position"))
        label = record.get("label", record["strategy"])
        if record.get("status", "finished") != "finished":
            failure = record.get("failure") or {}
            self._say(f"  ✗ {label}: {record['status']} ({failure.get('error') or 'no result'})")
            return
        from tunebench.results.decisions import one_line

        res = record["resources"]
        self._say(f"  ✓ {label}: {one_line(record)}, best epoch {record['best_epoch']}, "
                  f"train {res['train_time_s']:.1f} s")

    def run_skipped(self, label: str, run_id: str) -> None:
        self._say(f"  ↷ {label}: already finished in the store (run {run_id}); force=True redoes it")

    def close(self) -> None:
        for position in list(self._bar):
            self._close_bar(position)
