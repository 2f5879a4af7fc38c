"""Untrusted files: model code and pickles only when asked, safe YAML, names that stay inside their folders."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from tunebench.cli.console import RichReporter
from tunebench.study.run import safe_slug
from tunebench.training.modeling import check_folder_is_safe

from ..conftest import cli
from .common import error_sentence, flags, stored, write_reviews


@pytest.fixture()
def pickled_model(tiny_bert, tmp_path):
    """The tiny model with its weights as pytorch_model.bin (a pickle) instead of safetensors."""
    from safetensors.torch import load_file

    folder = tmp_path / "pickled"
    shutil.copytree(tiny_bert, folder)
    for weights in folder.glob("*.safetensors"):
        torch.save(load_file(weights), folder / "pytorch_model.bin")
        weights.unlink()
    return folder


def test_pickle_weights_are_refused_unless_allowed(capsys, pickled_model, tmp_path):
    csv, out = write_reviews(tmp_path), tmp_path / "out"
    code, _, err = cli(capsys, *flags(pickled_model, csv, out, "-s", "head", "--epochs", "1"))
    assert (code, error_sentence(err)) == (2, (
        f"error: model folder '{pickled_model}' holds only pickle-based weights (pytorch_model.bin), which can run "
        "arbitrary code when loaded; convert them to safetensors, or pass --allow-pickle if you trust where they "
        "came from"))
    code, _, err = cli(capsys, *flags(pickled_model, csv, out, "-s", "head", "--epochs", "1", "--allow-pickle"))
    assert code == 0, err
    assert stored(out)[0]["status"] == "finished"


def test_model_code_is_refused_unless_trusted(capsys, tiny_bert, tmp_path):
    folder = tmp_path / "custom"
    shutil.copytree(tiny_bert, folder)
    config = json.loads((folder / "config.json").read_text())
    config["auto_map"] = {"AutoModel": "modeling_evil.EvilModel"}
    (folder / "config.json").write_text(json.dumps(config))
    code, _, err = cli(capsys, *flags(folder, write_reviews(tmp_path), tmp_path / "out", "-s", "head"))
    assert (code, error_sentence(err)) == (2, (
        f"error: model folder '{folder}' needs its own Python code to load (auto_map in config.json); pass "
        "--trust-remote-code only if you trust where it came from"))
    check_folder_is_safe(folder, trust_remote_code=True)  # the flag lets it through


def test_models_load_with_trust_remote_code_off_and_safetensors_only(tiny_bert, monkeypatch):
    from transformers import AutoModelForSequenceClassification

    from tunebench.training.modeling import load_classifier

    seen = {}
    real = AutoModelForSequenceClassification.from_pretrained

    def spy(*args, **kwargs):
        seen.update(kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(AutoModelForSequenceClassification, "from_pretrained", spy)
    load_classifier(str(tiny_bert), ["a", "b"])
    assert seen["trust_remote_code"] is False and seen["use_safetensors"] is True


def test_yaml_is_read_with_the_safe_loader(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    study = tmp_path / "study.yaml"
    study.write_text("name: !!python/object/apply:os.system ['echo pwned > pwned.txt']\n")
    code, _, err = cli(capsys, "run", str(study))
    assert code == 2 and "could not determine a constructor" in error_sentence(err)
    assert not (tmp_path / "pwned.txt").exists()


@pytest.mark.parametrize("label", ["lora:r=8,targets=../../etc", "lora:targets=/abs/path", "..", "a\\..\\b", ""])
def test_run_folder_names_cannot_leave_the_runs_folder(label):
    slug = safe_slug(label)
    assert slug and "/" not in slug and "\\" not in slug and ".." not in slug and not slug.startswith(".")


def test_text_from_data_is_not_markup_in_the_terminal():
    from io import StringIO

    from rich.console import Console

    buf = StringIO()
    RichReporter(Console(file=buf, width=200)).message("label [bold red]x[/bold red] from the data")
    assert "[bold red]x[/bold red]" in buf.getvalue()
