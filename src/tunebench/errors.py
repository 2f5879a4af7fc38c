"""User-facing errors: one clear sentence, exit code 2, no traceback."""

from __future__ import annotations


class TunebenchError(Exception):
    """A problem with the user's input or environment, explained in one sentence.

    The CLI prints ``error: <message>`` and exits with :attr:`exit_code`.
    """

    exit_code = 2

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class DataError(TunebenchError):
    """The data source cannot be read or does not fit the study."""


class ModelError(TunebenchError):
    """The model cannot be loaded (missing folder, unknown hub id, offline)."""


class SpecError(TunebenchError):
    """The study specification (YAML or flags) is invalid."""
