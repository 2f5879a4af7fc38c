"""One run of a study: execute it (seed, load, prepare the method, train, checkpoint, record),
attempt it (what can go wrong becomes a record: diverged / failed / interrupted / pruned, CUDA OOM
retried once), store its result, and find its stored result.  Every planned run (baselines, a
study's runs, tuning and search trials) is executed by :func:`tunebench.study.execute.execute`, whose
backend runs :func:`attempt_run` and which stores through :func:`store_result`; every
record (:class:`RunRecord`) is built by :func:`tunebench.study.records.base_record`; fitted runs (the
baselines, embed-logreg, setfit: no engine) run in :mod:`tunebench.study.baseline`."""

from __future__ import annotations

import shutil
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Protocol

import torch

from tunebench.errors import TunebenchError
from tunebench.faults import InterruptGuard, RunStopped, StudyInterrupted, disk_guard, error_line, is_cuda_oom
from tunebench.methods import build_strategy
from tunebench.results.store import Store
from tunebench.spec.strategy import OPTIONS
from tunebench.spec.study import StudySpec
from tunebench.study.baseline import diagnose_run, execute_fitted
from tunebench.study.plan import HASHED_ELSEWHERE, PlannedRun, Prepared, planned_steps
from tunebench.study.records import RunRecord, Status, base_record, seeds_used
from tunebench.training import distributed, engine
from tunebench.training.checkpoint import base_model_identity, essential_bytes, save_checkpoint
from tunebench.training.loop import StepCallback
from tunebench.training.modeling import count_parameters, load_classifier
from tunebench.training.resume import ResumePoint
from tunebench.training.serving import measure_serving

__all__ = ["RunPruned", "RunRecord", "Status", "attempt_run", "execute_run", "failed_record", "interrupted_error",
           "safe_slug", "seeds_used", "store_result", "stored_result"]


class RunPruned(Exception):
    """Raised by an ``on_epoch`` hook (a search's pruner) to end a run that is not worth finishing.

    Not a failure: :func:`attempt_run` returns it as a ``pruned`` record holding the curves the hook
    saw, without a retry.
    """

    status = "pruned"

    def __init__(self, epoch: int, curves: list[dict[str, Any]]) -> None:
        super().__init__(f"pruned by the search after epoch {epoch}")
        self.epoch = epoch
        self.curves = [dict(c) for c in curves]


class Reporter(Protocol):
    """What the study tells its user interface; every method is optional to act on."""

    def message(self, text: str) -> None: ...
    def run_started(self, position: int, total: int, label: str, batches_per_epoch: int,
                    epochs: int) -> None: ...
    def step(self, info: dict[str, Any]) -> None: ...
    def epoch(self, point: dict[str, Any]) -> None: ...
    def run_finished(self, record: dict[str, Any]) -> None: ...
    def run_skipped(self, label: str, run_id: str) -> None: ...


class SilentReporter:
    def message(self, text: str) -> None:
        pass

    def run_started(self, position: int, total: int, label: str, batches_per_epoch: int,
                    epochs: int) -> None:
        pass

    def step(self, info: dict[str, Any]) -> None:
        pass

    def epoch(self, point: dict[str, Any]) -> None:
        pass

    def run_finished(self, record: dict[str, Any]) -> None:
        pass

    def run_skipped(self, label: str, run_id: str) -> None:
        pass


def stored_result(store: Store, spec: StudySpec, planned: PlannedRun, force: bool,
                  reporter: Reporter | None = None, pruned: bool = False) -> dict[str, Any] | None:
    """The result of ``planned`` if its computation is already in the store, else None: the one skip rule.

    The row's own result when it is this computation's and finished; else a finished attempt of the
    same computation under another row (another study name, a seed sweep's label, or an older attempt
    of this row behind a newer one of another computation) is copied into this row, so that nothing
    is trained twice and no study's rows are touched.  ``pruned`` (the caller prunes: tuning, an
    Optuna search): a pruned attempt of the same computation in this study is its result too, the
    row's own or the newest in its history (the pruner's decision, replayed; never trained again).
    ``force``: always None (retrain).
    """
    if force:
        return None
    done = ("finished", "pruned") if pruned else ("finished",)
    current = store.current(spec.name, planned.label)
    if current is not None and current["status"] in done and current["run_id"] == planned.run_id:
        return current
    source = store.finished_result(planned.run_id)
    if source is None:
        if not pruned:
            return None
        same = [r for r in store.history(spec.name) if r["run_id"] == planned.run_id and r["status"] == "pruned"]
        return same[-1] if same else None
    fields = {"study": spec.name, "position": planned.position, "label": planned.label, "group": planned.group,
              "sweep": planned.params, "study_spec": spec.to_dict()}
    with disk_guard("a run's result", store.path):
        record = store.reuse(source, fields)
    if reporter is not None:
        reporter.message(f"{planned.label}: the same computation finished as '{source['label']}' of study "
                         f"'{source['study']}'; its result is reused")
    return record


# --- run outcomes: diverged / failed / interrupted / out-of-memory retry (see tunebench.faults) ---


def attempt_run(spec: StudySpec, planned: PlannedRun, total: int, prepared: Prepared, env: dict[str, Any],
                reporter: Reporter, stop: InterruptGuard | None = None, on_epoch: StepCallback | None = None
                ) -> tuple[RunRecord, list[int] | None, list[list[float]] | None]:
    """:func:`execute_run`, turning what can go wrong in one run into a record instead of an abort.

    The record's status: ``diverged`` (NaN/inf loss), ``interrupted`` (``stop()`` became true: Ctrl-C),
    ``pruned`` (``on_epoch``, a search's pruner, raised :class:`RunPruned`), ``failed`` (any other
    exception).  CUDA out of memory: one retry with half the batch and twice the gradient
    accumulation (the same effective batch), recorded as ``oom_retry``.  A :class:`TunebenchError`
    (the user's input or environment) still stops the study.  Labels and probabilities are None
    unless the run finished.
    """
    started = datetime.now(timezone.utc)
    oom_retry = None
    while True:
        if oom_retry is not None:
            _free_cuda()  # outside the except block: the failed attempt's tensors are released by now
        try:
            record, labels, probs = execute_run(spec, planned, total, prepared, env, reporter, stop=stop,
                                                on_epoch=on_epoch)
            if oom_retry is not None:
                record["oom_retry"] = oom_retry
            return record, labels, probs
        except TunebenchError:
            raise
        except RunPruned as exc:  # the search stopped it on purpose: a record, never a failure or a retry
            return unfinished_record(spec, planned, prepared, env, started, exc, oom_retry), None, None
        except Exception as exc:
            cfg = planned.cfg
            if is_cuda_oom(exc) and oom_retry is None and cfg.batch_size > 1:
                oom_retry = {"error": error_line(exc), "from_batch_size": cfg.batch_size,
                             "batch_size": cfg.batch_size // 2, "grad_accumulation": cfg.grad_accumulation * 2}
                planned = replace(planned, cfg=replace(cfg, batch_size=cfg.batch_size // 2,
                                                       grad_accumulation=cfg.grad_accumulation * 2))
                reporter.message(f"{planned.label}: CUDA out of memory; retrying once with batch "
                                 f"{cfg.batch_size // 2} and gradient accumulation {cfg.grad_accumulation * 2}")
                continue
            return unfinished_record(spec, planned, prepared, env, started, exc, oom_retry), None, None


def _free_cuda() -> None:
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def resume_point(spec: StudySpec, planned: PlannedRun) -> ResumePoint:
    settings = {k: v for k, v in vars(planned.cfg).items() if k not in HASHED_ELSEWHERE}  # as states were saved
    return ResumePoint.for_run(spec.output.dir, planned.run_id, spec.training.checkpoint_every or 0, settings)


#: after these statuses a run's resume state is of no further use: a rerun skips the run (finished),
#: starts it over (diverged), or a search does not take it up again (pruned)
RESUME_DONE = ("finished", "diverged", "pruned")


def store_result(store: Store, spec: StudySpec, planned: PlannedRun, record: RunRecord,
                 labels: list[int] | None = None, probs: list[list[float]] | None = None) -> bool:
    """Store one run's record (and predictions) in one transaction, under :func:`~tunebench.faults.disk_guard`;
    discard its resume state when it is no longer needed (:data:`RESUME_DONE`; a failed or interrupted
    run keeps it, to continue from).

    Returns True when the run did not finish while its row keeps an earlier finished result (a
    ``--force`` rerun): the caller names it (``StudyRecords.attempts``, :func:`interrupted_error`).
    """
    with disk_guard("a run's result", store.path):
        store.put(record, labels, probs)
    if record["status"] in RESUME_DONE:
        resume_point(spec, planned).discard()  # stored: no longer needed
    if record["status"] == "finished":
        return False
    current = store.current(spec.name, record["label"])
    return current is not None and current["status"] == "finished"


def interrupted_error(record: RunRecord, earlier_kept: bool = False) -> StudyInterrupted:
    """The one sentence (exit 130) of a study whose run ``record`` was interrupted by Ctrl-C;
    ``earlier_kept``: the row keeps an earlier finished result (:func:`store_result` said so)."""
    kept = "; its earlier finished result is kept" if earlier_kept else ""
    step = (record.get("failure") or {}).get("step")
    return StudyInterrupted(
        f"interrupted during run '{record['label']}' at step {step} (recorded as interrupted{kept}); "
        "finished runs are kept and the same command continues the study")


def unfinished_record(spec: StudySpec, planned: PlannedRun, prepared: Prepared, env: dict[str, Any],
                      started: datetime, exc: Exception, oom_retry: dict[str, Any] | None = None,
                      failure: dict[str, Any] | None = None) -> RunRecord:
    """The record of a run that diverged, failed, was interrupted or pruned: where it stopped and why."""
    status: Status
    if isinstance(exc, RunStopped):
        status, details, epochs_run, curves = exc.status, exc.details(), exc.epoch, exc.curves  # type: ignore[assignment]
    elif isinstance(exc, RunPruned):
        status, details, epochs_run, curves = "pruned", {"error": str(exc), "epoch": exc.epoch}, exc.epoch, exc.curves
    else:
        status, details, epochs_run, curves = "failed", {"error": error_line(exc)}, 0, []
    extra = {} if oom_retry is None else {"oom_retry": oom_retry}
    return base_record(spec, planned, prepared, env, status, started, epochs_run,
                        model={"name": spec.model.name, "source": prepared.model_source},
                        failure=failure or details, curves=curves,
                        best_epoch=None, val=None, test=None, params=None, resources=None,
                        save_bytes=None, checkpoint_bytes=None, checkpoint=None, **extra)


def execute_run(spec: StudySpec, planned: PlannedRun, total: int, prepared: Prepared, env: dict[str, Any],
                reporter: Reporter, stop: InterruptGuard | None = None, on_epoch: StepCallback | None = None
                ) -> tuple[RunRecord, list[int], list[list[float]]]:
    """Train and evaluate one planned run; save its best checkpoint; return its record.

    ``on_epoch`` (a search's pruner) sees each epoch's validation metrics and may stop the run
    (:class:`RunPruned`).  What can go wrong is raised; :func:`attempt_run` makes records of it.
    """
    strategy_spec, position, run_id, cfg = planned.strategy, planned.position, planned.run_id, planned.cfg
    if OPTIONS[strategy_spec.kind].fitted:  # the baselines, embed-logreg, setfit: no engine, no classifier loaded
        return execute_fitted(spec, planned, total, prepared, env, reporter)
    started = datetime.now(timezone.utc)
    engine.seed_everything(cfg.seed)  # same head initialisation for every strategy
    bundle = prepared.bundle
    model = load_classifier(prepared.model_source, bundle.label_names, attention=prepared.attention_kernel,
                            task=bundle.task,
                            trust_remote_code=spec.model.trust_remote_code, allow_pickle=spec.model.allow_pickle)
    strategy = build_strategy(strategy_spec)
    strategy.total_steps = planned_steps(cfg, len(prepared.train))
    strategy.check_fit(model, cfg.max_length)
    model = strategy.prepare(model)
    trainable, total_params = count_parameters(model)
    batches_per_epoch = -(-len(prepared.train) // cfg.batch_size)
    reporter.run_started(position, total, planned.label, batches_per_epoch, cfg.epochs)
    pad_id = prepared.tokenizer.pad_token_id or 0
    # a resume point belongs to one process's training state: not under a multi-process (DDP) launch
    resume = resume_point(spec, planned) if spec.training.checkpoint_every and distributed.world_size() == 1 else None
    result = engine.train_and_evaluate(model, prepared.train, prepared.validation, prepared.test,
                                       bundle.label_names, cfg, prepared.device, pad_id,
                                       lowest_trainable_layer=strategy.lowest_trainable_layer,
                                       callbacks=engine.Callbacks(on_step=reporter.step, should_stop=stop,
                                                                  on_epoch=_epoch_hook(planned, reporter, on_epoch)),
                                       resume=resume, hooks=strategy.hooks(model))
    serving = {}
    if spec.output.measure_serving and cfg.evaluate_test and distributed.is_writer():  # not a tuning trial
        serving = {"serving": measure_serving(model, prepared.validation, pad_id, prepared.device, cfg.precision,
                                              onnx=spec.output.serving_onnx)}
    slug = safe_slug(strategy_spec.label)
    checkpoint = Path(spec.output.dir) / "runs" / f"{position:02d}-{slug}-{run_id}"
    save_bytes, checkpoint_bytes = essential_bytes(model), None
    if spec.output.save_checkpoints and cfg.evaluate_test and distributed.is_writer():  # not a tuning trial
        meta = {"run_id": run_id, "strategy": strategy_spec.label, "label_names": bundle.label_names,
                "max_length": cfg.max_length, **base_model_identity(prepared.model_source),
                "model_name": spec.model.name, "is_pair": bundle.is_pair, "task": bundle.task,
                **({"thresholds": result.val_metrics["thresholds"]} if "thresholds" in result.val_metrics else {}),
                **({"target_scale": list(cfg.target_scale)} if cfg.target_scale else {}),
                "data": spec.data.model_dump(), "seed": cfg.seed, "split_seed": spec.training.seed,
                "precision": cfg.precision,
                "trust_remote_code": spec.model.trust_remote_code, "allow_pickle": spec.model.allow_pickle}
        tmp = checkpoint.with_name(checkpoint.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        try:
            with disk_guard("the best checkpoint", checkpoint):
                checkpoint_bytes = save_checkpoint(model.to("cpu"), prepared.tokenizer, tmp, meta)
        finally:
            if checkpoint_bytes is None:
                shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(checkpoint, ignore_errors=True)
        tmp.rename(checkpoint)
    resumed = {} if resume is None or resume.resumed_from is None else {"resumed_from": resume.resumed_from}
    record = base_record(
        spec, planned, prepared, env, "finished", started, len(result.curves), **resumed, **serving,
        model={"name": spec.model.name, "source": prepared.model_source,
               "n_layers": strategy.n_layers, "lowest_trainable_layer": strategy.lowest_trainable_layer},
        params={"trainable": trainable, "total": total_params,
                "share_pct": round(100.0 * trainable / max(total_params, 1), 4)},
        save_bytes=save_bytes,
        checkpoint_bytes=checkpoint_bytes,
        checkpoint=str(checkpoint) if checkpoint_bytes is not None else None,
        curves=result.curves,
        best_epoch=result.best_epoch,
        val=result.val_metrics,
        test=result.test_metrics or None,
        resources=result.resources,
        stopping={"epochs_run": len(result.curves), "max_epochs": cfg.epochs, "reason": result.stop_reason},
        val_initial=result.initial,
        diagnosis=diagnose_run(result.curves, result.val_metrics, result.initial, prepared, planned.label,
                               tuned=cfg.evaluate_test and spec.tuning is not None and spec.tuning.enabled),
    )
    if not cfg.evaluate_test:  # a tuning trial: no test predictions exist
        return record, None, None
    probs = [[round(float(x), 6) for x in row] for row in result.test_probabilities]
    labels = prepared.test.labels
    stored = labels.astype(int).tolist() if labels.ndim == 2 else list(prepared.bundle.test.labels)  # ints; targets
    return record, stored, probs


def _epoch_hook(planned: PlannedRun, reporter: Reporter, then: StepCallback | None) -> StepCallback:
    """Each epoch's curve point to the reporter (a per-epoch line, a tracker), then to ``then`` (a pruner)."""
    def on_epoch(point: dict[str, Any]) -> None:
        epoch = getattr(reporter, "epoch", None)
        if epoch is not None:
            epoch({**point, "label": planned.label, "epochs": planned.cfg.epochs})
        if then is not None:
            then(point)
    return on_epoch


def failed_record(spec: StudySpec, planned: PlannedRun, prepared: Prepared, error: str,
                  started: datetime | None = None, env: dict[str, Any] | None = None) -> RunRecord:
    """The record of a run that ended without a result in a way only its executor saw (a Ray worker lost
    for good): ``failed`` with the reason."""
    started = started or datetime.now(timezone.utc)
    return unfinished_record(spec, planned, prepared, env or {}, started, RuntimeError(error), failure={"error": error})


def safe_slug(label: str) -> str:
    """A folder name from a strategy label: letters, digits, ``.``, ``_`` and ``-`` only, never ``..``."""
    import re

    slug = label.replace(":", "-").replace(",", "_").replace("=", "").replace("+", "-")
    slug = re.sub(r"[^A-Za-z0-9._-]", "_", slug).replace("..", "_")
    return slug.lstrip(".") or "run"
