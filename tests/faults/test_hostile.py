"""Hostile input beyond the bad-input corpus: one sentence, exit 2, bounded output, and nothing already
computed is touched (a store's or a checkpoint's bytes are the same afterwards)."""

from __future__ import annotations

import hashlib
import shutil
import sqlite3
from pathlib import Path

import pytest

from tunebench.results.store import STORE_NAME, Store

from ..conftest import cli
from .common import error_sentence, flags, integrity_ok, write_reviews

LIMIT = 4000  # stderr of a refusal stays under a few KB


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def refused(capsys, *argv) -> str:
    code, _, err = cli(capsys, *argv)
    assert code == 2, err
    assert len(err) < LIMIT, f"{len(err)} characters on stderr"
    return error_sentence(err)


@pytest.fixture(scope="module")
def study(tiny_models, tmp_path_factory):
    """A finished tiny study with checkpoints: (csv, output folder, the head run's folder)."""
    from tunebench.spec.study import StudySpec
    from tunebench.study.driver import run_study

    root = tmp_path_factory.mktemp("hostile")
    csv = write_reviews(root)
    spec = StudySpec(name="h", data={"source": str(csv)}, model={"name": str(tiny_models["bert"]), "max_length": 32},
                     strategies=["head", "partial:k=1", "full"], training={"epochs": 1, "batch_size": 8},
                     output={"dir": str(root / "out")})
    records = run_study(spec)
    assert all(r["status"] == "finished" for r in records)
    return csv, root / "out", Path(records[0]["checkpoint"]), spec


def test_an_output_folder_that_is_a_file(capsys, tiny_bert, tmp_path):
    afile = tmp_path / "afile"
    afile.write_text("mine")
    text = refused(capsys, *flags(tiny_bert, write_reviews(tmp_path), afile, "-s", "head"))
    assert text == f"error: output folder '{afile}' is an existing file, not a folder; choose another --output"
    assert afile.read_text() == "mine"
    inside = afile / "out"
    text = refused(capsys, *flags(tiny_bert, write_reviews(tmp_path), inside, "-s", "head"))
    assert text == (f"error: output folder '{inside}' cannot be created: part of its path is a file; choose another "
                    "--output")


def damage(store: Path) -> None:
    """Overwrite 4 KB in the middle of the file (a page of records), as a bad disk or a stray write would."""
    size = store.stat().st_size
    with open(store, "r+b") as fh:
        fh.seek((size // 4096 // 2) * 4096)
        fh.write(b"\xde\xad" * 2048)


def test_a_damaged_store_is_never_written_and_repair_saves_what_can_be_read(capsys, study, tiny_bert, tmp_path):
    csv, finished, _, spec = study
    out = shutil.copytree(finished, tmp_path / "out")
    store = out / STORE_NAME
    with Store(store) as s:
        before = {r["attempt"]: r for r in s.history()}
    damage(store)
    damaged = digest(store)
    sentence = (f"error: the study store '{store}' is damaged (")
    advice = (f"'tunebench store repair {out}' copies what can still be read into a new store and keeps the "
              "damaged file beside it")
    for argv in (["report", str(out)], flags(tiny_bert, csv, out, "-s", "head"), ["store", "check", str(out)]):
        text = refused(capsys, *argv)
        assert text.startswith(sentence) and text.endswith(advice), text
        assert digest(store) == damaged  # not a byte written into it

    code, stdout, err = cli(capsys, "store", "repair", str(out))
    assert code == 0, err
    kept = [p for p in out.iterdir() if p.name.startswith(f"{STORE_NAME}.damaged-") and p.suffix != ".tmp"]
    assert [digest(p) for p in kept if not p.name.endswith(("-wal", "-shm"))] == [damaged]
    assert stdout.startswith(f"copied what could be read into a new store at {store} (attempts ")
    assert integrity_ok(out)
    with Store(store) as s:
        after = {r["attempt"]: r for r in s.history()}
    assert after and all(after[a] == before[a] for a in after)  # what was saved is exactly what was stored
    code, stdout, err = cli(capsys, "store", "check", str(out))
    assert code == 0 and stdout.startswith(f"the study store '{store}' is intact: {len(after)} attempt(s)"), err
    from tunebench.study.driver import run_study

    rows = run_study(spec.model_copy(update={"output": spec.output.model_copy(update={"dir": str(out)})}))
    assert sorted(r["strategy"] for r in rows) == ["full", "head", "partial:k=1"]
    assert all(r["status"] == "finished" for r in rows)
    saved = {a for a, r in after.items() if r["study"] == spec.name}  # (the rest: its baselines' rows)
    assert saved and {r["attempt"] for r in rows} >= saved  # the saved runs are kept, not retrained


def test_a_file_that_is_not_a_store(capsys, tmp_path):
    (tmp_path / STORE_NAME).write_bytes(b"this is not SQLite" * 100)
    text = refused(capsys, "report", str(tmp_path))
    assert text == (f"error: the study store '{tmp_path / STORE_NAME}' is damaged (file is not a database); nothing "
                    f"was written to it; 'tunebench store repair {tmp_path}' copies what can still be read into a new "
                    "store and keeps the damaged file beside it")


def test_an_unreadable_record_is_one_sentence(capsys, study, tmp_path):
    out = shutil.copytree(study[1], tmp_path / "out")
    db = sqlite3.connect(out / STORE_NAME)
    db.execute("UPDATE attempts SET record = '{\"truncated' WHERE id = 1")
    db.commit()
    db.close()
    text = refused(capsys, "report", str(out))
    assert text.startswith(f"error: the study store '{out / STORE_NAME}' holds an unreadable record (attempt 1)")


@pytest.mark.parametrize("command", [["predict", "{run}", "a fine film"], ["evaluate", "{run}"]])
def test_a_truncated_checkpoint(capsys, study, tmp_path, command):
    run = shutil.copytree(study[2], tmp_path / "run")
    weights = run / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    cut = digest(weights)
    text = refused(capsys, *[part.format(run=run) for part in command])
    assert text.startswith(f"error: could not load the model saved in '{run}' (SafetensorError: ")
    assert text.endswith("); the checkpoint folder is damaged or incomplete")
    assert digest(weights) == cut


BILLION_LAUGHS = "\n".join(
    ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    + [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 9)]
    + ["name: *a8"])


@pytest.mark.parametrize("document, expect", [
    (BILLION_LAUGHS, "expands to more than 100,000 values (YAML aliases such as *name repeat what &name holds); write "
                     "the values out, or remove the aliases"),
    ("name: &x\n  - *x\n", "holds a value that contains itself (a YAML alias to its own anchor); write the values out"),
    ("name: " + "[" * 200 + "]" * 200 + "\n", "nests values more than 64 levels deep; a study spec is a few levels deep"),
])
def test_yaml_that_expands_or_nests_without_bound(capsys, tmp_path, document, expect):
    study = tmp_path / "study.yaml"
    study.write_text(document)
    assert len(document) < 2000
    assert refused(capsys, "run", str(study)) == f"error: study file '{study}' {expect}"


def test_a_huge_value_is_cut_in_the_sentence(capsys, tmp_path):
    study = tmp_path / "study.yaml"
    study.write_text(f"name: study\ntraining: {{epochs: '{'x' * 100_000}'}}\n")
    text = refused(capsys, "run", str(study))
    assert text == (f"error: {study}: field 'training.epochs' Input should be a valid integer, unable to parse string "
                    f"as an integer (got '{'x' * 118}…)")


def test_a_sweep_of_a_million_runs_is_refused_at_once(capsys, tiny_bert, tmp_path):
    import time

    tens = ",".join(str(i) for i in range(1, 11))
    tenths = ",".join(f"0.{i}" for i in range(10))
    grid = [arg for key, values in (("lora.r", tens), ("lora.alpha", tens), ("epochs", tens), ("batch_size", tens),
                                    ("grad_accumulation", tens), ("lora.dropout", tenths))
            for arg in ("--grid", f"{key}={values}")]
    started = time.monotonic()
    text = refused(capsys, "sweep", "--model", str(tiny_bert), "--dataset", str(write_reviews(tmp_path)), "-s", "lora",
                   *grid, "-o", str(tmp_path / "out"))
    assert time.monotonic() - started < 20  # counted from the spec, not expanded
    assert text == ("error: options: the study asks for 1,000,000 runs, more than execution.max_runs (1,000); narrow "
                    "the sweep or its seeds, or raise execution.max_runs (--max-runs)")
    assert not (tmp_path / "out").exists()


def test_a_study_says_its_size_and_what_a_billion_epochs_imply(capsys, tiny_bert, tmp_path, monkeypatch):
    from tunebench.training import engine

    monkeypatch.setattr(engine, "train_and_evaluate", lambda *a, **k: (_ for _ in ()).throw(RuntimeError("stop")))
    code, _, err = cli(capsys, *flags(tiny_bert, write_reviews(tmp_path), tmp_path / "out", "-s", "head full",
                                      "--epochs", "1000000000"))
    said = " ".join(err.split())
    assert code == 1  # both runs failed (the engine was replaced): the sentences before them are what is checked
    assert "2 strategies (head, full), 2 runs →" in said
    assert ("'head' trains 1,000,000,000 epochs (6,000,000,000 batches) and nothing stops it sooner (no early "
            "stopping): it runs until it ends or Ctrl-C, which records it and keeps every finished run; lower --epochs "
            "to bound it") in said
