"""Nested stratified training subsets: the points of a data-efficiency curve (``data.train_sizes``).

Every size of a curve must train on rows *inside* the next larger size's (a curve that redraws its
rows at each size adds a draw's noise to every step of the line), and each subset must keep the
pool's class proportions.  scikit-learn's stratified splitters draw each size independently, so
nothing there gives both: :func:`nested_order` builds one seeded order of the whole pool whose every
prefix is stratified, and a size is a prefix of it (:func:`nested_subset`).

The order: within each class a seeded permutation; the ``j``-th row of a class of ``n_c`` rows gets
the key ``j / n_c`` (its place along that class), ties broken by a seeded draw; rows are sorted by
key.  A prefix of ``n`` rows then holds ``ceil(t · n_c)`` rows of class ``c`` for the ``t`` the
prefix reaches, so every class is within one row of its share of ``n``, and the first ``k`` rows
hold one row of each of the ``k`` classes (each class's first key is 0).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from tunebench.data.bundle import Split
from tunebench.data.labelsets import is_label_set, stratum
from tunebench.data.targets import is_target, strata


def nested_order(labels: Sequence[Any], seed: int) -> np.ndarray:
    """Row indices of ``labels`` in an order whose every prefix is stratified (module docstring).  Multi-label
    rows (tuples) are stratified by their rarest label (:func:`tunebench.data.labelsets.stratum`)."""
    if len(labels) and is_label_set(labels[0]):
        labels = stratum(labels)
    elif len(labels) and is_target(labels[0]):  # a regression: by the target's deciles
        labels = strata(labels)
    labels = np.asarray(labels, dtype=np.int64)
    rng = np.random.default_rng([seed, 0x5B5E7])  # its own stream: not the split's or the runs' draws
    keys = np.empty(len(labels), dtype=float)
    for c in np.unique(labels):
        rows = np.flatnonzero(labels == c)
        keys[rng.permutation(rows)] = np.arange(len(rows)) / len(rows)
    ties = rng.random(len(labels))
    return np.lexsort((ties, keys))


def nested_subset(train: Split, size: int, draw: int) -> tuple[list[int], str]:
    """The first ``size`` rows of ``train``'s nested order for ``draw`` (indices, in the pool's order),
    and the note the study prints and records."""
    order = nested_order(train.labels, draw)[:size]
    idx = sorted(int(i) for i in order)
    multi = bool(len(train.labels)) and is_label_set(train.labels[0])
    classes = len({c for s in train.labels for c in s}) if multi else len(set(train.labels))
    kept = len({c for i in idx for c in train.labels[i]}) if multi else len({train.labels[i] for i in idx})
    missing = (f"; {classes - kept} of the pool's {classes} classes have no row at this size" if kept < classes
               and not (len(train.labels) and is_target(train.labels[0])) else "")
    return idx, (f"train: {size:,} of the {len(train):,}-row training pool, a prefix of its stratified nested order "
                 f"(draw {draw}): every smaller size's rows are inside it, classes in the pool's proportions "
                 f"within one row{missing}")
