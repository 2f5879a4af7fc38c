"""The training engine: a lean PyTorch loop that trains, validates each epoch and tests once.

Reads top to bottom: tokenize once (``encode_split``), batch with little padding (``batches``)
and pad per batch (``collate``), then ``train_and_evaluate``: frozen layers computed once when
the strategy allows it (:mod:`tunebench.training.prefix`), an epoch of steps, validation (``predict``),
the best epoch by validation macro-F1 kept and restored, one test pass.  It measures train time
(evaluation excluded), evaluation time, examples/s, tokens/s and peak memory.  No HF Trainer.
"""

from __future__ import annotations

import contextlib
import math
import random
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any

import numpy as np
import torch
from torch import nn

from tunebench.faults import Diverged, Interrupted, disk_guard
from tunebench.training import distributed
from tunebench.training.batching import EncodedSplit, batches, collate
from tunebench.training.metrics import classification_metrics
from tunebench.training.optim import TrainHooks, build_optimizer, build_scheduler, should_stop_early
from tunebench.training.prefix import FrozenPrefix, PrefixCache
from tunebench.training.resources import PeakMemory
from tunebench.training.resume import LoopState, ResumePoint

# --- configuration of one run ----------------------------------------------------------------


@dataclass
class RunConfig:
    epochs: int
    batch_size: int
    eval_batch_size: int
    lr: float
    weight_decay: float
    warmup_ratio: float
    scheduler: str
    max_grad_norm: float | None
    grad_accumulation: int
    seed: int
    precision: str  # resolved: fp32 | bf16 | fp16
    prefix_cache: bool = True  # train on cached outputs of the frozen layers (see tunebench.training.prefix)
    bucketing: bool = True  # length-bucketed batches; off: a plain shuffle
    compile: bool = False  # torch.compile(model, dynamic=True) for training and evaluation
    head_lr: float | None = None  # the head's own rate (training.optim.param_groups); None: lr
    patience: int | None = None  # early stopping: epochs without a validation macro-F1 gain; None: off
    min_delta: float = 0.0  # early stopping: the gain that counts as one
    evaluate_test: bool = True  # False: a tuning trial, which never sees the test split
    max_length: int | None = None  # the tokens inputs were truncated to (model.max_length; in a run id as such)


#: RunConfig fields added after run ids were first written, at the value that computes as before:
#: left out of a run's id at that value (study.plan.run_id_for), so earlier results stay reusable
LATER_FIELDS: dict[str, Any] = {"head_lr": None, "patience": None, "min_delta": 0.0, "evaluate_test": True}


def pick_device(requested: str) -> torch.device:
    """``auto`` → cuda, else mps, else cpu; an unavailable explicit choice is an error."""
    from tunebench.errors import SpecError

    if requested == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if requested == "cuda" and not torch.cuda.is_available():
        raise SpecError("--device cuda was asked for but no CUDA GPU is visible to torch")
    if requested == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise SpecError("--device mps was asked for but Apple MPS is not available")
    return torch.device(requested)


def resolve_precision(requested: str, device: torch.device) -> str:
    """``auto``: bf16 on CUDA with bf16 support, fp16 on older CUDA, fp32 elsewhere."""
    if requested != "auto":
        return requested
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return "fp32"


def _autocast(device: torch.device, precision: str):
    if precision == "fp32":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device_type=device.type, dtype=dtype)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)


def data_order_seed(seed: int, epoch: int) -> int:
    """The seed of an epoch's batch plan: the order is a pure function of the run's seed and the epoch."""
    return seed * 1000 + epoch


# --- the loop ---------------------------------------------------------------------------------


@dataclass
class EngineResult:
    curves: list[dict[str, float]]
    best_epoch: int
    val_metrics: dict[str, Any]
    test_metrics: dict[str, Any]  # empty when the test split was not evaluated (a tuning trial)
    test_probabilities: np.ndarray
    test_predictions: np.ndarray
    resources: dict[str, Any]
    best_state: dict[str, torch.Tensor] = field(repr=False, default_factory=dict)
    stop_reason: str = "max epochs"  # or "early stopping"
    #: validation before any training (epoch 0): what the first epoch gained, so one epoch can be diagnosed
    initial: dict[str, float] | None = None


StepCallback = Callable[[dict[str, Any]], None]


def predict(model: nn.Module, split: EncodedSplit, batch_size: int, pad_id: int, device: torch.device,
            precision: str, feed: Callable[[np.ndarray, int], None] | None = None) -> tuple[np.ndarray, float]:
    """Class probabilities for every example of ``split`` (in its order) and the mean loss.

    ``feed(index, width)`` is called before each batch's forward (the frozen-prefix cache's :meth:`PrefixCache.feed`).
    """
    model.eval()
    n_labels = None
    probs: np.ndarray | None = None
    total_loss = 0.0
    with torch.inference_mode():
        for index in batches(split, batch_size, shuffle=False):
            batch = collate(split, index, pad_id, device)
            if feed is not None:
                feed(index, batch["input_ids"].shape[1])
            with _autocast(device, precision):
                out = model(**batch)
            logits = out.logits.float()
            total_loss += float(nn.functional.cross_entropy(logits, batch["labels"], reduction="sum"))
            p = torch.softmax(logits, dim=-1).cpu().numpy()
            if probs is None:
                n_labels = p.shape[1]
                probs = np.zeros((len(split), n_labels), dtype=np.float32)
            probs[index] = p
    assert probs is not None
    return probs, total_loss / max(len(split), 1)


class BestWeights:
    """The best epoch's trainable weights, kept in an anonymous temporary file rather than in RAM.

    A copy in memory adds every trainable weight to peak memory for the rest of the run (87 MB,
    the whole model, for full fine-tuning of MiniLM-L6).  ``torch.save`` writes one storage at a
    time, without a second copy, and the file's pages sit in the page cache, not in the process.
    The cost is one write per epoch that improves validation macro-F1.  The file has no name: it
    goes when the object does.
    """

    def __init__(self) -> None:
        self.file: Any = None

    def keep(self, model: nn.Module) -> None:
        self.keep_state({n: p.detach().cpu() for n, p in model.named_parameters() if p.requires_grad})

    def keep_state(self, state: dict[str, torch.Tensor]) -> None:
        if self.file is None:
            self.file = tempfile.TemporaryFile(prefix="tunebench-best-", suffix=".pt")  # noqa: SIM115 (lives with self)
        self.file.seek(0)
        self.file.truncate()
        with disk_guard("the best epoch's weights", tempfile.gettempdir()):
            torch.save(state, self.file)
            self.file.flush()

    def state(self) -> dict[str, torch.Tensor]:
        if self.file is None:
            return {}
        self.file.seek(0)
        return torch.load(self.file, map_location="cpu", weights_only=True)

    def restore(self, model: nn.Module) -> dict[str, torch.Tensor]:
        """Copy the kept weights back into ``model``; return them."""
        state = self.state()
        named = dict(model.named_parameters())
        with torch.no_grad():
            for name, value in state.items():
                named[name].copy_(value.to(named[name].device))
        return state


def train_and_evaluate(model: nn.Module, train: EncodedSplit, validation: EncodedSplit, test: EncodedSplit | None,
                       label_names: list[str], cfg: RunConfig, device: torch.device, pad_id: int,
                       on_step: StepCallback | None = None,
                       lowest_trainable_layer: int | None = None,
                       on_epoch: StepCallback | None = None,
                       should_stop: Callable[[], bool] | None = None,
                       resume: ResumePoint | None = None, hooks: TrainHooks | None = None) -> EngineResult:
    """Train ``model`` (whose trainable parameters the strategy has already chosen) and evaluate it.

    ``on_epoch`` gets each epoch's curve point (validation metrics) and may raise to stop the run
    (a search's pruner does).

    ``lowest_trainable_layer`` (from the strategy): layers below it are frozen, run in eval mode,
    and — with ``cfg.prefix_cache`` — are computed once per example instead of every epoch.
    A NaN/inf loss raises :class:`~tunebench.faults.Diverged`; ``should_stop()`` true raises
    :class:`~tunebench.faults.Interrupted` at the next batch; ``resume`` saves the whole training
    state every N optimizer steps and, when a saved state exists, continues from it mid-epoch.
    ``hooks``: the method's head parameters (at ``cfg.head_lr``), optimizer and per-step action.
    ``cfg.patience``: early stopping on validation macro-F1 (:func:`~tunebench.training.optim.should_stop_early`);
    ``test`` None or ``cfg.evaluate_test`` false: the test split is never evaluated (a tuning trial).
    """
    seed_everything(cfg.seed + distributed.rank())  # other dropout per process, as across one big batch
    model.to(device)
    memory = PeakMemory(device)
    memory.start()
    hooks = hooks or TrainHooks()
    optimizer = build_optimizer(model, cfg.lr, cfg.weight_decay, cfg.head_lr, hooks)
    steps_per_epoch = math.ceil(math.ceil(len(train) / cfg.batch_size) / cfg.grad_accumulation)
    scheduler = build_scheduler(optimizer, cfg.scheduler, cfg.warmup_ratio, steps_per_epoch * cfg.epochs)
    scaler = torch.amp.GradScaler(device.type) if cfg.precision == "fp16" and device.type == "cuda" else None
    params = [p for p in model.parameters() if p.requires_grad]
    prefix = FrozenPrefix.for_model(model, lowest_trainable_layer or 0)
    runner = _compiled(model) if cfg.compile else model  # what is called; parameters stay model's
    best = BestWeights()
    with _prefix_cache(model, prefix if cfg.prefix_cache else None, train, validation, cfg, pad_id, device) as cache:
        # --- resume hook: continue a killed run from its last saved state (tunebench.training.resume) ---
        restored = resume.load(model, optimizer, scheduler, scaler) if resume is not None else None
        loop, kept = restored or (LoopState(train_time=cache.train_s, eval_time=cache.eval_s), {})
        if kept:
            best.keep_state(kept)
        if loop.initial is None:  # epoch 0: the validation score before training, never a best epoch
            eval_start = time.perf_counter()
            probs0, loss0 = predict(runner, validation, cfg.eval_batch_size, pad_id, device, cfg.precision,
                                    partial(cache.feed, "validation"))
            val0 = classification_metrics(validation.labels, probs0.argmax(1), label_names)
            loop.initial = {"epoch": 0, "val_loss": loss0, "val_accuracy": val0["accuracy"],
                            "val_macro_f1": val0["macro_f1"]}
            loop.eval_time += time.perf_counter() - eval_start
        for epoch in range(loop.epoch, cfg.epochs + 1):
            loop.epoch = epoch
            model.train()
            if prefix is not None:
                prefix.set_eval()
            epoch_start = time.perf_counter()
            plan = batches(train, cfg.batch_size, shuffle=True, seed=data_order_seed(cfg.seed, epoch),
                           bucket=50 if cfg.bucketing else 0)
            optimizer.zero_grad(set_to_none=True)
            for i, whole in enumerate(plan):
                if i < loop.next_batch:
                    continue  # trained before the resume point
                if should_stop is not None and should_stop():
                    raise Interrupted(f"interrupted at epoch {epoch}, batch {i + 1}", epoch=epoch, batch=i + 1,
                                      step=loop.step, last_finite_loss=loop.last_finite_loss, curves=loop.curves)
                index = distributed.shard(whole)  # this process's part of the batch (all of it in one process)
                if len(index):
                    batch = collate(train, index, pad_id, device)
                    cache.feed("train", index, batch["input_ids"].shape[1])
                    with _autocast(device, cfg.precision):
                        out = runner(**batch)
                    loss = nn.functional.cross_entropy(out.logits.float(), batch["labels"])
                    if not torch.isfinite(loss):
                        raise Diverged(f"loss became {float(loss.detach())} at epoch {epoch}, batch {i + 1} "
                                       f"(step {loop.step}); last finite loss {loop.last_finite_loss}", epoch=epoch,
                                       batch=i + 1, step=loop.step, last_finite_loss=loop.last_finite_loss,
                                       curves=loop.curves)
                    loop.last_finite_loss = float(loss.detach())
                    # weighted by the shard's share, so the gradients summed over processes are the batch mean's
                    scaled = loss * (len(index) / len(whole)) / cfg.grad_accumulation
                    (scaler.scale(scaled) if scaler else scaled).backward()
                    loop.loss_sum += loop.last_finite_loss * len(index)
                    loop.loss_n += len(index)
                    loop.seen_examples += len(index)
                    loop.seen_tokens += int(batch["attention_mask"].sum())
                loop.next_batch = i + 1
                if (i + 1) % cfg.grad_accumulation == 0 or i + 1 == len(plan):  # an optimizer step is due
                    distributed.all_reduce_grads(params)
                    if scaler:
                        scaler.unscale_(optimizer)
                    if cfg.max_grad_norm:
                        torch.nn.utils.clip_grad_norm_(params, cfg.max_grad_norm)
                    if scaler:
                        scaler.step(optimizer)
                        scaler.update()
                    else:
                        optimizer.step()
                    loop.step += 1
                    if hooks.after_step is not None:
                        hooks.after_step(model, loop.step)
                    scheduler.step()
                    optimizer.zero_grad(set_to_none=True)
                    if resume is not None and resume.due(loop.step):
                        saved = replace(loop, epoch_elapsed=loop.epoch_elapsed + time.perf_counter() - epoch_start)
                        resume.save(model, optimizer, scheduler, scaler, saved, best.state())
                if on_step is not None and loop.loss_n:
                    elapsed = loop.train_time + time.perf_counter() - epoch_start
                    on_step({"epoch": epoch, "epochs": cfg.epochs, "batch": i + 1, "batches": len(plan),
                             "loss": loop.loss_sum / loop.loss_n, "examples_per_s": loop.seen_examples / max(elapsed, 1e-9),
                             "lr": scheduler.get_last_lr()[0]})
            loss_sum, loss_n = distributed.sum_over_processes(loop.loss_sum, loop.loss_n)  # the whole batch's loss
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            epoch_train = loop.epoch_elapsed + time.perf_counter() - epoch_start
            loop.train_time += epoch_train
            loop.next_batch, loop.loss_sum, loop.loss_n, loop.epoch_elapsed = 0, 0.0, 0, 0.0  # the next epoch starts afresh

            eval_start = time.perf_counter()
            val_probs, val_loss = predict(runner, validation, cfg.eval_batch_size, pad_id, device, cfg.precision,
                                          partial(cache.feed, "validation"))
            val = classification_metrics(validation.labels, val_probs.argmax(1), label_names)
            loop.eval_time += time.perf_counter() - eval_start
            loop.curves.append({"epoch": epoch, "train_loss": loss_sum / max(loss_n, 1), "val_loss": val_loss,
                             "val_accuracy": val["accuracy"], "val_macro_f1": val["macro_f1"],
                             "train_time_s": epoch_train})
            if on_epoch is not None:
                on_epoch(loop.curves[-1])
            if val["macro_f1"] > loop.best_f1:
                loop.best_f1, loop.best_epoch, loop.best_val = val["macro_f1"], epoch, val
                best.keep(model)
            if epoch < cfg.epochs and should_stop_early(loop.curves, cfg.patience, cfg.min_delta):
                stop_reason = "early stopping"
                break
        else:
            stop_reason = "max epochs"
    # the prefix is back in place: restore the best epoch, then test once through the whole model
    best_state = best.restore(model)
    eval_start = time.perf_counter()
    test_probs, test_metrics = np.zeros((0, len(label_names)), dtype=np.float32), {}
    if test is not None and cfg.evaluate_test:
        test_probs, test_loss = predict(runner, test, cfg.eval_batch_size, pad_id, device, cfg.precision)
        test_metrics = {**classification_metrics(test.labels, test_probs.argmax(1), label_names), "loss": test_loss}
    loop.eval_time += time.perf_counter() - eval_start
    test_preds = test_probs.argmax(1)

    examples, tokens = (int(v) for v in distributed.sum_over_processes(loop.seen_examples, loop.seen_tokens))
    if distributed.world_size() > 1:
        cache.notes.append(f"trained in {distributed.world_size()} processes (DDP: each a shard of every batch, "
                           "gradients summed); evaluation repeated in each; time and memory are rank 0's")
    resources = memory.stop()
    resources.update({
        "train_time_s": loop.train_time,
        "eval_time_s": loop.eval_time,
        "train_examples": examples,
        "train_tokens": tokens,
        "train_examples_per_s": examples / max(loop.train_time, 1e-9),
        "train_tokens_per_s": tokens / max(loop.train_time, 1e-9),
        "optimizer_steps": loop.step,
        "frozen_prefix_layers": prefix.m if prefix is not None else 0,
        "prefix_cache_bytes": sum(c.nbytes for c in cache.caches.values()),
        "prefix_cache_on_disk": any(c.on_disk for c in cache.caches.values()),
        "engine_notes": cache.notes,
        "compiled": bool(cfg.compile),
        "attention": getattr(getattr(model, "config", None), "_attn_implementation", None),
        "processes": distributed.world_size(),
    })
    return EngineResult(curves=loop.curves, best_epoch=loop.best_epoch, val_metrics=loop.best_val, test_metrics=test_metrics,
                        test_probabilities=test_probs, test_predictions=test_preds, resources=resources,
                        best_state=best_state, stop_reason=stop_reason, initial=loop.initial)


@contextlib.contextmanager
def _prefix_cache(model: nn.Module, prefix: FrozenPrefix | None, train: EncodedSplit, validation: EncodedSplit,
                  cfg: RunConfig, pad_id: int, device: torch.device) -> Iterator[PrefixCache]:
    """The frozen prefix computed once per example, and bypassed (:meth:`FrozenPrefix.bypass`) until exit.

    A safety net for architectures whose forward does more between embeddings and layers than the bypass
    reproduces: if the bypassed model's logits differ from the whole model's on one probe batch (the
    longest examples), the cache is dropped with a note and the model runs whole.
    """
    cache = PrefixCache(device)
    with contextlib.ExitStack() as stack:
        if prefix is not None:  # None: no frozen layers, or cfg.prefix_cache off
            started = time.perf_counter()
            cache.caches["train"] = prefix.compute(train, cfg.eval_batch_size, pad_id, device)
            cache.train_s = time.perf_counter() - started
            started = time.perf_counter()
            cache.caches["validation"] = prefix.compute(validation, cfg.eval_batch_size, pad_id, device)
            cache.eval_s = time.perf_counter() - started
            index = batches(train, 8, shuffle=False)[-1]
            batch = collate(train, index, pad_id, device)
            batch.pop("labels")
            model.eval()
            with torch.inference_mode(), _autocast(device, cfg.precision):
                whole = model(**batch).logits.float()
                cache.inject = stack.enter_context(prefix.bypass())
                cache.feed("train", index, batch["input_ids"].shape[1])
                bypassed = model(**batch).logits.float()
            tol = 1e-4 if cfg.precision == "fp32" else 5e-2
            if not torch.allclose(bypassed, whole, atol=tol, rtol=tol):
                stack.close()
                cache.inject, cache.caches = None, {}
                cache.notes.append("frozen-prefix cache disabled: its outputs differed from the model's own")
        yield cache


def _compiled(model: nn.Module) -> nn.Module:
    """``torch.compile`` with dynamic shapes (batches vary in length); the wrapper shares the model's
    parameters, and swapping the frozen prefix in and out only makes it recompile."""
    return torch.compile(model, dynamic=True)
