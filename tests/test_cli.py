"""The command line: a study from flags, evaluate/predict on a saved run, and one-sentence errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pandas as pd
import pytest

from .conftest import cli, one_error

_run, _one_error = cli, one_error


def _flags(model, csv, out, *extra):
    return ["run", "--quick", "--model", str(model), "--dataset", str(csv), "--epochs", "1", "--batch-size", "8",
            "--max-length", "32", "--output", str(out), *extra]


def test_run_from_flags_then_evaluate_and_predict(capsys, tiny_bert, reviews_csv, tmp_path):
    out = tmp_path / "out"
    code, stdout, stderr = _run(capsys, *_flags(tiny_bert, reviews_csv, out, "-s", "head partial:k=1",
                                                "--lr", "0.003",
                                                "--attention", "eager"))
    assert code == 0, stderr
    assert "partial:k=1" in stdout and "test F1" in stdout
    # the study's answer is the last thing it prints: the report's recommendation (one seed: provisional)
    from tunebench.api import load

    sentence = load(out).recommendation.sentence
    assert sentence.startswith("Recommended: ") and sentence in " ".join(stdout.split("results:")[0].split())
    frame = pd.read_csv(out / "results.csv")
    assert frame["strategy"].tolist() == ["head", "partial:k=1"]
    assert "study 'reviews-bert'" in stderr  # named after the data and model, not the default study
    assert frame["lr"].tolist() == [0.003, 0.003] and set(frame["epochs"]) == {1}
    records = json.loads((out / "results.json").read_text())["runs"]
    assert {r["resources"]["attention"] for r in records} == {"eager"}
    assert {r["resources"]["compiled"] for r in records} == {False}
    run_dirs = sorted((out / "runs").iterdir())
    assert [d.name.split("-")[0] for d in run_dirs] == ["00", "01"]

    code, stdout, _ = _run(capsys, "evaluate", str(run_dirs[1]))
    assert code == 0
    test_f1 = frame.loc[1, "test_macro_f1"]
    assert f"macro-F1 {test_f1:.4f}" in stdout  # re-evaluation reproduces the stored test score

    code, stdout, _ = _run(capsys, "predict", str(run_dirs[1]), "the film was good", "the film was awful")
    assert code == 0
    rows = stdout.strip().splitlines()
    assert len(rows) == 2 and all(r.split("\t")[0] in ("pos", "neg") for r in rows)

    code, _, stderr = _run(capsys, *_flags(tiny_bert, reviews_csv, out, "-s", "head", "--lr", "0.003",
                                           "--attention", "eager"))
    assert code == 0 and "already finished in the store" in " ".join(stderr.split())


@pytest.mark.parametrize("extra, message", [
    (["-s", "adapter"], "error: unknown strategy 'adapter' in 'adapter'; choose one of: full, head, partial, lora"),
    (["-s", "lora:r=-1"], "field 'r' Input should be greater than or equal to 1 (got -1)"),
    (["--scheduler", "step"], "field 'training.scheduler' must be one of 'linear', 'cosine' or 'constant'"),
    (["--epochs", "0"], "field 'training.epochs' Input should be greater than or equal to 1 (got 0)"),
    (["--epochs", "many"], "Invalid value for '--epochs': Input should be a valid integer"),
    (["--no-such-flag"], "No such option: --no-such-flag (see 'tunebench run --help')"),
    (["--text-column", "review"], "review"),
    (["--label-column", "stars"], "stars"),
    (["--device", "cuda"], "--device cuda was asked for but no CUDA GPU is visible to torch"),
    (["--attention", "flash"], "field 'model.attention' must be one of 'auto', 'sdpa' or 'eager' (got 'flash')"),
])
def test_bad_options_get_one_sentence_and_exit_2(capsys, tiny_bert, reviews_csv, tmp_path, extra, message):
    code, _, err = _run(capsys, *_flags(tiny_bert, reviews_csv, tmp_path / "out", *extra))
    assert code == 2
    assert message in _one_error(err)


def test_missing_column_lists_the_columns_that_exist(capsys, tiny_bert, reviews_csv, tmp_path):
    code, _, err = _run(capsys, *_flags(tiny_bert, reviews_csv, tmp_path, "--text-column", "review"))
    text = _one_error(err)
    assert code == 2 and "'review'" in text and "text" in text and "label" in text


def test_missing_data_file(capsys, tiny_bert, tmp_path):
    code, _, err = _run(capsys, *_flags(tiny_bert, tmp_path / "missing.csv", tmp_path))
    assert code == 2 and "missing.csv" in _one_error(err)


def test_missing_study_file(capsys, tmp_path):
    code, _, err = _run(capsys, "run", str(tmp_path / "study.yaml"))
    assert code == 2 and "study file" in _one_error(err) and "does not exist" in err


def test_model_folder_that_does_not_exist(capsys, reviews_csv, tmp_path):
    code, _, err = _run(capsys, *_flags(tmp_path / "no-model", reviews_csv, tmp_path))
    assert code == 2 and "no-model" in _one_error(err)


def test_hub_model_id_offline_is_one_sentence(capsys, reviews_csv, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    code, _, err = _run(capsys, *_flags("bert-base-uncased", reviews_csv, tmp_path))
    text = _one_error(err)
    assert code == 2 and "bert-base-uncased" in text and "hub" in text


def test_evaluate_on_a_folder_that_is_not_a_run(capsys, tmp_path):
    code, _, err = _run(capsys, "evaluate", str(tmp_path))
    assert code == 2 and "is not a tunebench checkpoint folder" in _one_error(err)


def test_console_script_exit_code_and_no_traceback(tmp_path):
    """The installed entry point, as a user runs it: exit 2 and a single error line on stderr."""
    env = {**os.environ, "TUNEBENCH_HOME": str(tmp_path)}
    proc = subprocess.run([sys.executable, "-m", "tunebench", "run", "--dataset", str(tmp_path / "x.csv"),
                           "-s", "head", "--output", str(tmp_path / "out")],
                          capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith("error: ")
    assert "x.csv" in proc.stderr
