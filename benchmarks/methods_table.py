"""The README's table of a many-method study (recipes/peft-methods-offline.yaml): one row per configuration
with its chosen rates, cost and the report's verdict, read from a study's output folder.

    python benchmarks/methods_table.py tunebench-out/peft-methods-offline

Quality and outcomes are the report's section 3 ("Ranking and significance": two-level test, Holm);
cost is results_by_config.csv's (means over seeds) and results.csv's (peak memory, bytes to save).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

from tunebench.report.cost import untuned_label


def significance_rows(report: Path) -> dict[str, dict[str, str]]:
    """Section 3's table of report.md, by configuration."""
    text = report.read_text(encoding="utf-8")
    section = text.split("## 3. Ranking and significance", 1)[1].split("\n## ", 1)[0]
    lines = [ln for ln in section.splitlines() if ln.startswith("|")]
    header = _cells(lines[0])
    rows = {}
    for line in lines[2:]:
        row = dict(zip(header, _cells(line), strict=False))
        rows[row["configuration"]] = row
    return rows


def _cells(line: str) -> list[str]:
    """A Markdown table row's cells, with the report's escapes undone."""
    return [c.strip().replace("\\_", "_").replace("\\[", "[").replace("\\]", "]").replace("&lt;", "<")
            for c in line.strip("|").split("|")]


def main(out: Path) -> None:
    by_config = pd.read_csv(out / "results_by_config.csv")
    runs = pd.read_csv(out / "results.csv")
    sig = significance_rows(out / "report.md")
    print("| method | chosen lr (head lr) | trainable params | bytes to save | train s (mean) | peak MB | "
          "test macro-F1 (mean ± std) | Δ vs reference [95% CI] | p (Holm) | outcome | vs floor | check |")
    print("|---|---:|---:|---:|---:|---:|---:|---|---:|---|---|---|")
    by_config = by_config.assign(order=by_config.config.map(lambda c: list(sig).index(c) if c in sig else 999))
    for _, r in by_config.sort_values("order").iterrows():
        mine = runs[runs.config == r.config]
        s = sig.get(r.config, {})
        lr = mine.lr.iloc[0]
        head = r.config.split("head_lr=")[1].split(",")[0] if "head_lr=" in r.config else "—"
        save = mine.save_bytes.iloc[0]
        size = f"{save / 2**20:.1f} MB" if save >= 2**20 else f"{save / 2**10:.0f} KB"
        print(f"| {untuned_label(r.config)} | {lr:g} ({head}) | {int(r.trainable_params):,} | {size} | "
              f"{r.train_time_s_mean:.1f} | {mine.peak_memory_mb.mean():.0f} | "
              f"{r.test_macro_f1_mean:.3f} ± {r.test_macro_f1_std:.3f} | {s.get('Δ vs reference [95% CI]', '')} | "
              f"{s.get('p (Holm)', '')} | {s.get('outcome', '')} | {s.get('vs floor', '')} | {r.diagnosis} |")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
