"""Property-based: the spec parser turns any input into a StudySpec or one SpecError sentence, nothing else."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tunebench.errors import SpecError
from tunebench.spec.strategy import parse_strategy
from tunebench.spec.study import spec_from_dict

scalars = st.one_of(st.none(), st.booleans(), st.integers(-10**6, 10**6), st.floats(allow_nan=True),
                    st.text(max_size=12))
values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                       st.dictionaries(st.text(max_size=8), inner, max_size=3)),
                      max_leaves=8)
SECTIONS = {
    "data": ["source", "text_column", "label_column", "train_limit", "val_fraction", "test_fraction"],
    "model": ["name", "max_length", "trust_remote_code", "allow_pickle"],
    "training": ["epochs", "batch_size", "lr", "scheduler", "seed", "precision", "checkpoint_every",
                 "grad_accumulation", "warmup_ratio"],
    "output": ["dir", "save_checkpoints"],
}
section = st.sampled_from(sorted(SECTIONS)).flatmap(
    lambda name: st.tuples(st.just(name), st.dictionaries(st.sampled_from(SECTIONS[name] + ["bogus"]), values,
                                                          max_size=4)))
strategy_text = st.builds(lambda kind, opts: kind + (":" + ",".join(opts) if opts else ""),
                          st.sampled_from(["full", "head", "partial", "lora", "LoRA", "adapter", ""]),
                          st.lists(st.builds("{}={}".format, st.sampled_from(["k", "r", "alpha", "dropout", "lr",
                                                                             "epochs", "targets", "layers", "x"]),
                                             st.text(max_size=6)), max_size=3))
kinds = st.sampled_from(["full", "head", "partial", "lora", "kind", "bogus"])
strategy_mapping = st.one_of(  # the YAML forms: {kind: lora, r: 8} and {lora: {r: 8}}
    st.dictionaries(kinds, st.one_of(values, st.dictionaries(st.sampled_from(["r", "k", "kind", "lr"]), values)),
                    min_size=1, max_size=1),
    st.builds(lambda kind, rest: {"kind": kind, **rest}, kinds, st.dictionaries(st.sampled_from(["r", "k"]), values)))
studies = st.fixed_dictionaries({}, optional={
    "name": values,
    "strategies": st.one_of(values, st.lists(st.one_of(strategy_text, strategy_mapping, values), max_size=3)),
    **{name: st.one_of(values, section.map(lambda t: t[1])) for name in SECTIONS},
})


def _single_sentence(exc: SpecError) -> None:
    assert str(exc) and "\n" not in str(exc)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(studies)
def test_study_spec_from_any_mapping_is_a_spec_or_one_spec_error(data):
    try:
        spec = spec_from_dict(data)
    except SpecError as exc:
        _single_sentence(exc)
    else:
        assert spec_from_dict(spec.to_dict()) == spec  # a valid spec survives its own serialisation


@settings(max_examples=300, deadline=None)
@given(strategy_text)
def test_parse_strategy_of_near_valid_text_is_a_strategy_or_one_spec_error(text):
    try:
        parse_strategy(text)
    except SpecError as exc:
        _single_sentence(exc)
