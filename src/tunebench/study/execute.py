"""The one way planned runs execute: plan → stored? → attempt → keep (store + outputs), through a backend.

A study's baselines, its own runs, its tuning trials and its Optuna search's trials all go through
:func:`execute`: the same skip rule (:func:`~tunebench.study.run.stored_result`), the same backend
(:mod:`tunebench.study.backends`: here, or Ray tasks), the same keeping of each result as it arrives
(:func:`~tunebench.study.run.store_result`, then the study's outputs), the same sentence when a
run is interrupted.  This process alone writes the store and the outputs, whatever the backend.

A search (tuning, ``sweep.search: optuna``) watches each epoch of a trial through ``on_epoch``
(:func:`pruning_hook`); only the local backend calls it: on Ray a trial trains all its epochs and
the backend says so once.  A trial already in the store is given to the search by :func:`replay`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tunebench.faults import InterruptGuard, disk_guard
from tunebench.results.outputs import write_outputs
from tunebench.results.store import Store
from tunebench.spec.metrics import DEFAULT_SELECTION, curve_key
from tunebench.spec.study import StudySpec
from tunebench.study.plan import PlannedRun, Prepared
from tunebench.study.run import Reporter, RunPruned, interrupted_error, store_result, stored_result
from tunebench.training import distributed

#: a caller's hook on a new record: before it is stored (a trial's number, a tuning summary), or
#: after an interrupted one was (a search marks its trial)
Annotate = Callable[[PlannedRun, dict[str, Any]], None]


@dataclass
class Execution:
    """What every run of one invocation shares: the splits, where results go and where runs execute.

    ``store`` is None in the processes of a multi-process (DDP) launch that do not write.
    ``attempts`` collects this invocation's runs that did not finish (nor were pruned) while their
    row keeps an earlier finished result (a ``--force`` rerun; ``StudyRecords.attempts``).
    """

    prepared: Prepared
    env: dict[str, Any]
    reporter: Reporter
    runner: Any  # a backend of tunebench.study.backends
    store: Store | None
    out_dir: Path
    force: bool = False
    stop: InterruptGuard | None = None
    attempts: list[dict[str, Any]] = field(default_factory=list)


def execute(ex: Execution, spec: StudySpec, plan: list[PlannedRun], *, total: int | None = None,
            outputs: bool = True, everywhere: bool = True, prunes: bool = False,
            on_epoch: Callable[[dict[str, Any]], None] | None = None, annotate: Annotate | None = None,
            on_interrupted: Annotate | None = None) -> list[dict[str, Any] | None]:
    """Run every run of ``plan`` that the store does not already hold, through ``ex.runner``; keep each
    result as it arrives; return the records in plan order (stored or new; None where a run of a
    non-writing process ended).

    ``total``: the runs the progress counts (default: the plan's); ``outputs``: rewrite ``spec``'s
    tables after each result; ``everywhere``: every process of a DDP launch calls this and runs what
    rank 0 decided from its store (False: rank 0 alone does); ``prunes``: the caller prunes, so a
    pruned attempt of the same computation in this study is its result (replayed to the pruner, never
    trained again); ``on_epoch``: each epoch's validation point, local backend only; ``annotate``:
    fields added to each new record before it is stored; ``on_interrupted``: called with an
    interrupted run (stored) before the study's sentence is raised.
    """
    total = len(plan) if total is None else total
    records: dict[str, dict[str, Any]] = {}
    todo = []
    for planned in plan:
        stored = (None if ex.store is None else
                  stored_result(ex.store, spec, planned, ex.force, ex.reporter, pruned=prunes))
        if stored is not None:
            ex.reporter.run_skipped(planned.label, planned.run_id)
            records[planned.run_id] = stored
        else:
            todo.append(planned)
    if everywhere:
        wanted = distributed.from_writer({p.run_id for p in todo})
        todo = [p for p in plan if p.run_id in wanted]
    by_id = {p.run_id: p for p in plan}
    store = ex.store

    def keep(record: dict[str, Any], labels: list[int] | None, probs: list[list[float]] | None) -> None:
        """The single writer: each result goes to the store and the outputs as it arrives."""
        planned, masked = by_id[record["run_id"]], False
        if annotate is not None:
            annotate(planned, record)
        records[planned.run_id] = record
        if store is not None:
            masked = store_result(store, spec, planned, record, labels, probs)
            if masked and record["status"] != "pruned":
                ex.attempts.append(record)  # a --force rerun that did not finish: the finished result stays
            ex.reporter.run_finished(record)
            if outputs:
                with disk_guard("the study's tables", ex.out_dir):
                    write_outputs(store.records(spec.name), ex.out_dir)
        if record["status"] == "interrupted":
            if on_interrupted is not None:
                on_interrupted(planned, record)
            raise interrupted_error(record, earlier_kept=masked)

    ex.runner.run(spec, todo, total, ex.prepared, ex.env, ex.reporter, keep, stop=ex.stop, on_epoch=on_epoch)
    return [records.get(p.run_id) for p in plan]


def set_plan(ex: Execution, name: str, labels: list[str]) -> None:
    """The rows (in order) the study ``name`` shows, under the disk guard (rank 0 alone)."""
    if ex.store is not None:
        with disk_guard("the study's plan", ex.store.path):
            ex.store.set_plan(name, labels)


# --- what a search (tuning, sweep.search: optuna) gives the engine and takes from the store ------


def pruning_hook(trial: Any, curves: list[dict[str, Any]], metric: str = DEFAULT_SELECTION
                 ) -> Callable[[dict[str, Any]], None]:
    """An Optuna ``trial``'s per-epoch hook: report the validation ``metric`` (the selection metric; and keep
    the point in ``curves``), stop the run (:class:`~tunebench.study.run.RunPruned`) when the pruner says so."""
    def on_epoch(point: dict[str, Any]) -> None:
        curves[:] = [c for c in curves if c["epoch"] < point["epoch"]]  # a retried run (CUDA OOM) starts over
        curves.append(dict(point))
        trial.report(point[curve_key(metric)], point["epoch"])
        if trial.should_prune():
            raise RunPruned(point["epoch"], curves)
    return on_epoch


def replay(trial: Any, record: dict[str, Any] | None, reported: list[dict[str, Any]],
           metric: str = DEFAULT_SELECTION) -> None:
    """Give ``trial`` the curve (validation ``metric``) of a run it did not watch (stored, or trained on Ray),
    so the pruner compares later trials with it as when it ran; ``reported``: the points its hook already saw."""
    if reported or record is None:
        return
    for point in record.get("curves") or []:
        trial.report(point[curve_key(metric)], point["epoch"])
