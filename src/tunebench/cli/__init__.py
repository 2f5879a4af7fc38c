"""tunebench.cli: the command line (``tunebench = tunebench.cli:main``); one module per command group."""

from tunebench.cli.app import main

__all__ = ["main"]
