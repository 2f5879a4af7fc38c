"""Pure functions over stored records: the headline frame, best values, Pareto fronts,
confusion summaries, what is not ranked and the caveats (the recommendation itself is
:mod:`tunebench.report.verdict`).  No plotting, no I/O."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from tunebench.report.cost import cost_per_f1_point, run_cost
from tunebench.results.decisions import headline
from tunebench.results.diagnosis import BASELINE_KINDS, FLAGS, UNRANKABLE, is_baseline
from tunebench.results.outputs import config_diagnosis, config_flags, results_frame
from tunebench.spec import metrics

#: headline columns whose best value is marked: column -> "max" or "min" (every metric's from the metric table)
BETTER = {
    "trainable_params": "min", "trainable_share_pct": "min", "train_time_s": "min", "examples_per_s": "max",
    "peak_memory_mb": "min", "train_memory_mb": "min", "save_bytes": "min",
    **{f"{part}_{m.name}": "max" if m.higher_is_better else "min" for m in metrics.METRICS for part in ("val", "test")},
    "cost_usd": "min", "cost_per_f1_point": "min",
}


#: figures that mean nothing for a baseline (it trains no network): shown as "—" in its row
NOT_FOR_BASELINES = ("trainable_share_pct", "examples_per_s", "cost_per_f1_point")


def headline_frame(records: list[dict[str, Any]], prices: dict[str, float]) -> pd.DataFrame:
    """results.csv's columns plus the estimated training cost, cost per point of macro-F1 and the run's
    own memory (:func:`own_memory_mb`); a baseline's :data:`NOT_FOR_BASELINES` are missing (None)."""
    frame = results_frame(records)
    costs = [run_cost(r, prices) for r in records]
    frame["cost_usd"] = costs
    frame["cost_per_f1_point"] = [cost_per_f1_point(c, r["test"][headline(r)])  # a regression's: per point of R²
                                  for c, r in zip(costs, records, strict=True)]
    frame["train_memory_mb"] = pd.to_numeric(pd.Series([own_memory_mb(r) for r in records], dtype=object))
    reference = baseline_mask(frame)
    for col in NOT_FOR_BASELINES:
        frame[col] = pd.to_numeric(frame[col], errors="coerce").astype(float).where(~reference)
    return frame


def own_memory_mb(record: dict[str, Any]) -> float | None:
    """The run's own peak memory: on a GPU torch's peak allocation; on the CPU the peak resident memory
    above the process's at the run's start (the interpreter, torch and the loaded model left out), or the
    whole peak when the start was not recorded."""
    res = record.get("resources") or {}
    if res.get("cuda_max_allocated_mb") is not None:
        return float(res["cuda_max_allocated_mb"])
    peak, start = res.get("peak_rss_mb"), res.get("rss_at_start_mb")
    if peak is None:
        return None
    return round(max(float(peak) - float(start), 0.0), 1) if start is not None else float(peak)


#: what :func:`own_memory_mb` measures: (axis or column label, the sentence that says it)
MEMORY = {
    "gpu": ("GPU memory (MB, peak allocated)", "the peak GPU memory torch allocated during the run"),
    "cpu": ("memory added (MB, peak RSS above start)", "the peak resident memory above the process's at the run's "
            "start (Python, torch and the loaded model left out)"),
    "process": ("memory (MB, process peak RSS)", "the process's peak resident memory, Python and torch included (the "
                "records do not store the memory at the run's start)"),
    "mixed": ("memory (MB: GPU peak allocated, CPU peak RSS above start)", "on a GPU the peak memory torch allocated, "
              "on the CPU the peak resident memory above the process's at the run's start"),
}


def memory_measure(records: list[dict[str, Any]]) -> tuple[str, str]:
    """:data:`MEMORY`'s entry for these runs."""
    res = [r.get("resources") or {} for r in records]
    gpu = [x.get("cuda_max_allocated_mb") is not None for x in res]
    if all(gpu):
        return MEMORY["gpu"]
    if any(gpu):
        return MEMORY["mixed"]
    return MEMORY["cpu" if all(x.get("rss_at_start_mb") is not None for x in res) else "process"]


def seed_means(frame: pd.DataFrame, runs_frame: pd.DataFrame, run_groups: list[str]) -> pd.DataFrame:
    """``frame`` (one row per configuration, in order) with every measured column replaced by the
    mean over the configuration's seeds (from ``runs_frame``, one row per run), plus ``seeds``."""
    runs_frame = runs_frame.assign(config=run_groups)
    order = list(dict.fromkeys(run_groups))
    # measured values (floats) are averaged; counts such as trainable parameters do not vary by seed
    numeric = [c for c in runs_frame.columns if c in frame.columns and pd.api.types.is_float_dtype(runs_frame[c])
               and c not in ("alpha", "lr")]
    grouped = runs_frame.groupby("config", sort=False)
    means = grouped[numeric].mean().reindex(order)
    out = frame.copy()
    for col in numeric:
        out[col] = means[col].to_numpy()
    out["seeds"] = grouped.size().reindex(order).to_numpy()
    if "diagnosis" in runs_frame:  # a configuration's flags over its seeds (config_flags), with those seeds' advice
        out["diagnosis"] = [config_diagnosis(grouped.get_group(g)["diagnosis"].tolist()) for g in order]
        out["diagnosis_advice"] = [_config_advice(grouped.get_group(g)) for g in order]
    return out


def _config_advice(runs: pd.DataFrame) -> str | None:
    """The advice of the seeds that raised one of their configuration's flags."""
    flags = set(config_flags(runs["diagnosis"].tolist()))
    advice = [a for d, a in zip(runs["diagnosis"], runs["diagnosis_advice"], strict=True)
              if isinstance(a, str) and a and isinstance(d, str) and flags & set(d.split(" + "))]
    return " ".join(dict.fromkeys(advice)) or None


def best_rows(frame: pd.DataFrame) -> dict[str, set[int]]:
    """For each column in :data:`BETTER`, the positions of the rows holding its best value (ties kept);
    baseline rows are references, not candidates, and are never marked."""
    marks: dict[str, set[int]] = {}
    reference = baseline_mask(frame).to_numpy()  # baselines are the floor: never marked best
    for col, direction in BETTER.items():
        if col not in frame:
            continue
        values = pd.to_numeric(frame[col], errors="coerce").where(~reference)
        if values.notna().sum() < 2:
            continue
        best = values.max() if direction == "max" else values.min()
        marks[col] = {i for i, v in enumerate(values) if v == best}
    return marks


def pareto_front(cost: list[float | None], quality: list[float]) -> list[int]:
    """Indices of the runs no other run beats on both axes (lower cost, higher quality), by cost."""
    points = [(c, q, i) for i, (c, q) in enumerate(zip(cost, quality, strict=True)) if c is not None and c == c]
    front = []
    for c, q, i in points:
        dominated = any(c2 <= c and q2 >= q and (c2 < c or q2 > q) for c2, q2, _ in points)
        if not dominated:
            front.append(i)
    return sorted(front, key=lambda i: (cost[i], -quality[i], i))


def normalised_confusion(matrix: list[list[int]]) -> np.ndarray:
    """Row-normalised confusion matrix: the share of each true class predicted as each class."""
    m = np.asarray(matrix, dtype=float)
    sums = m.sum(axis=1, keepdims=True)
    return np.divide(m, sums, out=np.zeros_like(m), where=sums > 0)


def per_class_f1(records: list[dict[str, Any]]) -> pd.DataFrame:
    """Rows: classes; columns: runs; values: test F1."""
    names = records[0]["data"]["label_names"]
    return pd.DataFrame({r["strategy"]: [r["test"]["per_class"].get(n, {}).get("f1-score", float("nan"))
                                         for n in names] for r in records}, index=names)


def worst_classes(records: list[dict[str, Any]], n: int = 15) -> pd.DataFrame:
    """The ``n`` classes with the lowest mean test F1 across runs (per-run F1 as columns)."""
    table = per_class_f1(records)
    table["mean"] = table.mean(axis=1)
    return table.sort_values(["mean"], kind="stable").head(n)


def confused_pairs(record: dict[str, Any], n: int = 10) -> list[tuple[str, str, int, float]]:
    """The ``n`` largest off-diagonal cells: (true, predicted, count, share of the true class)."""
    names = record["data"]["label_names"]
    m = np.asarray(record["test"]["confusion_matrix"])
    share = normalised_confusion(m)
    cells = [(int(m[i, j]), float(share[i, j]), i, j) for i in range(len(names)) for j in range(len(names))
             if i != j and m[i, j] > 0]
    cells.sort(key=lambda c: (-c[0], -c[1], c[2], c[3]))
    return [(names[i], names[j], count, s) for count, s, i, j in cells[:n]]


def baseline_mask(frame: pd.DataFrame) -> pd.Series:
    """True for the reference rows (``majority``, ``tfidf-logreg``): the floor, never a candidate."""
    if "kind" not in frame:
        return pd.Series(False, index=frame.index)
    return frame["kind"].isin(BASELINE_KINDS)


def flags_of(frame: pd.DataFrame) -> pd.Series:
    """Each row's diagnosis flags (a list; empty for "ok", a baseline, or a frame without the column)."""
    if "diagnosis" not in frame:
        return pd.Series([[] for _ in range(len(frame))], index=frame.index, dtype=object)
    return frame["diagnosis"].map(lambda v: [f for f in v.split(" + ") if f in FLAGS] if isinstance(v, str) else [])


def unrankable_mask(frame: pd.DataFrame) -> pd.Series:
    """True for a fine-tuning row flagged collapsed or still improving: it was not trained, so it lost nothing."""
    return flags_of(frame).map(lambda fl: any(f in UNRANKABLE for f in fl)) & ~baseline_mask(frame)


def _advice(row: pd.Series) -> str:
    text = row.get("diagnosis_advice")
    if isinstance(text, str) and text:
        return text
    return f"{row['strategy']} was flagged {row.get('diagnosis')}; rerun with --tune or more epochs."


def not_ranked(frame: pd.DataFrame) -> list[str]:
    """One sentence per collapsed or still-improving strategy: why it is not ranked, and what to do."""
    return [f"Not ranked as beaten: {_advice(row)} Until then its numbers say nothing about {row['strategy']} "
            "against the others." for _, row in frame[unrankable_mask(frame)].iterrows()]


def _res(record: dict[str, Any]) -> dict[str, Any]:
    return record.get("resolved") or {}


def _rates(records: list[dict[str, Any]]) -> str:
    """"full lr 0.000158, head lr 0.001": each strategy once (not once per seed), its rate once (a tuned
    label such as ``full:lr=0.000158`` already carries it)."""
    seen: dict[str, float] = {}
    for r in records:
        seen.setdefault(r["strategy"], r["resolved"]["lr"])
    return ", ".join(name if f"lr={lr:g}" in name else f"{name} {lr:g}" for name, lr in seen.items())


def caveats(frame: pd.DataFrame, records: list[dict[str, Any]], tuned: bool = False) -> list[str]:
    """The confounds that apply to this study, each in one sentence (``tuned``: the learning rates came
    from equal-budget tuning; baselines, which have no learning rate nor epochs, are left out of those)."""
    out = []
    trained = [r for r in records if not is_baseline(r)] or records
    seeds = sorted({_res(r)["seed"] for r in records if _res(r).get("seed") is not None})
    if "seeds" in frame and frame["seeds"].max() > 1:
        out.append(f"Up to {int(frame['seeds'].max())} seeds per configuration: numbers are means over its seeds; "
                   "every comparison counts both seed and test-example noise (see Ranking and significance).")
    else:
        out.append(f"Single seed ({', '.join(map(str, seeds))}) per strategy: no comparison is a claim about the "
                   "methods (a test on one seed speaks for that seed's models only); run 3 or more seeds "
                   "(--seeds 0 1 2) for a verdict.")
    absent = (records[0].get("test") or {}).get("absent_classes") or []
    if absent:
        names = records[0]["data"]["label_names"]
        out.append(f"Macro-F1 averages over the {len(names) - len(absent)} classes present in the test split; "
                   f"{len(absent)} are absent from it and not counted: {', '.join(absent[:10])}"
                   + (", …" if len(absent) > 10 else "") + ".")
    sizes = records[0]["data"]["sizes"]
    if sizes["test"] < 1000 or sizes["train"] < 5000:
        out.append(f"Small data (train {sizes['train']:,}, test {sizes['test']:,} examples)" + (
            "." if records[0]["data"].get("task") == "regression" else
            f": one test example is {100 / max(sizes['test'], 1):.2f} points of accuracy."))
    with_lr = [r for r in trained if _res(r).get("lr") is not None]
    lrs = sorted({_res(r)["lr"] for r in with_lr})
    if tuned and lrs:
        out.append("Learning rates were tuned per strategy with the same budget (see Learning-rate sensitivity): "
                   + _rates(with_lr) + ".")
    elif len(lrs) > 1:
        out.append("Learning rate differs per strategy (" + _rates(with_lr) + "); none was tuned per strategy here.")
    elif lrs:
        out.append(f"The same learning rate ({lrs[0]:g}) for every strategy: it may suit some strategies better "
                   "than others (LoRA and head-only usually want a higher one).")
    epochs = sorted({_res(r)["epochs"] for r in trained if _res(r).get("epochs") is not None})
    if len(epochs) > 1:
        out.append("Epochs differ per strategy: " + ", ".join(
            f"{r['strategy']} {r['resolved']['epochs']}" for r in trained if _res(r).get("epochs")) + ".")
    over = frame[flags_of(frame).map(lambda fl: "overfitting" in fl) & ~unrankable_mask(frame)]
    out += [_advice(row) for _, row in over.iterrows()]
    if _res(records[0]).get("device") == "cpu":
        out.append("Peak memory on CPU is the process's peak resident memory, which includes the framework "
                   "itself; compare differences between runs rather than absolute values.")
    return out
