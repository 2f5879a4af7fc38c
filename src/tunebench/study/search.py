"""``sweep.search: optuna``: a TPE search with median pruning on the validation selection metric per epoch
(``training.selection_metric``, macro-F1 unless set; below, "macro-F1").

Each Optuna trial picks a strategy (when the study has several) and values for the sweep keys that
apply to it, from the same space as a random search (lists: categorical; ranges: float / int, log
when asked).  The trial's configuration runs once per seed; its value is the mean best-epoch
validation macro-F1 (never test).  The first seed's run reports every epoch's validation
macro-F1, and the median pruner stops it when it falls below the median of earlier trials at that
epoch; a pruned run is stored with status ``pruned`` and its curves, and takes no further seeds.

The Optuna study lives in the study's own SQLite file (Optuna's tables beside tunebench's), named
after the study and a hash of everything the search depends on, so rerunning a finished search
trains nothing, an interrupted one continues, and a changed spec starts a new search.  Samplers
are seeded (``sweep.sampler_seed``): a fresh search with the same spec proposes the same trials; a
continued one seeds its sampler with ``sampler_seed`` plus the number of trials already there, so that
it does not propose the first trials again.

What can go wrong in a trial is handled as in the driver: every run goes through
:func:`tunebench.study.execute.execute` (the one skip rule; the study's backend, whose
:func:`~tunebench.study.run.attempt_run` makes records of diverged / failed / interrupted runs and
retries a CUDA OOM once; :func:`~tunebench.study.run.store_result`, one transaction under the disk
guard); :func:`run_search` says how each ends a trial.  On the Ray backend the pruner cannot watch
a run's epochs: every trial trains all its epochs (said once).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from tunebench.errors import SpecError
from tunebench.faults import StudyInterrupted, disk_guard
from tunebench.results.outputs import write_outputs
from tunebench.spec.metrics import DEFAULT_SELECTION
from tunebench.spec.parts import RangeSpec, stable_hash
from tunebench.spec.study import StudySpec
from tunebench.spec.sweep import Configuration, apply, parse_key
from tunebench.study import plan as planning
from tunebench.study.execute import Execution, execute, pruning_hook, replay, set_plan

#: the median pruner compares a trial with earlier ones only after this many have finished
STARTUP_TRIALS = 3

#: the search stops early after this many trials in a row whose run diverged or failed
MAX_FAILED_IN_A_ROW = 3


def require_optuna() -> Any:
    """Import optuna, or say in one sentence which extra installs it."""
    try:
        import optuna
    except ImportError:
        raise SpecError("sweep.search: optuna needs the optuna package; install it with "
                        "pip install 'tunebench[sweep]'") from None
    return optuna


def search_name(spec: StudySpec) -> str:
    """The Optuna study's name: the tunebench study and a hash of what the search depends on."""
    basis = spec.to_dict()
    basis.pop("output", None)
    basis["sweep"].pop("trials", None)  # more trials continue the same search
    if basis["training"].get("selection_metric") == DEFAULT_SELECTION:  # a later setting: searches before it continue
        basis["training"].pop("selection_metric")
    return f"tunebench:{spec.name}:{stable_hash(basis)}"


def run_search(spec: StudySpec, ex: Execution) -> list[Any]:
    """Run the search until ``sweep.trials`` trials have completed or been pruned (earlier invocations'
    count); return the planned runs the study's outputs show: the completed trials' runs (in trial
    order), then this invocation's runs that did not finish.

    Every run goes through :func:`~tunebench.study.execute.execute` (``ex``: the study's store, backend,
    Ctrl-C guard; ``ex.attempts`` gets the runs of a ``--force`` rerun that did not finish).

    How a trial ends:

    - every seed's run finished (or was already in the store): COMPLETE, valued by the mean
      best-epoch validation macro-F1;
    - the first seed's run stopped by the median pruner: PRUNED; the run is stored ``pruned``
      (history only, never a row of the outputs);
    - a run diverged or failed: it is stored with that status and is a row of this invocation's
      outputs (so the exit code is 1 and names it); the trial is FAIL and the search goes on with
      the next trial.  Such trials do not count towards ``sweep.trials``, so that the requested number
      of results is reached; the search cannot loop for ever: after :data:`MAX_FAILED_IN_A_ROW`
      failed trials in a row it stops early with a message (the same command continues it);
    - Ctrl-C: the run stops at the next step and is stored ``interrupted``, the outputs are written,
      and :class:`~tunebench.faults.StudyInterrupted` is raised (exit 130) with the driver's sentence
      (:func:`~tunebench.study.run.interrupted_error`); a Ctrl-C between runs raises it before the next;
    - the search ends inside a trial (that Ctrl-C; a :class:`~tunebench.errors.TunebenchError` such
      as a full disk or a user error, exit 2; a second Ctrl-C; SIGKILL): the trial is left RUNNING.
      The next start marks such trials FAIL and asks each one's configuration again first (once after
      a crash or an error, every time after Ctrl-C), so its runs already stored are reused and, with
      ``--checkpoint-every``, the stopped run resumes from its saved state.
    """
    optuna = require_optuna()
    selection = spec.training.selection_metric  # what each trial is scored and pruned on (validation)
    optuna.logging.set_verbosity(logging.WARNING)
    store, prepared, reporter, stop = ex.store, ex.prepared, ex.reporter, ex.stop
    assert store is not None  # one process: the search's trials live in its store

    def trials_write() -> Any:  # Optuna writes its trials into the study's store
        return disk_guard("the search's trials", store.path)

    with trials_write():
        search = optuna.create_study(
            study_name=search_name(spec), storage=f"sqlite:///{Path(store.path).resolve()}", direction="maximize",
            sampler=optuna.samplers.TPESampler(seed=spec.sweep.sampler_seed),
            pruner=optuna.pruners.MedianPruner(n_startup_trials=STARTUP_TRIALS, n_warmup_steps=0),
            load_if_exists=True)
    earlier = len(search.get_trials(deepcopy=False))
    if earlier:  # a continued search: a sampler seeded as at the start would propose the first trials again
        search.sampler = optuna.samplers.TPESampler(seed=spec.sweep.sampler_seed + earlier)
    states = optuna.trial.TrialState
    for stale in search.get_trials(deepcopy=False, states=(states.RUNNING,)):  # left by a stopped search
        with trials_write():
            search.tell(stale.number, state=states.FAIL)
            if stale.params and (stale.user_attrs.get("interrupted") or "retry_of" not in stale.user_attrs):
                search.enqueue_trial(stale.params, user_attrs={"retry_of": stale.number})
                reporter.message(f"trial {stale.number} did not end (the search was stopped); "
                                 "its configuration is tried again first")
    seeds = spec.sweep.seed_list or [spec.training.seed]
    wanted = spec.sweep.trials or 0
    total = wanted * len(seeds)
    position, failed_in_a_row = 0, 0
    unfinished: list[planning.PlannedRun] = []  # this invocation's runs that did not finish

    def done() -> int:
        return len(search.get_trials(deepcopy=False, states=(states.COMPLETE, states.PRUNED)))

    def show() -> list[planning.PlannedRun]:
        """Store the plan (completed trials' runs, then this invocation's unfinished ones) and write the outputs."""
        plan = completed_plan(spec, prepared, search)
        labels = {p.label for p in plan}
        for planned in unfinished:
            if planned.label not in labels:
                labels.add(planned.label)
                plan.append(planned)
        set_plan(ex, spec.name, [p.label for p in plan])
        with disk_guard("the study's tables", ex.out_dir):
            write_outputs(store.records(spec.name), ex.out_dir)
        return plan

    while done() < wanted:
        if failed_in_a_row >= MAX_FAILED_IN_A_ROW:
            reporter.message(f"search stopped early: {failed_in_a_row} trials in a row did not finish; "
                             f"{done()} of {wanted} trials done (the same command continues the search)")
            break
        if stop is not None and stop():
            raise StudyInterrupted("interrupted between two trials of the search; finished runs are kept and the "
                                   "same command continues the study")
        with trials_write():
            trial = search.ask()
        config = suggest(spec, trial)
        reporter.message(f"trial {trial.number}: {config.group}")
        values: list[float] = []
        ended: dict[str, Any] | None = None  # the run that ended the trial before its last seed

        def interrupted(planned: planning.PlannedRun, record: dict[str, Any], trial: Any = trial) -> None:
            """Ctrl-C in a run: the trial is left RUNNING, marked, so the next start asks it again."""
            unfinished.append(planned)
            with trials_write():
                trial.set_user_attr("interrupted", True)
            show()

        for i, seed in enumerate(seeds):
            planned = planning.planned_run(spec, prepared, config, seed, position)
            position += 1
            reported: list[dict[str, Any]] = []
            record, = execute(ex, spec, [planned], total=total, outputs=False, everywhere=False, prunes=True,
                              on_epoch=pruning_hook(trial, reported, selection) if i == 0 else None,
                              annotate=lambda _, r, n=trial.number: r.update(trial=n), on_interrupted=interrupted)
            assert record is not None
            if i == 0:
                replay(trial, record, reported, selection)
            if record["status"] != "finished":
                ended = record
                if record["status"] != "pruned":
                    unfinished.append(planned)
                break
            values.append(record["val"][selection])
        if ended is None:
            with trials_write():
                search.tell(trial, sum(values) / len(values))
            failed_in_a_row = 0
        elif ended["status"] == "pruned":
            with trials_write():
                search.tell(trial, state=states.PRUNED)
            failed_in_a_row = 0
        else:  # diverged or failed
            with trials_write():
                search.tell(trial, state=states.FAIL)
            failed_in_a_row += 1
            reporter.message(f"trial {trial.number} did not finish ({ended['status']}); the search goes on")
        show()
    return show()


def suggest(spec: StudySpec, trial: Any) -> Configuration:
    """The trial's configuration: a strategy (if there is a choice) and a value per applicable key."""
    labels = [s.label for s in spec.strategies]
    chosen = trial.suggest_categorical("strategy", labels) if len(labels) > 1 else labels[0]
    strategy = spec.strategies[labels.index(chosen)]
    values = {}
    for text, space in spec.sweep.space.items():
        key = parse_key(text)
        if not key.applies_to(strategy.kind):
            continue
        if isinstance(space, RangeSpec):
            if space.integer:
                values[key] = trial.suggest_int(key.text, int(space.low), int(space.high))
            else:
                values[key] = trial.suggest_float(key.text, space.low, space.high, log=space.log)
        else:  # optuna's choices are scalars: a list value (targets, layers) travels as "a+b"
            choices = ["+".join(map(str, v)) if isinstance(v, list) else v for v in space]
            values[key] = trial.suggest_categorical(key.text, choices)
    return apply(spec, strategy, values)


def completed_plan(spec: StudySpec, prepared: Any, search: Any) -> list[Any]:
    """Planned runs of every completed trial, replayed from the stored trial parameters."""
    from optuna.trial import FixedTrial, TrialState

    plan, seen = [], set()
    for t in search.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        config = suggest(spec, FixedTrial(t.params, t.number))
        for seed in spec.sweep.seed_list or [spec.training.seed]:
            planned = planning.planned_run(spec, prepared, config, seed, len(plan))
            if planned.run_id not in seen:
                seen.add(planned.run_id)
                plan.append(planned)
    return plan
