"""The rest of issue 5's measurements: kernels, scaling with work, and the SNLI study's padding finding.

Four tables, each run in one sitting, every row in its own child process (peak RSS is that run's):

- **kernels**: full fine-tuning on 2,000 SNLI pairs, 1 epoch — tunebench as shipped (sdpa
  attention), with eager attention, and with ``--compile`` (compile time included in train time,
  and also shown without it: the first epoch pays it).
- **sequence length**: full fine-tuning on 500 Reuters-R8 documents (long texts, so truncation
  at 64/128/256 tokens really sets the work), 1 epoch.  Cost should follow tokens.
- **training-set size**: ``partial:k=2`` on 2k/8k/32k SNLI pairs, 1 epoch.  Cost should follow
  examples.
- **padding (the SNLI study's finding)**: the reference notebooks padded every pair to 256 tokens,
  fp32, batch 8, LoRA (query, value) on all layers vs ``partial:k=2``, with Trainer + PEFT.  The
  same two strategies with tunebench's defaults (dynamic padding, length buckets, frozen-prefix
  cache), same batch 8, show where LoRA's gap to partial goes.

    python benchmarks/scaling.py                   # all four tables (about 35 minutes on 2 cores)
    python benchmarks/scaling.py --only kernels    # one table
    python benchmarks/scaling.py --quick           # tiny sizes: checks the script, numbers mean nothing
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
from datetime import datetime, timezone
from pathlib import Path
from types import SimpleNamespace

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import vs_trainer  # noqa: E402  (the same child runners, metrics and MFU formula)


def experiments(quick: bool) -> dict[str, list[dict]]:
    q = (lambda full, small: small if quick else full)  # noqa: E731
    snli, r8 = "snli", "reuters-r8"
    base = {"epochs": 1, "batch_size": 16, "max_length": 128, "test": q(1000, 64), "variant": "default"}
    return {
        "kernels": [
            {**base, "tool": "tunebench", "strategy": "full", "data": snli, "train": q(2000, 64), "variant": v}
            for v in ("default", "eager-attention", "compile")
        ],
        "sequence length": [
            {**base, "tool": "tunebench", "strategy": "full", "data": r8, "train": q(500, 32), "test": q(300, 32),
             "max_length": n}
            for n in (64, 128, 256)
        ],
        "training-set size": [
            {**base, "tool": "tunebench", "strategy": "partial:k=2", "data": snli, "train": n}
            for n in (q(2000, 64), q(8000, 128), q(32000, 256))
        ],
        "padding": [
            {**base, "tool": tool, "strategy": s, "data": snli, "train": q(1000, 32), "batch_size": 8,
             "max_length": 256, "pad_to": 256 if tool == "peer" else None}
            for tool in ("peer", "tunebench") for s in ("lora:r=8", "partial:k=2")
        ],
    }


# --- one row, in a child process ----------------------------------------------------------------


def load_work(data: str, n_train: int, n_test: int) -> dict:
    """The first SNLI pairs (as vs_trainer), or a stratified slice of a catalog dataset."""
    if data == "snli":
        return vs_trainer.load_workload(n_train, 500 if n_train >= 2000 else max(n_train // 4, 16), n_test)
    from tunebench.data.loading import load_dataset_bundle
    from tunebench.spec.parts import DataSpec

    bundle = load_dataset_bundle(DataSpec(source=data, train_limit=n_train, val_limit=max(n_train // 5, 16),
                                          test_limit=n_test), seed=0)
    work = {"labels": bundle.label_names}
    for name, split in (("train", bundle.train), ("validation", bundle.validation), ("test", bundle.test)):
        work[name] = {"s1": split.texts, "s2": split.pairs, "y": list(split.labels)}
    return work


def child(row: dict, threads: int) -> None:
    import torch

    torch.set_num_threads(threads)
    args = SimpleNamespace(epochs=row["epochs"], max_length=row["max_length"], batch_size=row["batch_size"],
                           pad_to=row.get("pad_to"), tmp=Path("/tmp/tunebench-bench"))
    work = load_work(row["data"], row["train"], row["test"])
    if row["tool"] == "peer":
        out = vs_trainer.run_peer(work, row["strategy"], args)
    else:
        out = vs_trainer.run_tunebench(work, row["strategy"], row["variant"], args)
    out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print("RESULT " + json.dumps(out))


def launch(row: dict, threads: int) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "TOKENIZERS_PARALLELISM": "false",
           "HF_HUB_OFFLINE": "1", "TRANSFORMERS_VERBOSITY": "error"}
    label = f"{row['tool']} {row['strategy']} {row['variant']} {row['data']} n={row['train']} len={row['max_length']}"
    print(f"  {label:70}", end=" ", flush=True)
    cmd = [sys.executable, __file__, "--child", json.dumps(row), "--threads", str(threads)]
    out = {**row, **vs_trainer.child_result(cmd, env, label)}
    out["ex_per_s"] = out["examples"] / out["train_s"]
    out["tokens_per_s"] = out["tokens"] / out["train_s"]
    print(f"{out['train_s']:7.1f} s {out['ex_per_s']:7.1f} ex/s {out['peak_rss_mb']:6.0f} MB acc {out['accuracy']:.3f}")
    return out


# --- tables -----------------------------------------------------------------------------------------


def render(name: str, rows: list[dict]) -> str:
    head = ("| tool | strategy | variant | data | train ex | max len | batch | train s | ex/s | tokens/s "
            "| µs/token | peak RSS MB | test acc |")
    lines = [f"### {name}", "", head, "|" + "---|" * 4 + "---:|" * 9]
    for r in rows:
        per_token = 1e6 * r["train_s"] / max(r["tokens"], 1)
        variant = r["variant"] + (f" pad {r['pad_to']}" if r.get("pad_to") else "")
        lines.append(f"| {r['tool']} | {r['strategy']} | {variant} | {r['data']} | {r['examples']} | "
                     f"{r['max_length']} | {r['batch_size']} | {r['train_s']:.1f} | {r['ex_per_s']:.1f} | "
                     f"{r['tokens_per_s']:.0f} | {per_token:.0f} | {r['peak_rss_mb']:.0f} | {r['accuracy']:.3f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=["kernels", "sequence length", "training-set size", "padding"],
                        action="append")
    parser.add_argument("--quick", action="store_true", help="tiny sizes, to check the script")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=HERE / "results" / "scaling.json")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(json.loads(args.child), args.threads)
        return
    import torch

    from tunebench.training.resources import device_name

    torch.set_num_threads(args.threads)
    peak = vs_trainer.matmul_peak_gflops()
    print(f"fp32 matmul peak: {peak:.1f} GFLOP/s on {device_name(torch.device('cpu'))}, {args.threads} threads")
    tables, results = [], {}
    for name, rows in experiments(args.quick).items():
        if args.only and name not in args.only:
            continue
        print(name)
        results[name] = [launch(row, args.threads) for row in rows]
        tables.append(render(name, results[name]))
    text = "\n\n".join(tables)
    print()
    print(text)
    if args.quick:
        return
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": device_name(torch.device("cpu")), "threads": args.threads, "matmul_peak_gflops": peak,
        "command": " ".join([Path(sys.executable).name, *sys.argv]), "results": results, "tables": text,
    }, indent=2) + "\n")
    print(f"\nwritten: {args.out}")


if __name__ == "__main__":
    main()
