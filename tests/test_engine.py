"""The engine: batching with little padding, dynamic padding, seeded determinism, best epoch, divergence."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tunebench.methods import build_strategy
from tunebench.spec.strategy import parse_strategy
from tunebench.training import batching, engine, loop
from tunebench.training.modeling import load_classifier, load_tokenizer

from .conftest import easy_reviews


def _split(lengths, labels=None) -> batching.EncodedSplit:
    ids = [[101] + [7] * (n - 2) + [102] for n in lengths]
    return batching.EncodedSplit(ids, None, np.asarray(labels or [0] * len(lengths)))


def test_batches_cover_every_example_once_and_keep_padding_low():
    rng = np.random.default_rng(1)
    lengths = rng.integers(3, 120, size=1000).tolist()
    split = _split(lengths)
    plan = batching.batches(split, 16, shuffle=True, seed=3)
    flat = np.concatenate(plan)
    assert sorted(flat.tolist()) == list(range(1000))
    assert all(len(b) <= 16 for b in plan)
    real = sum(lengths)
    padded = sum(len(b) * max(lengths[i] for i in b) for b in plan)
    naive = sum(len(b) * max(lengths[i] for i in b) for b in np.array_split(np.arange(1000), len(plan)))
    assert padded / real < 1.05 < naive / real  # bucketing keeps padding near zero; random order does not
    assert [b.tolist() for b in batching.batches(split, 16, shuffle=True, seed=3)] == [b.tolist() for b in plan]
    assert [b.tolist() for b in batching.batches(split, 16, shuffle=True, seed=4)] != [b.tolist() for b in plan]


def test_eval_batches_are_length_sorted_and_complete():
    split = _split([5, 3, 9, 4])
    plan = batching.batches(split, 2, shuffle=False)
    assert [b.tolist() for b in plan] == [[1, 3], [0, 2]]


def test_collate_pads_to_the_longest_in_the_batch():
    split = batching.EncodedSplit([[1, 2, 3], [4, 5], [6]], [[0, 0, 1], [0, 1], [0]], np.array([0, 1, 0]))
    batch = batching.collate(split, np.array([1, 2]), pad_id=0, device=torch.device("cpu"))
    assert batch["input_ids"].tolist() == [[4, 5], [6, 0]]
    assert batch["attention_mask"].tolist() == [[1, 1], [1, 0]]
    assert batch["token_type_ids"].tolist() == [[0, 1], [0, 0]]
    assert batch["labels"].tolist() == [1, 0]


def _encoded(tokenizer, frame):
    labels = (frame.label == "pos").astype(int).tolist()
    return batching.encode_split(tokenizer, frame.text.tolist(), None, labels, 32)


def _cfg(**kw) -> engine.RunConfig:
    base = dict(epochs=8, batch_size=8, eval_batch_size=16, lr=3e-3, weight_decay=0.0, warmup_ratio=0.0,
                scheduler="linear", max_grad_norm=1.0, grad_accumulation=1, seed=0, precision="fp32")
    return engine.RunConfig(**{**base, **kw})


def _train(tiny_bert, cfg, label="full"):
    tokenizer = load_tokenizer(str(tiny_bert))
    frame = easy_reviews(96)
    train, val, test = (_encoded(tokenizer, frame.iloc[s]) for s in (slice(0, 64), slice(64, 80), slice(80, 96)))
    engine.seed_everything(0)
    model = build_strategy(parse_strategy(label)).prepare(load_classifier(str(tiny_bert), ["neg", "pos"]))
    steps = []
    result = engine.train_and_evaluate(model, train, val, test, ["neg", "pos"], cfg, torch.device("cpu"),
                                       tokenizer.pad_token_id, callbacks=engine.Callbacks(on_step=steps.append))
    return model, result, steps


def test_training_learns_and_is_deterministic(tiny_bert):
    _, first, steps = _train(tiny_bert, _cfg())
    _, second, _ = _train(tiny_bert, _cfg())
    assert first.test_metrics["accuracy"] >= 0.9  # the sentiment word decides the label
    assert [c["train_loss"] for c in first.curves] == [c["train_loss"] for c in second.curves]
    assert np.array_equal(first.test_probabilities, second.test_probabilities)
    assert first.curves[-1]["train_loss"] < first.curves[0]["train_loss"]
    assert len(steps) == 8 * 8 and steps[-1]["epoch"] == 8 and steps[-1]["batch"] == 8
    res = first.resources
    assert res["train_examples"] == 8 * 64 and res["optimizer_steps"] == 64
    assert res["train_time_s"] > 0 and res["eval_time_s"] > 0
    assert res["train_examples_per_s"] == pytest.approx(512 / res["train_time_s"])
    assert res["peak_rss_mb"] > 50


def test_best_epoch_by_validation_f1_is_restored(tiny_bert):
    model, result, _ = _train(tiny_bert, _cfg())
    best = max(result.curves, key=lambda c: c["val_macro_f1"])
    assert result.best_epoch == best["epoch"]
    assert result.val_metrics["macro_f1"] == best["val_macro_f1"]
    named = dict(model.named_parameters())
    for name, value in result.best_state.items():
        assert torch.equal(named[name].detach().cpu(), value)


def test_best_weights_live_in_a_file_and_come_back_exactly(tiny_bert):
    model = load_classifier(str(tiny_bert), ["neg", "pos"])
    best = loop.BestWeights()
    assert best.state() == {}  # nothing kept yet: restoring changes nothing
    best.keep(model)
    kept = {n: p.detach().clone() for n, p in model.named_parameters()}
    size = best.file.seek(0, 2)
    assert size > 4 * sum(p.numel() for p in model.parameters())  # every weight went to the file
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
    state = best.restore(model)
    assert set(state) == set(kept)
    for name, p in model.named_parameters():
        assert torch.equal(p.detach(), kept[name])


def test_gradient_accumulation_counts_optimizer_steps(tiny_bert):
    _, result, _ = _train(tiny_bert, _cfg(epochs=1, grad_accumulation=3))
    assert result.resources["optimizer_steps"] == 3  # 8 batches → steps after 3, 6 and the last


def test_non_finite_loss_raises_with_where(tiny_bert):
    with pytest.raises(FloatingPointError, match=r"loss became (nan|inf) at epoch 1, batch \d+"):
        _train(tiny_bert, _cfg(lr=1e12, max_grad_norm=None))


def test_auto_precision_is_fp32_on_cpu():
    assert engine.resolve_precision("auto", torch.device("cpu")) == "fp32"
    assert engine.resolve_precision("bf16", torch.device("cpu")) == "bf16"


def test_compiled_model_trains_to_the_same_result(tiny_bert, monkeypatch):
    # dynamo traces the model, AOT autograd builds the backward; inductor's C++ codegen (the default
    # backend) takes minutes on 2 cores, so the suite swaps in aot_eager: the same graphs, run eagerly
    calls = []

    def compile_aot_eager(model):
        calls.append(model)
        return torch.compile(model, dynamic=True, backend="aot_eager")

    monkeypatch.setattr(engine, "_compiled", compile_aot_eager)
    _, eager, _ = _train(tiny_bert, _cfg(epochs=2))
    model, compiled, _ = _train(tiny_bert, _cfg(epochs=2, compile=True))
    assert calls == [model]
    assert compiled.resources["compiled"] is True and eager.resources["compiled"] is False
    assert compiled.test_metrics["accuracy"] == eager.test_metrics["accuracy"]
    np.testing.assert_allclose(compiled.test_probabilities, eager.test_probabilities, atol=1e-4)


@pytest.mark.parametrize("attention", ["sdpa", "eager"])
def test_attention_kernel_is_chosen_and_recorded(tiny_bert, attention):
    model = load_classifier(str(tiny_bert), ["neg", "pos"], attention=attention)
    assert model.config._attn_implementation == attention
