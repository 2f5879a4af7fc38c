#!/usr/bin/env bash
# Evidence for the Reuters twins' max_length: full fine-tuning of MiniLM-L6 on the R8 and R52 twins'
# slices (the recipes' limits), one seed, 3 epochs, body and head at their default rates, at each
# max_length given (default: 64 128). Validation macro-F1 decides; test is printed for reference only.
# Run: bash benchmarks/max_length_reuters.sh OUT [LENGTH ...]   (about 8 minutes on 2 CPU cores for 64 128)
set -euo pipefail
out=${1:-tunebench-out/max-length}; shift || true
lengths=${*:-64 128}
mkdir -p "$out"
for data in "reuters-r8 1000 300 800" "reuters-r52 800 300 600"; do
  set -- $data
  for n in $lengths; do
    tunebench run --dataset "$1" --train-limit "$2" --val-limit "$3" --test-limit "$4" --model minilm-l6 \
      --max-length "$n" -s full --epochs 3 --batch-size 16 --seed 0 --no-checkpoints \
      -o "$out/$1-$n" > "$out/$1-$n.log" 2>&1 || { echo "$1 $n failed: see $out/$1-$n.log"; exit 1; }
  done
done
python - "$out" <<'PY'
import json, sys
from pathlib import Path
print("| data | max_length | val macro-F1 | test macro-F1 (not used) | train s | diagnosis |")
print("|---|---:|---:|---:|---:|---|")
folders = [p for p in Path(sys.argv[1]).iterdir() if p.is_dir()]
for folder in sorted(folders, key=lambda p: (p.name.rsplit("-", 1)[0], int(p.name.rsplit("-", 1)[1]))):
    data, n = folder.name.rsplit("-", 1)
    r = json.loads((folder / "results.json").read_text())["runs"][0]
    print(f"| {data} | {n} | {r['val']['macro_f1']:.3f} | {r['test']['macro_f1']:.3f} | "
          f"{r['resources']['train_time_s']:.0f} | {r['diagnosis']['diagnosis']} |")
PY
