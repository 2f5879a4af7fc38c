"""``tunebench sweep``: ``run`` with a sweep — every option of ``run``, plus the grid, the search and seeds.

    tunebench sweep --dataset snli -s lora --grid lora.r=4,9,18,32 --grid lr=1e-4,5e-4 --seeds 0,1,2
    tunebench sweep study.yaml --grid lr=1e-4,5e-4 --random 6      # 6 draws from the values instead
    tunebench sweep study.yaml --grid lr=1e-4,5e-4,1e-3 --optuna 10 # Optuna TPE over the same space
"""

from __future__ import annotations

import inspect
from typing import Annotated, Any, get_type_hints

import typer

from tunebench.cli import run as cli
from tunebench.errors import SpecError

GRID_HELP = "KEY=V1,V2,...: values to sweep (repeatable), e.g. lora.r=4,9,18,32, lr=1e-4,5e-4, scheduler=cosine,constant"


def parse_grid(items: list[str] | None) -> dict[str, list[Any]]:
    """``["lora.r=4,9", "lr=1e-4,5e-4"]`` → ``{"lora.r": [4, 9], "lr": [0.0001, 0.0005]}``."""
    grid: dict[str, list[Any]] = {}
    for item in items or []:
        key, eq, values = item.partition("=")
        parts = [v.strip() for v in values.split(",") if v.strip()]
        if not eq or not key.strip() or not parts:
            raise SpecError(f"--grid must look like KEY=V1,V2 such as lora.r=4,9,18,32 (got '{item}')")
        if key.strip() in grid:  # the second would silently replace the first (like -s head -s head, refused)
            raise SpecError(f"--grid {key.strip()} is given twice; list all its values in one: --grid "
                            f"{key.strip()}={','.join(grid[key.strip()] + parts)}")
        grid[key.strip()] = parts  # numbers become numbers in the spec: 4 → int, 1e-4 → float, cosine stays
    return grid


def parse_seeds(text: str | None) -> list[int] | None:
    return cli.parse_numbers(text, "--seeds")


def register(app: typer.Typer) -> None:
    def sweep(**options: Any) -> None:
        grid = parse_grid(options.pop("grid"))
        random_trials, optuna_trials = options.pop("random"), options.pop("optuna")
        seeds = parse_seeds(options.pop("seeds"))
        if random_trials and optuna_trials:
            raise SpecError("give --random N or --optuna N, not both")
        section: dict[str, Any] = {}
        if grid:
            trials = random_trials or optuna_trials
            section["random" if trials else "grid"] = grid
            if trials:
                section.update(trials=trials, search="optuna" if optuna_trials else "random")
        elif random_trials or optuna_trials:
            raise SpecError("--random and --optuna draw from the --grid values; add --grid KEY=V1,V2")
        if seeds is not None:
            section["seeds"] = seeds
        spec = cli.spec_from_options(options, section)
        if (spec.sweep.method is None and not spec.sweep.seed_list) or (not section and not options.get("study_file")):
            # (the default study's own three seeds are not a sweep the user asked for)
            raise SpecError("tunebench sweep needs --grid KEY=V1,V2, --seeds, or a study file with a sweep section")
        cli._run(spec, options["force"], options)

    # every option of ``run``, then the sweep's own: one definition of the shared options
    hints = get_type_hints(cli.run, include_extras=True)
    own = {
        "grid": (Annotated[list[str] | None, typer.Option("--grid", "-g", help=GRID_HELP)], None),
        "random": (Annotated[int | None, typer.Option("--random", help="N random draws from the --grid values")], None),
        "optuna": (Annotated[int | None, typer.Option(
            "--optuna", help="N Optuna trials (TPE, median pruning) over the --grid values")],
            None),
        "seeds": (Annotated[str | None, typer.Option(
            help="training seeds, e.g. 0 1 2 or 0,1,2: every configuration once per seed")], None),
    }
    params = [p.replace(annotation=hints[p.name]) for p in inspect.signature(cli.run).parameters.values()]
    params += [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, annotation=hint, default=default)
               for name, (hint, default) in own.items()]
    sweep.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    sweep.__annotations__ = {p.name: p.annotation for p in params}
    sweep.__doc__ = ("Run a sweep: the study of 'run' over a grid (or random / Optuna draws from it), "
                     "each configuration once per seed.")
    app.command("sweep")(sweep)
