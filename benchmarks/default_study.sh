#!/usr/bin/env bash
# The README's default-study figures: `tunebench run` (no options) timed from a fresh TUNEBENCH_HOME
# (the dataset is downloaded and cached as a new user's first run does), then the per-configuration
# table the README shows and the recommendation sentence. Run it alone on the machine (2 cores: another
# torch process slows both about 4x). Usage: benchmarks/default_study.sh [OUTPUT_DIR]
set -euo pipefail
out="${1:-$(mktemp -d)/default-study}"
home="$(mktemp -d)"
echo "machine: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores," \
     "torch $(python -c 'import torch; print(torch.__version__, torch.backends.cpu.get_cpu_capability())')," \
     "commit $(git rev-parse --short HEAD 2>/dev/null || echo '?'), $(date -u +%F)"
TUNEBENCH_HOME="$home" /usr/bin/time -v tunebench run -o "$out" > "$out.log" 2>&1 || { tail -20 "$out.log"; exit 1; }
grep -E "Elapsed \(wall clock\)|Maximum resident set size" "$out.log"
python - "$out" <<'PY'
import sys
import pandas as pd

from tunebench.report.cost import untuned_label

out = sys.argv[1]
runs = pd.read_csv(f"{out}/results.csv")
rows = ["| strategy | chosen lr (head lr) | seeds | train s per run | test acc | test macro-F1 (mean ± std) | check per seed |",
        "|---|---:|---:|---:|---:|---:|---|"]
for config, g in runs.groupby("config", sort=False):
    label = untuned_label(config)
    head = config.split("head_lr=")[1].split(",")[0] if "head_lr=" in config else "—"
    checks = ", ".join(d.replace("still improving", "still impr.") for d in g["diagnosis"])
    rows.append(f"| {label} | {g['lr'].iloc[0]:g} ({head}) | {len(g)} | {g['train_time_s'].mean():.1f} | "
                f"{g['test_accuracy'].mean():.3f} | {g['test_macro_f1'].mean():.3f} ± {g['test_macro_f1'].std():.3f} | "
                f"{checks} |")
print("\n".join(rows))
PY
grep -A2 "^Recommended\|^No verdict" "$out.log" | head -3
grep "baselines (test macro-F1" -A1 "$out.log" | tr '\n' ' '; echo
