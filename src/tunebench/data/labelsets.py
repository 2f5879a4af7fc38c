"""Multi-label data (``data.task: multi_label``): a row's labels as a set, read, checked and split.

A row's labels arrive as a list (JSON, JSON Lines, Parquet, a hub ``Sequence(ClassLabel)``), as text
split on ``data.label_sep`` (``"sports|politics"``), or as text that is a JSON list
(``'["sports", "politics"]'``).  After :func:`unify_label_sets` every label is a sorted tuple of label
indices (hashable, so the duplicate and per-split counts of :mod:`tunebench.data.splits` work on it);
an empty tuple is a row with none of the labels (kept: "none of these" is an answer).

Splits and limits are drawn by iterative stratification (Sechidis et al. 2011, as the
``iterative-stratification`` package implements it for scikit-learn): a plain stratified split treats
every distinct label *set* as a class, and most sets of a multi-label dataset occur once.
"""

from __future__ import annotations

import ast
import json
from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np

from tunebench.errors import DataError

#: separators a label name holding one of them suggests (the message of a wrong or missing ``label_sep``)
_LIKELY_SEPS = ("|", ";", ",", "/", " ")


def is_label_set(value: Any) -> bool:
    """Whether ``value`` is a label already cleaned into a multi-label row (a tuple)."""
    return isinstance(value, tuple)


def as_label_set(value: Any, sep: str | None) -> tuple[str, ...]:
    """One row's labels as a tuple of names (stripped, empty names dropped, duplicates once, order kept)."""
    if isinstance(value, tuple):
        items: Sequence[Any] = value
    elif isinstance(value, str):
        text = value.strip()
        if sep is not None:
            items = text.split(sep)
        elif text.startswith("[") and text.endswith("]"):
            items = _parse_list(text)
        else:
            items = [text]
    else:
        items = [value]
    names = [str(v).strip() for v in items if v is not None and str(v).strip()]
    return tuple(dict.fromkeys(names))


def _parse_list(text: str) -> list[Any]:
    """``'["a", "b"]'`` or ``"['a', 'b']"`` (a list written by Python) as a list; anything else: one label."""
    for parse in (json.loads, ast.literal_eval):
        try:
            value = parse(text)
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            continue
        if isinstance(value, (list, tuple)):
            return list(value)
    return [text]


def unify_label_sets(parts: dict[str, Any], fixed: list[str] | None, sep: str | None, where: str,
                     label_column: str) -> list[str]:
    """Turn every split's labels into tuples of label indices; return the label names.

    Names are the sorted labels of the training split (``fixed``: a source's own names, in its order).
    Refused with one sentence: a column whose rows never hold more than one label (a missing or wrong
    ``label_sep``), a training split with fewer than two labels, a label in validation or test that
    train never has.
    """
    for rows in parts.values():
        rows.labels = [as_label_set(v, sep) for v in rows.labels]
    train = parts["train"].labels
    if not any(len(s) > 1 for rows in parts.values() for s in rows.labels):
        raise DataError(_single_label_message(train, sep, where, label_column))
    seen = {name for s in train for name in s}
    if fixed is not None:
        unknown = sorted({n for rows in parts.values() for s in rows.labels for n in s} - set(fixed))
        if unknown:
            raise DataError(f"{where} has labels outside its classes ({', '.join(fixed)}): {', '.join(unknown[:10])}")
    names = list(fixed) if fixed is not None else sorted(seen)
    if len(seen) < 2:
        raise DataError(f"the training data of {where} has a single label ({', '.join(sorted(seen)) or 'none'}) in "
                        f"column '{label_column}'; multi-label data needs at least two")
    for split in ("validation", "test"):
        if split in parts:
            unseen = sorted({n for s in parts[split].labels for n in s} - seen)
            if unseen:
                raise DataError(f"the {split} split of {where} has labels never seen in train: "
                                f"{', '.join(unseen[:10])}")
    index = {n: i for i, n in enumerate(names)}
    for rows in parts.values():
        rows.labels = [tuple(sorted(index[n] for n in s)) for s in rows.labels]
    return names


def _single_label_message(train: list[tuple[str, ...]], sep: str | None, where: str, label_column: str) -> str:
    names = sorted({n for s in train for n in s})
    hinted = [c for c in _LIKELY_SEPS[:-1] if any(c in n for n in names)]
    example = next((n for n in names if any(c in n for c in hinted)), names[0] if names else "")
    split_on = f"split on {sep!r}" if sep is not None else "read as a list or split on a separator (none given)"
    hint = (f"; its labels hold {' '.join(repr(c) for c in hinted)} (e.g. {example!r}): pass that as --label-sep"
            if hinted else "; give the separator its labels are joined with as --label-sep, or lists in JSON")
    return (f"column '{label_column}' of {where} has no row with more than one label when {split_on}, so it is not "
            f"multi-label data{hint}")


def multi_hot(labels: Sequence[tuple[int, ...]], n_labels: int) -> np.ndarray:
    """Label sets as a 0/1 matrix, one row per example and one column per label (int8)."""
    out = np.zeros((len(labels), n_labels), dtype=np.int8)
    for i, s in enumerate(labels):
        out[i, list(s)] = 1
    return out


def take_label_sets(labels: Sequence[tuple[int, ...]], n_take: int, seed: int) -> tuple[list[int], list[int], bool]:
    """Seeded sample of ``n_take`` row indices by iterative stratification; (taken, rest, stratified), sorted.

    ``MultilabelStratifiedShuffleSplit`` keeps each label's share in both parts as closely as the
    rows allow (a label with one row goes to one side).  It is not used where it cannot split
    (fewer than two rows): then the rows are taken as they come, and the note says not stratified."""
    n = len(labels)
    idx = np.arange(n)
    if n_take >= n:
        return idx.tolist(), [], True
    width = 1 + max((i for s in labels for i in s), default=0)
    y = multi_hot(labels, width)
    try:
        from iterstrat.ml_stratifiers import MultilabelStratifiedShuffleSplit

        splitter = MultilabelStratifiedShuffleSplit(n_splits=1, train_size=n_take, test_size=n - n_take,
                                                    random_state=seed)
        taken, rest = next(splitter.split(np.zeros((n, 1)), y))
    except ValueError:
        order = np.random.default_rng(seed).permutation(n)
        return np.sort(order[:n_take]).tolist(), np.sort(order[n_take:]).tolist(), False
    return np.sort(taken).tolist(), np.sort(rest).tolist(), True


def label_counts(labels: Sequence[tuple[int, ...]]) -> Counter[int]:
    """How many rows hold each label."""
    return Counter(i for s in labels for i in s)


def stratum(labels: Sequence[tuple[int, ...]]) -> np.ndarray:
    """One class per row for orders that stratify by a single class (a curve's nested subsets): the row's
    rarest label in ``labels`` (-1 for a row with none), so every label's rows are spread over the order."""
    counts = label_counts(labels)
    return np.asarray([min(s, key=lambda i: (counts[i], i)) if s else -1 for s in labels], dtype=np.int64)
