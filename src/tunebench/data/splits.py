"""Cleaning, label mapping and seeded, stratified splitting: what every data source goes through."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from tunebench.data import labelsets, targets
from tunebench.data.bundle import (
    _FLOAT_LIKE,
    _INT_LIKE,
    _LABEL_NA,
    _PAIR_DEFAULTS,
    _TEXT_DEFAULTS,
    SPLITS,
    DatasetBundle,
    Split,
)
from tunebench.errors import DataError
from tunebench.spec.parts import DataSpec


@dataclass
class _Rows:
    """Rows of one split while it is being built: parallel plain lists."""

    texts: list[Any]
    pairs: list[Any] | None
    labels: list[Any]

    def __len__(self) -> int:
        return len(self.texts)

    def take(self, idx: Sequence[int]) -> _Rows:
        return _Rows([self.texts[i] for i in idx],
                     None if self.pairs is None else [self.pairs[i] for i in idx],
                     [self.labels[i] for i in idx])


def _clean(rows: _Rows, split: str, where: str, label_column: str, notes: list[str],
           missing_labels: Sequence[str] = (), allow_unlabelled: bool = False) -> _Rows | None:
    """Drop rows without a label or with blank text; labels become int, float or str (not yet indices)."""
    n = len(rows)
    name = "the file" if split == "file" else f"the {split} split"
    missing = set(missing_labels)
    memo: dict[Any, Any] = {}
    labels = []
    for v in rows.labels:
        key = (v.__class__, v)
        try:
            labels.append(memo[key])
        except KeyError:
            labels.append(memo.setdefault(key, _label_value(v, missing)))
        except TypeError:  # unhashable (a list in JSON)
            labels.append(_label_value(v, missing))
    _note_trimmed(memo, split, notes)
    no_label = [v is None for v in labels]
    if n == 0 or all(no_label):
        if allow_unlabelled and n:
            notes.append(f"{split}: the source's split has no labels; not used")
            return None
        raise DataError(f"{name} of {where} has no rows with a label in column '{label_column}'")
    texts = [_text_value(v) for v in rows.texts]
    blank = [not t.strip() for t in texts]
    pairs = None
    if rows.pairs is not None:
        pairs = [_text_value(v) for v in rows.pairs]
        blank = [b or not p.strip() for b, p in zip(blank, pairs, strict=True)]
    keep = [i for i in range(n) if not (no_label[i] or blank[i])]
    n_unlabelled = sum(no_label)
    n_blank = n - n_unlabelled - len(keep)
    if n_unlabelled:
        shown = f" (label {', '.join(repr(m) for m in missing_labels)} or empty)" if missing_labels else ""
        notes.append(f"{split}: dropped {n_unlabelled:,} of {n:,} rows without a label{shown}")
    if n_blank:
        notes.append(f"{split}: dropped {n_blank:,} of {n:,} rows with empty text")
    if not keep:
        raise DataError(f"{name} of {where} has no usable rows after dropping rows without a label or text")
    return _Rows(texts, pairs, labels).take(keep) if len(keep) < n else _Rows(texts, pairs, labels)


def _note_trimmed(memo: dict[Any, Any], split: str, notes: list[str]) -> None:
    """A note when labels that differ only in surrounding spaces (' pos', 'pos ') became one class."""
    merged: dict[str, list[str]] = {}
    for (cls, raw), label in memo.items():
        if cls is str and isinstance(label, str):
            merged.setdefault(label, []).append(raw)
    trimmed = {label: raws for label, raws in merged.items() if any(r != label for r in raws)}
    if trimmed:
        shown = "; ".join(f"{', '.join(repr(r) for r in sorted(raws)[:4])} → {label!r}"
                          for label, raws in sorted(trimmed.items())[:5])
        notes.append(f"{split}: labels are read without surrounding spaces, which merged labels that differ only "
                     f"in them: {shown}")


def _text_value(value: Any) -> str:
    if isinstance(value, str):
        return value
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return ""
    return str(value)


def _label_value(value: Any, missing: set[str]) -> int | float | str | tuple[Any, ...] | None:
    if value is None or value is pd.NA:
        return None
    if isinstance(value, (list, tuple, np.ndarray)):  # a row's label list (JSON, Parquet): a multi-label row
        return tuple(v.item() if isinstance(v, np.generic) else v for v in value)
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value))
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        if math.isnan(value):
            return None
        return int(value) if float(value).is_integer() else float(value)
    text = str(value).strip()
    return None if text in _LABEL_NA or text in missing else text


def _unify_labels(parts: dict[str, _Rows], fixed: bool, where: str) -> None:
    """Make every label an int (all int-like) or a str (otherwise); ``fixed`` keeps names as str."""
    distinct = {(v.__class__, v) for rows in parts.values() for v in rows.labels}
    listed = next((v for cls, v in distinct if cls is tuple), None)
    if listed is not None:
        raise DataError(f"{where} has lists of labels (e.g. {list(listed)!r}) in its label column; for multi-label "
                        "data use --task multi_label (data.task)")
    floats = sorted(v for cls, v in distinct if cls is float)
    if not fixed and not floats and all(cls is int or _FLOAT_LIKE.fullmatch(v) for cls, v in distinct):
        floats = sorted(float(v) for cls, v in distinct if cls is str and not _INT_LIKE.fullmatch(v))
    if floats:
        raise DataError(f"{where} has non-integer numbers as labels (e.g. {floats[0]}); classification "
                        "needs class names or integer class ids (a numeric target: --task regression)")
    as_int = not fixed and all(cls is int or _INT_LIKE.fullmatch(v) for cls, v in distinct)
    # int(v) of "12345678901234567", not int(float(v)): a float round-trip merges neighbouring ids
    convert = {v: (int(str(v).split(".")[0]) if as_int else str(v)) for _, v in distinct}
    for rows in parts.values():
        rows.labels = [convert[v] for v in rows.labels]


def _take(labels: Sequence[Any], n_take: int, seed: int, keep_rare: bool = False) -> tuple[
        list[int], list[int], bool]:
    """Seeded sample of ``n_take`` row indices, stratified by label when possible.

    Returns (taken, rest, stratified), both sorted. ``keep_rare`` keeps classes with a single row
    out of the sample (in ``rest``), so carving a test set never takes a class's only example.
    """
    from sklearn.model_selection import train_test_split

    if labels and labelsets.is_label_set(labels[0]):
        return labelsets.take_label_sets(labels, n_take, seed)
    if labels and targets.is_target(labels[0]):  # a regression: stratified on the target's deciles
        codes = targets.strata(labels)
    else:
        lookup = {v: i for i, v in enumerate(sorted(set(labels)))}
        codes = np.fromiter((lookup[v] for v in labels), dtype=np.int64, count=len(labels))
    idx = np.arange(len(codes))
    if n_take >= len(codes):
        return idx.tolist(), [], True
    forced = idx[:0]
    if keep_rare:
        rare = np.bincount(codes)[codes] < 2
        forced, idx = idx[rare], idx[~rare]
    if n_take >= len(idx):
        return idx.tolist(), forced.tolist(), False
    try:
        taken, rest = train_test_split(idx, train_size=n_take, stratify=codes[idx], random_state=seed)
    except ValueError:  # a class with < 2 rows, or fewer rows to take than classes
        taken = _proportional_sample(codes, idx, n_take, seed)
        rest = np.setdiff1d(idx, taken)
    return np.sort(taken).tolist(), np.sort(np.concatenate([rest, forced])).tolist(), True


def _proportional_sample(codes: np.ndarray, idx: np.ndarray, n_take: int, seed: int) -> np.ndarray:
    """Stratified sample where scikit-learn refuses (rare classes, many classes, small samples).

    Each class gets its share of ``n_take`` rounded down, and the rows left over go to the classes
    with the largest remainders (ties broken at random, seeded); rows are drawn at random within
    each class. Classes too rare for a whole row get none.
    """
    rng = np.random.default_rng(seed)
    classes, counts = np.unique(codes[idx], return_counts=True)
    quota = counts * (n_take / counts.sum())
    alloc = np.floor(quota).astype(np.int64)
    order = np.lexsort((rng.random(len(classes)), -(quota - alloc)))
    alloc[order[:n_take - int(alloc.sum())]] += 1
    picked = [rng.choice(idx[codes[idx] == c], size=int(k), replace=False) for c, k in zip(classes, alloc, strict=True)]
    return np.concatenate(picked)


def _with_minimum(labels: Sequence[int], taken: list[int], minimum: int, seed: int) -> list[int]:
    """``taken`` (a stratified sample of row indices) with at least ``minimum`` rows of every class that
    has them (all of its rows when it has fewer); the extra rows come out of the largest classes, so the
    sample keeps its size.  A proportional sample of 800 of R52's 6,532 documents gives 19 of its 52
    classes one row or none: a class the model sees once is noise in every comparison."""
    rng = np.random.default_rng(seed)
    y = np.asarray(labels)
    chosen = set(taken)
    for c in np.unique(y):
        rows = np.flatnonzero(y == c)
        have = [i for i in rows if i in chosen]
        need = min(minimum, len(rows)) - len(have)
        if need <= 0:
            continue
        chosen.update(rng.choice([i for i in rows if i not in chosen], size=need, replace=False).tolist())
        for _ in range(need):  # give the rows back from the largest class, keeping the sample's size
            counts = Counter(int(y[i]) for i in chosen)
            big = max(counts, key=lambda k: (counts[k], -k))
            if counts[big] <= minimum:
                break
            chosen.remove(int(rng.choice(sorted(i for i in chosen if y[i] == big))))
    return sorted(chosen)


def _drop_rare(parts: dict[str, _Rows], names: list[str], minimum: int, notes: list[str]) -> list[str]:
    """Drop every class with fewer than ``minimum`` training rows (but some) from all splits, with a note
    saying which and how many rows; the labels are renumbered.  ``minimum`` 0 keeps every class.  Only
    for a ``train_limit`` slice: a whole dataset keeps its task as published (R52 keeps its 52 classes)."""
    counts = Counter(parts["train"].labels)
    rare = [i for i in range(len(names)) if 0 < counts[i] < minimum]
    if not minimum or not rare or len(names) - len(rare) - sum(counts[i] == 0 for i in range(len(names))) < 2:
        return names
    removed = {}
    for split, rows in parts.items():
        keep = [j for j, v in enumerate(rows.labels) if v not in set(rare)]
        removed[split] = len(rows) - len(keep)
        parts[split] = rows.take(keep)
    kept = [i for i in range(len(names)) if i not in set(rare)]
    renumber = {old: new for new, old in enumerate(kept)}
    for rows in parts.values():
        rows.labels = [renumber[v] for v in rows.labels]
    shown = ", ".join(f"{names[i]} ({counts[i]})" for i in rare[:10]) + (", …" if len(rare) > 10 else "")
    notes.append(f"warning: dropped {len(rare)} class(es) with fewer than {minimum} training rows (data.min_per_class): "
                 f"{shown}; removed " + "/".join(f"{removed[s]:,}" for s in SPLITS) + " train/validation/test rows")
    return [names[i] for i in kept]


def _how(stratified: bool, seed: int) -> str:
    if stratified:
        return f"stratified by label, seed {seed}"
    return f"NOT stratified (too few rows per class), seed {seed}"


#: The validation split of a ``train_limit`` slice when ``val_limit`` is not given: a quarter of the
#: slice, at least this many rows.  Validating 10,000 rows for a 400-row slice made validation
#: dominate the study (issue 30); selection noise on a quarter of the slice, at least 500, is small
#: beside the train slice's own.
MIN_SLICE_VALIDATION = 500
_SLICE_CAP = (f"capped at a quarter of train_limit, at least {MIN_SLICE_VALIDATION}, as val_limit was not "
              "given; set val_limit to change it")


def slice_val_cap(train_limit: int | None) -> int | None:
    """The validation rows a ``train_limit`` slice gets by default, or None (no cap) without a slice."""
    return None if train_limit is None else max(MIN_SLICE_VALIDATION, train_limit // 4)


def _assemble(name: str, origin: str, parts: dict[str, _Rows], fixed_names: list[str] | None,
              spec: DataSpec, seed: int, notes: list[str]) -> DatasetBundle:
    """Unify labels, hold out missing splits, map labels to indices, apply limits, build the bundle."""
    multi, numeric = spec.task == "multi_label", spec.task == "regression"
    if multi:  # label sets: parsed and indexed first, so the held-out splits are stratified on them
        names = labelsets.unify_label_sets(parts, fixed_names, spec.label_sep, name, spec.label_column or "label")
    elif numeric:  # one output: the target, named after its column
        targets.numeric_targets(parts, name, spec.label_column or "label")
        names = [spec.label_column or "label"]
    else:
        _unify_labels(parts, fixed_names is not None, name)
    if "test" not in parts:
        parts["train"], parts["test"] = _carve(parts["train"], "test", spec.test_fraction, spec.test_limit,
                                               seed, notes, name)
    val_limit = spec.val_limit if spec.val_limit is not None else slice_val_cap(spec.train_limit)
    val_cap = "capped by val_limit" if spec.val_limit is not None else _SLICE_CAP
    if "validation" not in parts:
        parts["train"], parts["validation"] = _carve(parts["train"], "validation", spec.val_fraction,
                                                     val_limit, seed, notes, name, cap_reason=val_cap)
    if not (multi or numeric):
        names = _index_labels(parts, fixed_names, name)
    if spec.val_limit is None and val_limit is not None and val_limit < len(parts["validation"]):
        notes.append(f"validation: at most {val_limit:,} rows of the source's own split, {_SLICE_CAP}")
    limits = {"train": spec.train_limit, "validation": val_limit, "test": spec.test_limit}
    len_before_limits = len(parts["train"])
    for split in SPLITS:
        limit, rows = limits[split], parts[split]
        if limit is not None and limit < len(rows):
            taken, _, stratified = _take(rows.labels, limit, seed)
            if split == "train" and spec.min_per_class and spec.task == "single_label":
                taken = _with_minimum(rows.labels, taken, spec.min_per_class, seed)
            parts[split] = rows.take(taken)
            notes.append(f"{split}: kept {limit:,} of {len(rows):,} rows ({_how(stratified, seed)}"
                         + (f", at least {spec.min_per_class} per class where the data has them" if split == "train"
                            and spec.min_per_class and spec.task == "single_label" else "") + ")")
    if spec.train_limit is not None and spec.train_limit < len_before_limits and spec.task == "single_label":
        names = _drop_rare(parts, names, spec.min_per_class, notes)
    splits = {s: Split(texts=parts[s].texts, pairs=parts[s].pairs, labels=parts[s].labels) for s in SPLITS}
    notes.extend(_duplicate_notes(splits))
    if numeric:
        notes.append(targets.sizes_note(splits, names[0]))
        return DatasetBundle(name=name, label_names=names, **splits, notes=notes, origin=origin, task=spec.task)
    present = {i for s in splits["train"].labels for i in s} if multi else set(splits["train"].labels)
    absent = [n for i, n in enumerate(names) if i not in present]
    if absent:
        notes.append(f"train has no rows of class(es): {', '.join(absent[:10])}")
    counts = {s: labelsets.label_counts(splits[s].labels) if multi else Counter(splits[s].labels) for s in SPLITS}
    notes.append("sizes train/validation/test: " + "/".join(f"{len(splits[s]):,}" for s in SPLITS)
                 + "; per class: " + ", ".join(f"{n} " + "/".join(str(counts[s][i]) for s in SPLITS)
                                               for i, n in enumerate(names[:20]))
                 + (", …" if len(names) > 20 else ""))
    if multi:
        notes.append(f"task: multi-label ({len(names)} labels; " + ", ".join(
            f"{s} {sum(map(len, splits[s].labels)) / max(len(splits[s]), 1):.2f}" for s in SPLITS)
            + " labels per row in train/validation/test; splits by iterative stratification)")
    return DatasetBundle(name=name, label_names=names, train=splits["train"], validation=splits["validation"],
                         test=splits["test"], notes=notes, origin=origin, task=spec.task)


def _index_labels(parts: dict[str, _Rows], fixed_names: list[str] | None, name: str) -> list[str]:
    """Single-label classes: the names (the source's own, else the training split's sorted values), every
    split's labels as their indices; refused: one class, a class only validation or test has."""
    seen = set(parts["train"].labels)
    if fixed_names is not None:
        unknown = sorted({str(v) for rows in parts.values() for v in set(rows.labels)} - set(fixed_names))
        if unknown:
            raise DataError(f"{name} has labels outside its classes ({', '.join(fixed_names)}): "
                            f"{', '.join(unknown[:10])}")
        names = list(fixed_names)
    else:
        names = [str(v) for v in sorted(seen)]
    if len(seen) < 2:
        raise DataError(f"the training data of {name} has a single class ({next(iter(seen))!r}); "
                        "classification needs at least two")
    for split in ("validation", "test"):
        unseen = sorted(set(parts[split].labels) - seen, key=str)
        if unseen:
            raise DataError(f"the {split} split of {name} has labels never seen in train: "
                            f"{', '.join(str(v) for v in unseen[:10])}")
    index = {v: i for i, v in enumerate(fixed_names if fixed_names is not None else sorted(seen))}
    for rows in parts.values():
        rows.labels = [index[v] for v in rows.labels]
    return names


def _carve(rows: _Rows, split: str, fraction: float, limit: int | None, seed: int, notes: list[str],
           where: str, cap_reason: str | None = None) -> tuple[_Rows, _Rows]:
    """Hold out ``fraction`` of ``rows`` (at most ``limit``) as ``split``; return (rest, held out).

    ``cap_reason`` says in the note why ``limit`` applies (default: the split's own ``*_limit``)."""
    n = len(rows)
    n_take = max(1, round(fraction * n))
    capped = limit is not None and limit < n_take
    if limit is not None:
        n_take = min(n_take, limit)
    if n_take >= n:
        raise DataError(f"{where} has only {n} usable row(s) left for train, too few to hold out a {split} "
                        "split; add data or give the source its own split")
    taken, rest, stratified = _take(rows.labels, n_take, seed, keep_rare=True)
    if not rest or not taken:
        raise DataError(f"{where} has too few rows per class to hold out a {split} split")
    reason = cap_reason or f"capped by {'test' if split == 'test' else 'val'}_limit"
    cap = f", {reason}" if capped else ""
    notes.append(f"{split}: {len(taken):,} rows held out from {n:,} training rows "
                 f"({fraction:g} of them{cap}; {_how(stratified, seed)})")
    return rows.take(rest), rows.take(taken)


def _duplicate_notes(splits: dict[str, Split]) -> list[str]:
    notes = []
    keys: dict[str, list[tuple[str, str | None]]] = {}
    for name, split in splits.items():
        pairs = split.pairs if split.pairs is not None else [None] * len(split)
        keys[name] = list(zip(split.texts, pairs, strict=True))
        rows = len(split) - len(set(zip(split.texts, pairs, split.labels, strict=True)))
        if rows:
            notes.append(f"{name}: {rows:,} exact duplicate row(s) (same text and label; kept)")
    train = set(keys["train"])
    for name in ("validation", "test"):
        shared = sum(key in train for key in keys[name])
        if shared:
            notes.append(f"{name}: {shared:,} row(s) have the same text as a train row (kept)")
    return notes


def _resolve_columns(columns: list[str], spec: DataSpec, where: str) -> tuple[str, str | None, str]:
    have = ", ".join(columns)

    def need(name: str, role: str, option: str) -> str:
        if name not in columns:
            raise DataError(f"{where} has no {role} column '{name}'; its columns are: {have} "
                            f"(choose with {option})")
        return name

    if spec.text_column is not None:
        text = need(spec.text_column, "text", "--text-column")
    else:
        found = [c for c in _TEXT_DEFAULTS if c in columns]
        if not found:
            raise DataError(f"{where} has none of the default text columns ({', '.join(_TEXT_DEFAULTS)}); "
                            f"its columns are: {have} (choose with --text-column)")
        text = found[0]
    if spec.text_pair_column is not None:
        pair: str | None = need(spec.text_pair_column, "text-pair", "--text-pair-column")
    else:
        default_pair = _PAIR_DEFAULTS.get(text) if spec.text_column is None else None
        pair = default_pair if default_pair in columns else None
    label = need(spec.label_column or "label", "label", "--label-column")
    if label in (text, pair):
        raise DataError(f"{where}: column '{label}' cannot be both the label and a text column")
    return text, pair, label


def _pick(frame: pd.DataFrame, text: str, pair: str | None, label: str) -> _Rows:
    return _Rows(frame[text].tolist(), None if pair is None else frame[pair].tolist(), frame[label].tolist())
