"""Each strategy trains exactly the parameters it claims, on BERT, RoBERTa and DistilBERT."""

from __future__ import annotations

import re

import pytest

from tunebench.errors import SpecError
from tunebench.methods import build_strategy
from tunebench.spec.strategy import parse_strategy
from tunebench.training.modeling import count_parameters, find_layer_stack, head_parameter_names, load_classifier

from .conftest import TINY_LAYERS

LABELS = ["a", "b", "c"]

#: per architecture: the layer-stack prefix and the head parameters (classifier + pooler if any)
ARCH = {
    "bert": ("bert.encoder.layer", {"bert.pooler.dense.weight", "bert.pooler.dense.bias",
                                    "classifier.weight", "classifier.bias"}),
    "roberta": ("roberta.encoder.layer", {"classifier.dense.weight", "classifier.dense.bias",
                                          "classifier.out_proj.weight", "classifier.out_proj.bias"}),
    "distilbert": ("distilbert.transformer.layer", {"pre_classifier.weight", "pre_classifier.bias",
                                                    "classifier.weight", "classifier.bias"}),
}
LORA_NAMES = {"bert": ("query", "value"), "roberta": ("query", "value"), "distilbert": ("q_lin", "v_lin")}


def _prepared(path, label):
    model = load_classifier(str(path), LABELS)
    strategy = build_strategy(parse_strategy(label))
    model = strategy.prepare(model)
    return model, strategy


def _trainable(model) -> set[str]:
    return {n for n, p in model.named_parameters() if p.requires_grad}


def _own_count(model) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


@pytest.mark.parametrize("arch", list(ARCH))
def test_head_trains_classifier_and_pooler_only(tiny_models, arch):
    model, strategy = _prepared(tiny_models[arch], "head")
    assert _trainable(model) == ARCH[arch][1]
    assert set(head_parameter_names(model)) == ARCH[arch][1]
    assert strategy.lowest_trainable_layer == TINY_LAYERS  # no encoder layer needs a gradient
    assert count_parameters(model)[0] == _own_count(model)


@pytest.mark.parametrize("arch", list(ARCH))
def test_partial_trains_top_k_layers_plus_head(tiny_models, arch):
    model, strategy = _prepared(tiny_models[arch], "partial:k=2")
    stack, head = ARCH[arch]
    trainable = _trainable(model)
    in_layers = {n for n in trainable if n.startswith(stack + ".")}
    assert {int(n[len(stack) + 1:].split(".")[0]) for n in in_layers} == {1, 2}
    every_top_layer_param = {n for n, _ in model.named_parameters()
                             if n.startswith((f"{stack}.1.", f"{stack}.2."))}
    assert in_layers == every_top_layer_param  # the whole top two layers, nothing of layer 0
    assert trainable - in_layers == head
    assert strategy.lowest_trainable_layer == 1
    assert count_parameters(model)[0] == _own_count(model)


@pytest.mark.parametrize("arch", list(ARCH))
def test_full_trains_everything(tiny_models, arch):
    model, strategy = _prepared(tiny_models[arch], "full")
    assert _trainable(model) == {n for n, _ in model.named_parameters()}
    assert strategy.lowest_trainable_layer == -1  # embeddings train too
    trainable, total = count_parameters(model)
    assert trainable == total == _own_count(model)


@pytest.mark.parametrize("arch", list(ARCH))
def test_lora_trains_adapters_and_head(tiny_models, arch):
    model, strategy = _prepared(tiny_models[arch], "lora:r=4")
    trainable = _trainable(model)
    adapters = {n for n in trainable if ".lora_A." in n or ".lora_B." in n}
    rest = trainable - adapters
    q, v = LORA_NAMES[arch]
    # one A and one B per targeted module per layer, only on query and value
    assert len(adapters) == 2 * 2 * TINY_LAYERS
    assert all(re.search(rf"\.({q}|{v})\.lora_[AB]\.", n) for n in adapters)
    # the head trains as a peft modules_to_save copy; nothing else does
    head_leaves = {n.rsplit(".", 2)[-2] + "." + n.rsplit(".", 1)[-1] for n in ARCH[arch][1]}
    assert rest and all(".modules_to_save." in n for n in rest)
    assert {n.replace(".modules_to_save.default", "").rsplit(".", 2)[-2] + "." + n.rsplit(".", 1)[-1]
            for n in rest} == head_leaves
    # tunebench's count equals peft's own count, and the rank is what was asked
    peft_trainable, _ = model.get_nb_trainable_parameters()
    assert count_parameters(model)[0] == peft_trainable
    a = next(p for n, p in model.named_parameters() if ".lora_A." in n)
    assert a.shape[0] == 4
    assert strategy.lowest_trainable_layer == 0


def test_lora_layers_restricts_depth(tiny_bert):
    model, strategy = _prepared(tiny_bert, "lora:r=2,layers=2")
    adapters = {n for n in _trainable(model) if ".lora_" in n}
    assert adapters and all(".layer.2." in n for n in adapters)
    assert strategy.lowest_trainable_layer == 2


def test_lora_key_target_and_negative_layer(tiny_bert):
    model, strategy = _prepared(tiny_bert, "lora:r=2,targets=key,layers=-1")
    adapters = {n for n in _trainable(model) if ".lora_" in n}
    assert adapters and all(".layer.2.attention.self.key." in n for n in adapters)


def test_partial_k_larger_than_depth_is_a_clear_error(tiny_bert):
    with pytest.raises(SpecError, match="top 5 layers but the model has only 3"):
        _prepared(tiny_bert, "partial:k=5")


def test_lora_unknown_target_is_a_clear_error(tiny_bert):
    with pytest.raises(SpecError, match="LoRA target.*nonsense not found"):
        _prepared(tiny_bert, "lora:targets=nonsense")


def test_lora_layer_out_of_range_is_a_clear_error(tiny_bert):
    with pytest.raises(SpecError, match=r"names layer\(s\) \[7\].*layers 0..2"):
        _prepared(tiny_bert, "lora:layers=7")


@pytest.mark.parametrize("arch", list(ARCH))
def test_layer_stack_found_generically(tiny_models, arch):
    model = load_classifier(str(tiny_models[arch]), LABELS)
    name, stack = find_layer_stack(model)
    assert name == ARCH[arch][0]
    assert len(stack) == TINY_LAYERS


def test_a_digit_int_cannot_read_is_one_sentence_not_a_value_error():
    with pytest.raises(SpecError, match="layers"):  # "²".isdigit() is true; int("²") fails
        parse_strategy("full:layers=²")
