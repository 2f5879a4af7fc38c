"""``tunebench methods``: every fine-tuning method the registry knows, with its options and defaults.

For each kind: its options with their defaults, the default learning rate (and head rate) with its
source, the architectures it runs on, whether the frozen-prefix cache applies, and one line on what
trains.  A rich table on a terminal, plain tab-separated lines otherwise (pipes, files, tests).
"""

from __future__ import annotations

import typer


def method_rows() -> list[dict[str, str]]:
    """One row per registered kind, in registry order."""
    from tunebench.methods import METHODS
    from tunebench.spec.options import _fmt
    from tunebench.spec.strategy import OPTIONS

    rows = []
    for kind, method in METHODS.items():
        options = OPTIONS[kind]
        defaults = []
        for name in options.own_options():
            value = options.model_fields[name].get_default(call_default_factory=True)
            shown = "+".join(map(str, value)) if isinstance(value, list) else ("auto" if value is None else _fmt(value))
            defaults.append(f"{name}={shown}")
        archs, cache = method.architectures(), method.cache_note
        lr = "-" if options.baseline else _fmt(options.default_lr)
        if options.default_head_lr is not None:
            lr += f" (head {_fmt(options.default_head_lr)})"
        rows.append({"kind": kind, "options": " ".join(defaults) or "-", "default lr": lr, "architectures": archs,
                     "frozen-prefix cache": cache, "what trains": " ".join((options.__doc__ or "").split()),
                     "lr source": options.lr_source})
    return rows


def register(app: typer.Typer) -> None:
    @app.command("methods")
    def methods(sources: bool = typer.Option(False, "--sources", help="also print where each default lr comes from")
                ) -> None:
        """List every fine-tuning method: options with defaults, default lr, architectures, cache, what trains."""
        from tunebench.cli.console import out

        rows = method_rows()
        columns = [c for c in rows[0] if sources or c != "lr source"]
        if not out.is_terminal:
            typer.echo("\t".join(columns))
            for row in rows:
                typer.echo("\t".join(row[c] for c in columns))
            typer.echo(f"{len(rows)} methods")
            return
        from rich.table import Table

        table = Table(title=f"{len(rows)} methods (tunebench run -s KIND:option=value,...)", show_lines=True)
        for column in columns:
            table.add_column(column, overflow="fold")
        for row in rows:
            table.add_row(*(row[c] for c in columns))
        out.print(table)


