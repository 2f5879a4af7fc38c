"""The command line as people type it: ``-s head full``, ``--seeds 0 1 2``, ``--track tensorboard mlflow``.

click options take one value each, so ``tunebench run --strategies head full`` would read ``full`` as
the study file.  Before typer parses ``run`` and ``sweep``, :func:`gather` folds the values that
follow such an option back into it (``-s head -s full``; ``--seeds "0 1 2"``), and a positional left
over that is a strategy or a number (not an existing file) gets one sentence saying how to write
it, never "study file ... does not exist".
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from tunebench.errors import SpecError

COMMANDS = ("run", "sweep")
#: options that take several values, and what a value looks like
MULTI = {"--strategies": "strategy", "-s": "strategy", "--seeds": "number", "--track": "tracker",
         "--train-sizes": "number", "--data-seeds": "number"}
TRACKERS = ("tensorboard", "mlflow", "wandb")
STUDY_SUFFIXES = (".yaml", ".yml", ".json")
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*(:.*)?")
_NUMBERS = re.compile(r"\d+(,\d+)*,?")


def _exists(token: str) -> bool:
    try:
        return Path(token).exists()
    except (OSError, ValueError):
        return False


def known_kinds() -> tuple[str, ...]:
    from tunebench.spec.strategy import KINDS

    return KINDS


def _fits(kind: str, token: str) -> bool:
    """Whether ``token`` is one more value of a ``kind`` option (rather than the study file or another option)."""
    if token.startswith("-") or not token:
        return False
    if kind == "number":
        return bool(_NUMBERS.fullmatch(token))
    if kind == "tracker":
        return all(part.lower() in TRACKERS for part in token.split(",") if part)
    return bool(_WORD.fullmatch(token)) and not token.lower().endswith(STUDY_SUFFIXES) and not _exists(token)


def gather(argv: list[str], command: Any = None) -> list[str]:
    """``argv`` with space-separated values folded into their option; ``command``: the click group
    (to tell options that take a value from flags when checking stray positionals)."""
    if not argv or argv[0] not in COMMANDS:
        return argv
    out, i = [argv[0]], 1
    while i < len(argv):
        token = argv[i]
        if token == "--":
            out += argv[i:]
            break
        name, eq, value = token.partition("=") if token.startswith("--") else (token, "", "")
        kind = MULTI.get(name)
        if kind is None or (not eq and i + 1 >= len(argv)):
            out.append(token)
            i += 1
            continue
        values = [value] if eq else [argv[i + 1]]
        i += 1 if eq else 2
        while i < len(argv) and _fits(kind, argv[i]):
            values.append(argv[i])
            i += 1
        if kind == "number":
            out += [name, " ".join(values)]  # --seeds takes one text: "0 1 2" (parse_seeds splits it)
        else:
            for v in values:
                out += [name, v]
    if command is not None:
        check_positionals(out, command)
    return out


def _takes_value(command: Any, subcommand: str) -> set[str]:
    sub = getattr(command, "commands", {}).get(subcommand)
    names: set[str] = set()
    for param in getattr(sub, "params", []):
        if getattr(param, "param_type_name", "") == "option" and not getattr(param, "is_flag", False):
            names.update(param.opts)
    return names


def check_positionals(argv: list[str], command: Any) -> None:
    """A positional of ``run``/``sweep`` that is a number or a strategy and no file: one sentence."""
    valued = _takes_value(command, argv[0])
    i = 1
    while i < len(argv):
        token = argv[i]
        if token == "--":
            break
        if token.startswith("-") and token != "-":
            i += 2 if token in valued else 1
            continue
        _check_stray(argv[0], token)
        i += 1


def _check_stray(command: str, token: str) -> None:
    if _exists(token) or token.lower().endswith(STUDY_SUFFIXES):
        return
    if _NUMBERS.fullmatch(token):
        raise SpecError(f"'{token}' is a number, not a study file: an option takes one value (--epochs 3), and "
                        f"several seeds go after --seeds (tunebench sweep --seeds 0 1 2)")
    word = _WORD.fullmatch(token)
    if word and token.split(":", 1)[0].lower() in known_kinds():
        raise SpecError(f"'{token}' is a strategy, not a study file: give strategies after --strategies or -s, "
                        f"e.g. tunebench {command} -s head full")
