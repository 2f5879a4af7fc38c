"""Text from data (a study name, a label, a column name, an error) inside Markdown: shown, never markup.

One escaping for ``summary.md`` and ``report.md``: the characters Markdown gives a meaning (``*``,
``_``, backticks, brackets, ``|`` in tables, ``#`` and ``>`` at a line's start), the HTML that
Markdown renderers pass through (``<``, ``&``), line breaks (a newline would start a new block:
a heading, a code fence), and the links GitHub makes of bare ``https://…`` and ``www.…`` (a zero
width space after the scheme's colon, invisible when shown).
"""

from __future__ import annotations

import re

from tunebench.errors import terminal_safe

_MD = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;", "|": "\\|", "\n": " ", "\r": " ",
                     "`": "\\`", "*": "\\*", "_": "\\_", "[": "\\[", "]": "\\]", "#": "\\#", "~": "\\~",
                     "!": "\\!", "\\": "\\\\"})
_AUTOLINK = re.compile(r"(?i)(?<=[a-z]):(?=//)|(?<=www)\.")


def md(text: object) -> str:
    """``text`` as literal Markdown text on one line (control characters shown escaped: ``cat`` of the
    file in a terminal obeys no ESC either)."""
    return _AUTOLINK.sub(lambda m: m.group(0) + "\u200b", terminal_safe(str(text)).translate(_MD))


def fence(text: str) -> str:
    """A backtick fence longer than any run of backticks in ``text``: it cannot be closed from inside."""
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    return "`" * max(3, longest + 1)
