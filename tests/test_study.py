"""A whole study on a tiny model: records, outputs, store, resume, and checkpoints that reload."""

from __future__ import annotations

import json
import sqlite3

import numpy as np
import pandas as pd
import pytest
import torch

from tunebench.data.loading import load_dataset_bundle
from tunebench.methods import build_strategy
from tunebench.results.outputs import COLUMNS
from tunebench.results.store import STORE_NAME, Store
from tunebench.spec.strategy import strategy_spec  # a mapping -> the options model of its kind
from tunebench.spec.study import StudySpec
from tunebench.study import driver as study_module

FOUR = ["full", "partial:k=2", "lora:r=4", "head"]


def tiny_spec(model, csv, out, strategies=FOUR, **training) -> StudySpec:
    return StudySpec(
        name="tiny",
        data={"source": str(csv)},
        model={"name": str(model), "max_length": 32},
        strategies=strategies,
        training={"epochs": 2, "batch_size": 8, "lr": 3e-3, **training},
        output={"dir": str(out)},
    )


@pytest.fixture(scope="module")
def finished_study(tiny_models, tmp_path_factory):
    """One four-strategy study on tiny BERT, shared by the read-only tests below."""
    root = tmp_path_factory.mktemp("study")
    csv = root / "reviews.csv"
    from .conftest import easy_reviews

    easy_reviews().to_csv(csv, index=False)
    spec = tiny_spec(tiny_models["bert"], csv, root / "out", epochs=8)  # tiny random models learn slowly
    records = study_module.run_study(spec)
    return spec, records


def test_every_strategy_has_a_record_with_its_own_trainable_count(finished_study, tiny_models):
    from tunebench.training.modeling import load_classifier

    spec, records = finished_study
    assert [r["strategy"] for r in records] == ["full", "partial:k=2", "lora:r=4", "head"]
    for record in records:
        model = load_classifier(str(tiny_models["bert"]), ["neg", "pos"])
        model = build_strategy(strategy_spec(record["spec"])).prepare(model)
        own = (model.get_nb_trainable_parameters()[0] if hasattr(model, "get_nb_trainable_parameters")
               else sum(p.numel() for p in model.parameters() if p.requires_grad))
        assert record["params"]["trainable"] == own
    trainable = [r["params"]["trainable"] for r in records]
    assert trainable[0] > trainable[1] > trainable[2] > trainable[3] > 0
    assert len({r["params"]["total"] for r in records if r["strategy"] != "lora:r=4"}) == 1


def test_records_hold_metrics_curves_resources_and_provenance(finished_study):
    spec, records = finished_study
    hashes = {json.dumps(r["data"]["hashes"], sort_keys=True) for r in records}
    assert len(hashes) == 1  # every strategy saw exactly the same examples
    for r in records:
        assert len(r["curves"]) == 8 and {"train_loss", "val_loss", "val_accuracy", "val_macro_f1"} <= set(
            r["curves"][0])
        assert r["best_epoch"] == max(r["curves"], key=lambda c: c["val_macro_f1"])["epoch"]
        assert 0 <= r["test"]["accuracy"] <= 1 and set(r["test"]["per_class"]) >= {"neg", "pos"}
        assert np.asarray(r["test"]["confusion_matrix"]).sum() == r["data"]["sizes"]["test"]
        assert r["resources"]["train_time_s"] > 0 and r["resources"]["peak_rss_mb"] > 0
        assert r["environment"]["packages"]["torch"] == torch.__version__
        assert r["resolved"]["lr"] == 3e-3 and r["resolved"]["precision"] == "fp32"
        assert r["study_spec"]["model"]["max_length"] == 32
        # bytes to keep = the trained parameters in fp32 plus a small safetensors header
        assert r["params"]["trainable"] * 4 <= r["save_bytes"] < r["params"]["trainable"] * 4 + 65536
        assert r["checkpoint_bytes"] >= 0.9 * r["save_bytes"]  # the saved folder holds at least that
    assert records[0]["test"]["accuracy"] >= 0.8  # full fine-tuning learns the easy task


def test_outputs_are_written_and_agree_with_the_store(finished_study):
    spec, records = finished_study
    out = spec.output.dir
    frame = pd.read_csv(out / "results.csv")
    assert list(frame.columns) == COLUMNS
    assert frame["strategy"].tolist() == ["full", "partial:k=2", "lora:r=4", "head"]
    assert frame["trainable_params"].tolist() == [r["params"]["trainable"] for r in records]
    assert frame.loc[2, "rank"] == 4 and frame.loc[1, "k"] == 2
    share = 100 * frame["trainable_params"] / frame["total_params"]
    assert (frame["trainable_share_pct"] - share).abs().max() < 1e-3
    assert frame["test_macro_f1"].tolist() == [round(r["test"]["macro_f1"], 4) for r in records]
    payload = json.loads((out / "results.json").read_text())
    assert [r["run_id"] for r in payload["runs"]] == [r["run_id"] for r in records]
    summary = (out / "summary.md").read_text()
    assert "| strategy | trainable |" in summary and "lora:r=4" in summary and "Split hashes" in summary
    with Store(out / STORE_NAME) as store:
        assert [r["run_id"] for r in store.records("tiny")] == [r["run_id"] for r in records]
        labels, probs = store.predictions(records[0]["run_id"])
        assert len(labels) == len(probs) == records[0]["data"]["sizes"]["test"]
        assert np.allclose(np.asarray(probs).sum(1), 1.0, atol=1e-4)
    db = sqlite3.connect(out / STORE_NAME)
    assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)


def test_checkpoints_reload_with_plain_transformers_and_peft(finished_study):
    """Each saved best epoch, loaded without tunebench, gives the stored test probabilities."""
    from peft import PeftModel
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    spec, records = finished_study
    bundle = load_dataset_bundle(spec.data, seed=spec.training.seed)
    for record in records:
        folder = record["checkpoint"]
        tokenizer = AutoTokenizer.from_pretrained(folder)
        if record["spec"]["kind"] == "lora":
            base = AutoModelForSequenceClassification.from_pretrained(spec.model.name, num_labels=2)
            model = PeftModel.from_pretrained(base, folder)
            assert (record["save_bytes"] or 0) < records[0]["save_bytes"] / 5  # an adapter, not the model
        else:
            model = AutoModelForSequenceClassification.from_pretrained(folder)
            assert model.config.id2label == {0: "neg", 1: "pos"}
        model.eval()
        with torch.no_grad():
            probs = [torch.softmax(model(**tokenizer(t, truncation=True, max_length=32,
                                                     return_tensors="pt")).logits, -1)[0].numpy()
                     for t in bundle.test.texts]
        with Store(spec.output.dir / STORE_NAME) as store:
            labels, stored = store.predictions(record["run_id"])
        assert labels == list(bundle.test.labels)
        assert np.allclose(np.asarray(probs), np.asarray(stored), atol=1e-4), record["strategy"]


def test_resume_retrains_only_unfinished_runs(tiny_bert, reviews_csv, tmp_path, monkeypatch):
    spec = tiny_spec(tiny_bert, reviews_csv, tmp_path / "out", epochs=1)
    real = study_module.engine.train_and_evaluate
    calls: list[int] = []

    def crash_on_third(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise RuntimeError("injected failure in the third run")
        return real(*args, **kwargs)

    monkeypatch.setattr(study_module.engine, "train_and_evaluate", crash_on_third)
    first = study_module.run_study(spec)  # the failure is recorded; the study goes on
    assert [r["status"] for r in first] == ["finished", "finished", "failed", "finished"]
    assert first[2]["failure"]["error"] == "RuntimeError: injected failure in the third run"
    with Store(tmp_path / "out" / STORE_NAME) as store:
        before = [r for r in store.records("tiny") if r["status"] == "finished"]
    assert [r["strategy"] for r in before] == ["full", "partial:k=2", "head"]
    partial_csv = pd.read_csv(tmp_path / "out" / "results.csv")
    assert partial_csv["status"].tolist() == ["finished", "finished", "failed", "finished"]  # outputs kept up to date

    calls.clear()
    monkeypatch.setattr(study_module.engine, "train_and_evaluate",
                        lambda *a, **k: (calls.append(1), real(*a, **k))[1])
    after = study_module.run_study(spec)
    assert len(calls) == 1  # only the failed lora run was trained again
    assert [r["strategy"] for r in after] == ["full", "partial:k=2", "lora:r=4", "head"]
    assert [after[0], after[1], after[3]] == before  # finished rows unchanged, byte for byte

    calls.clear()
    study_module.run_study(spec)
    assert calls == []  # a third run trains nothing
    forced = study_module.run_study(spec, force=True)
    assert len(calls) == 4 and [r["strategy"] for r in forced] == [r["strategy"] for r in after]
    with Store(tmp_path / "out" / STORE_NAME) as store:
        assert len(store.records("tiny")) == 4  # redone, not duplicated


def test_changed_setting_makes_a_new_run(tiny_bert, reviews_csv, tmp_path):
    first = study_module.run_study(tiny_spec(tiny_bert, reviews_csv, tmp_path, ["head"], epochs=1))
    second = study_module.run_study(tiny_spec(tiny_bert, reviews_csv, tmp_path, ["head"], epochs=1, seed=1))
    assert first[0]["run_id"] != second[0]["run_id"]


def test_same_spec_same_seed_same_results(tiny_bert, reviews_csv, tmp_path):
    a = study_module.run_study(tiny_spec(tiny_bert, reviews_csv, tmp_path / "a", ["partial:k=1"], epochs=1))
    b = study_module.run_study(tiny_spec(tiny_bert, reviews_csv, tmp_path / "b", ["partial:k=1"], epochs=1))
    assert a[0]["run_id"] == b[0]["run_id"]
    assert a[0]["test"] == b[0]["test"] and a[0]["curves"][0]["train_loss"] == b[0]["curves"][0]["train_loss"]
