"""``tunebench methods``: every fine-tuning method the registry knows, with its options and defaults.

For each kind: its options with their defaults, the default learning rate (and head rate) with its
source, the architectures it runs on, whether the frozen-prefix cache applies, and one line on what
trains.  A rich table on a terminal, plain tab-separated lines otherwise (pipes, files, tests).

``--markdown`` prints the table and the list of sources that docs/METHODS.md carries between its markers;
:func:`updated_docs` is that text put into docs/METHODS.md and the README's list of kinds, which
``scripts/update_method_docs.py`` writes and ``tests/test_method_docs.py`` checks: the docs are generated
from the registry, never edited by hand.
"""

from __future__ import annotations

import re
from pathlib import Path

import typer

#: the lines around the generated part of docs/METHODS.md
BEGIN = "<!-- generated from the method registry by `tunebench methods --markdown`; do not edit by hand -->"
END = "<!-- end of the generated method table -->"
COLUMNS = ("kind", "options", "default lr", "architectures", "frozen-prefix cache", "what trains")


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
        lr = _fmt(options.default_lr) if options.default_lr else "-"  # a baseline or embed-logreg: no rate
        if options.default_head_lr is not None:
            lr += f" (head {_fmt(options.default_head_lr)})"
        rows.append({"kind": kind, "options": " ".join(defaults) or "-", "default lr": lr, "architectures": archs,
                     "frozen-prefix cache": cache, "what trains": " ".join((options.__doc__ or "").split()),
                     "lr source": options.lr_source})
    return rows


def methods_markdown() -> str:
    """The method table and the default rates' sources, as docs/METHODS.md shows them."""
    rows = method_rows()
    header = ["options (defaults)" if c == "options" else c for c in COLUMNS]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(f"`{row[c]}`" if c == "kind" else row[c].replace("``", "`") for c in COLUMNS) + " |"
              for row in rows]
    lines += ["", "## Default learning rates and their sources", ""]
    lines += [f"- `{row['kind']}` {row['default lr']}: {row['lr source'].rstrip('.')}." for row in rows
              if row["lr source"]]
    return "\n".join(lines)


def readme_kinds() -> str:
    """The README's sentence naming the PEFT kinds beyond its table's five (the baselines and the fitted candidates
embed-logreg and setfit have their own paragraphs)."""
    from tunebench.spec.strategy import KINDS, OPTIONS

    more = [kind for kind in KINDS[5:] if not OPTIONS[kind].fitted]  # the PEFT kinds: fitted ones have their own words
    return (f"Beyond these five, tunebench has {len(more)} more PEFT methods through peft, each with its own options "
            "and a default learning rate whose source is written beside it: " + ", ".join(f"`{k}`" for k in more) + ",")


_README_KINDS = re.compile(r"Beyond these five, tunebench has .*?`,(?=\s+and LoRA's variants)", re.S)


def updated_docs(root: Path) -> dict[Path, str]:
    """docs/METHODS.md and README.md under ``root`` with their generated parts made from the registry."""
    methods, readme = root / "docs" / "METHODS.md", root / "README.md"
    text = methods.read_text(encoding="utf-8")
    start, end = text.index(BEGIN) + len(BEGIN), text.index(END)
    new_methods = text[:start] + "\n" + methods_markdown() + "\n" + text[end:]
    text = readme.read_text(encoding="utf-8")
    if not _README_KINDS.search(text):
        raise ValueError("README.md has no sentence 'Beyond these five, tunebench has ... and LoRA's variants'")
    new_readme = _README_KINDS.sub(lambda _: _wrap(readme_kinds()), text, count=1)
    return {methods: new_methods, readme: new_readme}


def _wrap(sentence: str, width: int = 100) -> str:
    lines, line = [], ""
    for word in sentence.split(" "):
        if line and len(line) + 1 + len(word) > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}" if line else word
    return "\n".join([*lines, line])


def register(app: typer.Typer) -> None:
    @app.command("methods")
    def methods(sources: bool = typer.Option(False, "--sources", help="also print where each default lr comes from"),
                markdown: bool = typer.Option(False, "--markdown", help="the table and sources of docs/METHODS.md"),
                ) -> None:
        """List every fine-tuning method: options with defaults, default lr, architectures, cache, what trains."""
        from tunebench.cli.console import out

        if markdown:
            typer.echo(methods_markdown())
            return
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


