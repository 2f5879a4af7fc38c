"""The one way planned runs execute: plan → stored? → attempt → keep (store + outputs), through a backend.

A study's baselines, its own runs, its tuning trials and its Optuna search's trials all go through
:func:`execute`: the same skip rule (:func:`~tunebench.study.run.stored_result`), the same backend
(:mod:`tunebench.study.backends`: here, or Ray tasks), the same keeping of each result as it arrives
(:func:`~tunebench.study.run.store_result`, then the study's outputs), the same sentence when a
run is interrupted.  This process alone writes the store and the outputs, whatever the backend.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tunebench.faults import InterruptGuard, disk_guard
from tunebench.results.outputs import write_outputs
from tunebench.results.store import Store
from tunebench.spec.study import StudySpec
from tunebench.study.plan import PlannedRun, Prepared
from tunebench.study.run import Reporter, interrupted_error, store_result, stored_result
from tunebench.training import distributed


@dataclass
class Execution:
    """What every run of one invocation shares: the splits, where results go and where runs execute.

    ``store`` is None in the processes of a multi-process (DDP) launch that do not write.
    ``attempts`` collects this invocation's runs that did not finish while their row keeps an
    earlier finished result (a ``--force`` rerun; ``StudyRecords.attempts``).
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


def execute(ex: Execution, spec: StudySpec, plan: list[PlannedRun], *, total: int | None = None) -> None:
    """Run every run of ``plan`` that the store does not already hold, through ``ex.runner``; keep each
    result (store, then ``spec``'s outputs) as it arrives.  Every process of a DDP launch calls this
    and runs what rank 0 decided from its store."""
    total = len(plan) if total is None else total
    todo = []
    for planned in plan:
        if ex.store is not None and stored_result(ex.store, spec, planned, ex.force, ex.reporter) is not None:
            ex.reporter.run_skipped(planned.label, planned.run_id)
            continue
        todo.append(planned)
    wanted = distributed.from_writer({p.run_id for p in todo})  # every process runs what rank 0 decided
    todo = [p for p in plan if p.run_id in wanted]
    by_id = {p.run_id: p for p in plan}
    store, masked = ex.store, ex.attempts

    def keep(record: dict[str, Any], labels: list[int] | None, probs: list[list[float]] | None) -> None:
        """The single writer: each result goes to the store and the outputs as it arrives."""
        if store is not None:
            if store_result(store, spec, by_id[record["run_id"]], record, labels, probs):
                masked.append(record)  # a --force rerun that did not finish: the finished result stays
            ex.reporter.run_finished(record)
            with disk_guard("the study's tables", ex.out_dir):
                write_outputs(store.records(spec.name), ex.out_dir)
        if record["status"] == "interrupted":
            raise interrupted_error(record, earlier_kept=bool(masked) and masked[-1] is record)

    ex.runner.run(spec, todo, total, ex.prepared, ex.env, ex.reporter, keep, stop=ex.stop)
