"""What a study costs: a price table in $/hour per device, cost per run, and per device.

Prices are approximate public on-demand rates (one GPU, Linux, us-east, 2025) and are meant to
be edited: ``tunebench report OUT --price T4=0.35 --price L4=0.80``.  Relative speeds are rough
assumptions for a base-size encoder, used only to *estimate* a study's time on a device it did
not run on; the device a run used is always priced from its measured time.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

from tunebench.errors import SpecError

#: $/hour, one device: T4 as in the financial-sentiment study (g4dn.xlarge), A10G (g5.xlarge),
#: A100 40 GB and H100 80 GB (one eighth of p4d.24xlarge / p5.48xlarge), CPU (8 vCPU, c6i.2xlarge).
DEFAULT_PRICES: dict[str, float] = {"T4": 0.526, "A10G": 1.006, "A100": 4.096, "H100": 6.88, "CPU": 0.34}

#: assumed training throughput relative to a T4 (rough: fp16/bf16 encoder fine-tuning).
RELATIVE_SPEED: dict[str, float] = {"T4": 1.0, "A10G": 2.0, "A100": 5.0, "H100": 9.0, "CPU": 0.08}


def parse_prices(items: list[str] | None) -> dict[str, float]:
    """The default price table updated with ``NAME=USD_PER_HOUR`` items (names are case-insensitive)."""
    prices = dict(DEFAULT_PRICES)
    for item in items or []:
        name, sep, value = item.partition("=")
        name = name.strip()
        try:
            usd = float(value)
        except ValueError:
            usd = math.nan
        if not sep or not name or not math.isfinite(usd) or usd < 0:
            raise SpecError(f"--price must look like NAME=USD_PER_HOUR with a number >= 0, e.g. T4=0.526 "
                            f"(got '{item}')")
        known = {k.lower(): k for k in prices}
        prices[known.get(name.lower(), name)] = usd
    return prices


def device_key(record: dict[str, Any], prices: dict[str, float]) -> str | None:
    """The price-table row a run's device matches: CPU for CPU runs, a GPU name found in the device name."""
    env = record.get("environment") or {}
    if env.get("device_type", record["resolved"].get("device")) == "cpu":
        return next((k for k in prices if k.lower() == "cpu"), None)
    name = str(env.get("device", "")).lower()
    matches = [k for k in prices if k.lower() != "cpu" and k.lower() in name]
    return max(matches, key=len) if matches else None  # "A100" over "A10" when both are priced


def run_cost(record: dict[str, Any], prices: dict[str, float]) -> float | None:
    """Training cost in USD: measured train time times the price of the run's device (None if unpriced)."""
    key = device_key(record, prices)
    if key is None:
        return None
    return record["resources"]["train_time_s"] / 3600.0 * prices[key]


def cost_per_f1_point(cost: float | None, macro_f1: float) -> float | None:
    """USD per point (0.01) of test macro-F1."""
    if cost is None or macro_f1 <= 0:
        return None
    return cost / (100.0 * macro_f1)


@dataclass(frozen=True)
class DeviceCost:
    device: str
    usd_per_hour: float
    hours: float | None
    usd: float | None
    basis: str


def study_cost_by_device(records: list[dict[str, Any]], prices: dict[str, float]) -> list[DeviceCost]:
    """What the study's training would cost on each priced device.

    Measured where the runs ran there; otherwise the measured time scaled by the assumed relative
    speed of the two devices, and marked as an estimate.
    """
    measured: dict[str, float] = {}
    for r in records:
        key = device_key(r, prices)
        if key is not None:
            measured[key] = measured.get(key, 0.0) + r["resources"]["train_time_s"]
    rows = []
    for name, usd_h in prices.items():
        if name in measured:
            hours, basis = measured[name] / 3600.0, "measured"
        else:
            hours, basis = _estimate_hours(name, measured)
        rows.append(DeviceCost(name, usd_h, hours, None if hours is None else hours * usd_h, basis))
    return rows


def _estimate_hours(name: str, measured: dict[str, float]) -> tuple[float | None, str]:
    known = [(k, s) for k, s in sorted(measured.items()) if k in RELATIVE_SPEED]
    if name not in RELATIVE_SPEED or not known:
        return None, "no speed estimate (add the device's relative speed or run the study on it)"
    ref, seconds = known[0]
    factor = RELATIVE_SPEED[ref] / RELATIVE_SPEED[name]
    return seconds * factor / 3600.0, f"estimate: measured {ref} time x {factor:.3g} (assumed relative speed)"


@dataclass
class PrefixShare:
    """One frozen-prefix depth's cache over a study's runs (final runs and tuning trials alike)."""

    layers: int
    strategies: list[str]
    runs: int  # runs that trained on the cache
    computed: int  # of them, the runs that computed it (the others reused it: tunebench.training.prefix)
    seconds: float  # what computing it cost, counted in each run's train (and validation) time

    @property
    def amortised(self) -> float:
        """The seconds actually spent computing the cache, per run that used it."""
        return self.seconds * self.computed / max(self.runs, 1)


def prefix_shares(runs: list[dict[str, Any]], trials: list[dict[str, Any]]) -> list[PrefixShare]:
    """Per frozen depth, how many runs shared one frozen-prefix cache and what it cost per run and amortised."""
    by: dict[int, list[dict[str, Any]]] = {}
    for r in [*runs, *trials]:
        res = r.get("resources") or {}
        if res.get("prefix_cache_bytes") and res.get("frozen_prefix_layers"):
            by.setdefault(int(res["frozen_prefix_layers"]), []).append(r)
    out = []
    for layers, group in sorted(by.items()):
        res = [g["resources"] for g in group]
        made = [x for x in res if not x.get("prefix_cache_shared")]
        seconds = max(float(x.get("prefix_cache_s") or 0.0) for x in (made or res))
        names = sorted({(g.get("tuning") or {}).get("strategy") or untuned_label(g["strategy"]) for g in group})
        out.append(PrefixShare(layers, names, len(group), len(made), seconds))
    return out


def untuned_label(label: str) -> str:
    """``partial:k=2`` from a tuned run's ``partial:k=2,lr=0.000316,head_lr=0.000949`` (``full`` from ``full:lr=…``)."""
    out = re.sub(r"[:,](head_)?lr=[^,]*", "", label)
    return out.replace(",", ":", 1) if ":" not in out else out
