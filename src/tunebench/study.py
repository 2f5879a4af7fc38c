"""Run a study: data → model → strategy → engine → record → store → outputs, one run at a time.

Every strategy of a study sees the same tokenized splits, the same seed and the same evaluation.
A run's id is a hash of everything that determines its result (model, data spec and split
hashes, strategy, resolved training settings), so running the same study again skips the runs
already in the store, and a changed setting makes a new run instead of reusing a stale one.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Protocol

import torch

from tunebench import engine
from tunebench.checkpoint import essential_bytes, save_checkpoint
from tunebench.data import DatasetBundle, load_dataset_bundle
from tunebench.errors import TunebenchError
from tunebench.faults import InterruptGuard, RunStopped, StudyInterrupted, disk_guard, error_line, is_cuda_oom
from tunebench.lock import StudyLock
from tunebench.modeling import check_model_source, count_parameters, load_classifier, load_tokenizer
from tunebench.outputs import write_outputs
from tunebench.resources import environment
from tunebench.resume import ResumePoint
from tunebench.spec import StrategySpec, StudySpec, stable_hash
from tunebench.store import STORE_NAME, Store
from tunebench.strategies import build_strategy


class Reporter(Protocol):
    """What the study tells its user interface; every method is optional to act on."""

    def message(self, text: str) -> None: ...
    def run_started(self, position: int, total: int, label: str, batches_per_epoch: int,
                    epochs: int) -> None: ...
    def step(self, info: dict[str, Any]) -> None: ...
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

    def run_finished(self, record: dict[str, Any]) -> None:
        pass

    def run_skipped(self, label: str, run_id: str) -> None:
        pass


@dataclass
class Prepared:
    """What every run of a study shares: data, tokenizer, encoded splits, device, precision."""

    bundle: DatasetBundle
    model_source: str
    tokenizer: Any
    train: engine.EncodedSplit
    validation: engine.EncodedSplit
    test: engine.EncodedSplit
    device: torch.device
    precision: str


def prepare(spec: StudySpec, reporter: Reporter) -> Prepared:
    """Load and split the data, check the model, tokenize every split once."""
    device = engine.pick_device(spec.training.device)
    precision = engine.resolve_precision(spec.training.precision, device)
    model_source = check_model_source(spec.model.name, trust_remote_code=spec.model.trust_remote_code,
                                      allow_pickle=spec.model.allow_pickle)
    reporter.message(f"loading data '{spec.data.source}'")
    bundle = load_dataset_bundle(spec.data, seed=spec.training.seed)
    tokenizer = load_tokenizer(model_source, trust_remote_code=spec.model.trust_remote_code)
    encoded = [engine.encode_split(tokenizer, s.texts, s.pairs, s.labels, spec.model.max_length)
               for s in (bundle.train, bundle.validation, bundle.test)]
    return Prepared(bundle, model_source, tokenizer, *encoded, device=device, precision=precision)


def run_config(spec: StudySpec, strategy: StrategySpec, precision: str) -> engine.RunConfig:
    t = spec.training
    return engine.RunConfig(
        epochs=spec.resolved_epochs(strategy), batch_size=t.batch_size, eval_batch_size=t.eval_batch_size,
        lr=spec.resolved_lr(strategy), weight_decay=t.weight_decay, warmup_ratio=t.warmup_ratio,
        scheduler=spec.resolved_scheduler(strategy), max_grad_norm=t.max_grad_norm,
        grad_accumulation=t.grad_accumulation, seed=t.seed, precision=precision,
        prefix_cache=t.prefix_cache, bucketing=t.bucketing,
    )


#: Model options that decide whether a model may load, not what it computes: not part of the run id.
MODEL_LOADING_OPTIONS = ("trust_remote_code", "allow_pickle")


def run_id_for(spec: StudySpec, strategy: StrategySpec, bundle: DatasetBundle, cfg: engine.RunConfig,
               device: torch.device) -> str:
    """A stable id from everything that determines the run's result."""
    return stable_hash({
        "model": spec.model.model_dump(exclude=set(MODEL_LOADING_OPTIONS)),
        "data": spec.data.model_dump(),
        "hashes": bundle.hashes(),
        "strategy": strategy.model_dump(),
        "run": vars(cfg),
        "device": device.type,
    })


@dataclass
class PlannedRun:
    """One run of a study: a strategy, its resolved settings, its place in the study and its stable id."""

    position: int
    strategy: StrategySpec
    cfg: engine.RunConfig
    run_id: str

    @property
    def label(self) -> str:
        """The run's name in tables and progress; unique within a study."""
        return self.strategy.label


def plan_runs(spec: StudySpec, prepared: Prepared) -> list[PlannedRun]:
    """Every run the study asks for, in order: one per strategy."""
    plan = []
    for position, strategy_spec in enumerate(spec.strategies):
        cfg = run_config(spec, strategy_spec, prepared.precision)
        run_id = run_id_for(spec, strategy_spec, prepared.bundle, cfg, prepared.device)
        plan.append(PlannedRun(position, strategy_spec, cfg, run_id))
    return plan


def run_study(spec: StudySpec, *, force: bool = False, reporter: Reporter | None = None) -> list[dict[str, Any]]:
    """Run every strategy of ``spec`` not already finished in the store; return all records."""
    reporter = reporter or SilentReporter()
    out_dir = Path(spec.output.dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    with StudyLock(out_dir), InterruptGuard() as stop:  # one study per folder; Ctrl-C stops at the next step
        return _run_locked(spec, out_dir, force, reporter, stop)


def _run_locked(spec: StudySpec, out_dir: Path, force: bool, reporter: Reporter,
                stop: InterruptGuard) -> list[dict[str, Any]]:
    prepared = prepare(spec, reporter)
    from tunebench.eda import dataset_profile, write_profile  # the data section of the outputs

    write_profile(dataset_profile(prepared.bundle, prepared.tokenizer, spec.model.max_length), out_dir)
    for note in prepared.bundle.notes:
        reporter.message(note)
    env = environment(prepared.device)
    with Store(out_dir / STORE_NAME) as store:
        plan = plan_runs(spec, prepared)
        for planned in plan:
            if store.finished(planned.run_id) and not force:
                reporter.run_skipped(planned.label, planned.run_id)
                continue
            if stop():
                raise StudyInterrupted(f"interrupted before run '{planned.label}' started; finished runs are kept "
                                       "and the same command continues the study")
            record, labels, probs = attempt_run(spec, planned, len(plan), prepared, env, reporter, stop)
            with disk_guard("a run's result", store.path):
                store.put(record, labels, probs)
            if record["status"] in ("finished", "diverged"):
                _resume_point(spec, planned).discard()  # stored: the resume state is no longer needed
            reporter.run_finished(record)
            write_outputs(_study_records(store, spec, plan), out_dir)
            if record["status"] == "interrupted":
                raise StudyInterrupted(
                    f"interrupted during run '{planned.label}' at step {record['failure']['step']} (recorded as "
                    "interrupted); finished runs are kept and the same command continues the study")
        records = _study_records(store, spec, plan)
    write_outputs(records, out_dir)
    return records


def _study_records(store: Store, spec: StudySpec, plan: list[PlannedRun]) -> list[dict[str, Any]]:
    """The stored runs that belong to the current plan, in the plan's order."""
    wanted = {p.label: p.position for p in plan}
    records = [r for r in store.records(spec.name) if _label(r) in wanted]
    latest: dict[str, dict[str, Any]] = {}
    for r in records:  # a re-run with --force replaces; keep the newest per label
        if _label(r) not in latest or r["finished_at"] >= latest[_label(r)]["finished_at"]:
            latest[_label(r)] = r
    return sorted(latest.values(), key=lambda r: wanted[_label(r)])


def _label(record: dict[str, Any]) -> str:
    return record.get("label", record["strategy"])


# --- run outcomes: diverged / failed / interrupted / out-of-memory retry (see tunebench.faults) ---


def attempt_run(spec: StudySpec, planned: PlannedRun, total: int, prepared: Prepared, env: dict[str, Any],
                reporter: Reporter, stop: InterruptGuard | None = None
                ) -> tuple[dict[str, Any], list[int] | None, list[list[float]] | None]:
    """:func:`execute_run`, turning what can go wrong in one run into a record instead of an abort.

    CUDA out of memory: one retry with half the batch and twice the gradient accumulation (the same
    effective batch), recorded as ``oom_retry``.  A :class:`TunebenchError` (the user's input or
    environment) still stops the study.
    """
    started = datetime.now(timezone.utc)
    oom_retry = None
    while True:
        if oom_retry is not None:
            _free_cuda()  # outside the except block: the failed attempt's tensors are released by now
        try:
            record, labels, probs = execute_run(spec, planned, total, prepared, env, reporter, stop=stop)
            if oom_retry is not None:
                record["oom_retry"] = oom_retry
            return record, labels, probs
        except TunebenchError:
            raise
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


def _resume_point(spec: StudySpec, planned: PlannedRun) -> ResumePoint:
    return ResumePoint.for_run(spec.output.dir, planned.run_id, spec.training.checkpoint_every or 0, vars(planned.cfg))


def seeds_used(spec: StudySpec, cfg: engine.RunConfig) -> dict[str, Any]:
    """Every seed a run uses: python/numpy/torch (model init, dropout), data order per epoch, the split."""
    return {"python": cfg.seed, "numpy": cfg.seed, "torch": cfg.seed,
            "data_order": [engine.data_order_seed(cfg.seed, e) for e in range(1, cfg.epochs + 1)],
            "split": spec.training.seed}


def _base_record(spec: StudySpec, planned: PlannedRun, prepared: Prepared, env: dict[str, Any], status: str,
                 started: datetime) -> dict[str, Any]:
    """The fields every record has, whatever its status."""
    bundle, cfg = prepared.bundle, planned.cfg
    return {
        "run_id": planned.run_id,
        "study": spec.name,
        "position": planned.position,
        "strategy": planned.strategy.label,
        "label": planned.label,
        "status": status,
        "started_at": started.isoformat(timespec="seconds"),
        "finished_at": datetime.now(timezone.utc).isoformat(timespec="milliseconds"),
        "spec": planned.strategy.model_dump(),
        "study_spec": spec.to_dict(),
        "resolved": {**vars(cfg), "device": prepared.device.type, "max_length": spec.model.max_length},
        "seeds": seeds_used(spec, cfg),
        "data": {"name": bundle.name, "origin": bundle.origin, "label_names": bundle.label_names,
                 "sizes": bundle.sizes(), "hashes": bundle.hashes(), "notes": bundle.notes,
                 "is_pair": bundle.is_pair},
        "environment": env,
        "wall_time_s": round(time.time() - started.timestamp(), 2),
    }


def unfinished_record(spec: StudySpec, planned: PlannedRun, prepared: Prepared, env: dict[str, Any],
                      started: datetime, exc: Exception, oom_retry: dict[str, Any] | None = None) -> dict[str, Any]:
    """The record of a run that diverged, failed or was interrupted: where it stopped and why."""
    status = exc.status if isinstance(exc, RunStopped) else "failed"
    failure = exc.details() if isinstance(exc, RunStopped) else {"error": error_line(exc)}
    record = _base_record(spec, planned, prepared, env, status, started)
    record.update({
        "model": {"name": spec.model.name, "source": prepared.model_source},
        "failure": failure,
        "curves": exc.curves if isinstance(exc, RunStopped) else [],
        "best_epoch": None, "val": None, "test": None, "params": None, "resources": None,
        "save_bytes": None, "checkpoint_bytes": None, "checkpoint": None,
    })
    if oom_retry is not None:
        record["oom_retry"] = oom_retry
    return record


def execute_run(spec: StudySpec, planned: PlannedRun, total: int, prepared: Prepared, env: dict[str, Any],
                reporter: Reporter, stop: InterruptGuard | None = None
                ) -> tuple[dict[str, Any], list[int], list[list[float]]]:
    """Train and evaluate one planned run; save its best checkpoint; return its record."""
    strategy_spec, position, run_id, cfg = planned.strategy, planned.position, planned.run_id, planned.cfg
    started = datetime.now(timezone.utc)
    engine.seed_everything(cfg.seed)  # same head initialisation for every strategy
    bundle = prepared.bundle
    model = load_classifier(prepared.model_source, bundle.label_names, trust_remote_code=spec.model.trust_remote_code,
                            allow_pickle=spec.model.allow_pickle)
    strategy = build_strategy(strategy_spec)
    model = strategy.prepare(model)
    trainable, total_params = count_parameters(model)
    batches_per_epoch = -(-len(prepared.train) // cfg.batch_size)
    reporter.run_started(position, total, planned.label, batches_per_epoch, cfg.epochs)
    pad_id = prepared.tokenizer.pad_token_id or 0
    resume = _resume_point(spec, planned) if spec.training.checkpoint_every else None
    result = engine.train_and_evaluate(model, prepared.train, prepared.validation, prepared.test,
                                       bundle.label_names, cfg, prepared.device, pad_id,
                                       on_step=reporter.step,
                                       lowest_trainable_layer=strategy.lowest_trainable_layer,
                                       should_stop=stop, resume=resume)
    slug = safe_slug(strategy_spec.label)
    checkpoint = Path(spec.output.dir) / "runs" / f"{position:02d}-{slug}-{run_id}"
    save_bytes, checkpoint_bytes = essential_bytes(model), None
    if spec.output.save_checkpoints:
        meta = {"run_id": run_id, "strategy": strategy_spec.label, "label_names": bundle.label_names,
                "max_length": spec.model.max_length, "base_model": prepared.model_source,
                "model_name": spec.model.name, "is_pair": bundle.is_pair,
                "data": spec.data.model_dump(), "seed": cfg.seed, "precision": cfg.precision,
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
    record = _base_record(spec, planned, prepared, env, "finished", started)
    if resume is not None and resume.resumed_from is not None:
        record["resumed_from"] = resume.resumed_from
    record.update({
        "model": {"name": spec.model.name, "source": prepared.model_source,
                  "n_layers": strategy.n_layers, "lowest_trainable_layer": strategy.lowest_trainable_layer},
        "params": {"trainable": trainable, "total": total_params,
                   "share_pct": round(100.0 * trainable / max(total_params, 1), 4)},
        "save_bytes": save_bytes,
        "checkpoint_bytes": checkpoint_bytes,
        "checkpoint": str(checkpoint) if spec.output.save_checkpoints else None,
        "curves": result.curves,
        "best_epoch": result.best_epoch,
        "val": result.val_metrics,
        "test": result.test_metrics,
        "resources": result.resources,
    })
    probs = [[round(float(x), 6) for x in row] for row in result.test_probabilities]
    return record, prepared.test.labels.tolist(), probs


def safe_slug(label: str) -> str:
    """A folder name from a strategy label: letters, digits, ``.``, ``_`` and ``-`` only, never ``..``."""
    import re

    slug = label.replace(":", "-").replace(",", "_").replace("=", "").replace("+", "-")
    slug = re.sub(r"[^A-Za-z0-9._-]", "_", slug).replace("..", "_")
    return slug.lstrip(".") or "run"
