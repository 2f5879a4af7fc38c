"""A profile of a study's data: sizes, labels, token lengths, duplicates, and two figures.

:func:`dataset_profile` measures a :class:`~tunebench.data.loading.DatasetBundle` with the study's own
tokenizer and returns plain JSON-serialisable data; :func:`write_profile` saves it as
``dataset_profile.json`` with ``figures/data_lengths.png`` (token-length histogram per split) and
``figures/data_boxplot.png`` (token lengths by label), each written atomically. The figures are
drawn from the profile alone, so a stored profile can always be redrawn.

Schema (read by the report)::

    {"name", "origin", "is_pair", "label_names", "max_length", "tokenizer",
     "splits": {split: {"rows", "label_counts": {label: n},
                        "tokens": {"mean", "median", "p95", "max", "truncated_share"},
                        "empty_texts", "duplicates", "length_histogram": {"edges", "counts"},
                        multi-label only: "labels_per_row", "label_sets"}},
     "task": "single_label" | "multi_label" (label_counts then count the rows holding each label) | "regression"
             (label_counts: the target's rows; each split's "target": mean, sd, min, q1, median, q3, max;
              length_by_label: by the target's training quartiles),
     "hashes": {split: str}, "notes": [str],
     "figures": {"lengths": "figures/data_lengths.png", "boxplot": "figures/data_boxplot.png"},
     "length_by_label": {"split": "train", "labels": {label: {"n", "mean", "q1", "median", "q3",
                                                              "whislo", "whishi"}}}}

``length_by_label`` is an addition to the report's schema: the box plot's statistics.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from tunebench.data.bundle import SPLITS, DatasetBundle, Split
from tunebench.data.labelsets import label_counts, multi_hot
from tunebench.data.targets import strata
from tunebench.faults import atomic_write

PROFILE_NAME = "dataset_profile.json"
FIGURES = {"lengths": "figures/data_lengths.png", "boxplot": "figures/data_boxplot.png"}
_BATCH = 1000
_BINS = 30
_MAX_BOXES = 60  # a box plot with more labels is unreadable; the most frequent are drawn


def token_lengths(split: Split, tokenizer: Any) -> np.ndarray:
    """Tokens per example (special tokens included, nothing truncated), as the model would count them."""
    lengths: list[int] = []
    for start in range(0, len(split), _BATCH):
        texts = split.texts[start:start + _BATCH]
        pairs = None if split.pairs is None else split.pairs[start:start + _BATCH]
        enc = tokenizer(texts, pairs, truncation=False, add_special_tokens=True, verbose=False)
        lengths.extend(len(ids) for ids in enc["input_ids"])
    return np.asarray(lengths, dtype=np.int64)


def dataset_profile(bundle: DatasetBundle, tokenizer: Any, max_length: int) -> dict[str, Any]:
    """Measure ``bundle`` with ``tokenizer``: per split rows, labels, token lengths, duplicates, empties.

    Parameters
    ----------
    bundle : DatasetBundle
        The study's data, after cleaning, splitting and limits.
    tokenizer : transformers tokenizer
        The study's tokenizer; lengths count its special tokens.
    max_length : int
        The study's truncation length; ``truncated_share`` is the share of examples longer than it.

    Returns
    -------
    dict
        JSON-serialisable; the schema is in this module's docstring.
    """
    lengths = {name: token_lengths(getattr(bundle, name), tokenizer) for name in SPLITS}
    longest = max([int(v.max()) for v in lengths.values() if v.size] + [max_length, 1])
    edges = np.linspace(0, longest, _BINS + 1)
    splits: dict[str, Any] = {}
    notes = list(bundle.notes)
    multi = bundle.task == "multi_label"  # label_counts: rows holding each label (a row can hold several)
    for name in SPLITS:
        split: Split = getattr(bundle, name)
        n = lengths[name]
        counts = label_counts(split.labels) if multi else Counter(
            [0] * len(split) if bundle.task == "regression" else split.labels)  # a regression: rows with a target
        keys = _row_keys(split)
        empty = sum(1 for t in split.texts if not t.strip())
        if split.pairs is not None:
            empty += sum(1 for t, p in zip(split.texts, split.pairs, strict=True) if t.strip() and not p.strip())
        truncated = float(np.mean(n > max_length)) if n.size else 0.0
        splits[name] = {
            "rows": len(split),
            "label_counts": {label: int(counts.get(i, 0)) for i, label in enumerate(bundle.label_names)},
            "tokens": _token_stats(n, truncated),
            "empty_texts": empty,
            **({"labels_per_row": round(sum(map(len, split.labels)) / max(len(split), 1), 4),
                "label_sets": len(set(split.labels))} if multi else {}),
            **({"target": _target_stats(split.labels)} if bundle.task == "regression" else {}),
            "duplicates": len(keys) - len(set(keys)),
            "length_histogram": {"edges": [round(float(e), 3) for e in edges],
                                 "counts": [int(c) for c in np.histogram(n, bins=edges)[0]]},
        }
        if truncated > 0:
            notes.append(f"{name}: {truncated:.1%} of examples are longer than max_length {max_length} tokens "
                         f"and are truncated (longest {int(n.max()):,}, p95 {splits[name]['tokens']['p95']:g})")
        conflicts = _conflicting_labels(keys, split.labels)
        if conflicts:
            notes.append(f"{name}: {conflicts:,} text(s) occur with more than one label")
    return {
        "name": bundle.name,
        "origin": bundle.origin,
        "is_pair": bundle.is_pair,
        "task": bundle.task,
        "label_names": list(bundle.label_names),
        "max_length": int(max_length),
        "tokenizer": str(getattr(tokenizer, "name_or_path", "") or type(tokenizer).__name__),
        "splits": splits,
        "hashes": bundle.hashes(),
        "notes": notes,
        "figures": dict(FIGURES),
        "length_by_label": {"split": "train", "labels": _by_label(bundle, lengths["train"])},
    }


def _row_keys(split: Split) -> list[tuple[str, str | None]]:
    pairs = split.pairs if split.pairs is not None else [None] * len(split)
    return list(zip(split.texts, pairs, strict=True))


def _conflicting_labels(keys: list[tuple[str, str | None]], labels: list[int]) -> int:
    seen: dict[tuple[str, str | None], set[int]] = {}
    for key, label in zip(keys, labels, strict=True):
        seen.setdefault(key, set()).add(label)
    return sum(len(v) > 1 for v in seen.values())


def _token_stats(n: np.ndarray, truncated: float) -> dict[str, float | int]:
    if not n.size:
        return {"mean": 0.0, "median": 0.0, "p95": 0.0, "max": 0, "truncated_share": 0.0}
    return {"mean": round(float(n.mean()), 3), "median": float(np.median(n)),
            "p95": round(float(np.percentile(n, 95)), 3), "max": int(n.max()),
            "truncated_share": round(truncated, 6)}


def _target_stats(labels: list[float]) -> dict[str, float]:
    y = np.asarray(labels, dtype=float)
    q1, med, q3 = (float(x) for x in np.percentile(y, [25, 50, 75])) if len(y) else (0.0, 0.0, 0.0)
    return {"mean": round(float(y.mean()), 6) if len(y) else 0.0, "sd": round(float(y.std(ddof=1)), 6) if len(y) > 1
            else 0.0, "min": float(y.min()) if len(y) else 0.0, "q1": q1, "median": med, "q3": q3,
            "max": float(y.max()) if len(y) else 0.0}


def _by_label(bundle: DatasetBundle, lengths: np.ndarray) -> dict[str, dict[str, float | int]]:
    """Box-plot statistics (quartiles, 1.5 IQR whiskers) of token lengths per label."""
    names = list(bundle.label_names)
    if bundle.task == "regression":  # the target's quartiles stand for labels
        bins = strata(bundle.train.labels, 4)
        names = [f"target quartile {k + 1}" for k in range(int(bins.max()) + 1)] if len(bins) else []
        member = bins[:, None] == np.arange(len(names))
    elif bundle.task == "multi_label":  # a row counts under each of its labels
        member = multi_hot(bundle.train.labels, len(bundle.label_names)).astype(bool)
    else:
        member = np.asarray(bundle.train.labels, dtype=np.int64)[:, None] == np.arange(len(bundle.label_names))
    out = {}
    for i, name in enumerate(names):
        v = lengths[member[:, i]] if len(member) else lengths[:0]
        if not v.size:
            continue
        q1, med, q3 = (float(x) for x in np.percentile(v, [25, 50, 75]))
        iqr = q3 - q1
        inside = v[(v >= q1 - 1.5 * iqr) & (v <= q3 + 1.5 * iqr)]
        out[name] = {"n": int(v.size), "mean": round(float(v.mean()), 3), "q1": q1, "median": med, "q3": q3,
                     "whislo": float(inside.min()), "whishi": float(inside.max())}
    return out


def write_profile(profile: dict[str, Any], out_dir: Path | str) -> list[Path]:
    """Write ``dataset_profile.json`` and the two figures into ``out_dir``; return the paths written."""
    out = Path(out_dir)
    (out / "figures").mkdir(parents=True, exist_ok=True)
    written = [_draw_lengths(profile, out / FIGURES["lengths"]), _draw_boxplot(profile, out / FIGURES["boxplot"])]
    path = out / PROFILE_NAME
    atomic_write(path, json.dumps(profile, indent=2, ensure_ascii=False) + "\n")
    return [path, *written]


def _figure_module():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> Path:
    plt = _figure_module()
    try:
        atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=110, format="png"))
    finally:
        plt.close(fig)
    return path


def _draw_lengths(profile: dict[str, Any], path: Path) -> Path:
    plt = _figure_module()
    with plt.rc_context(_RC):
        return _save(_lengths_figure(plt, profile), path)


def _draw_boxplot(profile: dict[str, Any], path: Path) -> Path:
    plt = _figure_module()
    with plt.rc_context(_RC):
        return _save(_boxplot_figure(plt, profile), path)


#: names and labels come from data: no mathtext ("$\\foo$" is text), and long ones cut
_RC = {"text.parse_math": False}


def _short(text: str) -> str:
    return text if len(text) <= 40 else text[:39] + "…"


def _lengths_figure(plt: Any, profile: dict[str, Any]) -> Any:
    fig, ax = plt.subplots(figsize=(7, 4), layout="constrained")
    for name, split in profile["splits"].items():
        hist = split["length_histogram"]
        total = max(sum(hist["counts"]), 1)
        share = [c / total for c in hist["counts"]]
        ax.stairs(share, hist["edges"], label=f"{name} ({split['rows']:,})", linewidth=1.5)
    ax.axvline(profile["max_length"], color="black", linestyle="--", linewidth=1)
    ax.annotate(f"max_length {profile['max_length']}", (profile["max_length"], 0.98),
                xycoords=("data", "axes fraction"), ha="right", va="top", rotation=90, fontsize=8)
    ax.set_xlabel("tokens per example" + (" (both texts of a pair)" if profile["is_pair"] else ""))
    ax.set_ylabel("share of the split")
    ax.set_title(f"{_short(profile['name'])}: example length")
    ax.legend(frameon=False)
    return fig


def _boxplot_figure(plt: Any, profile: dict[str, Any]) -> Any:
    stats = profile.get("length_by_label", {}).get("labels", {})
    shown = sorted(stats, key=lambda k: -stats[k]["n"])[:_MAX_BOXES]
    shown = [k for k in profile["label_names"] if k in shown] or sorted(shown)  # a regression: target quartiles
    height = max(3.0, 0.28 * len(shown) + 1.2)
    fig, ax = plt.subplots(figsize=(7, height), layout="constrained")
    boxes = [{"label": f"{_short(k)} ({stats[k]['n']:,})", "med": stats[k]["median"], "q1": stats[k]["q1"],
              "q3": stats[k]["q3"], "whislo": stats[k]["whislo"], "whishi": stats[k]["whishi"],
              "mean": stats[k]["mean"], "fliers": []} for k in shown]
    if boxes:
        ax.bxp(boxes, orientation="horizontal", showmeans=True, showfliers=False)
        ax.invert_yaxis()
    ax.axvline(profile["max_length"], color="black", linestyle="--", linewidth=1)
    ax.set_xlabel("tokens per example (train)")
    more = len(stats) - len(shown)
    by = "target quartile" if profile.get("task") == "regression" else "label"
    ax.set_title(f"{_short(profile['name'])}: length by {by}" + (f" ({more} rarer labels not shown)" if more else ""))
    return fig
