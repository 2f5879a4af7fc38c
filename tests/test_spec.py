"""The study spec: strategy strings, YAML, defaults, and one-sentence errors naming the field."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tunebench.errors import SpecError
from tunebench.spec.parts import stable_hash
from tunebench.spec.strategy import DEFAULT_LR, parse_strategy
from tunebench.spec.study import StudySpec, default_study, load_spec, quick_study, spec_from_dict

from .conftest import cli, one_error


def test_parse_lora_with_every_option():
    s = parse_strategy("lora:r=4,alpha=32,dropout=0.05,targets=query+key+value,layers=4+5,lr=3e-4")
    assert (s.kind, s.r, s.alpha, s.dropout) == ("lora", 4, 32.0, 0.05)
    assert s.targets == ["query", "key", "value"] and s.layers == [4, 5] and s.lr == 3e-4
    assert s.label == "lora:r=4,alpha=32,dropout=0.05,targets=query+key+value,layers=4+5,lr=0.0003"


def test_defaults_fill_in():
    lora = parse_strategy("lora")
    assert (lora.r, lora.alpha, lora.dropout, lora.targets) == (8, 16.0, 0.1, ["query", "value"])
    assert lora.label == "lora:r=8"
    assert parse_strategy("partial").k == 2 and parse_strategy("partial").label == "partial:k=2"
    assert parse_strategy(" HEAD ").label == "head"
    assert parse_strategy("full:epochs=1,scheduler=cosine").label == "full:epochs=1,scheduler=cosine"


@pytest.mark.parametrize("text, message", [
    ("adapter", "unknown strategy 'adapter' in 'adapter'; choose one of: full, head, partial, lora"),
    ("lora:r=-1", "strategy 'lora:r=-1': field 'r' Input should be greater than or equal to 1 (got -1)"),
    ("lora:r=big", "field 'r' Input should be a valid integer"),
    ("partial:k=0", "field 'k' Input should be greater than or equal to 1"),
    ("head:r=8", "option(s) r only apply to lora, not head"),
    ("full:k=2", "option k only applies to partial, not full"),
    ("lora:rank=8", "field 'rank' is not a known field"),
    ("lora:r", "strategy option 'r' in 'lora:r' must look like key=value"),
    ("lora:dropout=1.5", "field 'dropout' Input should be less than 1"),
    ("full:scheduler=fast", "field 'scheduler' must be one of 'linear', 'cosine' or 'constant'"),
])
def test_bad_strategy_strings_name_the_problem(text, message):
    with pytest.raises(SpecError) as info:
        parse_strategy(text)
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_per_strategy_learning_rates_and_overrides():
    spec = StudySpec(strategies=["full", "lora:r=8", "head:lr=0.01", "partial:k=1,epochs=1"])
    from tunebench.study.plan import run_config  # what the engine is given

    cfgs = [run_config(spec, s, "fp32") for s in spec.strategies]
    assert [c.lr for c in cfgs] == [DEFAULT_LR["full"], DEFAULT_LR["lora"], 0.01, DEFAULT_LR["partial"]]
    assert DEFAULT_LR["lora"] > DEFAULT_LR["full"]
    assert [c.epochs for c in cfgs] == [3, 3, 3, 1]
    one_lr = StudySpec(strategies=["full", "lora"], training={"lr": 2e-5})
    assert [run_config(one_lr, s, "fp32").lr for s in one_lr.strategies] == [2e-5, 2e-5]


def _readme_block(marker: str) -> str:
    text = (Path(__file__).parents[1] / "README.md").read_text(encoding="utf-8")
    block = text.split(f"<!-- {marker} -->", 1)[1].split(f"<!-- /{marker} -->", 1)[0]
    return block.split("```yaml", 1)[1].split("```", 1)[0]


def test_the_default_and_quick_studies_are_the_ones_the_readme_shows(tmp_path):
    """The README's study files are the built-in studies, field for field (a spec change must change them)."""
    for marker, built_in in (("default-study-spec", default_study()), ("quick-study-spec", quick_study())):
        path = tmp_path / f"{marker}.yaml"
        path.write_text(_readme_block(marker), encoding="utf-8")
        assert load_spec(path).model_dump() == built_in.model_dump(), marker
    spec = default_study()
    assert [s.label for s in spec.strategies] == ["full", "lora:r=8", "head"]
    assert spec.data.source == "rotten-tomatoes" and spec.model.name == "minilm-l6"
    assert spec.tuning is not None and spec.tuning.enabled and spec.sweep.seeds == [0, 1, 2]
    assert spec.training.early_stopping is not None and spec.training.early_stopping.patience == 2
    quick = quick_study()
    assert [s.label for s in quick.strategies] == ["full", "partial:k=2", "lora:r=8", "head"]
    assert quick.data.source == "snli" and quick.tuning is None and not quick.sweep.seeds
    assert quick.training.precision == "auto" and quick.model.max_length == 128


def test_quick_and_seed_on_the_default_study(capsys, tmp_path):
    from tunebench.api.spec import build_spec

    assert build_spec(None, {"seed": 1}).sweep.seeds == [1, 2, 3]  # the protocol's three seeds start at --seed
    assert build_spec(None, {"seed": 1, "seeds": [4]}).sweep.seeds == [4]
    quick = build_spec(None, {"dataset": "reviews.csv"}, quick=True)
    assert quick.tuning is None and quick.data.train_limit is None and quick.name == "reviews-minilm-l6"
    study = tmp_path / "s.yaml"
    study.write_text("strategies: [head]\n")
    code, _, err = cli(capsys, "run", "--quick", str(study))
    assert code == 2
    assert one_error(err) == (f"error: --quick runs the built-in quick study; it does not combine with a study file "
                              f"('{study}'): leave one of them out")


def test_yaml_round_trip(tmp_path):
    path = tmp_path / "study.yaml"
    path.write_text(
        "name: mine\n"
        "data: {source: reviews.csv, text_column: review, label_column: stars, train_limit: 100}\n"
        "model: {name: some/model, max_length: 64}\n"
        "strategies:\n  - full\n  - lora: {r: 4, targets: [query, value]}\n  - kind: partial\n    k: 1\n"
        "training: {epochs: 2, scheduler: cosine, seed: 7}\n"
    )
    spec = load_spec(path)
    assert spec.name == "mine" and spec.data.text_column == "review" and spec.model.max_length == 64
    assert [s.label for s in spec.strategies] == ["full", "lora:r=4", "partial:k=1"]
    assert spec.training.scheduler == "cosine" and spec.training.seed == 7
    again = spec_from_dict(spec.to_dict())
    assert again == spec and stable_hash(again.to_dict()) == stable_hash(spec.to_dict())


@pytest.mark.parametrize("text, message", [
    ("training: {scheduler: step}\n",
     "field 'training.scheduler' must be one of 'linear', 'cosine' or 'constant' (got 'step')"),
    ("training: {epochs: 0}\n", "field 'training.epochs' Input should be greater than or equal to 1 (got 0)"),
    ("training: {batch_size: 0}\n", "field 'training.batch_size' Input should be greater than or equal to 1"),
    ("training: {lr: fast}\n", "field 'training.lr' Input should be a valid number"),
    ("training: {precision: fp8}\n", "field 'training.precision' must be one of 'fp32', 'bf16', 'fp16' or 'auto'"),
    ("model: {nme: x}\n", "field 'model.nme' is not a known field"),
    ("strategies: full\n", "must be a list such as [full, 'partial:k=2', 'lora:r=8', head]"),
    ("strategies: [full, full]\n", "strategies are listed twice: full"),
    ("strategies: [adapterdrop]\n", "unknown strategy 'adapterdrop'"),
    ("- full\n- head\n", "must hold a mapping with keys such as data, model, strategies, training, output "
                         "(got a list)"),
    ("data: {source: [unclosed\n", "is not valid YAML at line"),
])
def test_bad_yaml_gets_one_sentence(tmp_path, text, message):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(SpecError) as info:
        load_spec(path)
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_empty_mapping_is_the_default_strategy_set(tmp_path):
    path = tmp_path / "empty.yaml"
    path.write_text("{}\n")  # an empty file is an error (tests/faults/bad_inputs); an empty mapping is not
    assert [s.label for s in load_spec(path).strategies] == ["full", "partial:k=2", "lora:r=8", "head"]


def test_missing_study_file(tmp_path):
    with pytest.raises(SpecError, match="study file '.*nope.yaml' does not exist"):
        load_spec(tmp_path / "nope.yaml")


@given(st.text(max_size=40))
def test_parse_strategy_never_crashes_with_anything_but_spec_error(text):
    try:
        spec = parse_strategy(text)
    except SpecError as exc:
        assert str(exc) and "\n" not in str(exc)
    else:
        assert parse_strategy(spec.label) == spec
