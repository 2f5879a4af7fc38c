"""Equal-budget learning-rate tuning (``tuning:`` in the spec, ``--tune``): the same trials for every strategy.

Comparing strategies at one untuned learning rate each compares learning rates.  Here every
strategy (baselines aside) gets the same number of rate trials: by default
:data:`~tunebench.spec.parts.GRID_FACTORS` times its default rate (half-decade steps from 1/10 to
10x, the default first), or the listed rates, or ``trials`` rates drawn by Optuna's TPE sampler from
a range.  A trial trains on the tuning seed and is scored on validation macro-F1 alone: the engine
is told not to evaluate the test split (``RunConfig.evaluate_test``), no checkpoint is saved.
Optuna's :class:`~optuna.pruners.SuccessiveHalvingPruner` (``reduction_factor`` 3, a rung after
epoch 1, 3, 9, ...) stops a trial that is behind the earlier ones at a rung, the same rule for
every strategy, so the trials cost about one to two times the study's final runs.  Each strategy's
best rate (the highest best-epoch validation macro-F1 among its finished trials; the earlier trial
on a tie) then replaces its rate for the study's own runs, which alone see the test split.

Trials are runs like any other: executed through :func:`~tunebench.study.execute.execute` and the
study's backend (diverged and failed trials are recorded and the tuning goes on; Ctrl-C is recorded
and stops the study) and stored, one transaction each, as rows of the study ``"<name>:tuning"`` with
a ``tuning`` field (strategy, lr, trial, value, pruned_at, epochs_run).  A rerun (after Ctrl-C or a
crash too) reuses every stored trial, finished or pruned, by its run id (the one skip rule,
:func:`~tunebench.study.run.stored_result` with ``pruned``) and replays its curve to the pruner, so
the decisions and the chosen rates come out the same and nothing trains twice.  Optuna's own study
lives in memory: the stored trials are the state.  On the Ray backend, which cannot watch a trial's
epochs, a listed grid's trials of one strategy run at once and none is pruned (said in a sentence).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from typing import Any

from tunebench.errors import SpecError
from tunebench.spec.parts import GRID_FACTORS, RangeSpec
from tunebench.spec.rates import body_rate
from tunebench.spec.strategy import OPTIONS, StrategyOptions, strategy_spec
from tunebench.spec.study import StudySpec
from tunebench.study.execute import Execution, execute, pruning_hook, replay, set_plan
from tunebench.study.plan import PlannedRun, Prepared, run_config, run_id_for

#: a range's number of draws when ``tuning.trials`` is not given
DEFAULT_TRIALS = 5
SUFFIX = ":tuning"


def tuning_name(spec: StudySpec) -> str:
    """The store's study name of ``spec``'s learning-rate trials."""
    return spec.name + SUFFIX


@dataclass
class Tuned:
    """One strategy's tuning: its trials' records and the rate chosen (None: no trial finished)."""

    strategy: StrategyOptions
    trials: list[dict[str, Any]] = field(default_factory=list)
    best_lr: float | None = None
    best_value: float | None = None

    @property
    def epochs_trained(self) -> int:
        return sum(len(r.get("curves") or []) for r in self.trials)


def candidates(spec: StudySpec, strategy: StrategyOptions) -> list[float] | RangeSpec:
    """The rates ``strategy`` is tried at: the spec's list or range, else :data:`GRID_FACTORS` times its rate."""
    assert spec.tuning is not None
    if spec.tuning.lr is not None:
        return spec.tuning.lr
    center = body_rate(strategy, spec.training.lr)
    return [float(f"{center * factor:.3g}") for factor in GRID_FACTORS]


def tunable(spec: StudySpec) -> list[StrategyOptions]:
    """The strategies that are tuned: all but the baselines (which have no learning rate)."""
    return [s for s in spec.strategies if not OPTIONS[s.kind].baseline]


def trial_run(spec: StudySpec, prepared: Prepared, strategy: StrategyOptions, lr: float, position: int) -> PlannedRun:
    """A trial: ``strategy`` at ``lr`` on the tuning seed, without the test split."""
    assert spec.tuning is not None
    at_lr = strategy_spec(strategy, lr=lr)
    seed = spec.training.seed if spec.tuning.seed is None else spec.tuning.seed
    cfg = replace(run_config(spec, at_lr, prepared.precision, seed=seed), evaluate_test=False)
    return PlannedRun(position, at_lr, cfg, run_id_for(spec, at_lr, prepared.bundle, cfg, prepared.device),
                      f"{strategy.label} lr={lr:g}", strategy.label, {"lr": lr})


def tune(spec: StudySpec, ex: Execution) -> tuple[StudySpec, list[Tuned]]:
    """Tune every strategy's rate through ``ex`` (:func:`~tunebench.study.execute.execute`); return the
    study with the chosen rates, and each strategy's tuning."""
    assert spec.tuning is not None
    import optuna  # a dependency of tunebench: tuning is part of every verdict

    optuna.logging.set_verbosity(logging.WARNING)
    trials_spec = spec.model_copy(update={"name": tuning_name(spec),
                                          "output": spec.output.model_copy(update={"save_checkpoints": False})})
    strategies = tunable(spec)
    per_strategy = [_count(candidates(spec, s), spec) for s in strategies]
    total, done, labels = sum(per_strategy), 0, []
    outcomes: list[Tuned] = []
    for strategy, n in zip(strategies, per_strategy, strict=True):
        ex.reporter.message(f"tuning {strategy.label}: {n} learning-rate trials on validation macro-F1")
        tuned = _tune_one(spec, trials_spec, ex, strategy, n, done, total)
        done += n
        labels += [r["label"] for r in tuned.trials]
        outcomes.append(tuned)
        set_plan(ex, trials_spec.name, labels)
        if tuned.best_lr is None:
            ex.reporter.message(f"tuning {strategy.label}: no trial finished; it keeps its default rate")
        else:
            ex.reporter.message(f"tuning {strategy.label}: lr {tuned.best_lr:g} (validation macro-F1 "
                                f"{tuned.best_value:.4f})")
    chosen = {t.strategy.label: t.best_lr for t in outcomes}
    strategies_out = [s if chosen.get(s.label) is None else strategy_spec(s, lr=chosen[s.label])
                      for s in spec.strategies]
    return spec.model_copy(update={"strategies": strategies_out}), outcomes


def _count(space: list[float] | RangeSpec, spec: StudySpec) -> int:
    assert spec.tuning is not None
    return len(space) if isinstance(space, list) else spec.tuning.trials or DEFAULT_TRIALS


def _tune_one(spec: StudySpec, trials_spec: StudySpec, ex: Execution, strategy: StrategyOptions, n: int,
              done: int, total: int) -> Tuned:
    """One strategy's trials.  Locally one after another, the pruner watching each epoch; on a backend
    that cannot watch epochs (Ray), a listed grid's trials all at once (their rates do not depend on
    each other's results), a range's one at a time (each draw learns from the ones before)."""
    import optuna

    assert spec.tuning is not None
    space = candidates(spec, strategy)
    pruner: Any = (optuna.pruners.SuccessiveHalvingPruner(min_resource=1, reduction_factor=spec.tuning.reduction_factor)
                   if spec.tuning.halving else optuna.pruners.NopPruner())
    search = optuna.create_study(direction="maximize", pruner=pruner,
                                 sampler=optuna.samplers.TPESampler(seed=spec.training.seed))
    if isinstance(space, list):
        for lr in space:
            search.enqueue_trial({"lr": lr})
    tuned = Tuned(strategy)

    def annotate(planned: PlannedRun, record: dict[str, Any]) -> None:
        record["tuning"] = _summary(strategy, planned.params["lr"], planned.position - done, record)

    def trial_of(trial: Any, number: int) -> PlannedRun:
        lr = (trial.suggest_categorical("lr", space) if isinstance(space, list)
              else float(f"{trial.suggest_float('lr', space.low, space.high, log=space.log):.3g}"))
        return trial_run(spec, ex.prepared, strategy, lr, done + number)

    if isinstance(space, list) and not ex.runner.watches_epochs:
        if spec.tuning.halving:
            ex.reporter.message(f"tuning {strategy.label}: on the {ex.runner.name} backend its {n} trials run at "
                                "once and none is pruned (successive halving watches epochs: local backend only)")
        trials = [search.ask() for _ in range(n)]
        plan = [trial_of(trial, number) for number, trial in enumerate(trials)]
        records = execute(ex, trials_spec, plan, total=total, outputs=False, prunes=True, annotate=annotate)
        for trial, planned, record in zip(trials, plan, records, strict=True):
            _tell(search, trial, planned, record, [], tuned, ex.reporter)
        return tuned
    for number in range(n):
        trial = search.ask()
        planned, reported = trial_of(trial, number), []
        record, = execute(ex, trials_spec, [planned], total=total, outputs=False, prunes=True,
                          on_epoch=pruning_hook(trial, reported), annotate=annotate)
        _tell(search, trial, planned, record, reported, tuned, ex.reporter)
    return tuned


def _tell(search: Any, trial: Any, planned: PlannedRun, record: dict[str, Any] | None,
          reported: list[dict[str, Any]], tuned: Tuned, reporter: Any) -> None:
    """The trial's result to the search (its curve first, when the pruner did not watch it) and to ``tuned``."""
    import optuna

    assert record is not None  # tuning runs in one process, which writes
    replay(trial, record, reported)
    tuned.trials.append(record)
    status, states = record["status"], optuna.trial.TrialState
    if status == "finished":
        search.tell(trial, record["val"]["macro_f1"])
        if tuned.best_value is None or record["val"]["macro_f1"] > tuned.best_value:
            tuned.best_lr, tuned.best_value = planned.params["lr"], record["val"]["macro_f1"]
    elif status == "pruned":
        search.tell(trial, state=states.PRUNED)
    else:  # diverged or failed: recorded; the other rates are still tried (interrupted: execute raised)
        search.tell(trial, state=states.FAIL)
        reporter.message(f"{planned.label}: the trial {status}; the tuning goes on")


def _summary(strategy: StrategyOptions, lr: float, number: int, record: dict[str, Any]) -> dict[str, Any]:
    curves = record.get("curves") or []
    value = max((c["val_macro_f1"] for c in curves), default=None)
    return {"strategy": strategy.label, "lr": lr, "trial": number, "value": value,
            "pruned_at": (record.get("failure") or {}).get("epoch") if record["status"] == "pruned" else None,
            "epochs_run": len(curves)}


def check_tuning(spec: StudySpec, world_size: int) -> None:
    """Tuning picks each rate from the trials before it: one process."""
    if spec.tuning is not None and spec.tuning.enabled and world_size > 1:
        raise SpecError("tuning compares each trial with the ones before it, so it runs in one process; "
                        "run --tune without torchrun / --nproc")
