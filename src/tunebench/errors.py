"""User-facing errors: one clear sentence, exit code 2, no traceback."""

from __future__ import annotations


class TunebenchError(Exception):
    """A problem with the user's input or environment, explained in one sentence.

    The CLI prints ``error: <message>`` and exits with :attr:`exit_code`.
    """

    exit_code = 2
    #: the longest sentence said; a longer one (a value quoted from a hostile input) is cut in the middle
    max_length = 1500

    def __init__(self, message: str) -> None:
        message = shorten(printable(message), self.max_length)
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class DataError(TunebenchError):
    """The data source cannot be read or does not fit the study."""


class ModelError(TunebenchError):
    """The model cannot be loaded (missing folder, unknown hub id, offline)."""


class StoreError(TunebenchError):
    """The study store (SQLite) is damaged or not a store: nothing is written to it."""


class SpecError(TunebenchError):
    """The study specification (YAML or flags) is invalid."""


def first_line(exc: BaseException, limit: int = 300) -> str:
    """The first line of an exception's message (its type's name if it has none), cut to ``limit``:
    how a library's error is quoted inside one of tunebench's sentences."""
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:limit]


def shorten(text: str, limit: int) -> str:
    """``text`` cut to about ``limit`` characters in the middle, saying how much was left out, so that
    both the start (what is wrong) and the end (what to do) of a sentence stay readable."""
    if len(text) <= limit:
        return text
    head, tail = text[: limit * 2 // 3], text[-(limit // 3):]
    return f"{head} … ({len(text) - len(head) - len(tail):,} characters left out) … {tail}"


def quoted(value: object, limit: int = 120) -> str:
    """``repr(value)`` for a sentence, cut to ``limit`` characters (a value from a file can be huge)."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


_CONTROL = {c: f"\\x{c:02x}" for c in (*range(32), 127, *range(128, 160))} | {10: "\\n", 13: "\\r", 9: "\\t"}
#: what a terminal must never receive from data: ESC (colours, the title, clearing the screen), the
#: other C0 and C1 controls (CSI is 0x9b), DEL; newlines and tabs stay (they lay out the text)
_TERMINAL = {c: v for c, v in _CONTROL.items() if c not in (9, 10)}


def printable(text: str) -> str:
    """One line: control characters (a newline in a column name, a NUL from a file) shown escaped, and
    text that is not valid Unicode (a lone surrogate) shown as its escape, so a sentence stays one line."""
    text = text.translate(_CONTROL)
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def terminal_safe(text: str) -> str:
    """``text`` with every control character but newline and tab shown escaped (``\\x1b``): what the
    command line's consoles do to all they print, so data cannot drive the terminal."""
    return text.translate(_TERMINAL)
