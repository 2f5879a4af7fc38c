"""``model.attention: auto``: sdpa and eager timed on the study's model and batch, the faster kept, cached per
machine, recorded in every run and shown in the report; ``sdpa`` / ``eager`` as asked, with no probe."""

from __future__ import annotations

import json

import pytest
import torch

from tunebench.results.choices import MIN_HIDDEN, AttentionChoice, pick_kernel
from tunebench.spec.study import StudySpec
from tunebench.study import driver
from tunebench.training import attention
from tunebench.training.modeling import load_classifier, load_tokenizer

from .conftest import easy_reviews
from .test_engine import _encoded


@pytest.fixture(autouse=True)
def _time_tiny_models(monkeypatch):
    """The tiny test models are narrower than MIN_HIDDEN, which ``auto`` does not time: here they are timed,
    to test the probe (one test below puts the floor back)."""
    monkeypatch.setattr(attention, "MIN_HIDDEN", 0)


def _probe(tiny_bert, tmp_path, requested="auto", load=None, **kw):
    from transformers import AutoConfig

    tokenizer = load_tokenizer(str(tiny_bert))
    train = _encoded(tokenizer, easy_reviews(64))
    return attention.choose_attention(
        requested, load or (lambda: load_classifier(str(tiny_bert), ["neg", "pos"])),
        AutoConfig.from_pretrained(str(tiny_bert)), train, 8, torch.device("cpu"), "fp32", tokenizer.pad_token_id,
        cache=tmp_path / "attention.json", **kw)


def test_auto_times_both_kernels_keeps_the_faster_and_reads_it_back_from_the_cache(tiny_bert, tmp_path):
    first = _probe(tiny_bert, tmp_path)
    assert first.how == "measured" and set(first.step_s) == {"sdpa", "eager"}
    assert all(s > 0 for s in first.step_s.values())
    assert first.kernel == pick_kernel(first.step_s)
    assert first.detail.startswith("a batch of 8 x ")  # one of the study's own training batches
    stored = json.loads((tmp_path / "attention.json").read_text())
    assert [entry["kernel"] for entry in stored.values()] == [first.kernel]

    def not_loaded():
        raise AssertionError("a cached choice loads no model")

    again = _probe(tiny_bert, tmp_path, load=not_loaded)
    assert (again.how, again.kernel, again.step_s) == ("cached", first.kernel, first.step_s)
    assert "measured earlier on this machine, cached" in again.sentence()

    # timings stored under an earlier rule (or edited) are judged by today's rule, not by the kernel stored with them
    key = next(iter(stored))
    stored[key].update(kernel="eager", step_s={"sdpa": 0.100, "eager": 0.095})  # 5 %: within today's 10 %
    (tmp_path / "attention.json").write_text(json.dumps(stored))
    assert _probe(tiny_bert, tmp_path, load=not_loaded).kernel == "sdpa"


@pytest.mark.parametrize(("times", "kernel", "why"), [
    ({"sdpa": 0.100, "eager": 0.080}, "eager", "the faster"),
    ({"sdpa": 0.080, "eager": 0.100}, "sdpa", "the faster"),
    ({"sdpa": 0.100, "eager": 0.095}, "sdpa", "the default, eager within 10%"),  # 5 %: noise, the default kept
])
def test_the_choice_follows_the_measurement_and_a_gap_within_noise_keeps_the_default(tiny_bert, tmp_path, monkeypatch,
                                                                                     times, kernel, why):
    monkeypatch.setattr(attention, "_time_kernels", lambda *a: dict(times))
    choice = _probe(tiny_bert, tmp_path)
    assert (choice.how, choice.kernel) == ("measured", kernel)
    assert f"attention kernel: {kernel} (auto: {why}; one training step" in choice.sentence()


def test_a_kernel_asked_for_is_used_without_a_probe_and_an_unreadable_cache_is_measured_again(tiny_bert, tmp_path,
                                                                                              monkeypatch):
    def no_probe(*a):
        raise AssertionError("no probe for a kernel asked for")

    real = attention._time_kernels
    monkeypatch.setattr(attention, "_time_kernels", no_probe)
    for kernel in ("eager", "sdpa"):
        choice = _probe(tiny_bert, tmp_path, requested=kernel)
        assert (choice.kernel, choice.how, choice.sentence()) == (kernel, "asked", f"attention kernel: {kernel} (as asked)")
    monkeypatch.setattr(attention, "_time_kernels", real)
    (tmp_path / "attention.json").write_text("not json {")
    assert _probe(tiny_bert, tmp_path).how == "measured"
    assert len(json.loads((tmp_path / "attention.json").read_text())) == 1  # the damaged file replaced


def test_a_model_that_cannot_switch_kernels_keeps_the_one_it_has(tiny_bert, tmp_path, monkeypatch):
    real = attention._set_kernel

    def sdpa_only(model, kernel):
        if kernel == "eager":
            raise ValueError("this architecture has no eager attention")
        real(model, kernel)

    monkeypatch.setattr(attention, "_set_kernel", sdpa_only)
    choice = _probe(tiny_bert, tmp_path)
    assert (choice.how, choice.kernel) == ("one kernel", "sdpa")
    assert choice.sentence() == "attention kernel: sdpa (auto: the model cannot switch to eager)"


def test_not_probed_says_why_and_leaves_the_kernel_to_transformers(tiny_bert, tmp_path):
    choice = _probe(tiny_bert, tmp_path, probe_reason="the runs train on Ray workers' GPUs, which this process has not")
    assert (choice.kernel, choice.how) == (None, "not probed")
    assert choice.sentence() == ("attention kernel: transformers' default (auto, not probed: the runs train on Ray "
                                 "workers' GPUs, which this process has not)")


def test_every_run_of_a_study_loads_the_chosen_kernel_and_the_report_says_which_and_why(tiny_bert, reviews_csv,
                                                                                        tmp_path, monkeypatch):
    from tunebench.report import build_report

    probes = []

    def eager_faster(model, kernels, batch, device, precision):
        probes.append(tuple(batch["input_ids"].shape))
        return {"sdpa": 0.120, "eager": 0.090}

    monkeypatch.setattr(attention, "_time_kernels", eager_faster)
    messages = []
    reporter = driver.SilentReporter()
    reporter.message = messages.append
    out = tmp_path / "out"
    spec = StudySpec(name="kernels", data={"source": str(reviews_csv)}, model={"name": str(tiny_bert), "max_length": 32},
                     strategies=["head", "lora:r=4"], baselines=[], output={"dir": str(out)},
                     training={"epochs": 1, "batch_size": 8, "lr": 3e-3})
    records = driver.run_study(spec, reporter=reporter)
    assert len(probes) == 1 and probes[0][0] == 8  # once per study, on a batch of the study's size
    assert [r["resources"]["attention"] for r in records] == ["eager", "eager"]  # what the runs' models ran
    assert all(r["environment"]["attention"]["kernel"] == "eager" for r in records)
    said = "attention kernel: eager (auto: the faster; one training step of the whole model on a batch of 8 x "
    assert any(m.startswith(said) for m in messages)
    assert any(m.startswith("timing the attention kernels (sdpa, eager) on one training batch (8 x ") for m in messages)
    report = build_report(out)["markdown"].read_text()
    row = next(line for line in report.splitlines() if line.startswith("| attention kernel |"))
    assert "eager (auto: the faster;" in row and "sdpa 120.0 ms, eager 90.0 ms" in row
    assert "| torch.compile | off (auto: compiled training was no faster than plain training on cpu" in report
    assert AttentionChoice(**records[0]["environment"]["attention"]).kernel == "eager"

    # the same study again: the choice comes from the cache, no second probe, the stored runs are reused
    messages.clear()
    driver.run_study(spec, reporter=reporter)
    assert len(probes) == 1
    assert any("measured earlier on this machine, cached" in m for m in messages)
    assert not any(m.startswith("timing the attention kernels") for m in messages)


# --- training.compile: auto compiles only where the longest run outlasts the measured break-even ------------


def test_compile_auto_follows_the_estimate_and_says_why(monkeypatch):
    from tunebench.results.choices import COMPILE_BREAK_EVEN_S, compile_choice

    measured = compile_choice("auto", "cpu", 0.2, 10**9)  # the table as measured: on CPU compiling never paid back
    assert not measured.on and measured.sentence() == (
        "torch.compile: off (auto: compiled training was no faster than plain training on cpu when measured "
        "(BENCHMARKS.md); --compile turns it on)")
    cpu = 3600.0  # a device where it pays back after an hour of training
    monkeypatch.setitem(COMPILE_BREAK_EVEN_S, "cpu", cpu)
    short = compile_choice("auto", "cpu", 0.05, 400)  # 20 s of training
    assert (short.on, short.estimate_s, short.break_even_s) == (False, pytest.approx(20.0), cpu)
    assert short.sentence() == (f"torch.compile: off (auto: the longest run trains an estimated 20 s, less than the "
                                f"{cpu:,.0f} s after which compiling pays back on this cpu; BENCHMARKS.md)")
    long = compile_choice("auto", "cpu", 0.5, int(cpu * 4))
    assert long.on and long.sentence().startswith("torch.compile: on (auto: the longest run trains an estimated ")
    assert compile_choice(True, "cpu", None, 1).sentence() == "torch.compile: on (as asked)"
    assert compile_choice(False, "cpu", 10.0, 10**6).on is False
    unmeasured = compile_choice("auto", "cuda", 0.01, 10**9)
    assert not unmeasured.on and "compile time not measured on cuda" in unmeasured.sentence()
    monkeypatch.setitem(COMPILE_BREAK_EVEN_S, "mps", float("inf"))  # measured, and never paid back
    never = compile_choice("auto", "mps", 1.0, 10**9)
    assert not never.on and "compiled training was no faster than plain training on mps" in never.sentence()
    untimed = compile_choice("auto", "cpu", None, 10**9)
    assert not untimed.on and "the attention kernel was not timed" in untimed.sentence()


def test_a_study_long_enough_compiles_every_run_and_the_report_says_why(tiny_bert, reviews_csv, tmp_path,
                                                                       monkeypatch):
    from tunebench.report import build_report
    from tunebench.results import choices
    from tunebench.training import engine

    compiled = []

    def fake_compile(model):  # inductor would take minutes on 2 cores: count the calls, run the model as it is
        compiled.append(type(model).__name__)
        return model

    monkeypatch.setattr(engine, "_compiled", fake_compile)
    monkeypatch.setattr(attention, "_time_kernels", lambda *a: {"sdpa": 0.010, "eager": 0.012})
    monkeypatch.setitem(choices.COMPILE_BREAK_EVEN_S, "cpu", 0.05)  # 0.05 s: a few batches at 10 ms outlast it
    out = tmp_path / "out"
    spec = StudySpec(name="compiled", data={"source": str(reviews_csv)}, model={"name": str(tiny_bert), "max_length": 32},
                     strategies=["full"], baselines=[], output={"dir": str(out)},
                     training={"epochs": 1, "batch_size": 8, "lr": 3e-3})
    records = driver.run_study(spec)
    assert compiled and records[0]["resources"]["compiled"] is True
    assert records[0]["environment"]["compile"]["on"] is True
    report = build_report(out)["markdown"].read_text()
    row = next(line for line in report.splitlines() if line.startswith("| torch.compile |"))
    assert "on (auto: the longest run trains an estimated" in row and "more than the 0 s" in row

    # asked off: the same study does not compile, and a run that compiled is not the same computation
    compiled.clear()
    off = driver.run_study(spec.model_copy(update={"training": spec.training.model_copy(update={"compile": False}),
                                                   "output": spec.output.model_copy(update={"dir": str(tmp_path / "off")})}))
    assert not compiled and off[0]["resources"]["compiled"] is False
    assert off[0]["run_id"] != records[0]["run_id"]


def test_a_model_too_narrow_for_attention_to_matter_is_not_timed(tiny_bert, tmp_path, monkeypatch):
    """A tiny model's step is overhead, and on a loaded machine its timings flipped the kernel between two runs
    of one study (the last digits of its results with it): below MIN_HIDDEN units the default is kept."""
    monkeypatch.setattr(attention, "MIN_HIDDEN", MIN_HIDDEN)

    def no_probe(*a):
        raise AssertionError("a tiny model is not timed")

    monkeypatch.setattr(attention, "_time_kernels", no_probe)
    choice = _probe(tiny_bert, tmp_path)
    assert (choice.kernel, choice.how, choice.step_s) == (None, "too small", {})  # transformers' own (MPNet: eager)
    assert choice.sentence() == ("attention kernel: transformers' default (auto, not timed: a model 32 units wide "
                                 "spends too little of a step in attention for the kernel to matter)")
    assert not (tmp_path / "attention.json").exists()
