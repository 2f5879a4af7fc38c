"""The training engine: a lean PyTorch loop that trains, validates each epoch and tests once.

Reads top to bottom: tokenize once (``encode_split``), batch with little padding (``batches``)
and pad per batch (``collate``), then ``train_and_evaluate``: frozen layers computed once when
the strategy allows it (:mod:`tunebench.training.prefix`), an epoch of steps, validation (``predict``),
the best epoch by the validation selection metric (``cfg.selection_metric``, macro-F1 unless set) kept
and restored, one test pass.  It measures train time (evaluation excluded), evaluation time,
examples/s, tokens/s and peak memory.  No HF Trainer.
Its concerns have names: the optimizer step (:class:`~tunebench.training.optim.Stepper`), early
stopping (:func:`~tunebench.training.optim.should_stop_early`), the caller's progress, epoch and
interrupt callbacks (:class:`~tunebench.training.loop.Callbacks`), divergence
(:func:`~tunebench.training.loop.check_finite`), resume (:mod:`tunebench.training.resume`).
"""

from __future__ import annotations

import contextlib
import math
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any

import numpy as np
import torch
from torch import nn

from tunebench.results.decisions import decide
from tunebench.spec.metrics import DEFAULT_SELECTION, curve_key, curve_metrics
from tunebench.training import distributed
from tunebench.training.batching import EncodedSplit, batches, collate
from tunebench.training.loop import BestWeights, Callbacks, Objective, check_finite, evaluation_outputs
from tunebench.training.metrics import evaluate_outputs
from tunebench.training.optim import Stepper, TrainHooks, should_stop_early
from tunebench.training.prefix import FrozenPrefix, PrefixCache, SharedCaches, compute_shared, current_shared
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
    patience: int | None = None  # early stopping: epochs without a gain of the selection metric; None: off
    min_delta: float = 0.0  # early stopping: the gain that counts as one
    evaluate_test: bool = True  # False: a tuning trial, which never sees the test split
    max_length: int | None = None  # the tokens inputs were truncated to (model.max_length; in a run id as such)
    selection_metric: str = DEFAULT_SELECTION  # the validation metric that picks the best epoch (spec.metrics)
    class_weights: tuple[float, ...] | None = None  # the training loss's weight per class; None: unweighted
    passes: int = 1  # passes over the training data per epoch (training.min_steps_per_epoch; study.plan.passes_for)
    target_scale: tuple[float, float] | None = None  # a regression: the training target's mean and sd (standardised)


#: RunConfig fields added after run ids were first written, at the value that computes as before:
#: left out of a run's id at that value (study.plan.run_id_for), so earlier results stay reusable
LATER_FIELDS: dict[str, Any] = {"head_lr": None, "patience": None, "min_delta": 0.0, "evaluate_test": True,
                                 "selection_metric": DEFAULT_SELECTION, "class_weights": None, "passes": 1,
                                 "target_scale": None}


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


def autocast_for(device: torch.device, precision: str):
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


def epoch_plan(train: EncodedSplit, cfg: RunConfig, epoch: int) -> list[np.ndarray]:
    """An epoch's batches: ``cfg.passes`` passes over the training data, each in its own seeded order (the first
    pass's order is the one an epoch of one pass has always had)."""
    plan: list[np.ndarray] = []
    for p in range(cfg.passes):
        seed = data_order_seed(cfg.seed, epoch)
        plan += batches(train, cfg.batch_size, shuffle=True, seed=seed if p == 0 else [seed, p],
                        bucket=50 if cfg.bucketing else 0)
    return plan


def steps_per_epoch(cfg: RunConfig, n_train: int) -> int:
    """Optimizer steps in an epoch (its passes' batches, grouped by gradient accumulation)."""
    return math.ceil(cfg.passes * math.ceil(n_train / cfg.batch_size) / cfg.grad_accumulation)


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


def predict(model: nn.Module, split: EncodedSplit, batch_size: int, pad_id: int, device: torch.device,
            precision: str, feed: Callable[[np.ndarray, int], None] | None = None,
            target_scale: tuple[float, float] | None = None) -> tuple[np.ndarray, float]:
    """Class probabilities (multi-label: each label's; a regression, ``target_scale`` given: the prediction in the
    target's units, one column) for every example of ``split`` (in its order) and the mean loss (a regression's:
    the mean squared error of the standardised target, the training loss's scale).

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
            with autocast_for(device, precision):
                out = model(**batch)
            p, batch_loss = evaluation_outputs(out.logits.float(), batch["labels"], target_scale)
            total_loss += batch_loss
            if probs is None:
                n_labels = p.shape[1]
                probs = np.zeros((len(split), n_labels), dtype=np.float32)
            probs[index] = p
    assert probs is not None
    return probs, total_loss / max(len(split), 1)


def train_and_evaluate(model: nn.Module, train: EncodedSplit, validation: EncodedSplit, test: EncodedSplit | None,
                       label_names: list[str], cfg: RunConfig, device: torch.device, pad_id: int,
                       lowest_trainable_layer: int | None = None, callbacks: Callbacks | None = None,
                       resume: ResumePoint | None = None, hooks: TrainHooks | None = None) -> EngineResult:
    """Train ``model`` (whose trainable parameters the strategy has already chosen) and evaluate it.

    ``lowest_trainable_layer`` (from the strategy): layers below it are frozen, run in eval mode,
    and — with ``cfg.prefix_cache`` — are computed once per example instead of every epoch.
    ``callbacks``: progress, each epoch's curve point, an interrupt (:class:`Callbacks`); a NaN/inf loss
    raises :class:`~tunebench.faults.Diverged` (:func:`check_finite`).  ``resume`` saves the whole training
    state every N optimizer steps and, when a saved state exists, continues from it mid-epoch.
    ``hooks``: the method's head parameters (at ``cfg.head_lr``), optimizer and per-step action.
    ``cfg.selection_metric`` (validation) picks the best epoch; ``cfg.patience``: early stopping on it
    (:func:`~tunebench.training.optim.should_stop_early`);
    ``test`` None or ``cfg.evaluate_test`` false: the test split is never evaluated (a tuning trial).
    """
    seed_everything(cfg.seed + distributed.rank())  # other dropout per process, as across one big batch
    model.to(device)
    memory = PeakMemory(device)
    memory.start()
    callbacks = callbacks or Callbacks()
    stepper = Stepper(model, cfg, device, hooks or TrainHooks(), steps_per_epoch(cfg, len(train)) * cfg.epochs)
    prefix = FrozenPrefix.for_model(model, lowest_trainable_layer or 0)
    runner = _compiled(model) if cfg.compile else model  # what is called; parameters stay model's
    best = BestWeights()
    objective = Objective(cfg.class_weights, train.labels, device, cfg.target_scale)
    stop_reason = "max epochs"
    with _prefix_cache(model, prefix if cfg.prefix_cache else None, train, validation, cfg, pad_id, device) as cache:
        loop = _start(resume, model, stepper, best, cache)  # a killed run continues from its last saved state
        validate = partial(_validate, runner, validation, label_names, cfg, pad_id, device, cache, loop)
        if loop.initial is None:  # epoch 0: the validation score before training, never a best epoch
            val0, loss0 = validate()
            loop.initial = {"epoch": 0, "val_loss": loss0, **_curve_point(val0, cfg)}
        for epoch in range(loop.epoch, cfg.epochs + 1):
            loop.epoch = epoch
            _train_mode(model, prefix)
            epoch_start = time.perf_counter()
            plan = epoch_plan(train, cfg, epoch)
            stepper.optimizer.zero_grad(set_to_none=True)
            for i, whole in enumerate(plan):
                if i < loop.next_batch:
                    continue  # trained before the resume point
                callbacks.check_interrupt(loop, i + 1)
                index = distributed.shard(whole)  # this process's part of the batch (all of it in one process)
                if len(index):
                    batch = collate(train, index, pad_id, device)
                    cache.feed("train", index, batch["input_ids"].shape[1])
                    with autocast_for(device, cfg.precision):
                        out = runner(**batch)
                    loss = objective.loss(out.logits, batch["labels"])
                    loop.last_finite_loss = check_finite(loss, loop, i + 1)
                    # weighted by the shard's share, so the gradients summed over processes are the batch mean's
                    stepper.backward(loss * objective.share(index, whole) / cfg.grad_accumulation)
                    _count(loop, index, batch, objective.counts_as(index, whole))
                loop.next_batch = i + 1
                if (i + 1) % cfg.grad_accumulation == 0 or i + 1 == len(plan):  # an optimizer step is due
                    loop.step = stepper.step(model, loop.step)
                    if resume is not None and resume.due(loop.step):
                        saved = replace(loop, epoch_elapsed=loop.epoch_elapsed + time.perf_counter() - epoch_start)
                        resume.save(model, *stepper.state, saved, best.state())
                callbacks.progress(loop, cfg.epochs, i + 1, len(plan),
                                   loop.train_time + time.perf_counter() - epoch_start, stepper.lr())
            train_loss, epoch_train = _end_epoch(loop, device, epoch_start)
            val, val_loss = validate()
            loop.curves.append({"epoch": epoch, "train_loss": train_loss, "val_loss": val_loss,
                                **_curve_point(val, cfg), "train_time_s": epoch_train})
            callbacks.epoch_done(loop.curves[-1])
            if val[cfg.selection_metric] > loop.best_score:  # the best epoch so far: keep its weights
                loop.best_score, loop.best_epoch, loop.best_val = val[cfg.selection_metric], epoch, val
                best.keep(model)
            if epoch < cfg.epochs and should_stop_early(loop.curves, cfg.patience, cfg.min_delta,
                                                        curve_key(cfg.selection_metric)):
                stop_reason = "early stopping"
                break
    # the prefix is back in place: restore the best epoch, then test once through the whole model
    best_state = best.restore(model)
    test_probs, test_metrics = _test_once(runner, test, label_names, cfg, pad_id, device, loop)
    resources = _resources(memory, loop, prefix, cache, cfg, model)
    return EngineResult(curves=loop.curves, best_epoch=loop.best_epoch, val_metrics=loop.best_val, test_metrics=test_metrics,
                        test_probabilities=test_probs,
                        test_predictions=decide(test_probs, (loop.best_val or {}).get("thresholds"),
                                                regression=cfg.target_scale is not None), resources=resources,
                        best_state=best_state, stop_reason=stop_reason, initial=loop.initial)


# --- the loop's parts, in the order it calls them ----------------------------------------------


def _start(resume: ResumePoint | None, model: nn.Module, stepper: Stepper, best: BestWeights,
           cache: PrefixCache) -> LoopState:
    """The loop's state: restored from the run's resume point when it has a saved one, else fresh."""
    restored = resume.load(model, *stepper.state) if resume is not None else None
    loop, kept = restored or (LoopState(train_time=cache.train_s, eval_time=cache.eval_s), {})
    if kept:
        best.keep_state(kept)
    return loop


def _validate(runner: nn.Module, validation: EncodedSplit, label_names: list[str], cfg: RunConfig, pad_id: int,
              device: torch.device, cache: PrefixCache, loop: LoopState) -> tuple[dict[str, Any], float]:
    """Validation metrics and loss, the time counted as evaluation."""
    eval_start = time.perf_counter()
    probs, loss = predict(runner, validation, cfg.eval_batch_size, pad_id, device, cfg.precision,
                          partial(cache.feed, "validation"), cfg.target_scale)
    metrics = evaluate_outputs(validation.labels, probs, label_names)  # multi-label: thresholds chosen here
    loop.eval_time += time.perf_counter() - eval_start
    return metrics, loss


def _curve_point(val: dict[str, Any], cfg: RunConfig) -> dict[str, float]:
    """An epoch's validation metrics as its curve point holds them (``val_accuracy``, ``val_macro_f1``, ...)."""
    return {curve_key(name): val[name] for name in curve_metrics(cfg.selection_metric) if name in val}  # the task's


def _train_mode(model: nn.Module, prefix: FrozenPrefix | None) -> None:
    model.train()
    if prefix is not None:
        prefix.set_eval()  # frozen layers run in eval mode (no dropout), as their cached outputs were computed


def _count(loop: LoopState, index: np.ndarray, batch: dict[str, torch.Tensor], counts_as: float) -> None:
    """One shard trained: the epoch's running loss (the shard's loss counted as ``counts_as`` examples: its
    share of the batch, by class weight when the loss is weighted) and the run's examples and tokens."""
    loop.loss_sum += loop.last_finite_loss * counts_as
    loop.loss_n += len(index)
    loop.seen_examples += len(index)
    loop.seen_tokens += int(batch["attention_mask"].sum())


def _end_epoch(loop: LoopState, device: torch.device, epoch_start: float) -> tuple[float, float]:
    """The epoch's mean training loss (over all processes) and training seconds; the next epoch starts afresh."""
    loss_sum, loss_n = distributed.sum_over_processes(loop.loss_sum, loop.loss_n)  # the whole batch's loss
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    epoch_train = loop.epoch_elapsed + time.perf_counter() - epoch_start
    loop.train_time += epoch_train
    loop.next_batch, loop.loss_sum, loop.loss_n, loop.epoch_elapsed = 0, 0.0, 0, 0.0
    return loss_sum / max(loss_n, 1), epoch_train


def _test_once(runner: nn.Module, test: EncodedSplit | None, label_names: list[str], cfg: RunConfig, pad_id: int,
               device: torch.device, loop: LoopState) -> tuple[np.ndarray, dict[str, Any]]:
    """Test probabilities and metrics (none for a tuning trial), the time counted as evaluation."""
    eval_start = time.perf_counter()
    test_probs, test_metrics = np.zeros((0, len(label_names)), dtype=np.float32), {}
    if test is not None and cfg.evaluate_test:
        test_probs, test_loss = predict(runner, test, cfg.eval_batch_size, pad_id, device, cfg.precision,
                                        target_scale=cfg.target_scale)
        thresholds = (loop.best_val or {}).get("thresholds")  # the kept epoch's, chosen on validation
        test_metrics = {**evaluate_outputs(test.labels, test_probs, label_names, thresholds), "loss": test_loss}
    loop.eval_time += time.perf_counter() - eval_start
    return test_probs, test_metrics


def _resources(memory: PeakMemory, loop: LoopState, prefix: FrozenPrefix | None, cache: PrefixCache,
               cfg: RunConfig, model: nn.Module) -> dict[str, Any]:
    """Time, throughput, memory and how the run was computed, for the record."""
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
        "prefix_cache_s": (cache.train_s + cache.eval_s) if cache.caches else 0.0,
        "prefix_cache_shared": bool(cache.reused),
        "engine_notes": cache.notes,
        "compiled": bool(cfg.compile),
        "attention": getattr(getattr(model, "config", None), "_attn_implementation", None),
        "processes": distributed.world_size(),
    })
    return resources


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
            # one cache per study (prefix.shared_caches): a run reusing it still counts its seconds, as a run
            # alone would pay them; the record says it was shared, and the report amortises it
            registry = current_shared()
            weights = SharedCaches.weights(prefix) if registry is not None else None
            for split, data in (("train", train), ("validation", validation)):
                cache.caches[split], seconds, reused = compute_shared(prefix, data, cfg.eval_batch_size, pad_id,
                                                                      device, registry, weights)
                if split == "train":
                    cache.train_s = seconds
                else:
                    cache.eval_s = seconds
                if reused:
                    cache.reused.append(split)
            index = batches(train, 8, shuffle=False)[-1]
            batch = collate(train, index, pad_id, device)
            batch.pop("labels")
            model.eval()
            with torch.inference_mode(), autocast_for(device, cfg.precision):
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
