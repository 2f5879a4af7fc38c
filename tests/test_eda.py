"""Tests for tunebench.data.profile: the dataset profile (schema, token statistics, truncation, duplicates) and figures."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.conftest import minilm_path
from tunebench.data.bundle import DatasetBundle, Split
from tunebench.data.profile import dataset_profile, token_lengths, write_profile


@pytest.fixture(scope="module")
def tokenizer():
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(minilm_path())


def _bundle(pairs: bool = False) -> DatasetBundle:
    long_text = " ".join(["word"] * 300)  # far longer than max_length
    train_texts = ["good film", "bad film", "good film", long_text, "fine", "awful"]
    train = Split(train_texts, ["x"] * 6 if pairs else None, [0, 1, 0, 1, 0, 1])
    validation = Split(["nice", "poor"], ["y", "z"] if pairs else None, [0, 1])
    test = Split(["great", long_text, "bad film"], ["a", "b", "c"] if pairs else None, [0, 1, 0])
    return DatasetBundle(name="toy", label_names=["pos", "neg"], train=train, validation=validation, test=test,
                         notes=["a note from loading"], origin="unit test")


def test_profile_schema_and_values(tokenizer):
    bundle = _bundle()
    profile = dataset_profile(bundle, tokenizer, max_length=16)
    assert json.loads(json.dumps(profile)) == profile  # JSON-serialisable as is
    assert {"name", "origin", "is_pair", "label_names", "max_length", "tokenizer", "splits", "hashes", "notes",
            "figures"} <= set(profile)
    assert profile["name"] == "toy" and profile["is_pair"] is False and profile["max_length"] == 16
    assert profile["label_names"] == ["pos", "neg"] and profile["hashes"] == bundle.hashes()
    assert profile["figures"] == {"lengths": "figures/data_lengths.png", "boxplot": "figures/data_boxplot.png"}
    train = profile["splits"]["train"]
    assert set(profile["splits"]) == {"train", "validation", "test"}
    assert set(train) == {"rows", "label_counts", "tokens", "empty_texts", "duplicates", "length_histogram"}
    assert train["rows"] == 6 and train["label_counts"] == {"pos": 3, "neg": 3}
    assert train["duplicates"] == 1 and train["empty_texts"] == 0
    lengths = token_lengths(bundle.train, tokenizer)
    assert lengths.tolist()[:2] == [4, 4]  # [CLS] good film [SEP]
    assert train["tokens"] == {"mean": round(float(lengths.mean()), 3), "median": float(np.median(lengths)),
                               "p95": round(float(np.percentile(lengths, 95)), 3), "max": 302,
                               "truncated_share": round(1 / 6, 6)}
    hist = train["length_histogram"]
    assert len(hist["edges"]) == len(hist["counts"]) + 1 and sum(hist["counts"]) == 6
    assert profile["splits"]["test"]["tokens"]["truncated_share"] == pytest.approx(1 / 3, abs=1e-6)
    assert profile["splits"]["validation"]["tokens"]["truncated_share"] == 0.0
    assert "a note from loading" in profile["notes"]
    assert any(n.startswith("test: 33.3% of examples are longer than max_length 16") for n in profile["notes"])
    assert profile["length_by_label"]["labels"]["neg"]["n"] == 3


def test_pairs_counted_together(tokenizer):
    profile = dataset_profile(_bundle(pairs=True), tokenizer, max_length=512)
    assert profile["is_pair"] is True
    assert profile["splits"]["validation"]["tokens"]["max"] == 5  # [CLS] nice [SEP] y [SEP]
    assert profile["splits"]["test"]["tokens"]["truncated_share"] == 0.0


def test_conflicting_labels_noted(tokenizer):
    b = _bundle()
    train = Split(["same", "same", "other", "more"], None, [0, 1, 0, 1])
    b = DatasetBundle(b.name, b.label_names, train, b.validation, b.test, [], b.origin)
    profile = dataset_profile(b, tokenizer, 64)
    assert profile["splits"]["train"]["duplicates"] == 1
    assert "train: 1 text(s) occur with more than one label" in profile["notes"]


def test_write_profile_files_atomic(tokenizer, tmp_path):
    profile = dataset_profile(_bundle(), tokenizer, max_length=16)
    written = write_profile(profile, tmp_path / "out")
    assert written == [tmp_path / "out" / "dataset_profile.json", tmp_path / "out" / "figures" / "data_lengths.png",
                       tmp_path / "out" / "figures" / "data_boxplot.png"]
    assert json.loads(written[0].read_text(encoding="utf-8")) == profile
    for png in written[1:]:
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5_000
    assert sorted(p.name for p in (tmp_path / "out").rglob("*")) == [
        "data_boxplot.png", "data_lengths.png", "dataset_profile.json", "figures"]  # no temporary files left


def test_study_writes_the_profile(tiny_bert, reviews_csv, tmp_path):
    from tunebench.spec.study import StudySpec
    from tunebench.study.driver import run_study

    spec = StudySpec(name="eda", data={"source": str(reviews_csv)}, model={"name": str(tiny_bert), "max_length": 32},
                     strategies=["head"], training={"epochs": 1, "batch_size": 16},
                     output={"dir": str(tmp_path / "out"), "save_checkpoints": False})
    records = run_study(spec)
    profile = json.loads((tmp_path / "out" / "dataset_profile.json").read_text(encoding="utf-8"))
    assert profile["hashes"] == records[0]["data"]["hashes"]  # the profile describes the data the runs saw
    assert profile["max_length"] == 32 and profile["label_names"] == ["neg", "pos"]
    assert (tmp_path / "out" / "figures" / "data_lengths.png").is_file()
