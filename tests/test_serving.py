"""What a run costs to serve (issue 27, part 2): latency, throughput and deploy size, a PEFT adapter merged and not."""

from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import pytest
import torch

from tunebench.methods import build_strategy
from tunebench.spec.strategy import parse_strategy
from tunebench.spec.study import StudySpec
from tunebench.training import serving
from tunebench.training.modeling import load_classifier, load_tokenizer

from .conftest import easy_reviews
from .test_engine import _encoded


def _model_and_split(tiny_bert, label: str):
    tokenizer = load_tokenizer(str(tiny_bert))
    torch.manual_seed(0)
    model = build_strategy(parse_strategy(label)).prepare(load_classifier(str(tiny_bert), ["neg", "pos"]))
    with torch.no_grad():  # a trained-looking adapter: LoRA's B starts at zero, which would merge to nothing
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.5)
    return model, _encoded(tokenizer, easy_reviews(40)), tokenizer.pad_token_id


def _probs(model, split, pad_id) -> np.ndarray:
    from tunebench.training.engine import predict

    return predict(model, split, 16, pad_id, torch.device("cpu"), "fp32")[0]


def test_a_lora_run_is_timed_as_trained_and_merged_with_equal_predictions(tiny_bert):
    model, split, pad_id = _model_and_split(tiny_bert, "lora:r=4")
    before = _probs(model, split, pad_id)
    found = serving.measure_serving(model, split, pad_id, torch.device("cpu"), "fp32")
    assert found["latency_examples"] == min(len(split), serving.LATENCY_EXAMPLES) and found["batch"] == 32
    for part in (found, found["merged"]):
        assert 0 < part["latency_ms_p50"] <= part["latency_ms_p95"] and part["throughput_per_s"] > 0
    assert found["merged"]["max_prob_diff"] < 1e-5  # merging changes how it computes, not what
    np.testing.assert_allclose(_probs(model, split, pad_id), before, atol=1e-6)  # unmerged again afterwards
    merged = copy.deepcopy(model).merge_and_unload()
    assert found["merged"]["deploy_bytes"] == sum(p.numel() * p.element_size() for p in merged.parameters())
    assert found["deploy_bytes"] == sum(p.numel() * p.element_size() for p in model.parameters())
    assert found["merged"]["deploy_bytes"] < found["deploy_bytes"]


def test_a_method_that_cannot_merge_says_why_and_a_full_model_has_one_form(tiny_bert):
    model, split, pad_id = _model_and_split(tiny_bert, "prompt:tokens=4")
    found = serving.measure_serving(model, split, pad_id, torch.device("cpu"), "fp32")
    assert found["merged"] is None and found["merge_note"].startswith("cannot merge")
    full, split, pad_id = _model_and_split(tiny_bert, "full")
    found = serving.measure_serving(full, split, pad_id, torch.device("cpu"), "fp32")
    assert "merged" not in found and found["deploy_bytes"] == sum(p.numel() * 4 for p in full.parameters())


def _spec(tmp_path, tiny_bert, **output) -> StudySpec:
    csv = tmp_path / "reviews.csv"
    easy_reviews(90).to_csv(csv, index=False)
    return StudySpec(name="serve", data={"source": str(csv)}, model={"name": str(tiny_bert), "max_length": 32},
                     strategies=["head", "lora:r=4"], baselines=[], output={"dir": str(tmp_path / "out"), **output},
                     training={"epochs": 1, "batch_size": 8, "lr": 3e-3})


def test_a_study_records_serving_in_results_and_the_report(tiny_bert, tmp_path):
    from tunebench.report import build_report
    from tunebench.study.driver import run_study

    records = {r["strategy"]: r for r in run_study(_spec(tmp_path, tiny_bert))}
    assert "merged" not in records["head"]["serving"] and records["head"]["serving"]["throughput_per_s"] > 0
    assert records["lora:r=4"]["serving"]["merged"]["max_prob_diff"] < 1e-5
    table = pd.read_csv(tmp_path / "out" / "results.csv").set_index("strategy")
    assert table.loc["lora:r=4", "merged_per_s"] == records["lora:r=4"]["serving"]["merged"]["throughput_per_s"]
    assert table.loc["head", "serve_latency_ms_p50"] == records["head"]["serving"]["latency_ms_p50"]
    assert np.isnan(table.loc["head", "merged_per_s"])
    build_report(tmp_path / "out")
    report = (tmp_path / "out" / "report.md").read_text(encoding="utf-8")
    assert "Serving cost" in report and "| lora:r=4 | merged | cpu |" in report


def test_serving_is_not_measured_when_switched_off(tiny_bert, tmp_path):
    from tunebench.study.driver import run_study

    (head, _) = run_study(_spec(tmp_path, tiny_bert, measure_serving=False))
    assert head.get("serving") is None


@pytest.mark.parametrize("per_s, price, expected", [(100.0, 3.6, 0.01), (None, 3.6, None)])
def test_dollars_per_1000_predictions(per_s, price, expected):
    from tunebench.report.sections_serving import usd_per_1000

    record = {"environment": {"device_type": "cpu"}, "resolved": {"device": "cpu"}}
    assert usd_per_1000(per_s, record, {"CPU": price}) == (None if expected is None else pytest.approx(expected))


def test_onnx_runtime_predicts_as_torch_and_is_timed(tiny_bert):
    pytest.importorskip("onnxruntime")  # a test dependency (tunebench[test]); the extra tunebench[onnx] for users
    model, split, pad_id = _model_and_split(tiny_bert, "lora:r=4")
    before = _probs(model, split, pad_id)
    found = serving.measure_serving(model, split, pad_id, torch.device("cpu"), "fp32", onnx=True)
    onnx = found["onnx"]
    assert onnx["device"] == "cpu" and onnx["latency_ms_p50"] > 0 and onnx["throughput_per_s"] > 0
    assert onnx["max_prob_diff"] < 1e-5  # the merged model, exported, predicts what the trained one does
    assert onnx["deploy_bytes"] > 0
    np.testing.assert_allclose(_probs(model, split, pad_id), before, atol=1e-6)  # unmerged again, on its device


def test_a_study_with_onnx_reports_the_onnx_runtime_row(tiny_bert, tmp_path):
    pytest.importorskip("onnxruntime")
    from tunebench.report import build_report
    from tunebench.study.driver import run_study

    spec = _spec(tmp_path, tiny_bert, serving_onnx=True).model_copy(
        update={"strategies": [parse_strategy("full")]})
    (full,) = run_study(spec)
    assert full["serving"]["onnx"]["max_prob_diff"] < 1e-5
    table = pd.read_csv(tmp_path / "out" / "results.csv")
    assert table["onnx_per_s"].iloc[0] == full["serving"]["onnx"]["throughput_per_s"]
    build_report(tmp_path / "out")
    assert "| full | ONNX Runtime | cpu |" in (tmp_path / "out" / "report.md").read_text(encoding="utf-8")


def test_onnx_without_onnx_runtime_is_one_sentence_before_training(tiny_bert, tmp_path, monkeypatch, capsys):
    import importlib.util

    from .conftest import cli, one_error

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "onnxruntime" else real(name, *a))
    csv = tmp_path / "reviews.csv"
    easy_reviews(60).to_csv(csv, index=False)
    code, _, err = cli(capsys, "run", "--model", str(tiny_bert), "--dataset", str(csv), "-s", "head", "--epochs", "1",
                       "--onnx", "-o", str(tmp_path / "out"))
    assert code == 2 and "needs ONNX Runtime, which is not installed" in one_error(err)
    assert not (tmp_path / "out" / "tunebench.sqlite").exists()
