"""Render the document as Markdown with the figures linked beside it (``figures/*.png``).

Text from the data is escaped for Markdown and for the HTML that Markdown renderers pass through,
so a ``<script>`` in a dataset shows as text on GitHub or in an editor preview too."""

from __future__ import annotations

from pathlib import Path

from tunebench.report.document import Block, Bullets, Code, Document, Figure, Para, Table
from tunebench.results.text import fence as code_fence
from tunebench.results.text import md


def render_markdown(doc: Document, out_dir: Path) -> str:
    lines = [f"# {md(doc.title)}", ""] + [md(p) + "\n" for p in doc.intro]
    for section in doc.sections:
        lines += [f"## {md(section.title)}", ""]
        for block in section.blocks:
            lines += [_block(block, out_dir), ""]
    return "\n".join(lines).rstrip() + "\n"


def _block(block: Block, out_dir: Path) -> str:
    if isinstance(block, Para):
        return md(block.text)
    if isinstance(block, Bullets):
        return "\n".join(f"- {md(i)}" for i in block.items)
    if isinstance(block, Code):
        fence = code_fence(block.text)  # a study name holding ``` cannot close it
        return f"{fence}\n{block.text.rstrip()}\n{fence}"
    if isinstance(block, Figure):
        return f"![{md(block.caption)}]({block.path.relative_to(out_dir).as_posix()})"
    return _table(block)


def _table(table: Table) -> str:
    out = ["| " + " | ".join(md(h) for h in table.headers) + " |",
           "|" + "|".join("---" if i == 0 else ("---:" if _numeric(table, i) else "---")
                          for i in range(len(table.headers))) + "|"]
    for row in table.rows:
        out.append("| " + " | ".join(f"**{md(c.text)}** ★" if c.best else md(c.text) for c in row) + " |")
    if table.caption:
        out += ["", f"*{md(table.caption)}*"]
    return "\n".join(out)


def _numeric(table: Table, col: int) -> bool:
    cells = [row[col] for row in table.rows if row[col].text != "—"]
    return bool(cells) and all(c.value is not None for c in cells)
