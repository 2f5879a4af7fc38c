"""Tracking while a study trains: a reporter that forwards to another reporter and to trackers.

:class:`TrackingReporter` is a :class:`tunebench.study.run.Reporter` (the same calls): every call
goes to the reporter it wraps (the terminal's bars, a notebook's) and, for each run, to one run in
each tracker (:mod:`tunebench.report.trackers`): per step the loss, the learning rate and
examples/s; per epoch the validation metrics; at the end the test metrics, parameters and
resources; after the report is built, the report as an artifact (:meth:`attach_report`).

Epoch metrics arrive with the run's record (its curves) unless the study calls :meth:`epoch`
after each epoch; either way they are logged once, at the step where their epoch ended.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tunebench.report.trackers import batches_per_epoch, epoch_metrics, open_backends


@dataclass
class _Live:
    """One run in progress: its handle in each backend, its batches per epoch, the epochs already logged."""

    label: str
    batches: int
    handles: list[Any]
    step: int = 0
    epochs: set[int] = field(default_factory=set)


class TrackingReporter:
    """Forwards every call to ``inner`` and logs each run to the ``backends`` (names) under ``out_dir``."""

    def __init__(self, inner: Any, backends: list[str], out_dir: Path, study: str) -> None:
        self.inner = inner
        self.study = study
        self.backends = open_backends(backends, out_dir)
        self._live: dict[int, _Live] = {}
        self._current: int | None = None
        self._done: list[list[Any]] = []  # per finished run: its handle in each backend

    @property
    def where(self) -> dict[str, str]:
        return {b.name: str(b.where) for b in self.backends}

    # --- the Reporter protocol -------------------------------------------------------------------
    def message(self, text: str) -> None:
        self.inner.message(text)

    def run_started(self, position: int, total: int, label: str, batches_per_epoch: int, epochs: int) -> None:
        self.inner.run_started(position, total, label, batches_per_epoch, epochs)
        if position in self._live:  # started again (a Ray retry, a CUDA OOM retry): the new attempt replaces it
            self._live.pop(position)
        self._live[position] = _Live(label, max(1, batches_per_epoch), [b.open(self.study, label) for b in self.backends])
        self._current = position

    def step(self, info: dict[str, Any]) -> None:
        self.inner.step(info)
        live = self._live.get(info.get("position", self._current))
        if live is None:
            return
        live.step = (info["epoch"] - 1) * live.batches + info["batch"]
        values = {"step/loss": float(info["loss"]), "step/examples_per_s": float(info["examples_per_s"])}
        if info.get("lr") is not None:
            values["step/lr"] = float(info["lr"])
        for backend, handle in zip(self.backends, live.handles, strict=True):
            backend.log(handle, values, live.step)

    def epoch(self, curve: dict[str, Any], position: int | None = None) -> None:
        """One epoch's validation metrics, as soon as the epoch ends (the engine's ``on_epoch`` hook)."""
        live = self._live.get(self._current if position is None else position)
        if live is not None and curve["epoch"] not in live.epochs:
            live.epochs.add(curve["epoch"])
            for backend, handle in zip(self.backends, live.handles, strict=True):
                backend.log(handle, epoch_metrics(curve), curve["epoch"] * live.batches)

    def run_finished(self, record: dict[str, Any]) -> None:
        self.inner.run_finished(record)
        position = record.get("position", self._current)
        live = self._live.pop(position, None)
        if live is None:
            return
        for curve in record.get("curves") or []:
            if curve["epoch"] not in live.epochs:
                for backend, handle in zip(self.backends, live.handles, strict=True):
                    backend.log(handle, epoch_metrics(curve), curve["epoch"] * live.batches)
        last = max(live.step, len(record.get("curves") or []) * live.batches)
        for backend, handle in zip(self.backends, live.handles, strict=True):
            backend.finish(handle, record, last)
        self._done.append(live.handles)

    def run_skipped(self, label: str, run_id: str) -> None:
        self.inner.run_skipped(label, run_id)

    def close(self) -> None:
        """End every tracker run still open; then close the wrapped reporter (if it closes)."""
        try:
            for backend in self.backends:
                backend.close()
        finally:
            if hasattr(self.inner, "close"):
                self.inner.close()

    # --- after the study --------------------------------------------------------------------------
    def attach_report(self, paths: list[Path]) -> None:
        """The report, as an artifact of the runs this study trained (each backend's way)."""
        for i, backend in enumerate(self.backends):
            backend.attach([handles[i] for handles in self._done], [Path(p) for p in paths])


class _Quiet:
    """The reporter a replay wraps: says nothing."""

    def message(self, text: str) -> None:
        pass

    def run_started(self, position: int, total: int, label: str, batches_per_epoch: int, epochs: int) -> None:
        pass

    def step(self, info: dict[str, Any]) -> None:
        pass

    def run_finished(self, record: dict[str, Any]) -> None:
        pass

    def run_skipped(self, label: str, run_id: str) -> None:
        pass


def replay(backends: list[str], records: list[dict[str, Any]], out_dir: Path, paths: list[Path]) -> dict[str, str]:
    """Log stored runs after the fact through the same calls as a live study (``tunebench report --track``):
    each record's curves at the steps where its epochs ended, its final metrics, then the report."""
    where: dict[str, str] = {}
    for study in dict.fromkeys(r["study"] for r in records):
        reporter = TrackingReporter(_Quiet(), backends, out_dir, study)
        try:
            mine = [r for r in records if r["study"] == study]
            for position, record in enumerate(mine):
                record = {**record, "position": position}
                reporter.run_started(position, len(mine), record.get("label", record["strategy"]),
                                     batches_per_epoch(record), record["resolved"]["epochs"])
                reporter.run_finished(record)
            reporter.attach_report(paths)
        finally:
            reporter.close()
        where.update(reporter.where)
    return where
