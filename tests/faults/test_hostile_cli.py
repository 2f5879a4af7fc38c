"""Issue 26, the command line as a hostile user types it: empty output folders, paths the OS refuses,
numbers no run can take.  One sentence, exit 2, nothing of the user's overwritten."""

from __future__ import annotations

import pytest

from ..conftest import cli
from .common import error_sentence, flags, write_reviews


@pytest.mark.parametrize("empty", ["", " "])
def test_an_empty_output_folder_is_refused_not_the_current_one(capsys, tiny_bert, tmp_path, monkeypatch, empty):
    project = tmp_path / "proj"
    project.mkdir()
    mine = {name: f"my own {name}" for name in ("report.md", "results.csv")}
    for name, text in mine.items():
        (project / name).write_text(text)
    csv = write_reviews(tmp_path)
    monkeypatch.chdir(project)
    code, _, err = cli(capsys, *flags(tiny_bert, csv, empty, "-s", "head"))
    assert code == 2, err
    assert error_sentence(err) == (f"error: options: field 'output.dir' must name a folder ('' would be the current "
                                   "one, its own report.md and results.csv overwritten): give --output DIR, or leave "
                                   f"it out for tunebench-out (got {empty!r})")
    code, _, err = cli(capsys, "data", "show", str(csv), "--model", str(tiny_bert), "-o", empty)
    assert code == 2, err
    assert error_sentence(err) == ("error: --output is empty; name a folder for the profile, or leave it out for "
                                   "tunebench-eda/NAME")
    assert sorted(p.name for p in project.iterdir()) == sorted(mine)
    assert all((project / name).read_text() == text for name, text in mine.items())


# --- tracebacks where one sentence is promised ------------------------------------------------------

LIMIT = 4000


@pytest.fixture(scope="module")
def finished(tiny_models, tmp_path_factory):
    """A finished tiny study (head, with its checkpoint): (csv, output folder)."""
    from tunebench.spec.study import StudySpec
    from tunebench.study.driver import run_study

    root = tmp_path_factory.mktemp("tracebacks")
    csv = write_reviews(root)
    spec = StudySpec(name="t", data={"source": str(csv)}, model={"name": str(tiny_models["bert"]), "max_length": 32},
                     strategies=["head"], training={"epochs": 1, "batch_size": 8}, output={"dir": str(root / "out")})
    assert [r["status"] for r in run_study(spec)] == ["finished"]
    return csv, root / "out"


def one_sentence(capsys, *argv) -> str:
    code, _, err = cli(capsys, *argv)
    assert code == 2, err
    assert len(err) < LIMIT, f"{len(err)} characters on stderr"
    return error_sentence(err)


LONG = "x" * 300


@pytest.mark.parametrize("where", ["dataset", "model", "output", "report", "predict", "huge-dataset"])
def test_a_name_longer_than_the_file_system_allows(capsys, tiny_bert, tmp_path, where):
    csv, out = write_reviews(tmp_path), tmp_path / "out"
    argv = {"dataset": flags(tiny_bert, tmp_path / f"{LONG}.csv", out),
            "huge-dataset": flags(tiny_bert, tmp_path / ("y" * 100_000), out),
            "model": flags(tmp_path / LONG, csv, out),
            "output": flags(tiny_bert, csv, tmp_path / LONG / "out"),
            "report": ["report", str(tmp_path / LONG)],
            "predict": ["predict", str(tmp_path / LONG), "a fine film"]}[where]
    text = one_sentence(capsys, *argv)
    assert "longer than the file system allows" in text or "File name too long" in text, text


def test_output_folders_the_system_refuses(capsys, tiny_bert, tmp_path):
    csv = write_reviews(tmp_path)
    text = one_sentence(capsys, *flags(tiny_bert, csv, "/../../x/../../../.."))
    assert text == ("error: output folder '/../../x/../../../..' climbs above the root folder with '..'; choose "
                    "another --output")
    assert not (tmp_path / "dataset_profile.json").exists()
    text = one_sentence(capsys, *flags(tiny_bert, csv, "/proc/x"))
    assert text == "error: output folder '/proc/x' cannot be created (No such file or directory); choose another --output"


@pytest.mark.parametrize("size", ["0", "-5"])
def test_evaluate_batch_size_must_be_positive(capsys, finished, size):
    run = next((finished[1] / "runs").iterdir())
    assert one_sentence(capsys, "evaluate", str(run), "--batch-size", size) == (
        f"error: --batch-size must be a positive number of examples (got {size})")


def test_report_html_that_is_a_folder(capsys, finished, tmp_path):
    import shutil

    out = shutil.copytree(finished[1], tmp_path / "out")
    (out / "report.html").unlink(missing_ok=True)
    (out / "report.html").mkdir()
    text = one_sentence(capsys, "report", str(out))
    assert text.startswith("error: cannot use '") and "it is a folder where a file is written" in text, text


def test_data_show_into_a_file(capsys, tiny_bert, tmp_path):
    afile = tmp_path / "afile"
    afile.write_text("mine")
    text = one_sentence(capsys, "data", "show", str(write_reviews(tmp_path)), "--model", str(tiny_bert), "-o",
                        str(afile))
    assert text.startswith("error: cannot use '") and str(afile) in text, text
    assert afile.read_text() == "mine"


@pytest.mark.parametrize("profile", ['{"splits": 5, "label_names": 3}', "[1, 2]", '{"splits": {"test": []}}'])
def test_a_malformed_dataset_profile_falls_back_to_the_records(capsys, finished, tmp_path, profile):
    import shutil

    out = shutil.copytree(finished[1], tmp_path / "out")
    (out / "dataset_profile.json").write_text(profile)
    code, _, err = cli(capsys, "report", str(out))
    assert code == 0, err
    assert "No dataset_profile.json" in (out / "report.md").read_text() or "classes" in (out / "report.md").read_text()


@pytest.mark.parametrize("edit", ["'$.test', 'x'", "'$.params', 5", "'$.test.macro_f1', 'high'",
                                  "'$.data.label_names', 7"])
def test_a_store_record_with_wrong_types_is_one_sentence(capsys, finished, tmp_path, edit):
    import shutil
    import sqlite3

    from tunebench.results.store import STORE_NAME

    out = shutil.copytree(finished[1], tmp_path / "out")
    db = sqlite3.connect(out / STORE_NAME)
    db.execute(f"UPDATE attempts SET record = json_set(record, {edit}) WHERE study = 't'")
    db.commit()
    db.close()
    text = one_sentence(capsys, "report", str(out))
    assert text.startswith(f"error: the study store '{out / STORE_NAME}' holds a record with fields of the wrong "
                           "type (attempt "), text


def test_a_tracker_that_fails_on_import(capsys, finished, tmp_path, monkeypatch):
    import sys

    broken = tmp_path / "site" / "mlflow"
    broken.mkdir(parents=True)
    (broken / "__init__.py").write_text("raise RuntimeError('this mlflow is broken')\n")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    monkeypatch.delitem(sys.modules, "mlflow", raising=False)
    text = one_sentence(capsys, "report", str(finished[1]), "--track", "mlflow")
    assert text == ("error: --track mlflow: the package 'mlflow' is installed but fails to import (RuntimeError: this "
                    "mlflow is broken); reinstall it, or leave out --track mlflow")


# --- accepted when it must be refused ----------------------------------------------------------------

@pytest.mark.parametrize(("extra", "expected"), [
    (["--lr", "inf"], "field 'training.lr' Input should be a finite number (got inf)"),
    (["--head-lr", "inf"], "field 'training.head_lr' Input should be a finite number (got inf)"),
    (["--seed", str(2**32)], "field 'training.seed' Input should be less than or equal to 4294967295"),
    (["--seed", "-1"], "field 'training.seed' Input should be greater than or equal to 0"),
])
def test_infinite_rates_and_impossible_seeds_are_refused(capsys, tiny_bert, tmp_path, extra, expected):
    text = one_sentence(capsys, *flags(tiny_bert, write_reviews(tmp_path), tmp_path / "out", *extra))
    assert expected in text, text
    assert not (tmp_path / "out").exists()  # refused before anything was written


@pytest.mark.parametrize(("yaml", "expected"), [
    ("training: {lr: .inf}", "field 'training.lr' Input should be a finite number"),
    ("strategies: [{kind: head, lr: .inf}]", "field 'strategies.0.lr' Input should be a finite number"),
    ("training: {seed: 1e20}", "field 'training.seed' Input should be a valid integer"),
    ("sweep: {seeds: [0, 4294967296]}", "field 'sweep.seeds.1' Input should be less than or equal to 4294967295"),
    ("sweep: {seeds: [-3]}", "field 'sweep.seeds.0' Input should be greater than or equal to 0"),
])
def test_a_study_file_with_infinite_rates_or_impossible_seeds(capsys, tiny_bert, tmp_path, yaml, expected):
    study = tmp_path / "study.yaml"
    study.write_text(f"model: {{name: {tiny_bert}}}\ndata: {{source: {write_reviews(tmp_path)}}}\n{yaml}\n")
    text = one_sentence(capsys, "run", str(study), "-o", str(tmp_path / "out"))
    assert expected in text, text


def test_seeds_out_of_range_and_a_grid_key_given_twice_are_refused(capsys, tiny_bert, tmp_path):
    csv = write_reviews(tmp_path)
    sweep = ["sweep", *flags(tiny_bert, csv, tmp_path / "out")[1:]]
    text = one_sentence(capsys, *sweep, "--seeds", f"0 {2**32}")
    assert "field 'sweep.seeds.1' Input should be less than or equal to 4294967295" in text, text
    text = one_sentence(capsys, *sweep, "--grid", "lr=1e-3", "--grid", "lr=1e-4")
    assert text == "error: --grid lr is given twice; list all its values in one: --grid lr=1e-3,1e-4"


def test_labels_are_not_merged_by_a_float_round_trip_and_trimmed_labels_are_noted(tmp_path):
    import pandas as pd

    from tunebench.data.loading import load_dataset_bundle
    from tunebench.spec.parts import DataSpec

    big = tmp_path / "big.csv"
    pd.DataFrame([{"text": f"the film was good {i}", "label": "12345678901234567" if i % 2 else "12345678901234568"}
                  for i in range(40)]).to_csv(big, index=False)
    bundle = load_dataset_bundle(DataSpec(source=str(big)), seed=0)
    assert sorted(bundle.label_names) == ["12345678901234567", "12345678901234568"]

    spaced = tmp_path / "spaced.csv"
    pd.DataFrame([{"text": f"the film was good {i}", "label": [" pos", "pos ", "pos", "neg"][i % 4]}
                  for i in range(40)]).to_csv(spaced, index=False)
    bundle = load_dataset_bundle(DataSpec(source=str(spaced)), seed=0)
    assert sorted(bundle.label_names) == ["neg", "pos"]
    assert ("file: labels are read without surrounding spaces, which merged labels that differ only in them: "
            "' pos', 'pos', 'pos ' → 'pos'") in bundle.notes


def test_nproc_with_bad_data_is_the_rank_s_sentence_not_tracebacks(tiny_bert, tmp_path):
    """`--nproc 2` on data that cannot be split: rank 0's sentence and the launch's, no gloo traceback from
    rank 1 and no ChildFailedError from torch.distributed.run (7 KB before)."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    import tunebench

    bad = tmp_path / "bad.csv"
    bad.write_text("text,label\nonly one,a\n")
    src = Path(tunebench.__file__).resolve().parents[1]  # the tunebench this test imported
    argv = flags(tiny_bert, bad, tmp_path / "out", "-s", "head", "--nproc", "2")
    proc = subprocess.run([sys.executable, "-m", "tunebench", *argv], capture_output=True, text=True, timeout=600,
                          env={**os.environ, "PYTHONPATH": str(src)})
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr and "ChildFailedError" not in proc.stderr, proc.stderr
    assert len(proc.stderr) < 2000, proc.stderr
    assert f"error: {bad.name} has only 1 usable row(s) left for train" in proc.stderr
    assert error_sentence(proc.stderr).endswith("error: the study's processes ended with exit code 2; their output "
                                                "above says why")
