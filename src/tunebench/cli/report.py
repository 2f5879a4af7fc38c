"""``tunebench report OUTPUT_DIR``: rebuild the report from the store alone, without retraining."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from tunebench.spec import metrics


def register(app: typer.Typer) -> None:
    @app.command("report")
    def report(
        output_dir: Annotated[Path, typer.Argument(help="a study's output folder (holds tunebench.sqlite)")],
        price: Annotated[list[str] | None, typer.Option(
            "--price", help="device price in USD per hour, repeatable: --price T4=0.526 --price L4=0.8")] = None,
        study: Annotated[str | None, typer.Option(help="study name in the store (default: the latest one)")] = None,
        track: Annotated[list[str] | None, typer.Option(
            "--track", help="also log the runs to tensorboard or mlflow (repeatable)")] = None,
        metric: Annotated[str | None, typer.Option(
            help=f"the test metric the verdict compares: {', '.join(metrics.names(can_select=True))} "
                 f"(default {metrics.DEFAULT_SELECTION}; the runs' best epochs stay as trained)")] = None,
        margin: Annotated[float | None, typer.Option(
            help="equivalence margin on the metric's 0-1 scale (default 0.01: ±1 point)")] = None,
        alpha: Annotated[float | None, typer.Option(help="family-wise error rate, Holm-corrected (default 0.05)")] = None,
    ) -> None:
        """Build report.html and report.md from the stored runs (no training)."""
        from tunebench.report import build_report, cost, tracking

        prices = cost.parse_prices(price)
        backends = tracking.check_backends(track)
        from tunebench.report.curve import build_curve, curve_sizes, size_folder, write_curve
        from tunebench.report.inputs import STORE_NAME

        sizes = [] if (output_dir / STORE_NAME).is_file() else curve_sizes(output_dir)
        if sizes:  # a data-efficiency curve's folder: each size's report, then the curve
            settings = {"metric": metric, "margin": margin, "alpha": alpha}
            for size in sizes:
                build_report(size_folder(output_dir, size), prices=prices, study=study, verdict=settings)
            paths = write_curve(build_curve(output_dir, sizes, settings), output_dir)
            typer.echo(f"curve: {paths['md']} and {paths['png']}; each size's report in {output_dir}/n=<size>/")
            return
        paths = build_report(output_dir, prices=prices, study=study,
                             verdict={"metric": metric, "margin": margin, "alpha": alpha})
        typer.echo(f"report: {paths['html']} and {paths['markdown']} (figures in {output_dir / 'figures'})")
        if backends:
            from tunebench.report.inputs import load_inputs

            records = load_inputs(output_dir, study).records
            for name, where in tracking.track(backends, records, output_dir, paths).items():
                typer.echo(f"{name}: {where}")
