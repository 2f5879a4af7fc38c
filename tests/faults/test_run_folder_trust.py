"""A run folder never raises its own trust: a planted payload in a copied run folder does not run.

Each hostile folder carries a payload that would create a marker file if it executed: a Python
module named by ``auto_map`` (with ``"trust_remote_code": true`` in its ``tunebench.json``) or a
pickle whose unpickling writes the file (with ``"allow_pickle": true``).  ``predict``,
``evaluate``, the Python API and ``tunebench report`` must refuse (or ignore) it; the user's own
``--trust-remote-code`` on the command is the one thing that lets the code run, which the last
test shows (so the payload is real and these tests can fail).
"""

from __future__ import annotations

import json
import pickle
import shutil
from pathlib import Path

import pytest

from tunebench.errors import ModelError
from tunebench.results.store import STORE_NAME, Store
from tunebench.training.checkpoint import META, load_checkpoint
from tunebench.training.inference import evaluate_checkpoint, predict_texts

from ..conftest import cli
from .common import error_sentence, write_reviews


@pytest.fixture(scope="module")
def trained(tiny_models, tmp_path_factory):
    """A finished tiny study with checkpoints: (its output folder, the head run's folder, the LoRA run's folder)."""
    from tunebench.spec.study import StudySpec
    from tunebench.study import driver as study_module

    root = tmp_path_factory.mktemp("trusted")
    csv = write_reviews(root)
    spec = StudySpec(name="t", data={"source": str(csv)}, model={"name": str(tiny_models["bert"]), "max_length": 32},
                     strategies=["head", "lora:r=2"], training={"epochs": 1, "batch_size": 8},
                     output={"dir": str(root / "out")})
    records = study_module.run_study(spec)
    assert [r["status"] for r in records] == ["finished", "finished"]
    return root / "out", Path(records[0]["checkpoint"]), Path(records[1]["checkpoint"])


PAYLOAD = '''
import pathlib
pathlib.Path({marker!r}).write_text("the run folder's code ran")
from transformers import BertForSequenceClassification


class EvilModel(BertForSequenceClassification):
    pass
'''


def plant_code(folder: Path, marker: Path, meta_flag: str = "trust_remote_code") -> Path:
    """``folder``'s config names a module in the folder that writes ``marker``; its meta asks for trust."""
    config = json.loads((folder / "config.json").read_text())
    config["auto_map"] = {"AutoModelForSequenceClassification": "evil.EvilModel"}
    (folder / "config.json").write_text(json.dumps(config))
    (folder / "evil.py").write_text(PAYLOAD.format(marker=str(marker)))
    if (folder / META).is_file():
        meta = json.loads((folder / META).read_text())
        (folder / META).write_text(json.dumps({**meta, meta_flag: True}))
    return folder


class _Payload:
    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.write_text, (Path(self.marker), "the run folder's pickle ran"))


@pytest.fixture()
def hostile_code(trained, tmp_path):
    folder = plant_code(shutil.copytree(trained[1], tmp_path / "code-sent-to-you"), tmp_path / "code-marker")
    return folder, tmp_path / "code-marker"


@pytest.fixture()
def hostile_pickle(trained, tmp_path):
    folder = shutil.copytree(trained[1], tmp_path / "pickle-sent-to-you")
    for weights in folder.glob("*.safetensors"):
        weights.unlink()
    with open(folder / "pytorch_model.bin", "wb") as fh:
        pickle.dump({"weights": _Payload(str(tmp_path / "pickle-marker"))}, fh)
    meta = json.loads((folder / META).read_text())
    (folder / META).write_text(json.dumps({**meta, "allow_pickle": True}))
    return folder, tmp_path / "pickle-marker"


CODE_REFUSED = ("error: model folder '{folder}' needs its own Python code to load (auto_map in config.json); "
                "pass --trust-remote-code only if you trust where it came from")


@pytest.mark.parametrize("command", [["predict", "{folder}", "a fine film"], ["evaluate", "{folder}"]])
def test_predict_and_evaluate_refuse_code_the_run_folder_ships(capsys, hostile_code, command):
    folder, marker = hostile_code
    code, _, err = cli(capsys, *[part.format(folder=folder) for part in command])
    assert (code, error_sentence(err)) == (2, CODE_REFUSED.format(folder=folder))
    assert not marker.exists()


@pytest.mark.parametrize("command", [["predict", "{folder}", "a fine film"], ["evaluate", "{folder}"]])
def test_predict_and_evaluate_refuse_a_pickle_the_run_folder_ships(capsys, hostile_pickle, command):
    folder, marker = hostile_pickle
    code, _, err = cli(capsys, *[part.format(folder=folder) for part in command])
    assert (code, error_sentence(err)) == (2, (
        f"error: model folder '{folder}' holds only pickle-based weights (pytorch_model.bin), which can run arbitrary "
        "code when loaded; convert them to safetensors, or pass --allow-pickle if you trust where they came from"))
    assert not marker.exists()


def test_the_python_api_refuses_it_too(hostile_code, hostile_pickle):
    for folder, marker in (hostile_code, hostile_pickle):
        for call, args in ((predict_texts, (folder, ["a fine film"])), (evaluate_checkpoint, (folder,)),
                           (load_checkpoint, (folder,))):
            with pytest.raises(ModelError, match="pass --"):
                call(*args)
        assert not marker.exists()


def test_an_adapter_cannot_point_at_a_base_model_that_runs_code(trained, tiny_bert, tmp_path):
    """A LoRA run folder names its base model in tunebench.json: that folder gets the same checks."""
    base = plant_code(shutil.copytree(tiny_bert, tmp_path / "base"), tmp_path / "marker")
    folder = shutil.copytree(trained[2], tmp_path / "adapter")
    meta = json.loads((folder / META).read_text())
    (folder / META).write_text(json.dumps({**meta, "base_model": str(base), "trust_remote_code": True}))
    with pytest.raises(ModelError) as caught:
        predict_texts(folder, ["a fine film"])
    assert str(caught.value) == CODE_REFUSED.format(folder=base).removeprefix("error: ")
    assert not (tmp_path / "marker").exists()


def test_rebuilding_a_report_from_a_store_that_asks_for_trust_runs_nothing(capsys, trained, tiny_bert, tmp_path):
    out = shutil.copytree(trained[0], tmp_path / "out")
    base = plant_code(shutil.copytree(tiny_bert, tmp_path / "base"), tmp_path / "marker")
    with Store(out / STORE_NAME) as store:
        for record in store.records():
            record["study_spec"]["model"].update(name=str(base), trust_remote_code=True, allow_pickle=True)
            record["model"]["source"] = str(base)
            store.put(record, *store.predictions_of(record))
    code, stdout, err = cli(capsys, "report", str(out))
    assert code == 0, err
    assert "report:" in stdout and not (tmp_path / "marker").exists()


def test_the_users_own_flag_is_what_lets_the_code_run(capsys, hostile_code):
    """The positive control: the payload is real, and only the command's own flag runs it."""
    folder, marker = hostile_code
    code, stdout, err = cli(capsys, "predict", str(folder), "a fine film", "--trust-remote-code")
    assert code == 0, err
    assert marker.read_text() == "the run folder's code ran"
    assert stdout.split("\t")[1] == "a fine film"
