"""Every PEFT method beyond full / partial / head / LoRA, on tiny BERT, RoBERTa and DistilBERT: it trains exactly what
it claims (peft's own count = ours, adapter + head), a few optimizer steps lower the training loss, the saved adapter
reloads with plain transformers + peft to the same probabilities, its label round-trips through YAML and the run id,
it prepares on the weightless meta-device model the study dry-runs; and each special mechanic (AdaLoRA's falling
rank budget, LoRA-FA's frozen A, DoRA's magnitude, LoRA+'s fast B, prompt methods' position budget)."""

from __future__ import annotations

import pytest
import torch

from tunebench.errors import SpecError
from tunebench.methods import METHODS, build_strategy
from tunebench.methods.prompts import PromptMethod
from tunebench.spec.strategy import OPTIONS, parse_strategy
from tunebench.spec.study import spec_from_dict
from tunebench.training.checkpoint import save_checkpoint
from tunebench.training.modeling import count_parameters, head_module_names, load_classifier, load_tokenizer
from tunebench.training.optim import build_optimizer

from .conftest import easy_reviews, round_trip_run_ids

ARCHS = ["bert", "roberta", "distilbert"]

#: strategy -> substrings naming the parameters the method adds (besides the head's modules_to_save copies)
CLAIMS: dict[str, tuple[str, ...]] = {
    "lora-fa:r=4": (".lora_B.",),
    "lora-plus:r=4": (".lora_A.", ".lora_B."),
    "adalora:init_r=4,target_r=2,tinit=2,tfinal=2,deltaT=1": (".lora_A.", ".lora_B.", ".lora_E."),
    "ia3": (".ia3_l.",),
    "vera:r=16": (".vera_lambda_b.", ".vera_lambda_d."),
    "loha:r=4": (".hada_w1_a.", ".hada_w1_b.", ".hada_w2_a.", ".hada_w2_b."),
    "lokr:r=4": (".lokr_w1", ".lokr_w2"),
    "oft:block_size=16": (".oft_R.",),
    "boft": (".boft_R.", ".boft_s."),
    "fourierft:n_frequency=64,scaling=100": (".fourierft_spectrum.",),
    "hra:r=4": (".hra_u.",),
    "ln-tuning": (".ln_tuning_layers.",),
    "prefix:tokens=4": ("prompt_encoder.",),
    "prompt:tokens=4": ("prompt_encoder.",),
    "p-tuning:tokens=4,encoder_hidden=16": ("prompt_encoder.",),
    # the LoRA variants (options of lora)
    "lora:r=4,dora=true": (".lora_A.", ".lora_B.", ".lora_magnitude_vector."),
    "lora:r=4,rslora=true": (".lora_A.", ".lora_B."),
    "lora:r=4,init=gaussian": (".lora_A.", ".lora_B."),
    "lora:r=4,init=pissa": (".lora_A.", ".lora_B."),
    "lora:r=4,init=olora": (".lora_A.", ".lora_B."),
    "lora:r=4,bias=lora_only": (".lora_A.", ".lora_B.", ".bias"),
}
#: what cannot run where (the sentence is checked in its own test)
UNSUPPORTED = {("prefix:tokens=4", arch) for arch in ARCHS}  # transformers 5: no past_key_values
CASES = [(label, arch) for label in CLAIMS for arch in ARCHS if (label, arch) not in UNSUPPORTED]


def test_every_new_kind_is_claimed_here_and_there_are_at_least_19_methods():
    new = {parse_strategy(label).kind for label in CLAIMS} - {"lora"}
    fitted = {"majority", "tfidf-logreg", "mean", "tfidf-ridge",  # no peft: tests/test_fitted_methods.py,
              "setfit", "embed-logreg"}  # tests/test_regression.py
    assert new == set(METHODS) - {"full", "head", "partial", "lora", "bitfit"} - fitted
    assert len(new) >= 15 and len(METHODS) >= 19


def _batch(tokenizer, n=16, seed=0):
    """``n`` reviews, three positive to one negative: a random tiny encoder barely separates them, but a prior
    away from 50/50 is something every method plus its head can lower the loss on in a few steps."""
    frame = easy_reviews(2 * n, seed=seed)
    frame = frame.iloc[sorted([*range(0, 2 * n, 2)][: 3 * n // 4] + [*range(1, 2 * n, 2)][: n - 3 * n // 4])]
    batch = tokenizer(frame.text.tolist(), padding=True, return_tensors="pt")
    labels = torch.tensor((frame.label == "pos").astype(int).tolist())
    return {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]}, labels


def _loss(model, batch, labels):
    return torch.nn.functional.cross_entropy(model(**batch).logits.float(), labels)


def _prepared(tiny_models, arch, label, total_steps=12):
    torch.manual_seed(0)
    model = load_classifier(str(tiny_models[arch]), ["neg", "pos"])
    head = head_module_names(model)
    method = build_strategy(parse_strategy(label))
    method.total_steps = total_steps
    return method, method.prepare(model), head


@pytest.mark.parametrize("label, arch", CASES)
def test_trains_what_it_claims_learns_and_reloads_identically(tiny_models, tmp_path, label, arch):
    from peft import PeftModel

    method, model, head = _prepared(tiny_models, arch, label)
    named = dict(model.named_parameters())
    trainable = {n for n, p in named.items() if p.requires_grad}
    head_copies = {n for n in trainable if ".modules_to_save." in n}
    adapters = trainable - head_copies
    # exactly the method's parameters and the head train; the head is every module the model reports fresh
    assert adapters and all(any(part in n for part in CLAIMS[label]) for n in adapters), sorted(adapters)[:5]
    assert {n.split(".modules_to_save.")[0].rsplit(".", 1)[-1] for n in head_copies} == {
        h.rsplit(".", 1)[-1] for h in head}
    assert count_parameters(model)[0] == model.get_nb_trainable_parameters()[0]  # = peft's own count
    if arch == "distilbert":
        assert any("pre_classifier.modules_to_save" in n for n in head_copies)

    tokenizer = load_tokenizer(str(tiny_models[arch]))
    batch, labels = _batch(tokenizer)
    before = {n: p.detach().clone() for n, p in named.items()}
    hooks = method.hooks(model)
    optimizer = build_optimizer(model, lr=method.spec.default_lr, weight_decay=0.0, head_lr=1e-2, hooks=hooks)
    model.eval()
    with torch.no_grad():
        first = float(_loss(model, batch, labels))
    for step in range(1, 11):  # in eval mode: no dropout noise, so the loss it lowers is the one it steps on
        loss = _loss(model, batch, labels)
        loss.backward()
        optimizer.step()
        if hooks.after_step is not None:
            hooks.after_step(model, step)
        optimizer.zero_grad()
    with torch.no_grad():
        assert float(_loss(model, batch, labels)) < first
    changed = {n for n, p in model.named_parameters() if not torch.equal(p.detach(), before[n])}
    assert changed <= trainable and changed & adapters and changed & head_copies

    test_batch, _ = _batch(tokenizer, 8, seed=1)
    with torch.no_grad():
        expected = torch.softmax(model(**test_batch).logits, -1)
    save_checkpoint(model, tokenizer, tmp_path / "run", {"label_names": ["neg", "pos"], "max_length": 32})
    from transformers import AutoModelForSequenceClassification

    base = AutoModelForSequenceClassification.from_pretrained(str(tiny_models[arch]), num_labels=2)
    reloaded = PeftModel.from_pretrained(base, tmp_path / "run").eval()
    with torch.no_grad():
        probs = torch.softmax(reloaded(**test_batch).logits, -1)
    assert torch.allclose(probs, expected, atol=1e-5)


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("label", list(CLAIMS))
def test_prepares_on_the_weightless_model_the_study_dry_runs(tiny_models, label, arch):
    from transformers import AutoConfig, AutoModelForSequenceClassification

    config = AutoConfig.from_pretrained(str(tiny_models[arch]), num_labels=2)
    method = build_strategy(parse_strategy(label))
    with torch.device("meta"):
        model = AutoModelForSequenceClassification.from_config(config)
        if (label, arch) in UNSUPPORTED:
            with pytest.raises(SpecError, match=rf"prefix tuning cannot run on {arch}: transformers .* takes no past"):
                method.prepare(model)
            return
        model = method.prepare(model)
    assert count_parameters(model)[0] > 0


def test_a_method_an_architecture_cannot_take_is_one_sentence(tiny_models):
    with pytest.raises(SpecError) as err:
        _prepared(tiny_models, "distilbert", "prefix")
    assert str(err.value).count(".") <= 2 and "distilbert" in str(err.value) and "prefix tuning" in str(err.value)


# --- labels, options, YAML and run ids ---------------------------------------------------------------------


def test_labels_and_options_round_trip_through_yaml_and_the_run_id(tmp_path):
    labels = [parse_strategy(label).label for label in CLAIMS] + ["vera:r=64,lr=0.01,head_lr=0.001"]
    ids = round_trip_run_ids(tmp_path, "strategies:\n" + "".join(f"  - '{label}'\n" for label in labels), labels)
    assert len(set(ids)) == len(ids)
    mapping = spec_from_dict({"strategies": [{"kind": "adalora", "init_r": 6, "target_r": 3}]}).strategies[0]
    assert mapping.label == "adalora:init_r=6,target_r=3" and mapping.model_dump()["r"] is None


def test_every_kind_has_a_default_lr_with_its_source_and_vera_fourierft_a_head_lr():
    for kind, options in OPTIONS.items():
        if kind in {parse_strategy(label).kind for label in CLAIMS}:
            assert options.default_lr > 0 and options.lr_source, kind
    assert (OPTIONS["vera"].default_lr, OPTIONS["vera"].default_head_lr) == (2e-2, 1e-2)
    assert (OPTIONS["fourierft"].default_lr, OPTIONS["fourierft"].default_head_lr) == (6e-2, 6e-3)


# --- the special mechanics ---------------------------------------------------------------------------------


def _train(method, model, tokenizer, steps, lr=5e-3):
    batch, labels = _batch(tokenizer)
    hooks = method.hooks(model)
    optimizer = build_optimizer(model, lr=lr, weight_decay=0.0, head_lr=None, hooks=hooks)
    model.train()
    seen = []
    for step in range(1, steps + 1):
        _loss(model, batch, labels).backward()
        optimizer.step()
        if hooks.after_step is not None:
            hooks.after_step(model, step)
        optimizer.zero_grad()
        seen.append(method.rank_budget(model) if hasattr(method, "rank_budget") else None)
    return optimizer, seen


def test_adalora_rank_budget_falls_from_init_r_to_target_r_as_scheduled(tiny_models):
    method, model, _ = _prepared(tiny_models, "bert", "adalora:init_r=4,target_r=2,tinit=2,tfinal=3,deltaT=1",
                                 total_steps=12)
    modules = 3 * 2  # query and value in each of the 3 layers
    allocator = model.base_model.rankallocator
    assert [allocator.budget_schedule(s)[0] for s in (1, 2)] == [4 * modules] * 2
    assert allocator.budget_schedule(9)[0] == allocator.budget_schedule(12)[0] == 2 * modules
    _, budget = _train(method, model, load_tokenizer(str(tiny_models["bert"])), 12)
    assert budget[0] == budget[1] == 4 * modules  # tinit: untouched
    assert all(a >= b for a, b in zip(budget, budget[1:], strict=False))  # never grows
    assert budget[-1] == 2 * modules and budget[5] < 4 * modules  # falls, and ends at the target


def test_adalora_schedule_that_does_not_fit_the_run_is_one_sentence(tiny_models):
    with pytest.raises(SpecError, match=r"tinit \(6\) \+ tfinal \(6\) steps leave no step of the run's 10"):
        _prepared(tiny_models, "bert", "adalora:tinit=6,tfinal=6", total_steps=10)


def test_lora_fa_keeps_a_at_its_init_and_trains_b(tiny_models):
    method, model, _ = _prepared(tiny_models, "roberta", "lora-fa:r=4")
    a = {n: p.detach().clone() for n, p in model.named_parameters() if ".lora_A." in n}
    b = {n: p.detach().clone() for n, p in model.named_parameters() if ".lora_B." in n}
    optimizer, _ = _train(method, model, load_tokenizer(str(tiny_models["roberta"])), 3)
    assert type(optimizer).__name__ == "LoraFAOptimizer"
    named = dict(model.named_parameters())
    assert all(torch.equal(named[n], v) for n, v in a.items()) and not any(named[n].requires_grad for n in a)
    assert all(not torch.equal(named[n], v) for n, v in b.items())


def test_lora_fa_keeps_the_head_at_its_own_rate(tiny_models):
    method, model, _ = _prepared(tiny_models, "bert", "lora-fa:r=4")
    optimizer = build_optimizer(model, lr=1e-3, weight_decay=0.0, head_lr=1e-2, hooks=method.hooks(model))
    rates = {name: g["lr"] for g in optimizer.param_groups for name in g["names"] if ".modules_to_save." in name
             or ".lora_B." in name}
    assert {r for n, r in rates.items() if ".modules_to_save." in n} == {1e-2}
    assert {r for n, r in rates.items() if ".lora_B." in n} == {1e-3}


def test_lora_plus_steps_b_ratio_times_faster_and_the_head_at_head_lr(tiny_models):
    method, model, _ = _prepared(tiny_models, "distilbert", "lora-plus:r=4,loraplus_ratio=8")
    optimizer = build_optimizer(model, lr=1e-3, weight_decay=0.0, head_lr=5e-3, hooks=method.hooks(model))
    names = {id(p): n for n, p in model.named_parameters()}
    rate = {names[id(p)]: g["lr"] for g in optimizer.param_groups for p in g["params"]}
    assert {r for n, r in rate.items() if ".lora_B." in n} == {8e-3}
    assert {r for n, r in rate.items() if ".lora_A." in n} == {1e-3}
    assert {r for n, r in rate.items() if ".modules_to_save." in n} == {5e-3}


def test_dora_magnitude_vector_trains(tiny_models):
    method, model, _ = _prepared(tiny_models, "bert", "lora:r=4,dora=true")
    magnitude = {n: p.detach().clone() for n, p in model.named_parameters() if ".lora_magnitude_vector." in n}
    assert magnitude and all(dict(model.named_parameters())[n].requires_grad for n in magnitude)
    _train(method, model, load_tokenizer(str(tiny_models["bert"])), 2)
    named = dict(model.named_parameters())
    assert all(not torch.equal(named[n], v) for n, v in magnitude.items())


@pytest.mark.parametrize("arch, label, fits, refused", [
    ("bert", "prompt:tokens=10", 120, 121),            # 130 positions
    ("roberta", "p-tuning:tokens=20", 110, 111),       # 132 positions, the first pad_token_id + 1 reserved
    ("distilbert", "prompt:tokens=2", 128, 129),
    ("roberta", "prompt:tokens=4", 126, 127),
])
def test_prompt_methods_refuse_a_max_length_that_no_longer_fits(tiny_models, arch, label, fits, refused):
    from transformers import AutoConfig, AutoModelForSequenceClassification

    from tunebench.methods.prompts import usable_positions

    config = AutoConfig.from_pretrained(str(tiny_models[arch]), num_labels=2)
    tokens = parse_strategy(label).tokens
    assert usable_positions(config) - tokens == fits  # the table's own arithmetic
    method = build_strategy(parse_strategy(label))
    assert isinstance(method, PromptMethod)
    with torch.device("meta"):
        model = AutoModelForSequenceClassification.from_config(config)
    method.check_fit(model, fits)
    with pytest.raises(SpecError, match=rf"adds {tokens} virtual tokens to max_length {refused}.*use max_length up "
                                        rf"to {fits}"):
        method.check_fit(model, refused)


def test_the_head_is_what_the_checkpoint_lacked(tiny_models, tmp_path):
    """A checkpoint without its pooler: transformers reports it fresh, so it trains and is saved as head."""
    from transformers import AutoModel

    from tunebench.training.modeling import fresh_parameter_names, head_parameter_names

    encoder = AutoModel.from_pretrained(str(tiny_models["bert"]), add_pooling_layer=False)
    encoder.save_pretrained(tmp_path / "no-pooler")
    load_tokenizer(str(tiny_models["bert"])).save_pretrained(tmp_path / "no-pooler")
    model = load_classifier(str(tmp_path / "no-pooler"), ["a", "b"])
    fresh = fresh_parameter_names(model)
    assert {"bert.pooler.dense.weight", "classifier.weight"} <= fresh
    assert fresh <= set(head_parameter_names(model))
    full = load_classifier(str(tiny_models["bert"]), ["a", "b"])
    assert fresh_parameter_names(full) == {"classifier.weight", "classifier.bias"}


def test_tunebench_methods_lists_every_method_with_defaults_lr_architectures_and_cache(capsys):
    from .conftest import cli

    code, out, _ = cli(capsys, "methods", "--sources")
    lines = out.strip().splitlines()
    assert code == 0 and lines[0].split("\t") == ["kind", "options", "default lr", "architectures",
                                                  "frozen-prefix cache", "what trains", "lr source"]
    rows = {line.split("\t")[0]: line.split("\t") for line in lines[1:-1]}
    assert list(rows) == list(METHODS) and len(rows) >= 19 and lines[-1] == f"{len(rows)} methods"
    assert rows["vera"][2] == "0.02 (head 0.01)" and "r=256" in rows["vera"][1] and "distilbert" in rows["vera"][3]
    assert rows["prompt"][4].startswith("never") and "VeRA.ipynb" in rows["vera"][6]
