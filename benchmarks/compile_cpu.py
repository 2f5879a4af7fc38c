"""Does ``torch.compile`` pay on this machine? Compile time against the training time it saves (issue 30).

The default study's workload: MiniLM-L6 on its Rotten Tomatoes slice (400 training snippets, max length
64, batch 16), 3 epochs at each strategy's default rate, the attention kernel ``auto`` picks.  Each
(strategy, compile) pair runs in its own child process with an empty inductor cache, so the compile
time is what a first run on a machine pays.  Per epoch the engine's own train seconds (evaluation
excluded) are read from the run's curves: the compile time is epoch 1 compiled minus epoch 1 plain
(epoch 1 compiled = compiling + an epoch), the steady-state speed-up is plain over compiled in the
later epochs, and the break-even is the training time a run needs before compiling has paid for
itself (compile seconds / (1 - 1 / speed-up)); evaluation is compiled too and its seconds are shown.

    python benchmarks/compile_cpu.py                      # full and lora:r=8 (about 15 minutes on 2 cores)
    python benchmarks/compile_cpu.py --strategies head --epochs 2
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from datetime import datetime, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from vs_trainer import child_result  # noqa: E402  (each row its own process, as in vs_trainer)


def child(args) -> None:
    import torch

    from tunebench.methods import build_strategy
    from tunebench.spec.strategy import parse_strategy
    from tunebench.spec.study import default_study
    from tunebench.study.driver import attention_for, prepare
    from tunebench.study.plan import run_config
    from tunebench.study.run import SilentReporter
    from tunebench.training import engine
    from tunebench.training.modeling import load_classifier

    torch.set_num_threads(args.threads)
    spec = default_study()
    prepared = prepare(spec, SilentReporter())
    prepared.attention = attention_for(spec, prepared, None)
    strategy = parse_strategy(args.strategy)
    cfg = run_config(spec, strategy, "fp32")
    cfg.epochs, cfg.patience, cfg.compile = args.epochs, None, args.compile
    engine.seed_everything(0)
    method = build_strategy(strategy)
    model = load_classifier(prepared.model_source, prepared.bundle.label_names, attention=prepared.attention_kernel)
    method.total_steps = cfg.epochs * -(-len(prepared.train) // cfg.batch_size)
    model = method.prepare(model)
    result = engine.train_and_evaluate(model, prepared.train, prepared.validation, prepared.test,
                                       prepared.bundle.label_names, cfg, prepared.device,
                                       prepared.tokenizer.pad_token_id or 0,
                                       lowest_trainable_layer=method.lowest_trainable_layer, hooks=method.hooks(model))
    res = result.resources
    print("RESULT " + json.dumps({
        "epoch_train_s": [c["train_time_s"] for c in result.curves],
        "train_s": res["train_time_s"], "eval_s": res["eval_time_s"], "attention": res["attention"],
        "compiled": res["compiled"], "val_macro_f1": [c.get("val_macro_f1") for c in result.curves]}))


def launch(strategy: str, compiled: bool, args) -> dict:
    with tempfile.TemporaryDirectory(prefix="inductor-") as cache:
        env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "TOKENIZERS_PARALLELISM": "false",
               "TORCHINDUCTOR_CACHE_DIR": cache, "TRANSFORMERS_VERBOSITY": "error"}
        cmd = [sys.executable, __file__, "--child", "--strategy", strategy, "--epochs", str(args.epochs),
               "--threads", str(args.threads)] + (["--compile"] if compiled else [])
        print(f"  {strategy:10} compile={'on ' if compiled else 'off'}", end=" ", flush=True)
        out = child_result(cmd, env, f"{strategy} compile={compiled}")
    print("epochs " + ", ".join(f"{s:.1f}" for s in out["epoch_train_s"]) + f" s; eval {out['eval_s']:.1f} s")
    return out


def summarise(strategy: str, plain: dict, compiled: dict) -> dict:
    later = slice(1, None)
    steady_plain = sum(plain["epoch_train_s"][later]) / max(len(plain["epoch_train_s"][later]), 1)
    steady_comp = sum(compiled["epoch_train_s"][later]) / max(len(compiled["epoch_train_s"][later]), 1)
    compile_s = compiled["epoch_train_s"][0] - plain["epoch_train_s"][0]
    speedup = steady_plain / steady_comp if steady_comp else float("nan")
    break_even = compile_s / (1 - 1 / speedup) if speedup > 1 else None
    return {"strategy": strategy, "attention": plain["attention"], "plain_epoch_s": steady_plain,
            "compiled_epoch_s": steady_comp, "speedup": speedup, "compile_s": compile_s,
            "eval_s_plain": plain["eval_s"], "eval_s_compiled": compiled["eval_s"],
            "run_s_plain": plain["train_s"] + plain["eval_s"], "run_s_compiled": compiled["train_s"] + compiled["eval_s"],
            "break_even_train_s": break_even}


def render(rows: list[dict]) -> str:
    lines = ["| strategy | attention | epoch s (plain) | epoch s (compiled, after the first) | steady speed-up | "
             "compile s (epoch 1 extra) | eval s plain / compiled | whole run s plain / compiled | "
             "break-even training s per run |", "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        even = f"{r['break_even_train_s']:.0f}" if r["break_even_train_s"] else "never (no steady gain)"
        lines.append(f"| {r['strategy']} | {r['attention']} | {r['plain_epoch_s']:.1f} | {r['compiled_epoch_s']:.1f} | "
                     f"{r['speedup']:.2f}× | {r['compile_s']:.0f} | {r['eval_s_plain']:.1f} / {r['eval_s_compiled']:.1f} | "
                     f"{r['run_s_plain']:.0f} / {r['run_s_compiled']:.0f} | {even} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--strategies", nargs="*", default=["full", "lora:r=8"])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=HERE / "results" / "compile_cpu.json")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--strategy", help=argparse.SUPPRESS)
    parser.add_argument("--compile", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    import torch

    from tunebench.training.resources import device_name

    machine = f"{device_name(torch.device('cpu'))}, {args.threads} threads, torch {torch.__version__}, " \
              f"CPU capability {torch.backends.cpu.get_cpu_capability()}"
    print(f"machine: {machine}\nworkload: the default study's (MiniLM-L6, Rotten Tomatoes 400 / max length 64 / "
          f"batch 16), {args.epochs} epochs")
    rows = []
    for strategy in args.strategies:
        rows.append(summarise(strategy, launch(strategy, False, args), launch(strategy, True, args)))
    table = render(rows)
    print()
    print(table)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                                    "machine": machine, "epochs": args.epochs, "rows": rows, "table": table,
                                    "command": " ".join([Path(sys.executable).name, *sys.argv])}, indent=2) + "\n")
    print(f"\nwritten: {args.out}")


if __name__ == "__main__":
    main()
