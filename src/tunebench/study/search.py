"""``sweep.search: optuna``: a TPE search with median pruning on validation macro-F1 per epoch.

Each Optuna trial picks a strategy (when the study has several) and values for the sweep keys that
apply to it, from the same space as a random search (lists: categorical; ranges: float / int, log
when asked).  The trial's configuration runs once per seed; its value is the mean best-epoch
validation macro-F1 (never test).  The first seed's run reports every epoch's validation
macro-F1, and the median pruner stops it when it falls below the median of earlier trials at that
epoch; a pruned run is stored with status ``pruned`` and its curves, and takes no further seeds.

The Optuna study lives in the study's own SQLite file (Optuna's tables beside tunebench's), named
after the study and a hash of everything the search depends on, so rerunning a finished search
trains nothing, an interrupted one continues, and a changed spec starts a new search.  Samplers
are seeded (``sweep.sampler_seed``): a fresh search with the same spec proposes the same trials.
"""

from __future__ import annotations

import logging
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from tunebench.errors import SpecError
from tunebench.results.outputs import write_outputs
from tunebench.results.store import Store
from tunebench.spec.schema import RangeSpec, StudySpec, stable_hash
from tunebench.study.sweep import Configuration, apply, parse_key

#: the median pruner compares a trial with earlier ones only after this many have finished
STARTUP_TRIALS = 3


def require_optuna() -> Any:
    """Import optuna, or say in one sentence which extra installs it."""
    try:
        import optuna
    except ImportError:
        raise SpecError("sweep.search: optuna needs the optuna package; install it with "
                        "pip install 'tunebench[sweep]'") from None
    return optuna


class _Pruned(Exception):
    """Raised from the engine's per-epoch hook when the pruner stops a trial."""


def search_name(spec: StudySpec) -> str:
    """The Optuna study's name: the tunebench study and a hash of what the search depends on."""
    basis = spec.to_dict()
    basis.pop("output", None)
    basis["sweep"].pop("trials", None)  # more trials continue the same search
    return f"tunebench:{spec.name}:{stable_hash(basis)}"


def run_search(spec: StudySpec, prepared: Any, store: Store, env: dict[str, Any], reporter: Any,
               force: bool = False) -> list[Any]:
    """Run the search until ``sweep.trials`` trials have completed or been pruned; return the
    planned runs of the completed trials (in trial order) for the study's tables."""
    from tunebench.study import driver as study_module

    optuna = require_optuna()
    optuna.logging.set_verbosity(logging.WARNING)
    search = optuna.create_study(
        study_name=search_name(spec), storage=f"sqlite:///{Path(store.path).resolve()}", direction="maximize",
        sampler=optuna.samplers.TPESampler(seed=spec.sweep.sampler_seed),
        pruner=optuna.pruners.MedianPruner(n_startup_trials=STARTUP_TRIALS, n_warmup_steps=0),
        load_if_exists=True)
    states = optuna.trial.TrialState
    for stale in search.get_trials(deepcopy=False, states=(states.RUNNING,)):  # left by an interrupted search
        search.tell(stale.number, state=states.FAIL)
    seeds = spec.sweep.seed_list or [spec.training.seed]
    total = (spec.sweep.trials or 0) * len(seeds)
    position = 0

    def done() -> int:
        return len(search.get_trials(deepcopy=False, states=(states.COMPLETE, states.PRUNED)))

    while done() < (spec.sweep.trials or 0):
        trial = search.ask()
        config = suggest(spec, trial)
        reporter.message(f"trial {trial.number}: {config.group}")
        values = []
        try:
            for i, seed in enumerate(seeds):
                planned = study_module.planned_run(spec, prepared, config, seed, position)
                position += 1
                stored = study_module.stored_result(store, spec, planned, force, reporter)
                if stored is not None:
                    reporter.run_skipped(planned.label, planned.run_id)
                    record = stored
                    if i == 0:
                        _report_curves(trial, record["curves"])
                else:
                    curves: list[dict[str, Any]] = []
                    hook = _pruning_hook(trial, curves) if i == 0 else None
                    try:
                        record, labels, probs = study_module.execute_run(spec, planned, total, prepared, env, reporter,
                                                                         on_epoch=hook)
                    except _Pruned:
                        store.put(_pruned_record(spec, planned, curves, trial.number))
                        reporter.message(f"trial {trial.number} pruned after epoch {len(curves)}")
                        raise
                    record["trial"] = trial.number
                    store.put(record, labels, probs)
                    reporter.run_finished(record)
                values.append(record["val"]["macro_f1"])
        except _Pruned:
            search.tell(trial, state=states.PRUNED)
            continue
        except BaseException:
            search.tell(trial, state=states.FAIL)
            raise
        search.tell(trial, sum(values) / len(values))
        store.set_plan(spec.name, [p.label for p in completed_plan(spec, prepared, search)])
        write_outputs(store.records(spec.name), Path(spec.output.dir))
    plan = completed_plan(spec, prepared, search)
    store.set_plan(spec.name, [p.label for p in plan])
    return plan


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

    from tunebench.study import driver as study_module

    plan, seen = [], set()
    for t in search.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        config = suggest(spec, FixedTrial(t.params, t.number))
        for seed in spec.sweep.seed_list or [spec.training.seed]:
            planned = study_module.planned_run(spec, prepared, config, seed, len(plan))
            if planned.run_id not in seen:
                seen.add(planned.run_id)
                plan.append(planned)
    return plan


def _pruning_hook(trial: Any, curves: list[dict[str, Any]]):
    def on_epoch(point: dict[str, Any]) -> None:
        curves.append(dict(point))
        trial.report(point["val_macro_f1"], point["epoch"])
        if trial.should_prune():
            raise _Pruned()
    return on_epoch


def _report_curves(trial: Any, curves: list[dict[str, Any]]) -> None:
    """Give a trial whose run was already stored its intermediate values, for the pruner's medians."""
    for point in curves:
        trial.report(point["val_macro_f1"], point["epoch"])


def _pruned_record(spec: StudySpec, planned: Any, curves: list[dict[str, Any]], trial: int) -> dict[str, Any]:
    return {"run_id": planned.run_id, "study": spec.name, "position": planned.position,
            "strategy": planned.strategy.label, "label": planned.label, "group": planned.group,
            "sweep": planned.params, "trial": trial, "status": "pruned",
            "finished_at": datetime.now(timezone.utc).isoformat(timespec="milliseconds"),
            "spec": planned.strategy.model_dump(), "resolved": vars(planned.cfg), "curves": curves}
