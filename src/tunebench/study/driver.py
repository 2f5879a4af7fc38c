"""Run a study: data → model → strategy → engine → record → store → outputs, one run at a time.

Every strategy of a study sees the same tokenized splits, the same seed and the same evaluation.
A run's id is a hash of everything that determines its result (model, data spec and split
hashes, strategy, resolved training settings), so running the same study again skips the runs
already in the store, and a changed setting makes a new run instead of reusing a stale one.
"""

from __future__ import annotations

import contextlib
import shutil
import time
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Protocol

import torch

from tunebench.data.loading import DatasetBundle, load_dataset_bundle
from tunebench.errors import SpecError, TunebenchError
from tunebench.faults import InterruptGuard, RunStopped, StudyInterrupted, disk_guard, error_line, is_cuda_oom
from tunebench.methods.strategies import build_strategy
from tunebench.results.outputs import write_outputs
from tunebench.results.store import STORE_NAME, Store
from tunebench.spec.schema import DEFAULT_LR, StrategySpec, StudySpec, TrainingSpec, stable_hash
from tunebench.study.lock import StudyLock
from tunebench.study.sweep import Configuration, configurations, run_label
from tunebench.training import distributed, engine
from tunebench.training.checkpoint import essential_bytes, save_checkpoint
from tunebench.training.modeling import check_model_source, count_parameters, load_classifier, load_tokenizer
from tunebench.training.resources import environment
from tunebench.training.resume import ResumePoint


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


def prepare(spec: StudySpec, reporter: Reporter, placement: tuple[torch.device, str] | None = None) -> Prepared:
    """Load and split the data, check the model, tokenize every split once.

    ``placement``: the (device, precision) the runs will use when they run elsewhere (a Ray cluster's
    GPUs); by default this machine's, from the spec.
    """
    if placement is None:
        device = engine.pick_device(spec.training.device)
        precision = engine.resolve_precision(spec.training.precision, device)
    else:
        device, precision = placement
    model_source = check_model_source(spec.model.name, trust_remote_code=spec.model.trust_remote_code,
                                      allow_pickle=spec.model.allow_pickle)
    reporter.message(f"loading data '{spec.data.source}'")
    bundle = load_dataset_bundle(spec.data, seed=spec.training.seed)
    tokenizer = load_tokenizer(model_source, trust_remote_code=spec.model.trust_remote_code)
    encoded = [engine.encode_split(tokenizer, s.texts, s.pairs, s.labels, spec.model.max_length)
               for s in (bundle.train, bundle.validation, bundle.test)]
    return Prepared(bundle, model_source, tokenizer, *encoded, device=device, precision=precision)


def run_config(spec: StudySpec, strategy: StrategySpec, precision: str, training: TrainingSpec | None = None,
               seed: int | None = None) -> engine.RunConfig:
    """The engine's settings for ``strategy``: ``training`` (a sweep's, default the study's) and ``seed``."""
    t = training or spec.training
    return engine.RunConfig(
        epochs=strategy.epochs or t.epochs, batch_size=t.batch_size, eval_batch_size=t.eval_batch_size,
        lr=strategy.lr or t.lr or DEFAULT_LR[strategy.kind], weight_decay=t.weight_decay,
        warmup_ratio=t.warmup_ratio, scheduler=strategy.scheduler or t.scheduler, max_grad_norm=t.max_grad_norm,
        grad_accumulation=t.grad_accumulation, seed=t.seed if seed is None else seed, precision=precision,
        prefix_cache=t.prefix_cache, bucketing=t.bucketing, compile=t.compile,
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
    """One run of a study: a strategy, its resolved settings, its place in the study and its stable id.

    ``group`` names the configuration without the seed (the runs of one group differ only in their
    seed); ``label`` names the run, unique within a study; ``params`` holds the swept values.
    """

    position: int
    strategy: StrategySpec
    cfg: engine.RunConfig
    run_id: str
    label: str = ""
    group: str = ""
    params: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.group = self.group or self.strategy.label
        self.label = self.label or self.group


def plan_runs(spec: StudySpec, prepared: Prepared) -> list[PlannedRun]:
    """Every run the study asks for, in order: each configuration of the sweep (one per strategy
    without a sweep), once per seed.  The data split stays the one of ``training.seed``."""
    seeds = spec.sweep.seed_list
    plan: list[PlannedRun] = []
    seen: set[str] = set()
    for config in configurations(spec):
        for seed in seeds or [config.training.seed]:
            planned = planned_run(spec, prepared, config, seed, len(plan))
            if planned.run_id not in seen:
                seen.add(planned.run_id)
                plan.append(planned)
    return plan


def planned_run(spec: StudySpec, prepared: Prepared, config: Configuration, seed: int, position: int) -> PlannedRun:
    """One configuration with one seed, resolved into engine settings and its stable run id."""
    cfg = run_config(spec, config.strategy, prepared.precision, config.training, seed)
    run_id = run_id_for(spec, config.strategy, prepared.bundle, cfg, prepared.device)
    return PlannedRun(position, config.strategy, cfg, run_id, run_label(config.group, seed, spec.sweep.seed_list),
                      config.group, config.params)


def run_study(spec: StudySpec, *, force: bool = False, reporter: Reporter | None = None,
              backend: Any = None) -> list[dict[str, Any]]:
    """Run every strategy of ``spec`` not already finished in the store; return all records.

    ``backend`` executes the runs (:mod:`tunebench.study.backends`; default: from ``spec.execution``);
    whatever it is, this process alone writes the store and the outputs.  Under a multi-process
    launcher every process calls this and only rank 0 writes (and returns the records).
    """
    from tunebench.study.backends import backend_for

    with distributed.session(spec.training.device) as writer, (backend or backend_for(spec.execution)) as runner:
        reporter = (reporter or SilentReporter()) if writer else SilentReporter()
        if spec.execution.nproc > distributed.world_size():
            reporter.message(f"execution.nproc is {spec.execution.nproc} but this is one process: "
                             "'tunebench run' or torchrun starts the processes")
        return _run_study(spec, force, reporter, runner, writer)


def _run_study(spec: StudySpec, force: bool, reporter: Reporter, runner: Any, writer: bool) -> list[dict[str, Any]]:
    out_dir = Path(spec.output.dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    lock = StudyLock(out_dir) if writer else contextlib.nullcontext()  # one study per folder (rank 0 holds it)
    with lock, InterruptGuard() as stop:  # Ctrl-C stops at the next step
        return _run_locked(spec, out_dir, force, reporter, runner, writer, stop)


def _run_locked(spec: StudySpec, out_dir: Path, force: bool, reporter: Reporter, runner: Any, writer: bool,
                stop: InterruptGuard) -> list[dict[str, Any]]:
    with distributed.writer_first():  # rank 0 fills the dataset cache before the others read it
        prepared = prepare(spec, reporter, runner.placement(spec))
    from tunebench.data.profile import dataset_profile, write_profile  # the data section of the outputs

    if writer:
        write_profile(dataset_profile(prepared.bundle, prepared.tokenizer, spec.model.max_length), out_dir)
    for note in prepared.bundle.notes:
        reporter.message(note)
    env = environment(prepared.device)
    masked: list[dict[str, Any]] = []
    with Store(out_dir / STORE_NAME) if writer else contextlib.nullcontext() as store:
        if spec.sweep.method == "optuna":  # configurations chosen as results come in, not planned up front
            from tunebench.study.search import run_search

            if distributed.world_size() > 1 or spec.execution.backend != "local":
                raise SpecError("sweep.search: optuna picks each trial from the results before it, so it runs "
                                "here in one process; use grid or random with --backend ray or --nproc")
            plan = run_search(spec, prepared, store, env, reporter, force)
        else:
            plan = plan_runs(spec, prepared)
            todo = []
            if writer:
                with disk_guard("the study's plan", store.path):
                    store.set_plan(spec.name, [p.label for p in plan])
            for planned in plan:
                if writer and stored_result(store, spec, planned, force, reporter) is not None:
                    reporter.run_skipped(planned.label, planned.run_id)
                    continue
                todo.append(planned)
            wanted = distributed.from_writer({p.run_id for p in todo})  # every process runs what rank 0 decided
            todo = [p for p in plan if p.run_id in wanted]

            def keep(record: dict[str, Any], labels: list[int] | None, probs: list[list[float]] | None) -> None:
                """The single writer: each result goes to the store and the outputs as it arrives."""
                if store is not None:
                    with disk_guard("a run's result", store.path):
                        store.put(record, labels, probs)
                    if record["status"] in ("finished", "diverged"):
                        _resume_point(spec, by_id[record["run_id"]]).discard()  # stored: no longer needed
                    current = store.current(spec.name, record["label"])
                    if record["status"] != "finished" and current is not None and current["status"] == "finished":
                        masked.append(record)  # a --force rerun that did not finish: the finished result stays
                    reporter.run_finished(record)
                    with disk_guard("the study's tables", out_dir):
                        write_outputs(store.records(spec.name), out_dir)
                if record["status"] == "interrupted":
                    kept = "; its earlier finished result is kept" if masked and masked[-1] is record else ""
                    raise StudyInterrupted(
                        f"interrupted during run '{record['label']}' at step {record['failure']['step']} (recorded "
                        f"as interrupted{kept}); finished runs are kept and the same command continues the study")

            by_id = {p.run_id: p for p in plan}
            runner.run(spec, todo, len(plan), prepared, env, reporter, keep, stop=stop)
        records = StudyRecords(store.records(spec.name) if store is not None else [])
        records.attempts = masked
    if writer:
        with disk_guard("the study's tables", out_dir):
            write_outputs(records, out_dir)
    return records


class StudyRecords(list):
    """The study's current rows (what its outputs show), plus ``attempts``: runs of this invocation
    that did not finish although their row keeps an earlier finished result (a ``--force`` rerun)."""

    attempts: list[dict[str, Any]]

    def __init__(self, rows: list[dict[str, Any]]) -> None:
        super().__init__(rows)
        self.attempts = []


def stored_result(store: Store, spec: StudySpec, planned: PlannedRun, force: bool,
                  reporter: Reporter | None = None) -> dict[str, Any] | None:
    """The finished result of ``planned`` if its computation is already in the store, else None.

    The row's own result when it has one; else a finished attempt of the same computation under
    another row (another study name, or a seed sweep's label) is copied into this row, so that
    nothing is trained twice and no study's rows are touched.  ``force``: always None (retrain).
    """
    if force:
        return None
    current = store.current(spec.name, planned.label)
    if current is not None and current["status"] == "finished" and current["run_id"] == planned.run_id:
        return current
    source = store.finished_result(planned.run_id)
    if source is None:
        return None
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


def seeds_used(spec: StudySpec, cfg: engine.RunConfig, epochs_run: int) -> dict[str, Any]:
    """Every seed a run used: python/numpy/torch (model init, dropout), data order per epoch that ran
    (not per planned epoch: ``--epochs 1000000000`` plans a billion), the split."""
    return {"python": cfg.seed, "numpy": cfg.seed, "torch": cfg.seed,
            "data_order": [engine.data_order_seed(cfg.seed, e) for e in range(1, min(epochs_run, cfg.epochs) + 1)],
            "split": spec.training.seed}


def _base_record(spec: StudySpec, planned: PlannedRun, prepared: Prepared, env: dict[str, Any], status: str,
                 started: datetime, epochs_run: int) -> dict[str, Any]:
    """The fields every record has, whatever its status."""
    bundle, cfg = prepared.bundle, planned.cfg
    return {
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
        "resolved": {**vars(cfg), "device": prepared.device.type, "max_length": spec.model.max_length},
        "seeds": seeds_used(spec, cfg, epochs_run),
        "data": {"name": bundle.name, "origin": bundle.origin, "label_names": bundle.label_names,
                 "sizes": bundle.sizes(), "hashes": bundle.hashes(), "notes": bundle.notes,
                 "is_pair": bundle.is_pair},
        "environment": env,
        "wall_time_s": round(time.time() - started.timestamp(), 2),
    }


def unfinished_record(spec: StudySpec, planned: PlannedRun, prepared: Prepared, env: dict[str, Any],
                      started: datetime, exc: Exception, oom_retry: dict[str, Any] | None = None,
                      failure: dict[str, Any] | None = None) -> dict[str, Any]:
    """The record of a run that diverged, failed or was interrupted: where it stopped and why."""
    status = exc.status if isinstance(exc, RunStopped) else "failed"
    failure = failure or (exc.details() if isinstance(exc, RunStopped) else {"error": error_line(exc)})
    epochs_run = exc.epoch if isinstance(exc, RunStopped) else 0
    record = _base_record(spec, planned, prepared, env, status, started, epochs_run)
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
                reporter: Reporter, stop: InterruptGuard | None = None, on_epoch: engine.StepCallback | None = None
                ) -> tuple[dict[str, Any], list[int], list[list[float]]]:
    """Train and evaluate one planned run; save its best checkpoint; return its record.

    ``on_epoch`` (a search's pruner) sees each epoch's validation metrics and may stop the run.
    """
    strategy_spec, position, run_id, cfg = planned.strategy, planned.position, planned.run_id, planned.cfg
    started = datetime.now(timezone.utc)
    engine.seed_everything(cfg.seed)  # same head initialisation for every strategy
    bundle = prepared.bundle
    model = load_classifier(prepared.model_source, bundle.label_names, attention=spec.model.attention,
                            trust_remote_code=spec.model.trust_remote_code, allow_pickle=spec.model.allow_pickle)
    strategy = build_strategy(strategy_spec)
    model = strategy.prepare(model)
    trainable, total_params = count_parameters(model)
    batches_per_epoch = -(-len(prepared.train) // cfg.batch_size)
    reporter.run_started(position, total, planned.label, batches_per_epoch, cfg.epochs)
    pad_id = prepared.tokenizer.pad_token_id or 0
    # a resume point belongs to one process's training state: not under a multi-process (DDP) launch
    resume = _resume_point(spec, planned) if spec.training.checkpoint_every and distributed.world_size() == 1 else None
    result = engine.train_and_evaluate(model, prepared.train, prepared.validation, prepared.test,
                                       bundle.label_names, cfg, prepared.device, pad_id,
                                       on_step=reporter.step,
                                       lowest_trainable_layer=strategy.lowest_trainable_layer, on_epoch=on_epoch,
                                       should_stop=stop, resume=resume)
    slug = safe_slug(strategy_spec.label)
    checkpoint = Path(spec.output.dir) / "runs" / f"{position:02d}-{slug}-{run_id}"
    save_bytes, checkpoint_bytes = essential_bytes(model), None
    if spec.output.save_checkpoints and distributed.is_writer():
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
    record = _base_record(spec, planned, prepared, env, "finished", started, len(result.curves))
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


def failed_record(spec: StudySpec, planned: PlannedRun, prepared: Prepared, error: str,
                  started: datetime | None = None, env: dict[str, Any] | None = None) -> dict[str, Any]:
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
