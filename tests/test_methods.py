"""The method registry: the spec's options and the methods' behaviour list the same kinds; every method trains
exactly what it says; a trainable parameter outside the layer stack turns the frozen-prefix cache off; BitFit."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tunebench.errors import SpecError
from tunebench.methods import METHODS, Method, build_strategy, register
from tunebench.methods.bitfit import is_bias
from tunebench.spec.strategy import DEFAULT_LR, KINDS, OPTIONS, STRATEGY_TRAINING, option_columns, parse_strategy
from tunebench.spec.study import load_spec
from tunebench.spec.sweep import KIND_OPTIONS, known_keys
from tunebench.training import engine
from tunebench.training.modeling import count_parameters, head_parameter_names, load_classifier, load_tokenizer

from .conftest import TINY_LAYERS, easy_reviews, round_trip_run_ids
from .test_engine import _cfg, _encoded

ARCHS = ["bert", "roberta", "distilbert"]
STACK = {"bert": "bert.encoder.layer.", "roberta": "roberta.encoder.layer.",
         "distilbert": "distilbert.transformer.layer."}


def _top_layers(arch: str, k: int) -> tuple[str, ...]:
    return tuple(f"{STACK[arch]}{i}." for i in range(TINY_LAYERS - k, TINY_LAYERS))


#: per kind, built from its bare name: which parameters it claims to train (name, arch, head names)
#: and the lowest layer a gradient must reach.  A new method adds its claim here.
CLAIMS = {
    "full": (lambda name, arch, head: True, -1),
    "head": (lambda name, arch, head: name in head, TINY_LAYERS),
    "partial": (lambda name, arch, head: name in head or name.startswith(_top_layers(arch, 2)), TINY_LAYERS - 2),
    "lora": (lambda name, arch, head: ".lora_A." in name or ".lora_B." in name or ".modules_to_save." in name, 0),
    "bitfit": (lambda name, arch, head: name in head or is_bias(name), -1),
}


def test_the_spec_and_the_methods_list_the_same_kinds():
    from .test_peft_methods import CLAIMS as PEFT_CLAIMS  # the PEFT kinds beyond LoRA, each checked there

    assert list(METHODS) == list(OPTIONS) == list(KINDS) == list(DEFAULT_LR)
    assert KINDS[:5] == tuple(CLAIMS) == ("full", "head", "partial", "lora", "bitfit")
    peft = {parse_strategy(label).kind for label in PEFT_CLAIMS} - {"lora"}
    fitted = {kind for kind in KINDS if OPTIONS[kind].fitted}  # the baselines; embed-logreg, setfit: test_fitted_methods
    assert set(KINDS) == set(CLAIMS) | peft | fitted  # every kind is one parametrised row here or there
    for kind, method in METHODS.items():
        assert method.kind == kind and OPTIONS[kind].model_fields["kind"].default == kind
        assert type(build_strategy(parse_strategy(kind))) is method


def test_a_kind_that_is_its_peft_recipe_alone_needs_no_class():
    from tunebench.methods import PeftMethod

    recipe = OPTIONS["loha"].peft
    assert (recipe.config, recipe.fields, recipe.fallbacks) == ("LoHaConfig", {"r": "r", "alpha": "alpha"}, {"alpha": "r"})
    method = build_strategy(parse_strategy("loha:r=4"))
    assert type(method).__name__ == "LohaMethod" and type(method).__bases__ == (PeftMethod,)
    assert method.display == "LoHa" and METHODS["loha"] is type(method)
    with pytest.raises(ValueError, match=r"kind 'lora' already has a method \(LoraMethod\)"):
        register(type("OtherLora", (Method,), {"kind": "lora"}))


def test_everything_that_lists_kinds_is_derived_from_the_options_models():
    assert {k: DEFAULT_LR[k] for k in CLAIMS} == {"full": 5e-5, "head": 1e-3, "partial": 1e-4, "lora": 5e-4,
                                                  "bitfit": 1e-3}
    assert KIND_OPTIONS["partial"] == ("k",)
    assert KIND_OPTIONS["lora"] == ("r", "alpha", "dropout", "targets", "layers", "dora", "rslora", "init")
    assert option_columns()[:10] == ["k", "r", "alpha", "dropout", "targets", "layers", "dora", "rslora", "init", "bias"]
    assert STRATEGY_TRAINING == ("lr", "epochs", "scheduler", "head_lr")
    assert {f"{kind}.{opt}" for kind, opts in KIND_OPTIONS.items() for opt in opts} <= set(known_keys())
    with pytest.raises(SpecError, match="choose one of: full, head, partial, lora, bitfit"):
        parse_strategy("adapterdrop")
    for kind in KINDS:  # every kind dumps every option column: one record shape, stable run ids
        dump = parse_strategy(kind).model_dump()
        assert list(dump) == ["kind", *option_columns(), *STRATEGY_TRAINING]
        foreign = set(option_columns()) - set(OPTIONS[kind].own_options())
        assert all(dump[name] is None for name in foreign)


def test_a_method_for_a_kind_the_spec_does_not_know_is_refused():
    class Prompt(Method):
        kind = "adapterdrop"

    with pytest.raises(ValueError, match="kind 'adapterdrop', which has no options model"):
        register(Prompt)
    assert "adapterdrop" not in METHODS


def _step(model, tokenizer) -> None:
    """One optimizer step on a few examples (input ids and mask only: every architecture takes those)."""
    frame = easy_reviews(8)
    batch = tokenizer(frame.text.tolist(), padding=True, return_tensors="pt")
    labels = torch.tensor((frame.label == "pos").astype(int).tolist())
    model.train()
    loss = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], labels=labels).loss
    loss.backward()
    torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.5).step()


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("kind", list(CLAIMS))
def test_every_registered_method_builds_and_trains_exactly_what_it_claims(tiny_models, arch, kind):
    claim, lowest = CLAIMS[kind]
    model = load_classifier(str(tiny_models[arch]), ["a", "b"])
    head = set(head_parameter_names(model))
    method = build_strategy(parse_strategy(kind))
    model = method.prepare(model)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == {n for n, _ in model.named_parameters() if claim(n, arch, head)}
    assert method.lowest_trainable_layer == lowest and method.n_layers == TINY_LAYERS
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    _step(model, load_tokenizer(str(tiny_models[arch])))
    changed = {n for n, p in model.named_parameters() if not torch.equal(p.detach(), before[n])}
    assert changed and changed <= trainable  # frozen parameters stay exactly as they were


# --- the depth rule: a trainable parameter outside head and layer stack means no frozen prefix ----------


class PromptTuning(Method):
    """Test-only: peft prompt tuning (virtual tokens in front of the input) with its trainable head."""

    kind = "head"  # a stand-in: the spec has no prompt-tuning options; this class is not registered

    def prepare(self, model):
        from peft import PromptTuningConfig, TaskType, get_peft_model

        model = get_peft_model(model, PromptTuningConfig(task_type=TaskType.SEQ_CLS, num_virtual_tokens=4))
        self.lowest_trainable_layer = self._lowest_from(model)
        return model


def test_prompt_tuning_needs_gradients_to_the_input_so_nothing_is_cached(tiny_bert):
    tokenizer = load_tokenizer(str(tiny_bert))
    frame = easy_reviews(80)
    train, val, test = (_encoded(tokenizer, frame.iloc[s]) for s in (slice(0, 48), slice(48, 64), slice(64, 80)))
    engine.seed_everything(0)
    method = PromptTuning(spec=parse_strategy("head"))
    model = method.prepare(load_classifier(str(tiny_bert), ["neg", "pos"]))
    prompt = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad and "prompt_encoder" in n}
    assert prompt and method.lowest_trainable_layer == -1  # the head-only rule would have said 3 (cache it all)
    result = engine.train_and_evaluate(model, train, val, test, ["neg", "pos"], _cfg(epochs=2), torch.device("cpu"),
                                       tokenizer.pad_token_id, lowest_trainable_layer=method.lowest_trainable_layer)
    assert result.resources["frozen_prefix_layers"] == 0 and result.resources["prefix_cache_bytes"] == 0
    assert result.resources["engine_notes"] == []
    named = dict(model.named_parameters())
    assert all(not torch.equal(named[n].detach(), before) for n, before in prompt.items())  # the prompt learned


def test_prefix_tuning_is_no_frozen_prefix_either(tiny_bert):
    from peft import PrefixTuningConfig, TaskType, get_peft_model

    model = get_peft_model(load_classifier(str(tiny_bert), ["a", "b"]),
                           PrefixTuningConfig(task_type=TaskType.SEQ_CLS, num_virtual_tokens=4))
    assert Method(spec=parse_strategy("head"))._lowest_from(model) == -1  # was 3: the whole encoder cached


# --- BitFit ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("arch", ARCHS)
def test_bitfit_trains_every_bias_and_the_head_only(tiny_models, arch):
    model = load_classifier(str(tiny_models[arch]), ["a", "b", "c"])
    head = set(head_parameter_names(model))
    method = build_strategy(parse_strategy("bitfit"))
    model = method.prepare(model)
    named = dict(model.named_parameters())
    trainable = {n for n, p in named.items() if p.requires_grad}
    biases = {n for n in named if n.endswith(".bias")}
    encoder_biases = biases - head
    assert trainable == encoder_biases | head
    # every layer's attention, feed-forward and norm biases, and the embedding LayerNorm's
    per_layer = {"bert": 8, "roberta": 8, "distilbert": 8}[arch]
    assert sum(n.startswith(STACK[arch]) for n in encoder_biases) == per_layer * TINY_LAYERS
    assert any(".embeddings.LayerNorm.bias" in n for n in encoder_biases)
    assert not any(n.endswith(".weight") for n in trainable - head)
    assert count_parameters(model)[0] == sum(named[n].numel() for n in trainable)
    assert method.lowest_trainable_layer == -1  # the embedding LayerNorm trains: no frozen prefix


@pytest.mark.parametrize("text, message", [
    ("bitfit:k=2", "option k only applies to partial, not bitfit"),
    ("bitfit:r=4,alpha=8", "option(s) r, alpha only apply to lora, not bitfit"),
    ("bitfit:lr=0", "field 'lr' Input should be greater than 0"),
])
def test_bitfit_takes_only_the_shared_overrides(text, message):
    with pytest.raises(SpecError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_strategy(text)


def test_bitfit_label_and_options_round_trip_through_yaml_with_the_same_run_id(tmp_path):
    from tunebench.study.plan import run_config

    round_trip_run_ids(tmp_path, "strategies:\n  - bitfit\n  - bitfit: {lr: 5e-4, epochs: 2, scheduler: cosine}\n"
                       "  - {kind: bitfit, epochs: 4, k: null, r: null}\n",
                       ["bitfit", "bitfit:lr=0.0005,epochs=2,scheduler=cosine", "bitfit:epochs=4"])
    spec = load_spec(tmp_path / "study.yaml")
    assert run_config(spec, spec.strategies[0], "fp32").lr == DEFAULT_LR["bitfit"] == 1e-3
    assert run_config(spec, spec.strategies[1], "fp32").lr == 5e-4


def test_bitfit_checkpoint_reloads_with_plain_transformers(tiny_bert, tmp_path):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from tunebench.data.loading import load_dataset_bundle
    from tunebench.results.store import STORE_NAME, Store
    from tunebench.study import driver
    from tunebench.study.run import safe_slug

    from .test_study import tiny_spec

    csv = tmp_path / "reviews.csv"
    easy_reviews().to_csv(csv, index=False)
    spec = tiny_spec(tiny_bert, csv, tmp_path / "out", strategies=["bitfit"], epochs=3)
    [record] = driver.run_study(spec)
    assert record["status"] == "finished" and record["strategy"] == "bitfit" and safe_slug("bitfit") == "bitfit"
    assert record["model"]["lowest_trainable_layer"] == -1 and record["resources"]["frozen_prefix_layers"] == 0
    model = load_classifier(str(tiny_bert), ["neg", "pos"])
    model = build_strategy(parse_strategy("bitfit")).prepare(model)
    assert record["params"]["trainable"] == sum(p.numel() for p in model.parameters() if p.requires_grad)

    folder = record["checkpoint"]
    tokenizer = AutoTokenizer.from_pretrained(folder)
    reloaded = AutoModelForSequenceClassification.from_pretrained(folder).eval()
    bundle = load_dataset_bundle(spec.data, seed=spec.training.seed)
    with torch.no_grad():
        probs = [torch.softmax(reloaded(**tokenizer(t, truncation=True, max_length=32, return_tensors="pt")).logits,
                               -1)[0].numpy() for t in bundle.test.texts]
    with Store(spec.output.dir / STORE_NAME) as store:
        labels, stored = store.predictions(record["run_id"])
    assert labels == list(bundle.test.labels)
    assert np.allclose(np.asarray(probs), np.asarray(stored), atol=1e-4)


@pytest.mark.slow
def test_real_minilm_learns_with_bitfit_well_above_chance(tmp_path):
    from tunebench.spec.study import StudySpec
    from tunebench.study.driver import run_study

    csv = tmp_path / "reviews.csv"
    easy_reviews(160, seed=3).to_csv(csv, index=False)
    spec = StudySpec(
        name="real-minilm-bitfit",
        data={"source": str(csv)},
        model={"name": "minilm-l6", "max_length": 32},
        strategies=["bitfit"],
        training={"epochs": 2, "batch_size": 16},  # about 40 s on 2 cores
        output={"dir": str(tmp_path / "out"), "save_checkpoints": False},
    )
    [record] = run_study(spec)
    assert record["status"] == "finished" and record["resolved"]["lr"] == 1e-3
    assert record["data"]["sizes"]["test"] >= 30
    assert record["test"]["accuracy"] >= 0.85  # two balanced classes: chance is 0.5
    # MiniLM-L6: 6 layers x (7 biases of 384 + 1 of 1536), the embedding LayerNorm's 384, pooler 384 x 385, head 2 x 385
    assert record["params"]["trainable"] == 6 * (7 * 384 + 1536) + 384 + 384 * 385 + 2 * 385
