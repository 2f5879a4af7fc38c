"""The ``tunebench`` command: run a study, re-evaluate a saved run, classify text.

Every user error ends as one sentence on stderr (``error: ...``) and exit code 2.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from typer.exceptions import Abort, Exit, TyperException

from tunebench.cli import run as run_command
from tunebench.cli.console import err, out
from tunebench.cli.run import PICKLE_OPTION, TRUST_OPTION
from tunebench.errors import SpecError, TunebenchError, printable, terminal_safe

app = typer.Typer(
    add_completion=False,
    no_args_is_help=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    help="Compare ways of fine-tuning an encoder for text classification, fairly and measured.",
)
app.command()(run_command.run)

@app.command()
def evaluate(
    run_dir: Annotated[Path, typer.Argument(help="a run's checkpoint folder (OUTPUT/runs/...)")],
    dataset: Annotated[str | None, typer.Option(help="data to evaluate on (default: the run's own test split)")] = None,
    text_column: Annotated[str | None, typer.Option()] = None,
    text_pair_column: Annotated[str | None, typer.Option()] = None,
    label_column: Annotated[str | None, typer.Option()] = None,
    split: Annotated[str, typer.Option(help="train, validation or test")] = "test",
    batch_size: Annotated[int, typer.Option()] = 64,
    trust_remote_code: Annotated[bool, TRUST_OPTION] = False,
    allow_pickle: Annotated[bool, PICKLE_OPTION] = False,
) -> None:
    """Re-evaluate a saved run on a dataset split and print its metrics."""
    from tunebench.training.inference import evaluate_checkpoint

    if batch_size < 1:
        raise SpecError(f"--batch-size must be a positive number of examples (got {batch_size})")
    if split not in ("train", "validation", "test"):
        raise SpecError(f"--split must be one of train, validation, test (got '{split}')")
    metrics = evaluate_checkpoint(run_dir, dataset=dataset, text_column=text_column,
                                  text_pair_column=text_pair_column, label_column=label_column,
                                  split=split, batch_size=batch_size, trust_remote_code=trust_remote_code,
                                  allow_pickle=allow_pickle)
    if "r2" in metrics:  # a regression
        out.print(f"{metrics['n']} examples ({split}): R² {metrics['r2']:.4f}, RMSE {metrics['rmse']:.4g}, "
                  f"MAE {metrics['mae']:.4g}, Pearson {metrics['pearson']:.4f}, Spearman {metrics['spearman']:.4f}")
        return
    out.print(f"{metrics['n']} examples ({split}): accuracy {metrics['accuracy']:.4f}, "
              f"macro-F1 {metrics['macro_f1']:.4f}, weighted F1 {metrics['weighted_f1']:.4f}")
    for label, row in metrics["per_class"].items():
        out.print(f"  {label:>20}  precision {row['precision']:.3f}  recall {row['recall']:.3f}  "
                  f"F1 {row['f1-score']:.3f}  support {int(row['support'])}")


@app.command()
def predict(
    run_dir: Annotated[Path, typer.Argument(help="a run's checkpoint folder (OUTPUT/runs/...)")],
    text: Annotated[list[str], typer.Argument(help="text(s) to classify")],
    pair: Annotated[str | None, typer.Option(help="second sentence (for sentence-pair models)")] = None,
    trust_remote_code: Annotated[bool, TRUST_OPTION] = False,
    allow_pickle: Annotated[bool, PICKLE_OPTION] = False,
) -> None:
    """Classify text with a saved run."""
    from tunebench.training.inference import predict_texts

    found = predict_texts(run_dir, text, pair=pair, trust_remote_code=trust_remote_code, allow_pickle=allow_pickle)
    for t, (label, probs) in zip(text, found, strict=True):
        shown = ", ".join(f"{printable(k)} {v:.3f}" for k, v in sorted(probs.items(), key=lambda kv: -kv[1]))
        typer.echo(f"{printable(label)}\t{printable(t)}\t({shown})")  # tab-separated, for programs too; no ESC


@app.command()
def export(
    run_dir: Annotated[Path, typer.Argument(help="a run's checkpoint folder (OUTPUT/runs/...)")],
    dest: Annotated[Path, typer.Argument(help="a new folder to write (plain transformers / peft, with README.md)")],
    adapter: Annotated[bool, typer.Option(
        "--adapter", help="a PEFT run: write the adapter alone instead of merging it into the base model")] = False,
    onnx: Annotated[bool, typer.Option(
        "--onnx", help="also write model.onnx (torch.onnx, checked in ONNX Runtime; needs tunebench[onnx])")] = False,
    push_to_hub: Annotated[str | None, typer.Option(
        "--push-to-hub", help="then upload the folder to this Hugging Face Hub repository (needs a token)")] = None,
    public: Annotated[bool, typer.Option("--public", help="with --push-to-hub: a public repository")] = False,
    trust_remote_code: Annotated[bool, TRUST_OPTION] = False,
    allow_pickle: Annotated[bool, PICKLE_OPTION] = False,
) -> None:
    """Write a saved run as a folder plain transformers (+ peft) loads, with a Hugging Face model card."""
    from tunebench.api.export import export_run

    written = export_run(run_dir, dest, merge=not adapter, onnx=onnx, push_to_hub=push_to_hub, private=not public,
                         trust_remote_code=trust_remote_code, allow_pickle=allow_pickle)
    meta = json.loads((written / "tunebench.json").read_text(encoding="utf-8"))
    out.print(f"exported {escape(str(run_dir))} as {meta['exported_as']} into {escape(str(written))} (model card: "
              f"{escape(str(written / 'README.md'))})" + (f"; pushed to {escape(push_to_hub)}" if push_to_hub else ""))


# --- command groups that live in their own modules (each adds its commands to ``app``) ----------
from tunebench.cli import data as cli_data  # noqa: E402
from tunebench.cli import methods as cli_methods  # noqa: E402
from tunebench.cli import report as cli_report  # noqa: E402
from tunebench.cli import store as cli_store  # noqa: E402
from tunebench.cli import sweep as cli_sweep  # noqa: E402

cli_data.register(app)
cli_methods.register(app)
cli_report.register(app)
cli_store.register(app)
cli_sweep.register(app)


def _peer_gone(exc: BaseException) -> bool:
    """Whether ``exc`` is a collective of a multi-process study failing because another process has ended."""
    try:
        other_rank = int(os.environ.get("WORLD_SIZE", "1")) > 1 and int(os.environ.get("RANK", "0")) != 0
    except ValueError:
        return False
    text = str(exc)
    return other_rank and isinstance(exc, RuntimeError) and (
        "Dist" in type(exc).__name__ or any(mark in text for mark in ("Connection closed by peer", "gloo", "NCCL")))


def _safe_warnings() -> None:
    """A library's warning quoting data (matplotlib's "Glyph 27 missing" names the ESC of a label) reaches
    stderr with its control characters escaped, like everything tunebench prints."""
    import warnings

    if getattr(warnings.formatwarning, "tunebench_safe", False):
        return
    original = warnings.formatwarning

    def formatwarning(*args, **kwargs) -> str:
        return terminal_safe(original(*args, **kwargs))

    formatwarning.tunebench_safe = True  # type: ignore[attr-defined]
    warnings.formatwarning = formatwarning


def main(argv: list[str] | None = None) -> int:
    """Entry point: runs the typer app and turns every user error into one sentence + exit 2."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    # transformers' per-load progress bars would interleave with tunebench's own (every command)
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    _safe_warnings()
    try:
        from tunebench.cli.argv import gather  # -s head full, --seeds 0 1 2: values typed as people type them

        argv = gather(list(sys.argv[1:] if argv is None else argv), typer.main.get_command(app))
        code = app(args=argv, prog_name="tunebench", standalone_mode=False)
        if code == 130:  # typer turns KeyboardInterrupt (a second Ctrl-C) into a returned 130
            raise KeyboardInterrupt
        if isinstance(code, int) and code:
            return code
    except TunebenchError as exc:
        from tunebench.faults import InterruptGuard, StudyInterrupted

        terminated = isinstance(exc, StudyInterrupted) and InterruptGuard.received == signal.SIGTERM
        said = f"terminated (SIGTERM): {exc}" if terminated else str(exc)
        err.print(f"[red]error:[/red] {escape(said)}", highlight=False, soft_wrap=True)
        return 128 + signal.SIGTERM if terminated else exc.exit_code
    except TyperException as exc:  # typer's usage errors: bad flag, bad value, missing argument
        hint = f" (see '{exc.ctx.command_path} --help')" if getattr(exc, "ctx", None) else ""
        err.print(f"[red]error:[/red] {escape(exc.format_message() + hint)}", highlight=False, soft_wrap=True)
        return 2
    except Abort:
        err.print("[red]error:[/red] interrupted")
        return 130
    except Exit as exc:
        return exc.exit_code
    except KeyboardInterrupt:
        err.print("[red]error:[/red] interrupted; finished runs are kept in the store")
        return 130
    except Exception as exc:  # a full disk in a write no guard named (a figure, the lock): still one sentence
        from tunebench.faults import disk_full_error, is_disk_full, path_error

        full = disk_full_error("the study's files", getattr(exc, "filename", None)) if is_disk_full(exc) \
            else path_error(exc)  # a name too long, a read-only folder, report.html a folder: one sentence
        if full is None and _peer_gone(exc):  # a DDP process whose rank 0 stopped first (with its sentence)
            err.print(f"[red]error:[/red] process {os.environ.get('RANK')} of the study stopped because another "
                      "process ended first; that one's message says why", highlight=False, soft_wrap=True)
            import time

            time.sleep(2)  # let the process that ended first (and is exiting now) be the launch's first failure
            return 1
        if full is None:
            raise
        err.print(f"[red]error:[/red] {escape(str(full))}", highlight=False, soft_wrap=True)
        return full.exit_code
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
