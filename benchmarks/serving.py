"""What serving costs, measured with more repetitions than a study takes (issue 27, part 2).

A study times each final run briefly (48 single predictions, 4 batches: ``tunebench.training.serving``);
this script runs the same measurement, longer, on the default study's model and data: MiniLM-L6,
validation snippets of the built-in Rotten Tomatoes (max length 64), 2 threads, for a full model and
LoRA adapters of two ranks — as trained, merged, and exported to ONNX Runtime.  The adapters are
freshly initialised with their B matrices drawn at random (a trained adapter's values do not change
its cost; LoRA's B starts at zero, which would merge to nothing).  Run it alone on the machine.

    python benchmarks/serving.py                      # about 3 minutes on 2 cores
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
from datetime import datetime, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--strategies", nargs="*", default=["full", "lora:r=8", "lora:r=64"])
    parser.add_argument("--examples", type=int, default=200, help="single predictions timed per form")
    parser.add_argument("--batches", type=int, default=20, help="batches of 32 timed per form")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "serving.json")
    args = parser.parse_args()

    import numpy as np
    import torch

    from tunebench.data.loading import load_dataset_bundle
    from tunebench.methods import build_strategy
    from tunebench.spec.strategy import parse_strategy
    from tunebench.spec.study import default_study
    from tunebench.training import batching, serving
    from tunebench.training.model_catalog import model_folder
    from tunebench.training.modeling import load_classifier, load_tokenizer

    torch.set_num_threads(2)
    serving.LATENCY_EXAMPLES, serving.THROUGHPUT_BATCHES = args.examples, args.batches
    spec = default_study()
    bundle = load_dataset_bundle(spec.data, spec.training.seed)
    source = model_folder(spec.model.name)
    tokenizer = load_tokenizer(source)
    split = batching.encode_split(tokenizer, bundle.validation.texts, None, list(bundle.validation.labels),
                                  spec.model.max_length)
    machine = (subprocess.run(["lscpu"], capture_output=True, text=True).stdout.split("Model name:")[-1]
               .splitlines()[0].strip())
    rows = []
    for label in args.strategies:
        torch.manual_seed(0)
        model = build_strategy(parse_strategy(label)).prepare(load_classifier(source, bundle.label_names))
        with torch.no_grad():
            for name, p in model.named_parameters():
                if "lora_B" in name:
                    p.normal_(0, 0.02)
        found = serving.measure_serving(model, split, tokenizer.pad_token_id or 0, torch.device("cpu"), "fp32",
                                        onnx=True)
        for form, part in (("as trained", found), ("merged", found.get("merged")), ("ONNX Runtime", found.get("onnx"))):
            if part:
                rows.append({"strategy": label, "form": form, **{k: part.get(k) for k in (
                    "latency_ms_p50", "latency_ms_p95", "throughput_per_s", "deploy_bytes", "max_prob_diff")}})
                print(rows[-1], flush=True)
    result = {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "machine": machine,
              "threads": torch.get_num_threads(), "torch": torch.__version__,
              "capability": torch.backends.cpu.get_cpu_capability(), "python": platform.python_version(),
              "examples": int(min(len(split), args.examples)), "batches_of_32": args.batches,
              "median_tokens": float(np.median(split.lengths)), "rows": rows}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print("\n| strategy | form | batch-1 p50 ms | batch-1 p95 ms | batch-32 ex/s | deploy MB | max Δ probability |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for r in rows:
        diff = "" if r["max_prob_diff"] is None else f"{r['max_prob_diff']:.1e}"
        print(f"| {r['strategy']} | {r['form']} | {r['latency_ms_p50']:.2f} | {r['latency_ms_p95']:.2f} | "
              f"{r['throughput_per_s']:.1f} | {r['deploy_bytes'] / 2**20:.1f} | {diff} |")
    print(f"\nwritten: {args.out}")


if __name__ == "__main__":
    main()
