"""Issue 26: a run folder names its base model unambiguously and says so when its metadata is wrong.

An adapter's run folder used to keep the base model as given (``tiny``, relative to the working
directory), so ``predict`` from another folder with a different ``./tiny`` loaded that one and
printed other predictions, exit 0."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from tunebench.training.checkpoint import META

from ..conftest import cli
from .common import error_sentence, write_reviews


@pytest.fixture(scope="module")
def adapter_run(tiny_bert, tmp_path_factory):
    """A LoRA and a head run trained on ``./tiny`` from the folder ``a``: (a, LoRA run folder, head run folder)."""
    import os

    from tunebench.spec.study import StudySpec
    from tunebench.study.driver import run_study

    root = tmp_path_factory.mktemp("identity")
    a = root / "a"
    shutil.copytree(tiny_bert, a / "tiny")
    csv = write_reviews(root)
    here = os.getcwd()
    os.chdir(a)
    try:
        spec = StudySpec(name="i", data={"source": str(csv)}, model={"name": "tiny", "max_length": 32},
                         strategies=["lora:r=2", "head"], training={"epochs": 1, "batch_size": 8},
                         output={"dir": str(root / "out")})
        records = run_study(spec)
    finally:
        os.chdir(here)
    assert [r["status"] for r in records] == ["finished", "finished"]
    return a, Path(records[0]["checkpoint"]), Path(records[1]["checkpoint"])


def other_model(source: Path, target: Path) -> None:
    """A copy of ``source`` with other weights (what another project's ``./tiny`` would be)."""
    shutil.copytree(source, target)
    [weights] = target.glob("*.safetensors")
    tensors = load_file(weights)
    save_file({k: v + 0.5 * torch.randn_like(v) if v.is_floating_point() else v for k, v in tensors.items()},
              weights, metadata={"format": "pt"})


def test_predict_from_another_folder_uses_the_recorded_base_model(capsys, adapter_run, tmp_path, monkeypatch):
    a, run, _ = adapter_run
    meta = json.loads((run / META).read_text())
    assert meta["base_model"] == str((a / "tiny").resolve()) and len(meta["base_model_sha256"]) == 64
    monkeypatch.chdir(a)
    code, expected, err = cli(capsys, "predict", str(run), "a fine film", "a dull film")
    assert code == 0, err
    b = tmp_path / "b"
    other_model(a / "tiny", b / "tiny")
    monkeypatch.chdir(b)
    code, found, err = cli(capsys, "predict", str(run), "a fine film", "a dull film")
    assert code == 0, err
    assert found == expected  # the model it was trained on, not ./tiny of the folder it runs in


def test_a_changed_base_model_is_refused(capsys, adapter_run, tmp_path):
    a, run, _ = adapter_run
    moved = shutil.copytree(a, tmp_path / "a")
    copy = shutil.copytree(run, tmp_path / "run")
    meta = json.loads((copy / META).read_text())
    (copy / META).write_text(json.dumps({**meta, "base_model": str(moved / "tiny")}))
    shutil.rmtree(moved / "tiny")
    other_model(a / "tiny", moved / "tiny")
    code, _, err = cli(capsys, "predict", str(copy), "a fine film")
    assert code == 2, err
    assert error_sentence(err).startswith(f"error: the base model '{moved / 'tiny'}' that the adapter in '{copy}' "
                                          "was trained on has changed (sha256 ")


@pytest.mark.parametrize("change", [{"label_names": ["neg", "pos", "other"]}, {"label_names": ["neg"]},
                                    {"max_length": -5}, {"label_names": ["pos", "pos"]}])
def test_wrong_run_folder_metadata_is_one_sentence(capsys, adapter_run, tmp_path, change):
    _, _, run = adapter_run  # a whole model saved: its metadata alone names the labels
    copy = shutil.copytree(run, tmp_path / "run")
    meta = json.loads((copy / META).read_text())
    (copy / META).write_text(json.dumps({**meta, **change}))
    for argv in (["predict", str(copy), "a fine film"], ["evaluate", str(copy)]):
        code, _, err = cli(capsys, *argv)
        assert code == 2, err
        text = error_sentence(err)
        assert text.startswith(f"error: '{copy / META}'") and text.endswith("the checkpoint folder is damaged"), text
