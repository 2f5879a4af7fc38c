"""Run a study: data → model → strategy → engine → record → store → outputs, one run at a time.

Every strategy of a study sees the same tokenized splits, the same seed and the same evaluation.
Planning (configurations, run ids) is :mod:`tunebench.study.plan`; planned runs execute through
:func:`tunebench.study.execute.execute` (stored? → attempt → keep); one run is
:mod:`tunebench.study.run`; where runs execute is :mod:`tunebench.study.backends`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch

from tunebench.data.loading import load_dataset_bundle
from tunebench.data.profile import dataset_profile, write_profile
from tunebench.errors import SpecError, shorten
from tunebench.faults import InterruptGuard, disk_guard
from tunebench.results.choices import AttentionChoice, CompileChoice, compile_choice
from tunebench.results.decisions import headline
from tunebench.results.outputs import write_outputs
from tunebench.results.store import STORE_NAME, Store, check_store_writable
from tunebench.spec.parts import SweepSpec
from tunebench.spec.strategy import strategy_spec
from tunebench.spec.study import OPTUNA_IN_ONE_PROCESS, StudySpec
from tunebench.spec.sweep import Configuration
from tunebench.study.backends import LocalBackend, backend_for
from tunebench.study.execute import Execution, execute, set_plan
from tunebench.study.lock import StudyLock
from tunebench.study.plan import Prepared, check_methods_fit, passes_for, plan_runs, planned_run
from tunebench.study.run import Reporter, SilentReporter
from tunebench.study.search import run_search
from tunebench.study.tuning import check_tuning, tune
from tunebench.training import batching, distributed, engine
from tunebench.training.attention import choose_attention
from tunebench.training.modeling import check_model_source, load_classifier, load_tokenizer
from tunebench.training.prefix import shared_caches
from tunebench.training.serving import require_onnx_runtime


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
    reporter.message(f"loading data '{shorten(spec.data.source, 300)}'")  # a 100 KB name: not 100 KB of stderr
    bundle = load_dataset_bundle(spec.data, seed=spec.training.seed)
    tokenizer = load_tokenizer(model_source, trust_remote_code=spec.model.trust_remote_code)
    encoded = [batching.encode_split(tokenizer, s.texts, s.pairs, s.labels, spec.model.max_length,
                                     len(bundle.label_names))
               for s in (bundle.train, bundle.validation, bundle.test)]
    return Prepared(bundle, model_source, tokenizer, *encoded, device=device, precision=precision)


def attention_for(spec: StudySpec, prepared: Prepared, placement: tuple[torch.device, str] | None,
                  say: Callable[[str], None] | None = None) -> AttentionChoice:
    """The study's attention kernel (``model.attention``): ``auto`` times sdpa and eager on the study's model
    and one of its training batches, here, unless the runs train on a device this process does not have."""
    device = prepared.device
    elsewhere = placement is not None and device.type == "cuda" and not torch.cuda.is_available()
    source, trusted = prepared.model_source, spec.model.trust_remote_code

    def load():
        return load_classifier(source, prepared.bundle.label_names, trust_remote_code=trusted, task=prepared.bundle.task,
                               allow_pickle=spec.model.allow_pickle)

    config = None
    if spec.model.attention == "auto" and not elsewhere:
        from transformers import AutoConfig

        config = AutoConfig.from_pretrained(source, trust_remote_code=trusted)
    return choose_attention(spec.model.attention, load, config, prepared.train, spec.training.batch_size, device,
                            prepared.precision, prepared.tokenizer.pad_token_id or 0, seed=spec.training.seed,
                            probe_reason="the runs train on Ray workers' GPUs, which this process has not"
                            if elsewhere else None, say=say)


def compile_for(spec: StudySpec, prepared: Prepared) -> CompileChoice:
    """``training.compile``: ``auto`` compiles when the longest run's estimated training (its batches times the
    kernel probe's step) outlasts the time compiling takes to pay back on this device type."""
    attention = prepared.attention
    step = attention.step_s.get(attention.kernel) if attention is not None and attention.kernel else None
    epochs = max([s.epochs or spec.training.epochs for s in spec.strategies], default=spec.training.epochs)
    batches = epochs * -(-len(prepared.train) // spec.training.batch_size) * passes_for(spec.training, len(prepared.train))
    return compile_choice(spec.training.compile, prepared.device.type, step, batches)


def run_study(spec: StudySpec, *, force: bool = False, reporter: Reporter | None = None,
              backend: Any = None) -> list[dict[str, Any]]:
    """Run every strategy of ``spec`` not already finished in the store; return all records.

    ``backend`` executes the runs (:mod:`tunebench.study.backends`; default: from ``spec.execution``);
    whatever it is, this process alone writes the store and the outputs.  Under a multi-process
    launcher every process calls this and only rank 0 writes (and returns the records).
    """
    with distributed.session(spec.training.device) as writer, (backend or backend_for(spec.execution)) as runner:
        reporter = (reporter or SilentReporter()) if writer else SilentReporter()
        if spec.execution.nproc > distributed.world_size():
            reporter.message(f"execution.nproc is {spec.execution.nproc} but this is one process: "
                             "'tunebench run' or torchrun starts the processes")
        return _run_study(spec, force, reporter, runner, writer)


def _run_study(spec: StudySpec, force: bool, reporter: Reporter, runner: Any, writer: bool) -> list[dict[str, Any]]:
    if spec.output.serving_onnx:  # before anything trains
        require_onnx_runtime("--onnx (output.serving_onnx)")
    out_dir = make_output_dir(Path(spec.output.dir))
    lock = StudyLock(out_dir) if writer else contextlib.nullcontext()  # one study per folder (rank 0 holds it)
    with lock, InterruptGuard() as stop:  # Ctrl-C stops at the next step
        if writer:
            check_store_writable(out_dir / STORE_NAME)  # before the data loads or the profile is written
        return _run_locked(spec, out_dir, force, reporter, runner, writer, stop)


#: epochs above this get a sentence saying what they imply (when no early stopping can end them sooner)
MANY_EPOCHS = 1000


def _say_what_long_runs_imply(plan: list[Any], prepared: Prepared, reporter: Reporter) -> None:
    longest = max(plan, key=lambda p: p.cfg.epochs, default=None)
    if longest is None or longest.cfg.epochs <= MANY_EPOCHS or longest.cfg.patience:
        return
    steps = longest.cfg.epochs * longest.cfg.passes * -(-len(prepared.train) // longest.cfg.batch_size)
    reporter.message(f"'{longest.label}' trains {longest.cfg.epochs:,} epochs ({steps:,} batches) and nothing stops it "
                     "sooner (no early stopping): it runs until it ends or Ctrl-C, which records it and keeps every "
                     "finished run; lower --epochs to bound it")


def baselines_name(spec: StudySpec) -> str:
    """The store's study name of ``spec``'s reference rows (``baselines:``)."""
    return spec.name + ":baselines"


def run_baselines(spec: StudySpec, ex: Execution, draws: list[Draw] | None = None) -> list[dict[str, Any]]:
    """The study's baselines (``baselines:``, default majority and tfidf-logreg; seconds each), stored as the
    study ``"<name>:baselines"``: the floor the report compares every strategy with.  A baseline the study
    lists among its strategies is a row of the study itself instead.  Rank 0 alone runs them, here
    (a scikit-learn fit of seconds is not worth a cluster's task), silently: one line for all.

    ``draws``: with ``data.data_seeds`` each draw of the training subset gets its own fit, labelled with
    the seed it is paired with (the report pairs the floor with each seed's runs by that seed)."""
    listed = {s.kind for s in spec.strategies}
    kinds = [b for b in spec.baselines if b not in listed]
    if not kinds or ex.store is None:
        return []
    bspec = spec.model_copy(update={"name": baselines_name(spec), "sweep": SweepSpec()})  # once, at the split seed
    paired = draws if spec.data.data_seeds is not None and draws else [Draw(ex, [spec.training.seed])]
    plan, runs = [], []
    for draw in paired:
        seed = draw.seeds[0]
        for kind in kinds:
            planned = planned_run(bspec, draw.ex.prepared, Configuration(strategy_spec({"kind": kind}), spec.training),
                                  seed, len(plan))
            planned.label += f" seed={seed}" if len(paired) > 1 else ""
            plan.append(planned)
            runs.append(draw.ex)
    set_plan(ex, bspec.name, [p.label for p in plan])
    said = []
    for planned, draw_ex in zip(plan, runs, strict=True):
        here = replace(draw_ex, reporter=SilentReporter(), runner=LocalBackend(), attempts=[])
        record = execute(here, bspec, [planned], outputs=False, everywhere=False)[0]
        test = (record or {}).get("test") or {}
        said.append(f"{planned.label} {test[headline(record)]:.3f}" if test else f"{planned.label} {record['status']}")
    shown = "R²" if bspec.data.task == "regression" else "macro-F1"
    ex.reporter.message(f"baselines (test {shown}, the floor every strategy must clear): {', '.join(said)}")
    return ex.store.records(bspec.name)


@dataclass
class Draw:
    """One draw of the training subset (``data.train_size``) and the seeds that train on it."""

    ex: Execution
    seeds: list[int]


def subset_draws(spec: StudySpec, ex: Execution, pool: Prepared) -> list[Draw]:
    """The study's draws: with ``data.data_seeds``, seed ``i`` trains on draw ``data_seeds[i]``; otherwise
    every seed trains on ``ex.prepared`` (the subset of draw ``training.seed``, or the whole split)."""
    seeds = spec.sweep.seed_list or [spec.training.seed]
    if spec.data.data_seeds is None or spec.data.train_size is None:
        return [Draw(ex, seeds)]
    return [Draw(ex if i == 0 else replace(ex, prepared=pool.subset_of(spec.data.train_size, d)), [seed])
            for i, (d, seed) in enumerate(zip(spec.data.data_seeds, seeds, strict=True))]


def make_output_dir(out_dir: Path) -> Path:
    """Create the output folder, or say in one sentence why it cannot be one."""
    depth = 0
    for part in out_dir.parts[1:] if out_dir.is_absolute() else ():
        depth = depth - 1 if part == ".." else depth + 1
        if depth < 0:
            raise SpecError(f"output folder '{shorten(str(out_dir), 300)}' climbs above the root folder with '..'; "
                            "choose another --output")
    try:
        exists = out_dir.exists()
    except OSError as exc:  # a name over 255 bytes, a loop of links
        raise SpecError(f"output folder '{shorten(str(out_dir), 300)}' cannot be used ({exc.strerror}); choose "
                        "another --output") from None
    if exists and not out_dir.is_dir():
        raise SpecError(f"output folder '{out_dir}' is an existing file, not a folder; choose another --output")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise SpecError(f"output folder '{out_dir}' cannot be created: part of its path is a file; choose another "
                        "--output") from None
    except PermissionError:
        raise SpecError(f"output folder '{out_dir}' cannot be created: permission denied; choose another "
                        "--output") from None
    except OSError as exc:  # a read-only file system, /proc, a name too long
        raise SpecError(f"output folder '{shorten(str(out_dir), 300)}' cannot be created ({exc.strerror}); choose "
                        "another --output") from None
    return out_dir


def _run_locked(spec: StudySpec, out_dir: Path, force: bool, reporter: Reporter, runner: Any, writer: bool,
                stop: InterruptGuard) -> list[dict[str, Any]]:
    placement = runner.placement(spec)
    with distributed.writer_first():  # rank 0 fills the dataset cache before the others read it
        prepared = pool = prepare(spec, reporter, placement)
    if spec.data.train_size is not None:  # one point of a curve: a nested subset of the training pool
        prepared = pool.subset_of(spec.data.train_size, (spec.data.data_seeds or [spec.training.seed])[0])
    if writer:
        write_profile(dataset_profile(prepared.bundle, prepared.tokenizer, spec.model.max_length), out_dir)
    for note in prepared.bundle.notes:
        reporter.message(note)
    # rank 0 measures, every process loads the same kernel (with no other process to hear it, each measures)
    alone = distributed.world_size() == 1
    choice = attention_for(spec, prepared, placement, reporter.message) if writer or alone else None
    prepared.attention = distributed.from_writer(choice)
    reporter.message(prepared.attention.sentence())
    prepared.compile = compile_for(spec, prepared)
    reporter.message(prepared.compile.sentence())
    env = prepared.environment()
    masked: list[dict[str, Any]] = []
    # one frozen-prefix cache per study for the runs of this process (tunebench.training.prefix)
    with Store(out_dir / STORE_NAME) if writer else contextlib.nullcontext() as store, shared_caches():
        ex = Execution(prepared, env, reporter, runner, store, out_dir, force, stop, masked)
        if spec.sweep.method == "optuna":  # configurations chosen as results come in, not planned up front
            if distributed.world_size() > 1:  # torchrun / accelerate launch: the spec could not know
                raise SpecError(OPTUNA_IN_ONE_PROCESS)
            run_search(spec, ex)
        else:
            plan = plan_runs(spec, prepared)
            check_methods_fit(spec, prepared, plan)  # before any run trains
            draws = subset_draws(spec, ex, pool)
            run_baselines(spec, ex, draws)
            if spec.tuning is not None and spec.tuning.enabled:
                check_tuning(spec, distributed.world_size())
                spec, _ = tune(spec, ex)  # on the first draw
                plan = plan_runs(spec, prepared)
            _say_what_long_runs_imply(plan, prepared, reporter)
            # each draw's runs: its seeds of the plan made on its training subset (positions and labels as planned)
            plans = [[p for p in plan_runs(spec, d.ex.prepared) if p.cfg.seed in d.seeds] for d in draws]
            set_plan(ex, spec.name, [p.label for p in sorted((p for ps in plans for p in ps),
                                                             key=lambda p: p.position)])
            for draw, runs in zip(draws, plans, strict=True):
                execute(draw.ex, spec, runs, total=sum(map(len, plans)))
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
