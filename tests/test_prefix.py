"""The frozen-prefix cache: same results as recomputing the frozen layers, on every architecture."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tunebench.methods import build_strategy
from tunebench.spec.strategy import parse_strategy
from tunebench.training import engine, prefix
from tunebench.training.modeling import load_classifier, load_tokenizer

from .conftest import easy_reviews
from .test_engine import _cfg, _encoded


def _run(path, label, **cfg):
    tokenizer = load_tokenizer(str(path))
    frame = easy_reviews(80)
    train, val, test = (_encoded(tokenizer, frame.iloc[s]) for s in (slice(0, 48), slice(48, 64), slice(64, 80)))
    engine.seed_everything(0)
    strategy = build_strategy(parse_strategy(label))
    model = strategy.prepare(load_classifier(str(path), ["neg", "pos"]))
    result = engine.train_and_evaluate(model, train, val, test, ["neg", "pos"], _cfg(epochs=3, **cfg),
                                       torch.device("cpu"), tokenizer.pad_token_id,
                                       lowest_trainable_layer=strategy.lowest_trainable_layer)
    return strategy, result


@pytest.mark.parametrize("arch", ["bert", "roberta", "distilbert"])
@pytest.mark.parametrize("label, m", [("head", 3), ("partial:k=1", 2), ("lora:r=2,layers=2", 2)])
def test_cache_gives_the_same_training_as_recomputing(tiny_models, arch, label, m):
    strategy, cached = _run(tiny_models[arch], label)
    _, plain = _run(tiny_models[arch], label, prefix_cache=False)
    assert strategy.lowest_trainable_layer == m
    assert cached.resources["frozen_prefix_layers"] == m and cached.resources["prefix_cache_bytes"] > 0
    assert cached.resources["engine_notes"] == []  # the one-batch check agreed
    assert plain.resources["prefix_cache_bytes"] == 0
    for a, b in zip(cached.curves, plain.curves, strict=True):
        assert a["train_loss"] == pytest.approx(b["train_loss"], abs=1e-4)
        assert a["val_loss"] == pytest.approx(b["val_loss"], abs=1e-4)
    assert np.allclose(cached.test_probabilities, plain.test_probabilities, atol=1e-4)


def test_no_cache_when_embeddings_or_every_layer_train(tiny_bert):
    _, full = _run(tiny_bert, "full")
    _, lora = _run(tiny_bert, "lora:r=2")
    assert full.resources["frozen_prefix_layers"] == 0 and lora.resources["frozen_prefix_layers"] == 0


def test_cache_spills_to_disk_with_the_same_results(tiny_bert, monkeypatch):
    _, in_memory = _run(tiny_bert, "partial:k=1")
    monkeypatch.setattr(prefix, "DEFAULT_SPILL_BYTES", 0)
    _, spilled = _run(tiny_bert, "partial:k=1")
    assert spilled.resources["prefix_cache_on_disk"] and not in_memory.resources["prefix_cache_on_disk"]
    assert np.array_equal(spilled.test_probabilities, in_memory.test_probabilities)


def test_a_spilled_cache_is_a_file_read_per_batch_with_the_same_rows(tiny_bert):
    tokenizer = load_tokenizer(str(tiny_bert))
    split = _encoded(tokenizer, easy_reviews(40))
    model = build_strategy(parse_strategy("head")).prepare(load_classifier(str(tiny_bert), ["neg", "pos"]))
    frozen = prefix.FrozenPrefix.for_model(model, 3)
    in_memory = frozen.compute(split, 16, tokenizer.pad_token_id, torch.device("cpu"))
    on_disk = frozen.compute(split, 16, tokenizer.pad_token_id, torch.device("cpu"), spill_bytes=0)
    assert not in_memory.on_disk and on_disk.on_disk and on_disk.states is None  # nothing held in RAM
    assert on_disk.nbytes == in_memory.nbytes == int(split.lengths.sum()) * in_memory.hidden * 4
    for index in (np.array([0, 1, 2]), np.array([39, 7, 20, 3]), np.arange(40)):
        width = int(split.lengths[index].max()) + 2  # padded wider than the longest: the tail stays zero
        a = in_memory.batch(index, width, torch.device("cpu"))
        b = on_disk.batch(index, width, torch.device("cpu"))
        assert torch.equal(a, b) and a.abs().sum() > 0
        assert torch.all(b[:, -2:] == 0)


def test_a_cache_that_disagrees_is_dropped(tiny_bert, monkeypatch):
    real = prefix.FrozenPrefix.compute

    def wrong(self, *args, **kwargs):
        cache = real(self, *args, **kwargs)
        cache.states[:] = 0.0  # what a bypass that misses a step of the architecture would give
        return cache

    monkeypatch.setattr(prefix.FrozenPrefix, "compute", wrong)
    _, result = _run(tiny_bert, "head")
    monkeypatch.undo()
    _, plain = _run(tiny_bert, "head", prefix_cache=False)
    assert result.resources["engine_notes"] == [
        "frozen-prefix cache disabled: its outputs differed from the model's own"]
    assert np.allclose(result.test_probabilities, plain.test_probabilities, atol=1e-5)


def test_frozen_layers_run_without_dropout(tiny_bert):
    """Training mode for the trainable top only: the frozen prefix gives the same output twice."""
    model = build_strategy(parse_strategy("partial:k=1")).prepare(load_classifier(str(tiny_bert), ["a", "b"]))
    frozen = prefix.FrozenPrefix(model, 2)
    model.train()
    frozen.set_eval()
    assert not frozen.embeddings.training and not any(layer.training for layer in frozen.stack[:2])
    assert frozen.stack[2].training and model.classifier.training
