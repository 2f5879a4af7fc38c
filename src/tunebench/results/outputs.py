"""Tables from stored run records: results.csv, results.json, summary.md (and the terminal table).

Everything here is a pure function of the records in the store, so outputs can be rebuilt at
any time without retraining.  Files are written to a temporary name and renamed into place,
so a reader never sees half a file.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from tunebench.faults import atomic_write
from tunebench.results.decisions import task_of
from tunebench.results.diagnosis import FLAGS, diagnose_record
from tunebench.results.text import md
from tunebench.spec import metrics
from tunebench.spec.strategy import option_columns

#: every method option (from the method registry), as a results.csv column; ``r`` is named ``rank``
OPTION_COLUMNS = ["rank" if name == "r" else name for name in option_columns()]

#: results.csv's columns before and after the metrics
BEFORE_METRICS = [
    "run", "strategy", "label", "config", "kind", *OPTION_COLUMNS, "lr", "scheduler", "epochs", "best_epoch",
    "trainable_params", "total_params", "trainable_share_pct", "train_time_s", "eval_time_s",
    "examples_per_s", "tokens_per_s", "peak_memory_mb", "save_bytes"]
AFTER_METRICS = ["precision", "device", "seed", "status", "failure", "diagnosis", "diagnosis_advice",
                 *(f"serve_{k}" for k in ("latency_ms_p50", "latency_ms_p95", "per_s", "bytes")),
                 *(f"merged_{k}" for k in ("latency_ms_p50", "latency_ms_p95", "per_s", "bytes")),
                 *(f"onnx_{k}" for k in ("latency_ms_p50", "latency_ms_p95", "per_s", "bytes"))]


def metric_fields(task: str = "single_label") -> list[tuple[str, str]]:
    """results.csv's metrics as (part, metric), from the metric table (:mod:`tunebench.spec.metrics`): the
    headline (the task's default selection) metric on validation, then every metric of the task shape on test;
    the column is ``part_metric``."""
    return [("val", metrics.default_for(task)), *(("test", name) for name in metrics.names(task=task))]


def frame_task(frame: pd.DataFrame) -> str:
    """The task shape of a results frame, from its metric columns (:func:`columns`)."""
    return "regression" if "test_r2" in frame else "multi_label" if "test_micro_f1" in frame else "single_label"


def columns(task: str = "single_label") -> list[str]:
    """results.csv's columns, in order, as the metric table is when called (a multi-label study's add micro-F1
    and Hamming loss)."""
    return [*BEFORE_METRICS, *(f"{part}_{name}" for part, name in metric_fields(task)), *AFTER_METRICS]


#: results.csv's columns, in order (as :func:`columns` computed them on import)
COLUMNS = columns()


def _r4(value: Any) -> float | None:
    return None if value is None else round(value, 4)


def _option(value: Any) -> Any:
    return "+".join(map(str, value)) if isinstance(value, list) else value


def diagnosis_text(diagnosis: dict[str, Any] | None) -> str | None:
    """The ``diagnosis`` column: the flags joined by " + " ("collapsed + still improving"), "ok",
    "baseline", or None for a run without a result."""
    if diagnosis is None:
        return None
    return " + ".join(diagnosis["flags"]) if diagnosis["flags"] else diagnosis["diagnosis"]


def summary_row(record: dict[str, Any]) -> dict[str, Any]:
    """One flat row of the headline numbers of a run record (empty metrics for a run that did not finish)."""
    diagnosis = diagnose_record(record)  # stored by the study, or computed for records written before it
    spec = record["spec"]
    res = record.get("resources") or {}
    parts = {"test": record.get("test") or {}, "val": record.get("val") or {}}
    params = record.get("params") or {}
    peak = res.get("cuda_max_allocated_mb") or res.get("peak_rss_mb")
    resolved = record.get("resolved") or {}
    failure = record.get("failure") or {}
    step = f" at step {failure['step']}" if failure.get("step") is not None else ""
    loss = failure.get("last_finite_loss")
    last = f", last finite loss {loss:.4g}" if isinstance(loss, float) else ""
    return {
        "run": record["run_id"],
        "strategy": record["strategy"],
        "label": record.get("label", record["strategy"]),
        "config": record.get("group") or record.get("label", record["strategy"]),
        "kind": spec["kind"],
        **{column: _option(spec.get("r" if column == "rank" else column)) for column in OPTION_COLUMNS},
        "lr": resolved.get("lr"),
        "scheduler": resolved.get("scheduler"),
        "epochs": resolved.get("epochs"),
        "best_epoch": record.get("best_epoch"),
        "trainable_params": params.get("trainable"),
        "total_params": params.get("total"),
        "trainable_share_pct": params.get("share_pct"),
        "train_time_s": round(res["train_time_s"], 2) if res else None,
        "eval_time_s": round(res["eval_time_s"], 2) if res else None,
        "examples_per_s": round(res["train_examples_per_s"], 1) if res else None,
        "tokens_per_s": round(res["train_tokens_per_s"], 0) if res else None,
        "peak_memory_mb": peak,
        "save_bytes": record.get("save_bytes"),
        **{f"{part}_{name}": _r4(parts[part].get(name)) for part, name in metric_fields(task_of([record]))},
        "precision": resolved.get("precision"),
        "device": resolved.get("device"),
        "seed": resolved.get("seed"),
        "status": record["status"],
        "failure": f"{failure.get('error', '')}{step}{last}" if failure else None,
        "diagnosis": diagnosis_text(diagnosis),
        "diagnosis_advice": (diagnosis or {}).get("advice") or None,
        **serving_columns(record.get("serving")),
    }


def serving_columns(serving: dict[str, Any] | None) -> dict[str, Any]:
    """results.csv's serving figures (:mod:`tunebench.training.serving`): as trained, merged where it merged, and
    in ONNX Runtime where the study asked (``--onnx``)."""
    out: dict[str, Any] = {}
    for prefix, part in (("serve", serving), ("merged", (serving or {}).get("merged")),
                         ("onnx", (serving or {}).get("onnx"))):
        part = part or {}
        out.update({f"{prefix}_latency_ms_p50": part.get("latency_ms_p50"),
                    f"{prefix}_latency_ms_p95": part.get("latency_ms_p95"),
                    f"{prefix}_per_s": part.get("throughput_per_s"), f"{prefix}_bytes": part.get("deploy_bytes")})
    return out



def results_frame(records: list[dict[str, Any]]) -> pd.DataFrame:
    return pd.DataFrame([summary_row(r) for r in records], columns=columns(task_of(records)))


def seed_metrics(task: str = "single_label") -> list[tuple[str, str]]:
    """(part, metric) summarised per configuration over its seeds (results_by_config.csv, the report's
    intervals): the headline metric on validation, then each metric of the table that can select on test."""
    return [("val", metrics.default_for(task)),
            *(("test", name) for name in metrics.names(can_select=True, task=task))]


def config_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per configuration: its seeds, and per metric the mean, std and 95% t interval of the mean over them."""
    from tunebench.results.stats import summarize

    rows = []
    for config, part in frame[frame["status"] == "finished"].groupby("config", sort=False):
        row: dict[str, Any] = {"config": config, "strategy": part["strategy"].iloc[0], "seeds": len(part),
                               "seed_list": " ".join(str(s) for s in part["seed"])}
        for metric in (f"{part}_{name}" for part, name in seed_metrics(frame_task(frame))):
            s = summarize(part[metric].tolist())
            row.update({f"{metric}_mean": round(s.mean, 4), f"{metric}_std": round(s.std, 4),
                        f"{metric}_ci_low": round(s.low, 4), f"{metric}_ci_high": round(s.high, 4)})
        row["train_time_s_mean"] = round(float(part["train_time_s"].mean()), 2)
        row["diagnosis"] = config_diagnosis(part["diagnosis"].tolist())
        row["trainable_params"] = int(part["trainable_params"].iloc[0])
        rows.append(row)
    return pd.DataFrame(rows)


def config_flags(values: list[Any]) -> list[str]:
    """The flags a configuration has over its seeds' diagnoses (``"still improving + overfitting"``, ...):
    *collapsed* when any seed collapsed (a rate that collapses one seed is not one to recommend); any
    other flag when most of its seeds raise it.  One seed in three gaining a point in its last epoch
    on a few hundred validation examples is noise, not a configuration that needs more epochs; each
    run keeps its own diagnosis in results.csv and the report's convergence table."""
    runs = [v for v in values if isinstance(v, str) and v != "baseline"]
    counts = {flag: sum(flag in v.split(" + ") for v in runs) for flag in FLAGS}
    return [flag for flag in FLAGS if counts[flag] and (flag == "collapsed" or 2 * counts[flag] > len(runs))]


def config_diagnosis(values: list[Any]) -> str | None:
    """A configuration's diagnosis over its seeds (:func:`config_flags`), "ok" when none holds."""
    flags = config_flags(values)
    if flags:
        return " + ".join(flags)
    known = [v for v in values if isinstance(v, str)]
    return ("ok" if any(v != "baseline" for v in known) else known[0]) if known else None


def check_mark(value: Any) -> str:
    """The terminal table's and summary's mark of a diagnosis: "⚠ still improving", "ok", "reference"."""
    if not isinstance(value, str) or not value:
        return "—"
    if value == "baseline":
        return "reference"
    return value if value == "ok" else f"⚠ {value}"


def repeated(frame: pd.DataFrame) -> bool:
    """True when some configuration ran with several seeds."""
    done = frame[frame["status"] == "finished"]
    return bool(len(done)) and done["config"].duplicated().any()


def write_outputs(records: list[dict[str, Any]], out_dir: Path) -> dict[str, Path]:
    """Write results.csv, results.json and summary.md for ``records``; return their paths."""
    out_dir = Path(out_dir)
    frame = results_frame(records)
    paths = {"csv": out_dir / "results.csv", "json": out_dir / "results.json",
             "summary": out_dir / "summary.md"}
    atomic_write(paths["csv"], frame.to_csv(index=False))
    atomic_write(paths["json"], json.dumps({"runs": records}, indent=2) + "\n")
    atomic_write(paths["summary"], summary_markdown(records, frame))
    if repeated(frame):
        paths["by_config"] = out_dir / "results_by_config.csv"
        atomic_write(paths["by_config"], config_frame(frame).to_csv(index=False))
    return paths


def _fmt_int(n: Any) -> str:
    return f"{int(n):,}" if n is not None and n == n else "—"


def _fmt_bytes(n: Any) -> str:
    if n is None:
        return "—"
    n = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GB"


def metric_display(part: str, name: str, short: bool = True) -> tuple[str, str, Callable[[Any], str]]:
    """(header, frame column, formatter) of metric ``name`` on ``part``, as the metric table shows it."""
    row = metrics.by_name(name)
    return row.header(part, short), f"{part}_{name}", lambda v: format(v, row.fmt)


def display(task: str = "single_label") -> list[tuple[str, str, Callable[[Any], str]]]:
    """(header, frame column, formatter) of the human-readable table, shared by Markdown and terminal: the task's
    headline metric on validation and test, and accuracy (a regression: RMSE) on test."""
    headline = metrics.default_for(task)
    return [
        ("strategy", "label", str),
        ("trainable", "trainable_params", _fmt_int),
        ("share %", "trainable_share_pct", lambda v: f"{v:.2f}"),
        ("lr", "lr", lambda v: f"{v:g}"),
        ("train s", "train_time_s", lambda v: f"{v:.1f}"),
        ("ex/s", "examples_per_s", lambda v: f"{v:.1f}"),
        ("peak MB", "peak_memory_mb", lambda v: "—" if v is None or v != v else f"{v:.0f}"),
        ("save", "save_bytes", _fmt_bytes),
        metric_display("val", headline),
        metric_display("test", "rmse" if task == "regression" else "accuracy"),
        metric_display("test", headline),
        ("check", "diagnosis", check_mark),
    ]


#: the single-label table (:func:`display`)
DISPLAY = display()


def _shown(fmt, value: Any) -> str:
    """``fmt(value)``, or '—' for a missing number (a run that did not finish has none)."""
    if value is None or (isinstance(value, float) and value != value):
        return "—"
    return fmt(value)


def display_rows(frame: pd.DataFrame) -> tuple[list[str], list[list[str]]]:
    """Headers and formatted rows; a run that did not finish shows its status instead of numbers."""
    shown = display(frame_task(frame))
    headers = [h for h, _, _ in shown]
    rows = []
    for _, row in frame.iterrows():
        cells = [_shown(fmt, row[col]) for _, col, fmt in shown]
        if row["status"] != "finished":
            cells[0] = f"{cells[0]} ({row['status']})"
        rows.append(cells)
    return headers, rows


def seed_table(configs: pd.DataFrame) -> list[str]:
    """Markdown lines: per configuration over its seeds, mean ± std [95% t interval of the mean]."""
    def show(row: pd.Series, metric: str) -> str:
        mean, std, low, high = (row[f"{metric}_{x}"] for x in ("mean", "std", "ci_low", "ci_high"))
        if row["seeds"] < 2:
            return f"{mean:.3f}"
        return f"{mean:.3f} ± {std:.3f} [{low:.3f}, {high:.3f}]"

    task = "regression" if "test_r2_mean" in configs else "single_label"
    headline = metrics.default_for(task)
    shown = [metric_display("test", headline, short=False),
             metric_display("test", "pearson" if task == "regression" else "accuracy"),
             metric_display("val", headline, short=False)]
    lines = ["Over seeds (mean ± std [95% t interval of the mean]):", "",
             "| configuration | seeds | " + " | ".join(h for h, _, _ in shown) + " | train s |",
             "|---|---:|" + "---:|" * len(shown) + "---:|"]
    lines += [f"| {md(r['config'])} | {r['seeds']} | " + " | ".join(show(r, col) for _, col, _ in shown)
              + f" | {r['train_time_s_mean']:.1f} |" for _, r in configs.iterrows()]
    return lines


def selection_names(records: list[dict[str, Any]]) -> str:
    """The metrics the runs' best epochs were chosen on, as a report writes them ("macro-F1")."""
    chosen = dict.fromkeys((r.get("resolved") or {}).get("selection_metric", metrics.DEFAULT_SELECTION) for r in records)
    return " / ".join(metrics.display(name) for name in chosen)


def summary_markdown(records: list[dict[str, Any]], frame: pd.DataFrame | None = None) -> str:
    """A short Markdown summary: what was compared, on what, and the headline table."""
    frame = results_frame(records) if frame is None else frame
    finished = [r for r in records if r["status"] == "finished"]
    if not finished:
        return "# tunebench study\n\nNo finished runs yet.\n"
    first = finished[0]
    data, model, env = first["data"], first["model"], first["environment"]
    lines = [f"# tunebench study: {md(first['study'])}", ""]  # every text from the data or a name: md()
    total = next((r["params"]["total"] for r in records if r.get("params")), None)
    lines.append(f"- **Model**: {md(model['name'])} ({_fmt_int(total)} parameters, "
                 f"{model.get('n_layers', '?')} layers)")
    sizes = data["sizes"]
    kinds = {"multi_label": "labels (multi-label)", "regression": "target (regression)"}.get(data.get("task", ""),
                                                                                            "classes")
    lines.append(f"- **Data**: {md(data['name'])} — {len(data['label_names'])} {kinds} "
                 f"({', '.join(md(n) for n in data['label_names'][:10])}{', …' if len(data['label_names']) > 10 else ''}); "
                 f"train {sizes['train']:,} / validation {sizes['validation']:,} / test {sizes['test']:,}")
    lines.append("- **Split hashes** (identical for every run): " +
                 ", ".join(f"{md(k)} `{md(v)}`" for k, v in data["hashes"].items()))
    seeds = sorted({r["resolved"]["seed"] for r in records})
    seed_words = f"seed {seeds[0]}" if len(seeds) == 1 else f"seeds {', '.join(map(str, seeds))}"
    lines.append(f"- **Device**: {md(env['device'])}, {env['torch_threads']} threads; precision "
                 f"{first['resolved']['precision']}; max length {first['resolved']['max_length']}; "
                 f"batch {first['resolved']['batch_size']}; {seed_words}")
    lines.append("")
    headers, rows = display_rows(frame)
    lines.append("| " + " | ".join(headers) + " |")
    lines.append("|" + "|".join("---" if i == 0 else "---:" for i in range(len(headers))) + "|")
    lines.extend("| " + " | ".join(md(c) for c in r) + " |" for r in rows)
    lines.append("")
    if repeated(frame):
        lines += seed_table(config_frame(frame)) + [""]
    done = frame[frame["status"] == "finished"]  # rankings use finished runs only
    if len(done):
        header, column, fmt = metric_display("test", metrics.default_for(frame_task(frame)), short=False)
        best = done.loc[done[column].astype(float).idxmax()]
        fastest = done.loc[done["examples_per_s"].astype(float).idxmax()]
        lines.append(f"Best {header} (one run): **{md(best['label'])}** ({fmt(best[column])}). "
                     f"Fastest training: **{md(fastest['label'])}** ({fastest['examples_per_s']:.1f} examples/s).")
    else:
        lines.append("No run has finished yet, so there is no ranking.")
    lines.append("")
    unfinished = frame[frame["status"] != "finished"]
    if len(unfinished):
        lines += ["Runs that did not finish (the next `tunebench run` tries them again):", ""]
        lines += [f"- **{md(r['label'])}**: {r['status']} — {md(r['failure'])}" for _, r in unfinished.iterrows()]
        lines.append("")
    flagged = frame[frame["diagnosis_advice"].notna()] if "diagnosis_advice" in frame else frame.iloc[:0]
    if len(flagged):
        lines += ["Convergence checks (a flagged run is not evidence that its strategy is worse):", ""]
        lines += [f"- ⚠ {md(r['diagnosis_advice'])}" for _, r in flagged.iterrows()]
        lines.append("")
    spread = ("one seed per strategy (differences of a point or two may be noise)" if not repeated(frame) else
              f"{seed_words} (report.md's Ranking and significance says which differences "
              "its test supports)")
    lines.append(f"Caveats: {spread}; "
                 "learning rates differ per strategy (see the lr column); the best epoch is chosen "
                 f"on validation {selection_names(records)}; peak memory is the process's peak RSS on CPU, or CUDA max "
                 "allocated on GPU.")
    unfinished = [r for r in records if r["status"] != "finished"]
    if unfinished:
        lines += ["", "Runs without a result:", ""] + [
            f"- {md(r['strategy'])}: {r['status']}"
            + (f" — {md(r['failure']['error'])}" if (r.get("failure") or {}).get("error") else "") for r in unfinished]
    notes = data.get("notes") or []
    if notes:
        lines += ["", "Data notes:", ""] + [f"- {md(n)}" for n in notes]
    return "\n".join(lines) + "\n"
