#!/usr/bin/env bash
# Training throughput and peak memory of each catalog model, per strategy, on the same SNLI slice.
#
#   bash benchmarks/model_throughput.sh OUT [MODEL ...]      # default: minilm-l6 mpnet-base
#
# One `tunebench run` per model (one process, the strategies one after another), 400 training pairs,
# 1 epoch, batch 16, max length 128, each strategy at its default rate: a speed and memory reading,
# not a quality one (one epoch on 400 pairs says nothing about which strategy is better). Nothing
# else may run on the machine meanwhile. Prints one row per (model, strategy) from results.csv.
set -euo pipefail
out=${1:?usage: model_throughput.sh OUT [MODEL ...]}
shift
models=("$@")
[ ${#models[@]} -eq 0 ] && models=(minilm-l6 mpnet-base)
python - <<'EOF'
import platform, torch
print(f"# {platform.processor() or platform.machine()}, torch {torch.__version__}, "
      f"{torch.backends.cpu.get_cpu_capability()}, {torch.get_num_threads()} threads")
EOF
lscpu | grep -m1 "Model name" || true
for model in "${models[@]}"; do
    tunebench run --model "$model" --dataset snli --train-limit 400 --val-limit 100 --test-limit 200 \
        --epochs 1 --batch-size 16 --max-length 128 -s full lora:r=8 partial:k=2 head \
        -o "$out/$model" > "$out-$model.log" 2>&1
done
python - "$out" "${models[@]}" <<'EOF'
import sys
import pandas as pd
out, models = sys.argv[1], sys.argv[2:]
print("| model | strategy | trainable params | train s | examples/s | peak MB |")
print("|---|---|---:|---:|---:|---:|")
for model in models:
    table = pd.read_csv(f"{out}/{model}/results.csv")
    for _, r in table.iterrows():  # results.csv holds the fine-tuning runs only
        print(f"| {model} | {r['label']} | {int(r['trainable_params']):,} | {r['train_time_s']:.1f} | "
              f"{r['examples_per_s']:.1f} | {r['peak_memory_mb']:.0f} |")
EOF
