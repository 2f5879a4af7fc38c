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


def _head_model(path, label="head"):
    strategy = build_strategy(parse_strategy(label))
    return strategy, strategy.prepare(load_classifier(str(path), ["neg", "pos"]))


def _run_shared(path, label, seed=0, callbacks=None, tamper=None):
    """One run of ``label`` on the same splits (encoded afresh each time, as each run of a study sees them)."""
    tokenizer = load_tokenizer(str(path))
    frame = easy_reviews(80)
    train, val, test = (_encoded(tokenizer, frame.iloc[s]) for s in (slice(0, 48), slice(48, 64), slice(64, 80)))
    engine.seed_everything(seed)
    strategy, model = _head_model(path, label)
    if tamper is not None:
        tamper(model)
    return engine.train_and_evaluate(model, train, val, test, ["neg", "pos"], _cfg(epochs=2, seed=seed),
                                     torch.device("cpu"), tokenizer.pad_token_id,
                                     lowest_trainable_layer=strategy.lowest_trainable_layer, callbacks=callbacks)


def test_a_study_computes_each_prefix_cache_once_and_gets_the_same_predictions(tiny_bert, monkeypatch):
    calls = []
    real = prefix.FrozenPrefix.compute

    def counted(self, split, *args, **kwargs):
        calls.append((self.m, len(split)))
        return real(self, split, *args, **kwargs)

    alone = [_run_shared(tiny_bert, "head", seed) for seed in (0, 1)]  # no registry open: each computes its own
    monkeypatch.setattr(prefix.FrozenPrefix, "compute", counted)
    with prefix.shared_caches() as registry:
        shared = [_run_shared(tiny_bert, "head", seed) for seed in (0, 1, 2)]
        partial = _run_shared(tiny_bert, "partial:k=1")
        assert registry.computed == 4 and len(registry) == 4  # train + validation, for depth 3 and depth 2
    assert calls == [(3, 48), (3, 16), (2, 48), (2, 16)]  # one computation per split and depth, not per run
    assert prefix.current_shared() is None  # cleared when the study ends
    for a, b in zip(alone, shared, strict=False):
        assert np.array_equal(a.test_probabilities, b.test_probabilities)
    assert [r.resources["prefix_cache_shared"] for r in shared] == [False, True, True]
    assert not partial.resources["prefix_cache_shared"] and partial.resources["frozen_prefix_layers"] == 2
    # a run that reused the cache still counts what computing it cost (as a run alone pays it)
    assert shared[1].resources["prefix_cache_s"] == pytest.approx(shared[0].resources["prefix_cache_s"])
    assert shared[1].resources["prefix_cache_s"] > 0


def test_the_shared_cache_survives_a_crashed_run_and_a_changed_prefix_gets_its_own(tiny_bert):
    class Crash(Exception):
        pass

    def crash(*_args, **_kwargs):
        raise Crash

    def tamper(model):
        with torch.no_grad():
            model.bert.encoder.layer[0].output.dense.weight.mul_(1.5)  # a method rewriting a frozen weight

    with prefix.shared_caches() as registry:
        with pytest.raises(Crash):
            _run_shared(tiny_bert, "head", callbacks=engine.Callbacks(on_step=crash))
        assert registry.computed == 2
        after = _run_shared(tiny_bert, "head")
        assert registry.computed == 2 and after.resources["prefix_cache_shared"]
        changed = _run_shared(tiny_bert, "head", tamper=tamper)
        assert registry.computed == 4 and not changed.resources["prefix_cache_shared"]
    assert not np.allclose(after.test_probabilities, changed.test_probabilities)


def test_a_study_shares_one_cache_and_its_report_shows_the_cost_per_run_and_amortised(tiny_bert, reviews_csv, tmp_path,
                                                                                     monkeypatch):
    from tunebench.spec.study import StudySpec
    from tunebench.study import driver

    calls = []
    real = prefix.FrozenPrefix.compute

    def counted(self, split, *args, **kwargs):
        calls.append(self.m)
        return real(self, split, *args, **kwargs)

    monkeypatch.setattr(prefix.FrozenPrefix, "compute", counted)
    out = tmp_path / "out"
    spec = StudySpec(name="shared", data={"source": str(reviews_csv)}, model={"name": str(tiny_bert), "max_length": 32},
                     strategies=["head", "full"], baselines=[], sweep={"seeds": [0, 1, 2]}, output={"dir": str(out)},
                     training={"epochs": 1, "batch_size": 8, "lr": 3e-3})
    records = driver.run_study(spec)
    assert calls == [3, 3]  # the training and validation splits' caches, once for the three head runs
    head = [r["resources"] for r in records if r["strategy"] == "head"]
    assert [h["prefix_cache_shared"] for h in head] == [False, True, True]
    assert prefix.current_shared() is None
    from tunebench.report import build_report

    report = build_report(out)["markdown"].read_text()
    row = next(line for line in report.splitlines() if line.startswith("| 3 | head |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[2:4] == ["3", "1"]  # three runs on it, one computation
    assert float(cells[5]) == pytest.approx(float(cells[4]) / 3, abs=0.01)  # amortised over the three
