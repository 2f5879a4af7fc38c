"""Issue 7's check: one rank × LR grid with 3 seeds, run locally and on a local Ray cluster, identical.

Runs one study spec (written below) twice — ``tunebench run SPEC`` and ``tunebench run SPEC --backend
ray`` (Ray starts a local, single-machine cluster for the driver) — on MiniLM-L6 and a small SNLI
slice, both with the same number of torch threads per run (``OMP_NUM_THREADS`` locally,
``execution.cpus_per_run`` on Ray: another thread count sums floats in another order), then compares
every run's metrics in ``results.csv`` and every configuration's mean ± std and 95 % CI in
``results_by_config.csv``, leaving out the columns that measure time, memory or money (those
differ between any two runs).  Also checks that both reports carry the significance section.

    python benchmarks/grid_local_vs_ray.py            # 2 ranks × 2 LRs × 3 seeds = 12 runs per backend
    python benchmarks/grid_local_vs_ray.py --keep     # keep the output folders for a look
"""

from __future__ import annotations

import argparse
import csv
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

THREADS = 2
SPEC = f"""\
name: grid
data: {{source: snli, train_limit: 240, val_limit: 100, test_limit: 300}}
model: {{name: minilm-l6, max_length: 64}}
strategies: [lora]
training: {{epochs: 2, batch_size: 16}}
sweep:
  grid: {{lora.r: [4, 8], lr: [2.0e-4, 5.0e-4]}}
  seeds: [0, 1, 2]
execution: {{cpus_per_run: {THREADS}}}
"""
#: columns that measure the machine, not the model: they differ between any two runs
MACHINE = ("time", "per_s", "memory", "bytes", "cost", "usd", "checkpoint", "device", "processes")


def study(spec: Path, out: Path, backend: str) -> float:
    cmd = [sys.executable, "-m", "tunebench", "run", str(spec), "--backend", backend, "-o", str(out)]
    print("$", " ".join(cmd[2:]), flush=True)
    started = time.perf_counter()
    subprocess.run(cmd, check=True, env={**os.environ, "OMP_NUM_THREADS": str(THREADS)})
    return time.perf_counter() - started


def table(path: Path, key: str) -> dict[str, dict[str, str]]:
    with path.open() as handle:
        rows = list(csv.DictReader(handle))
    return {row[key]: {k: v for k, v in row.items() if not any(m in k for m in MACHINE)} for row in rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", action="store_true", help="keep the two output folders")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="tunebench-grid-"))
    try:
        spec = root / "grid.yaml"
        spec.write_text(SPEC)
        print(SPEC)
        seconds = {backend: study(spec, root / backend, backend) for backend in ("local", "ray")}
        local, ray = root / "local", root / "ray"
        runs = table(local / "results.csv", "run"), table(ray / "results.csv", "run")
        configs = table(local / "results_by_config.csv", "config"), table(ray / "results_by_config.csv", "config")
        compared = sorted(next(iter(runs[0].values())))
        print(f"\nruns: {len(runs[0])} local, {len(runs[1])} ray; configurations: {len(configs[0])}")
        print(f"wall time: local {seconds['local']:.0f} s, ray {seconds['ray']:.0f} s (Ray start-up included)")
        print(f"compared per run: {', '.join(compared)}")
        same_runs = runs[0] == runs[1]
        same_configs = configs[0] == configs[1]
        for run_id in sorted(set(runs[0]) | set(runs[1])):
            if runs[0].get(run_id) != runs[1].get(run_id):
                print(f"  differs: {run_id}: {runs[0].get(run_id)} vs {runs[1].get(run_id)}")
        print(f"results.csv identical (machine columns left out): {same_runs}")
        print(f"results_by_config.csv identical (machine columns left out): {same_configs}")
        for name, row in sorted(configs[0].items()):
            print(f"  {name}: test macro-F1 {float(row['test_macro_f1_mean']):.3f} ± {float(row['test_macro_f1_std']):.3f} "
                  f"[{float(row['test_macro_f1_ci_low']):.3f}, {float(row['test_macro_f1_ci_high']):.3f}]")
        significance = all("Ranking and significance" in (d / "report.md").read_text() for d in (local, ray))
        print(f"both reports rank with significance: {significance}")
        if not (same_runs and same_configs and significance):
            raise SystemExit(1)
    finally:
        if args.keep:
            print(f"outputs kept in {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
