"""A run's record: the one shape every attempt is stored in (:class:`RunRecord`), built by
:func:`base_record` alone, whatever the run's status or method."""

from __future__ import annotations

import time
from datetime import datetime, timezone
from typing import Any, Literal, TypedDict

from tunebench.spec.study import StudySpec
from tunebench.study.plan import PlannedRun, Prepared
from tunebench.training import engine

Status = Literal["finished", "diverged", "failed", "interrupted", "pruned"]


class _RecordBase(TypedDict):
    """The fields every record has, whatever its status (:func:`_base_record`)."""

    run_id: str  # the computation (plan.run_id_for): same settings, same id, in any study
    study: str
    position: int  # in this invocation's plan (the search: in the order its runs started)
    strategy: str  # the strategy's label, e.g. "lora:r=8"
    label: str  # the study row: the group, plus " seed=N" with several seeds
    group: str  # the configuration, e.g. "lora:r=8 lr=0.0005"
    sweep: dict[str, Any]  # the sweep values of this configuration, e.g. {"lora.r": 8}
    status: Status
    started_at: str  # ISO 8601, UTC, seconds
    finished_at: str  # ISO 8601, UTC, milliseconds
    spec: dict[str, Any]  # the resolved strategy (StrategySpec.model_dump())
    study_spec: dict[str, Any]  # the whole study (StudySpec.to_dict())
    resolved: dict[str, Any]  # engine.RunConfig fields, plus device and max_length
    seeds: dict[str, Any]  # seeds_used(): python, numpy, torch, data_order (per epoch that ran), split
    data: dict[str, Any]  # name, origin, label_names, sizes, hashes, notes, is_pair (+ subset: size, draw, pool)
    environment: dict[str, Any]  # resources.environment(): host, versions, device
    wall_time_s: float


class RunRecord(_RecordBase, total=False):
    """One attempt at one run, as the store keeps it (JSON) and the outputs read it.

    A record built here always has the result fields (``None`` where the run did not produce
    them); the others are set where they apply.
    """

    # what the run produced: set for every status (None / [] when it did not finish)
    model: dict[str, Any]  # name, source (+ n_layers, lowest_trainable_layer when it trained)
    failure: dict[str, Any] | None  # not finished: error (+ epoch, batch, step, last_finite_loss)
    curves: list[dict[str, Any]]  # per epoch: train_loss, val_loss, val_accuracy, val_macro_f1, train_time_s
    best_epoch: int | None
    val: dict[str, Any] | None  # metrics of the best epoch on the validation split
    test: dict[str, Any] | None  # metrics on the test split (once, after training)
    params: dict[str, Any] | None  # trainable, total, share_pct
    resources: dict[str, Any] | None  # times, throughput, peak memory, optimizer steps
    save_bytes: int | None  # the bytes a user must keep (essential_bytes)
    checkpoint_bytes: int | None
    checkpoint: str | None  # the run folder, when checkpoints are saved
    # set where they apply
    resumed_from: dict[str, Any]  # the resume point the run continued from
    oom_retry: dict[str, Any]  # CUDA OOM: the error and the batch / accumulation of the retry
    trial: int  # the Optuna trial that ran it (sweep.search: optuna)
    reused_from: dict[str, Any]  # a finished result copied from another row (Store.reuse)
    attempt: int  # the store's attempt id (records read from the store)
    stopping: dict[str, Any]  # epochs_run, max_epochs, reason ("max epochs" | "early stopping")
    diagnosis: dict[str, Any]  # results.diagnosis.diagnose(): collapsed / still improving / overfitting / ok
    val_initial: dict[str, Any]  # validation before training (epoch 0): loss, accuracy, macro-F1
    baseline: bool  # a reference method (majority, tfidf-logreg): no network trained
    fitted: bool  # a fitted candidate (embed-logreg, setfit): its own recipe, no engine, ranked like any run
    tuning: dict[str, Any]  # a learning-rate trial (study.tuning): strategy, lr, trial, value, pruned_at
    serving: dict[str, Any] | None  # training.serving.measure_serving(): latency, throughput, deploy bytes


def seeds_used(spec: StudySpec, cfg: engine.RunConfig, epochs_run: int) -> dict[str, Any]:
    """Every seed a run used: python/numpy/torch (model init, dropout), data order per epoch that ran
    (not per planned epoch: ``--epochs 1000000000`` plans a billion), the split."""
    return {"python": cfg.seed, "numpy": cfg.seed, "torch": cfg.seed,
            "data_order": [engine.data_order_seed(cfg.seed, e) for e in range(1, min(epochs_run, cfg.epochs) + 1)],
            "split": spec.training.seed}


def base_record(spec: StudySpec, planned: PlannedRun, prepared: Prepared, env: dict[str, Any], status: Status,
                 started: datetime, epochs_run: int, **parts: Any) -> RunRecord:
    """The one builder of records: the fields every record has, whatever its status, then ``parts``
    (the status-specific fields of :class:`RunRecord`)."""
    bundle, cfg = prepared.bundle, planned.cfg
    record: RunRecord = {
        "run_id": planned.run_id,
        "study": spec.name,
        "position": planned.position,
        "strategy": planned.strategy.label,
        "label": planned.label,
        "group": planned.group,
        "sweep": planned.params,
        "status": status,
        "started_at": started.isoformat(timespec="seconds"),
        "finished_at": datetime.now(timezone.utc).isoformat(timespec="milliseconds"),
        "spec": planned.strategy.model_dump(),
        "study_spec": spec.to_dict(),
        "resolved": {**{k: v for k, v in vars(cfg).items() if k != "max_length"}, "device": prepared.device.type,
                     "max_length": cfg.max_length},
        "seeds": seeds_used(spec, cfg, epochs_run),
        "data": {"name": bundle.name, "origin": bundle.origin, "label_names": bundle.label_names,
                 "sizes": bundle.sizes(), "hashes": bundle.hashes(), "notes": bundle.notes,
                 "is_pair": bundle.is_pair, **({"task": bundle.task} if bundle.task != "single_label" else {}),
                 **({"subset": prepared.subset} if prepared.subset else {})},
        "environment": env,
        "wall_time_s": round(time.time() - started.timestamp(), 2),
    }
    unknown = set(parts) - RunRecord.__required_keys__ - RunRecord.__optional_keys__
    if unknown:
        raise TypeError(f"not fields of a run record: {sorted(unknown)}")
    record.update(parts)  # type: ignore[typeddict-item]
    return record
