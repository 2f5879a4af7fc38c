"""``tunebench export`` (issue 28, part 4): a run as a folder plain transformers + peft load, with a model card."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from tunebench.spec.study import StudySpec

from .conftest import cli, one_error

TEXTS = ["the film was wonderful", "this meal was dreadful", "our trip was good"]


@pytest.fixture(scope="module")
def study(tiny_bert, tmp_path_factory) -> dict[str, dict]:
    """A finished two-seed study of head-only and LoRA on the tiny model: label -> record."""
    from tunebench.study.driver import run_study

    from .conftest import easy_reviews

    root = tmp_path_factory.mktemp("export")
    csv = root / "reviews.csv"
    easy_reviews(120).to_csv(csv, index=False)
    spec = StudySpec(name="ex", data={"source": str(csv)}, model={"name": str(tiny_bert), "max_length": 32},
                     strategies=["head", "lora:r=4"], output={"dir": str(root / "out")},
                     training={"epochs": 2, "batch_size": 8, "lr": 3e-3}, sweep={"seeds": [0, 1]})
    return {r["label"]: r for r in run_study(spec)}


def _probs(model, tokenizer) -> np.ndarray:
    with torch.no_grad():
        logits = model(**tokenizer(TEXTS, padding=True, truncation=True, max_length=32, return_tensors="pt")).logits
    return torch.softmax(logits.float(), -1).numpy()


def _tunebench_probs(folder: Path, names: list[str]) -> np.ndarray:
    from tunebench.training.inference import predict_texts

    return np.array([[p[n] for n in names] for _, p in predict_texts(folder, TEXTS)])


def test_a_lora_run_exports_merged_and_plain_transformers_predicts_as_tunebench(study, tmp_path):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from tunebench.api.export import export_run

    run = Path(study["lora:r=4 seed=0"]["checkpoint"])
    dest = export_run(run, tmp_path / "merged")
    assert not (dest / "adapter_config.json").exists() and (dest / "model.safetensors").is_file()
    model = AutoModelForSequenceClassification.from_pretrained(dest).eval()
    names = [model.config.id2label[i] for i in range(model.config.num_labels)]
    assert names == study["lora:r=4 seed=0"]["data"]["label_names"]
    expected = _tunebench_probs(run, names)
    np.testing.assert_allclose(_probs(model, AutoTokenizer.from_pretrained(dest)), expected, atol=1e-5)
    np.testing.assert_allclose(_tunebench_probs(dest, names), expected, atol=1e-5)  # tunebench predict reads it too
    assert json.loads((dest / "tunebench.json").read_text())["exported_as"] == "merged"


def test_an_adapter_export_loads_with_plain_peft_on_the_base_model(study, tmp_path, tiny_bert):
    from peft import PeftModel
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from tunebench.api.export import export_run

    run = Path(study["lora:r=4 seed=1"]["checkpoint"])
    dest = export_run(run, tmp_path / "adapter", merge=False)
    config = json.loads((dest / "adapter_config.json").read_text())
    assert config["base_model_name_or_path"] == str(Path(tiny_bert).resolve())
    labels = study["lora:r=4 seed=1"]["data"]["label_names"]
    base = AutoModelForSequenceClassification.from_pretrained(
        config["base_model_name_or_path"], num_labels=len(labels), id2label=dict(enumerate(labels)),
        label2id={n: i for i, n in enumerate(labels)})
    model = PeftModel.from_pretrained(base, dest).eval()
    np.testing.assert_allclose(_probs(model, AutoTokenizer.from_pretrained(dest)), _tunebench_probs(run, labels),
                               atol=1e-5)
    assert "PeftModel.from_pretrained" in (dest / "README.md").read_text()


def test_the_model_card_carries_the_metrics_intervals_verdict_and_hashes(study, tmp_path, tiny_bert, capsys):
    from huggingface_hub import ModelCard

    from tunebench.api.result import load

    record = study["head seed=0"]
    code, out, _ = cli(capsys, "export", record["checkpoint"], str(tmp_path / "head"))
    assert code == 0 and "as model into" in " ".join(out.split())
    card = ModelCard.load(tmp_path / "head" / "README.md")
    assert card.data.pipeline_tag == "text-classification" and card.data.library_name == "transformers"
    assert card.data.base_model == str(Path(tiny_bert).resolve())  # a local base: its folder, as peft needs it
    (macro,) = [r for r in card.data.eval_results if r.metric_name == "test macro-F1"]
    assert macro.metric_value == pytest.approx(record["test"]["macro_f1"], abs=1e-4)
    result = load(Path(record["checkpoint"]).parent.parent, "ex")
    row = result.by_config[result.by_config["config"] == "head"].iloc[0]
    text = card.text
    assert "mean over 2 seeds" in text
    assert f"{row['test_macro_f1_mean']:.4f} [{row['test_macro_f1_ci_low']:.4f}, {row['test_macro_f1_ci_high']:.4f}]" in text
    assert "The study's verdict: " in text and result.recommendation.choice in text
    assert record["data"]["hashes"]["train"][:16] in text
    assert "tfidf-logreg" in text and "majority" in text  # the floor it was compared against
    assert "trainable parameters" in text and "Environment" in text


def test_bad_exports_are_one_sentence_and_keep_what_exists(study, tmp_path, capsys, monkeypatch):
    run = Path(study["head seed=1"]["checkpoint"])
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "keep.txt").write_text("mine")
    code, _, err = cli(capsys, "export", str(run), str(taken))
    assert code == 2 and "already exists and is not an empty folder" in one_error(err)
    assert (taken / "keep.txt").read_text() == "mine"
    code, _, err = cli(capsys, "export", str(tmp_path), str(tmp_path / "new"))
    assert code == 2 and "is not a tunebench checkpoint folder" in one_error(err)
    assert not (tmp_path / "new").exists()

    from huggingface_hub import constants

    monkeypatch.setattr(constants, "ENDPOINT", "http://127.0.0.1:9")  # nothing listens: as offline as it gets
    monkeypatch.setenv("HF_TOKEN", "hf_not_a_real_token")
    code, _, err = cli(capsys, "export", str(run), str(tmp_path / "pushed"), "--push-to-hub", "someone/tiny")
    message = one_error(err)
    assert code == 2 and "could not push to the Hugging Face Hub repository 'someone/tiny'" in message
    assert "the export is kept in" in message and (tmp_path / "pushed" / "README.md").is_file()
    assert 'model="someone/tiny"' in (tmp_path / "pushed" / "README.md").read_text()  # the card names where it goes


def test_an_export_without_its_study_says_so_in_the_card(study, tmp_path):
    import shutil

    from tunebench.api.export import export_run

    alone = tmp_path / "a" / "b" / "run"
    shutil.copytree(study["head seed=0"]["checkpoint"], alone)
    dest = export_run(alone, tmp_path / "alone")
    text = (dest / "README.md").read_text()
    assert "The study's store was not found beside the run folder" in text



def test_onnx_export_runs_in_onnx_runtime_and_predicts_as_the_model(study, tmp_path):
    ort = pytest.importorskip("onnxruntime")
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from tunebench.api.export import export_run

    dest = export_run(Path(study["lora:r=4 seed=0"]["checkpoint"]), tmp_path / "onnx", onnx=True)
    meta = json.loads((dest / "tunebench.json").read_text())
    assert meta["onnx"]["file"] == "model.onnx" and meta["onnx"]["max_prob_diff"] < 1e-4
    tokenizer = AutoTokenizer.from_pretrained(dest)
    batch = tokenizer(TEXTS, padding=True, truncation=True, max_length=32, return_tensors="np")
    session = ort.InferenceSession(str(dest / "model.onnx"), providers=["CPUExecutionProvider"])
    logits = session.run(None, {i.name: batch[i.name] for i in session.get_inputs()})[0]
    found = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    model = AutoModelForSequenceClassification.from_pretrained(dest).eval()
    np.testing.assert_allclose(found, _probs(model, tokenizer), atol=1e-5)  # texts it was not checked on
    assert "onnxruntime.InferenceSession" in (dest / "README.md").read_text()


def test_onnx_export_without_onnx_runtime_is_one_sentence(study, tmp_path, capsys, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "onnxruntime" else real(name, *a))
    code, _, err = cli(capsys, "export", study["head seed=0"]["checkpoint"], str(tmp_path / "x"), "--onnx")
    assert code == 2 and "--onnx needs ONNX Runtime" in one_error(err) and not (tmp_path / "x").exists()
