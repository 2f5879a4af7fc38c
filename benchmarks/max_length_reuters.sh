#!/usr/bin/env bash
# Evidence for the Reuters twins' max_length: full fine-tuning of MiniLM-L6 on the R8 and R52 twins'
# slices (the recipes' limits), 3 epochs, body and head at their default rates, at each max_length
# given (default: 64 128), on the seeds in $SEEDS (default: 0). Validation macro-F1 decides; test is
# printed for reference only.
# Run: [SEEDS="0 1 2"] bash benchmarks/max_length_reuters.sh OUT [LENGTH ...]
# (about 8 minutes on 2 CPU cores for 64 128 on one seed; 25 on three)
set -euo pipefail
out=${1:-tunebench-out/max-length}; shift || true
lengths=${*:-64 128}
seeds=${SEEDS:-0}
mkdir -p "$out"
for data in "reuters-r8 1000 300 800" "reuters-r52 800 300 600"; do
  set -- $data
  for n in $lengths; do
    tunebench sweep --dataset "$1" --train-limit "$2" --val-limit "$3" --test-limit "$4" --model minilm-l6 \
      --max-length "$n" -s full --epochs 3 --batch-size 16 --seeds "$seeds" --no-checkpoints \
      -o "$out/$1-$n" > "$out/$1-$n.log" 2>&1 || { echo "$1 $n failed: see $out/$1-$n.log"; exit 1; }
  done
done
python - "$out" <<'PY'
import json, statistics, sys
from pathlib import Path

def spread(values):
    mean = statistics.fmean(values)
    return f"{mean:.3f}" if len(values) == 1 else f"{mean:.3f} ± {statistics.stdev(values):.3f}"

print("| data | max_length | seeds | val macro-F1 per seed | val macro-F1 | test macro-F1 (not used) "
      "| train s (mean) | diagnoses |")
print("|---|---:|---:|---|---:|---:|---:|---|")
folders = [p for p in Path(sys.argv[1]).iterdir() if p.is_dir()]
for folder in sorted(folders, key=lambda p: (p.name.rsplit("-", 1)[0], int(p.name.rsplit("-", 1)[1]))):
    data, n = folder.name.rsplit("-", 1)
    runs = sorted(json.loads((folder / "results.json").read_text())["runs"], key=lambda r: r["resolved"]["seed"])
    val = [r["val"]["macro_f1"] for r in runs]
    test = [r["test"]["macro_f1"] for r in runs]
    seconds = statistics.fmean(r["resources"]["train_time_s"] for r in runs)
    diagnoses = ", ".join(sorted({r["diagnosis"]["diagnosis"] for r in runs}))
    print(f"| {data} | {n} | {len(runs)} | {' '.join(f'{v:.3f}' for v in val)} | {spread(val)} | "
          f"{spread(test)} | {seconds:.0f} | {diagnoses} |")
PY
