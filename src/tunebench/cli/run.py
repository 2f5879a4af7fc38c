"""``tunebench run``: the study of the options (a study file, flags over it), run with progress and a table.

``tunebench sweep`` (:mod:`tunebench.cli.sweep`) takes every option defined here plus its own.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from tunebench.cli.console import SafeConsole, err, out
from tunebench.spec import metrics

#: ``--metric``: one of the metric table's rows that can select
METRIC_HELP = (f"the validation metric that picks each run's best epoch (training.selection_metric) and the test "
               f"metric the verdict compares: {', '.join(metrics.names(can_select=True))} "
               f"(default {metrics.DEFAULT_SELECTION})")

#: the user's own permissions, per command: never read from a model or run folder (docs/RELIABILITY.md)
TRUST_OPTION = typer.Option("--trust-remote-code",
                            help="let a model folder run its own Python code (only for sources you trust)")
PICKLE_OPTION = typer.Option("--allow-pickle",
                             help="load pickle-based weights (pytorch_model.bin); they can run arbitrary code")


def run(
    study_file: Annotated[Path | None, typer.Argument(help="study spec (YAML); default: the built-in study")] = None,
    quick: Annotated[bool, typer.Option(
        "--quick", help="the quick study instead of the default: SNLI, four strategies at default rates, 3 epochs, "
                        "one seed, no tuning; a look at cost, never a verdict")] = False,
    model: Annotated[str | None, typer.Option(help="local model folder, hub id, or minilm-l6")] = None,
    dataset: Annotated[str | None, typer.Option(help="built-in name (snli), local CSV/TSV/JSONL/Parquet, or hub id")] = None,
    dataset_config: Annotated[str | None, typer.Option("--dataset-config", help="hub dataset configuration")] = None,
    text_column: Annotated[str | None, typer.Option(help="column with the text")] = None,
    text_pair_column: Annotated[str | None, typer.Option(help="column with the second text of a pair")] = None,
    label_column: Annotated[str | None, typer.Option(help="column with the label")] = None,
    task: Annotated[str | None, typer.Option(
        help="single_label (default: one class per row) or multi_label (a set of labels per row: a list, or text "
        "split on --label-sep)")] = None,
    label_sep: Annotated[str | None, typer.Option(
        "--label-sep", help="the separator of a multi-label column's labels, e.g. '|' (implies --task multi_label)")
    ] = None,
    encoding: Annotated[str | None, typer.Option(help="encoding of a local file (default utf-8)")] = None,
    strategies: Annotated[list[str] | None, typer.Option(
        "--strategies", "-s", help="strategies, space-separated or repeated: 'full partial:k=2 lora:r=8 head'")] = None,
    epochs: Annotated[int | None, typer.Option(help="training epochs")] = None,
    batch_size: Annotated[int | None, typer.Option(help="training batch size")] = None,
    lr: Annotated[float | None, typer.Option(help="learning rate for every strategy (default: per strategy)")] = None,
    scheduler: Annotated[str | None, typer.Option(help="linear, cosine or constant")] = None,
    seed: Annotated[int | None, typer.Option(help="random seed")] = None,
    max_length: Annotated[int | None, typer.Option(help="truncate inputs to this many tokens")] = None,
    train_limit: Annotated[int | None, typer.Option(help="stratified sample of the training split")] = None,
    val_limit: Annotated[int | None, typer.Option(help="stratified sample of the validation split")] = None,
    test_limit: Annotated[int | None, typer.Option(help="stratified sample of the test split")] = None,
    precision: Annotated[str | None, typer.Option(help="fp32, bf16, fp16 or auto")] = None,
    device: Annotated[str | None, typer.Option(help="auto, cpu, cuda or mps")] = None,
    output: Annotated[str | None, typer.Option("--output", "-o", help="output folder")] = None,
    name: Annotated[str | None, typer.Option(help="study name (runs are grouped by it in the store)")] = None,
    no_checkpoints: Annotated[bool, typer.Option("--no-checkpoints", help="do not save best checkpoints")] = False,
    force: Annotated[bool, typer.Option("--force", help="redo runs already finished in the store")] = False,
    no_prefix_cache: Annotated[bool, typer.Option(
        "--no-prefix-cache", help="recompute frozen layers every epoch instead of caching their outputs")] = False,
    no_bucketing: Annotated[bool, typer.Option(
        "--no-bucketing", help="plain shuffled batches instead of length buckets")] = False,
    attention: Annotated[str | None, typer.Option(help="attention kernel: auto, sdpa or eager")] = None,
    onnx: Annotated[bool, typer.Option(
        "--onnx", help="also export each final run to ONNX and time it in ONNX Runtime (the report's Serving cost; "
        "needs pip install 'tunebench[onnx]')")] = False,
    compile_model: Annotated[bool, typer.Option(
        "--compile", help="torch.compile every run (dynamic shapes; minutes of compiling first); default auto: "
        "only where the longest run trains long enough to pay it back")] = False,
    backend: Annotated[str | None, typer.Option(
        help="local (here, one run at a time) or ray (one Ray task per run; see docs/SCALING.md)")] = None,
    address: Annotated[str | None, typer.Option(
        help="ray: the cluster's address (HOST:PORT, ray://HOST:10001, auto); default: a local Ray instance")] = None,
    max_retries: Annotated[int | None, typer.Option(help="ray: retries of a run whose worker was lost")] = None,
    max_runs: Annotated[int | None, typer.Option(
        "--max-runs", help="the most runs the study may plan (default 1000); a larger sweep is refused")] = None,
    nproc: Annotated[int | None, typer.Option(
        help="processes per run (DDP: CPU processes or one per GPU); also works under torchrun/accelerate launch")] = None,
    checkpoint_every: Annotated[int | None, typer.Option(
        "--checkpoint-every", help="save a resume state every N optimizer steps (a killed run resumes mid-epoch)")] = None,
    tune: Annotated[bool, typer.Option(
        "--tune", help="equal-budget learning-rate tuning: the same trials for every strategy (spec: tuning:)")] = False,
    head_lr: Annotated[float | None, typer.Option(
        "--head-lr", help="the classifier head's own learning rate (default: max(3e-3, the strategy's))")] = None,
    patience: Annotated[int | None, typer.Option(
        help="early stopping: stop a run after this many epochs without a gain of the --metric on validation")] = None,
    metric: Annotated[str | None, typer.Option(help=METRIC_HELP)] = None,
    class_weight: Annotated[str | None, typer.Option(
        "--class-weight", help="the training loss's class weights: balanced (default; inversely to the training "
        "split's class counts, as the tf-idf floor) or none")] = None,
    train_sizes: Annotated[str | None, typer.Option(
        "--train-sizes", help="a data-efficiency curve: the whole study once per training size, e.g. 64 256 1024 "
        "(nested stratified subsets of one training pool; results in OUTPUT/n=<size>, the curve in OUTPUT/curve.md)")
    ] = None,
    min_steps_per_epoch: Annotated[int | None, typer.Option(
        "--min-steps-per-epoch", help="an epoch of fewer optimizer steps goes over the training data again until it "
        "has this many (small training sets, a curve's smallest sizes)")] = None,
    data_seeds: Annotated[str | None, typer.Option(
        "--data-seeds", help="with --train-sizes: one draw of the training subset per seed, paired in order (e.g. "
        "0 1 2 with seeds 0 1 2), so the draws' variance enters the statistics; default: one draw for all")] = None,
    margin: Annotated[float | None, typer.Option(
        help="the verdict's equivalence margin on the metric's 0-1 scale (default 0.01: ±1 point)")] = None,
    trust_remote_code: Annotated[bool, TRUST_OPTION] = False,
    allow_pickle: Annotated[bool, PICKLE_OPTION] = False,
    track: Annotated[list[str] | None, typer.Option(
        "--track", help="log every run while it trains to tensorboard, mlflow or wandb (space-separated or repeated)")
    ] = None,
    price: Annotated[list[str] | None, typer.Option(
        "--price", help="device price in USD per hour for the report, repeatable: --price T4=0.526")] = None,
) -> None:
    """Run a study: every strategy on the same data, splits, seed and evaluation."""
    options = dict(locals())
    _run(spec_from_options(options), options["force"], options)


#: on/off flags of ``run``: option name → (spec keyword, value when the flag is given)
SWITCHES = {
    "no_checkpoints": ("save_checkpoints", False),
    "no_prefix_cache": ("prefix_cache", False),
    "no_bucketing": ("bucketing", False),
    "compile_model": ("compile", True),
    "onnx": ("serving_onnx", True),
    "trust_remote_code": ("trust_remote_code", True),
    "allow_pickle": ("allow_pickle", True),
}
#: ``run``'s options that are not part of the spec (how to run it, what to do with it)
NOT_SPEC = ("study_file", "quick", "force", "track", "price", "tune", "patience", *SWITCHES)


def spec_from_options(o: dict[str, Any], sweep: dict[str, Any] | None = None) -> Any:
    """The study spec of ``run``'s options (``o``: its arguments by name), with a ``sweep`` section if given:
    the study file (or the default study) with the options as keywords, through the API's
    :func:`~tunebench.api.spec.build_spec`, so that ``tunebench run`` and ``tb.Study`` build one spec alike."""
    from tunebench.api.spec import build_spec, load_study_file
    from tunebench.errors import SpecError

    study_file = o["study_file"]
    base = load_study_file(study_file)[0] if study_file else None  # training.track: see _run
    if o.get("quick") and base is not None:
        raise SpecError(f"--quick runs the built-in quick study; it does not combine with a study file "
                        f"('{study_file}'): leave one of them out")
    settings = {k: v for k, v in o.items() if k not in NOT_SPEC and v is not None}  # each a spec keyword
    for option, (key, value) in SWITCHES.items():  # a switch given on the command line wins
        if o.get(option):
            settings[key] = value
    for key in ("train_sizes", "data_seeds"):  # "64 256 1024" or "64,256,1024"
        if key in settings:
            settings[key] = parse_numbers(settings[key], "--" + key.replace("_", "-"))
    if o.get("tune"):
        settings["tuning"] = {"enabled": True}
    if o.get("patience") is not None:
        settings["early_stopping"] = {"patience": o["patience"]}
    if sweep:
        settings["sweep"] = sweep
        if base is None and (sweep.get("grid") or sweep.get("random")):
            # a sweep on the default study is the user's own design: the protocol's tuning and seeds are not added
            if not o.get("tune"):
                settings["tuning"] = {"enabled": False}
            settings["sweep"] = {"seeds": None, **sweep}
    return build_spec(base, settings, source="options", quick=bool(o.get("quick")))


def parse_numbers(text: str | None, option: str) -> list[int] | None:
    """``"0 1 2"`` or ``"0,1,2"`` → ``[0, 1, 2]``; anything else one sentence naming the option."""
    from tunebench.errors import SpecError

    if text is None:
        return None
    try:
        return [int(s) for s in text.replace(" ", ",").split(",") if s]
    except ValueError:
        raise SpecError(f"{option} must be whole numbers separated by spaces or commas, e.g. 0 1 2 (got "
                        f"'{text}')") from None


def _run(spec, force: bool, options: dict[str, Any] | None = None) -> None:
    """The study through the Python API (:func:`tunebench.api.run_spec`), with the terminal's bars and table."""
    from tunebench.api import describe, run_spec
    from tunebench.api.spec import file_track
    from tunebench.cli.console import RichReporter, comparison_table
    from tunebench.report.cost import parse_prices
    from tunebench.report.tracking import check_backends

    options = options or {}
    study_file = options.get("study_file")
    track = check_backends([*(file_track(study_file) if study_file else []), *(options.get("track") or [])])
    prices = parse_prices(options.get("price")) if options.get("price") else None
    from tunebench.training import distributed

    reporter = RichReporter(err, log=None if out.is_terminal else out)  # `tunebench run > log`: a line per epoch
    if distributed.launched_rank() == 0 and not (spec.execution.nproc > 1 and distributed.launched_world_size() == 1):
        err.print(f"[bold]tunebench[/bold]{escape(describe(spec).removeprefix('tunebench'))}")
    result = run_spec(spec, force=force, reporter=reporter, track=track, prices=prices)
    if distributed.launched_rank() != 0 or (spec.execution.nproc > 1 and distributed.launched_world_size() == 1):
        return  # the processes of a DDP launch: rank 0 printed the table
    table_console = out if out.is_terminal else SafeConsole(width=160)
    table_console.print(comparison_table(result.table, title=f"tunebench: {spec.name}"))
    sentence = _recommendation(result)
    if sentence:
        out.print(escape(sentence), soft_wrap=not out.is_terminal)
    if result.curve is not None:
        out.print(escape(result.curve.answer), soft_wrap=not out.is_terminal)
        out.print(f"results: {spec.output.dir}/curve.md, curve.png, curve.csv; each size's study in "
                  f"{spec.output.dir}/n=<size>/")
    else:
        out.print(f"results: {spec.output.dir}/report.html, report.md, results.csv, results.json, tunebench.sqlite")
    from tunebench.faults import unfinished_error

    problem = unfinished_error(result.records)
    if problem is not None:  # diverged or failed runs: outputs are written, the exit code says so
        raise problem


def _recommendation(result: Any) -> str:
    """The report's "Recommended: …" (or "No verdict: …") sentence: the study's answer, printed last; empty
    when no run finished (the table and the exit code say what happened)."""
    from tunebench.errors import SpecError

    try:
        return result.recommendation.sentence
    except SpecError:  # no finished run: nothing to recommend
        return ""
