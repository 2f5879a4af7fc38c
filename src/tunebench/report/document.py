"""The report as data: sections holding paragraphs, tables, figures and code blocks.

The sections are built once and rendered twice (HTML and Markdown), so both show the same
tables.  Every string here is plain text: the renderers escape all of it, so text from a dataset
can never become markup.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class Cell:
    """A table cell: the text shown, the stored value it shows (for checking), and whether it is the best."""

    text: str
    value: float | int | None = None
    best: bool = False


@dataclass
class Table:
    headers: list[str]
    rows: list[list[Cell]]
    key: str = ""
    caption: str = ""


@dataclass(frozen=True)
class Para:
    text: str


@dataclass(frozen=True)
class Bullets:
    items: list[str]


@dataclass(frozen=True)
class Code:
    text: str


@dataclass(frozen=True)
class Figure:
    path: Path  # inside OUTPUT/figures
    caption: str


Block = Para | Bullets | Code | Figure | Table


@dataclass
class Section:
    key: str
    title: str
    blocks: list[Block] = field(default_factory=list)

    def add(self, *blocks: Block) -> Section:
        self.blocks.extend(blocks)
        return self


@dataclass
class Document:
    title: str
    intro: list[str]
    sections: list[Section]


def cell(value: object, fmt: str = "", best: bool = False) -> Cell:
    """A cell for ``value`` formatted with ``fmt`` ('—' for missing values); numbers keep their value."""
    if value is None or (isinstance(value, float) and value != value):
        return Cell("—", None, best)
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return Cell(str(value), None, best)
    plain = value.item() if hasattr(value, "item") else value  # numpy scalars -> int / float
    return Cell(format(plain, fmt), plain, best)


def text_table(headers: list[str], rows: list[list[object]], key: str = "", caption: str = "") -> Table:
    """A table of plain values (numbers formatted with ``format(v)``)."""
    return Table(headers, [[c if isinstance(c, Cell) else cell(c) for c in row] for row in rows], key, caption)
