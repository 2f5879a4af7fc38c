"""The report's serving section: what each configuration costs to run once trained (issue 27, part 2).

From each run's ``serving`` record (:mod:`tunebench.training.serving`): latency one example at a time,
throughput in batches, the bytes to deploy and dollars per 1,000 predictions at the run's device price —
for a PEFT adapter as trained and merged into the base weights.  A study stored before the measurement
has none: the section is left out.
"""

from __future__ import annotations

from typing import Any

from tunebench.report.cost import device_key
from tunebench.report.document import Para, Section, cell, text_table
from tunebench.report.sections import Context


def usd_per_1000(per_s: float | None, record: dict[str, Any], prices: dict[str, float],
                 on_cpu: bool = False) -> float | None:
    """Dollars per 1,000 predictions at ``per_s`` examples/s on the run's device at its price (``on_cpu``: the CPU's,
    where ONNX Runtime ran); None where unpriced."""
    key = next((k for k in prices if k.lower() == "cpu"), None) if on_cpu else device_key(record, prices)
    if key is None or not per_s:
        return None
    return 1000.0 / per_s / 3600.0 * prices[key]


def serving_section(ctx: Context) -> Section | None:
    rows, notes = [], []
    for r in ctx.records:
        serving = r.get("serving")
        if not serving:
            continue
        onnx = serving.get("onnx") or {}
        for form, part in (("as trained", serving), ("merged", serving.get("merged")),
                           ("ONNX Runtime", None if "note" in onnx else serving.get("onnx"))):
            if part is None:
                continue
            diff = part.get("max_prob_diff")
            rows.append([r["strategy"], form, part.get("device", serving["device"]), cell(part["latency_ms_p50"], ".2f"),
                         cell(part["latency_ms_p95"], ".2f"), cell(part["throughput_per_s"], ".1f"),
                         cell(part["deploy_bytes"] / 2**20, ".1f"),
                         cell(usd_per_1000(part["throughput_per_s"], r, ctx.prices, form == "ONNX Runtime"), ".2g"),
                         "" if diff is None else f"{diff:.1e}"])
        notes += [f"{r['strategy']}: {note}" for note in (serving.get("merge_note"), onnx.get("note")) if note]
    if not rows:
        return None
    first = next(r["serving"] for r in ctx.records if r.get("serving"))
    intro = Para(
        f"Each configuration's first run, measured after training on its own device ({first['precision']}): "
        f"latency is one example at a time (batch 1, p50 and p95 over {first['latency_examples']} validation "
        f"examples after 4 untimed), throughput is examples/s in batches of {first['batch']}; a PEFT adapter is "
        "timed as trained (computed beside the frozen weights) and merged into them (peft's merge_adapter), with the "
        "largest difference of their probabilities; with --onnx, the model (merged where it merges) exported to ONNX "
        "and run by ONNX Runtime on the CPU. Deploy MB: the parameters the served model holds (ONNX: the file). "
        "$ per 1,000 "
        "predictions: at the batched throughput and the device's price (see Cost). One measurement per run, on a "
        "machine that may be doing other work: compare within a study, not across machines.")
    parts: list[Any] = [intro, text_table(
        ["run", "form", "device", "batch-1 p50 ms", "batch-1 p95 ms", "batched ex/s", "deploy MB",
         "$ per 1,000 predictions", "max |Δ probability| vs as trained"], rows, key="serving")]
    if notes:
        parts.append(Para("Not measured: " + "; ".join(notes)))
    return Section("serving", "Serving cost", parts)
