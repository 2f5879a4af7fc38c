"""Nothing lost, nothing written that is not ours: ``store repair`` under a live study, repairs at once,
stores tunebench does not recognise, read-only stores.  Real SQLite, real processes, real permissions."""

from __future__ import annotations

import hashlib
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

import tunebench
from tunebench.results.store import STORE_NAME, Store

from ..conftest import cli
from .common import error_sentence, flags, write_reviews

SRC = Path(tunebench.__file__).resolve().parents[1]  # the tunebench these tests import


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def listing(folder: Path) -> dict[str, str]:
    """Each file's digest; SQLite's shared-memory index and an empty WAL (which a reader of a WAL store
    creates) are not content."""
    return {p.name: digest(p) for p in folder.iterdir() if p.is_file() and not p.name.endswith("-shm")
            and not (p.name.endswith("-wal") and p.stat().st_size == 0)}


def make_store(folder: Path, n: int = 40) -> Path:
    """A store of ``n`` finished attempts with predictions (records large enough to span many pages)."""
    folder.mkdir(parents=True, exist_ok=True)
    with Store(folder / STORE_NAME) as store:
        for i in range(n):
            record = {"run_id": f"r{i}", "study": "s", "label": f"run{i}", "position": i, "strategy": "head",
                      "status": "finished", "finished_at": f"2026-01-01T00:00:{i:02d}", "pad": "x" * 3000}
            store.put(record, [0, 1], [[0.9, 0.1], [0.2, 0.8]])
        store.set_plan("s", [f"run{i}" for i in range(n)])
    db = sqlite3.connect(folder / STORE_NAME)
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()
    return folder / STORE_NAME


def damage(store: Path) -> None:
    size = store.stat().st_size
    with open(store, "r+b") as fh:
        fh.seek((size // 4096 // 2) * 4096)
        fh.write(b"\xde\xad" * 2048)


def tunebench(*argv: str, user: str | None = None, cwd: Path | None = None, **kwargs) -> subprocess.Popen:
    """The real CLI in its own process (as ``user`` when given: root would bypass file permissions)."""
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    prefix = []
    if user is not None:
        prefix = ["setpriv", f"--reuid={user}", f"--regid={user}", "--clear-groups"]  # numeric ids
        env["HOME"] = str(cwd or tempfile.gettempdir())
    return subprocess.Popen([*prefix, sys.executable, "-m", "tunebench", *argv], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env, cwd=cwd, **kwargs)


def finish(proc: subprocess.Popen, timeout: float = 300) -> tuple[int, str, str]:
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out, err


def test_repair_refuses_while_a_study_holds_the_folder(capsys, tmp_path):
    store = make_store(tmp_path / "out")
    damage(store)  # even a damaged store: the study's process may be writing its WAL
    before = listing(tmp_path / "out")
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time; from tunebench.study.lock import StudyLock; "
                               f"StudyLock({str(tmp_path / 'out')!r}).acquire(); print('held', flush=True); "
                               "time.sleep(120)"], stdout=subprocess.PIPE, text=True,
                              env={**os.environ, "PYTHONPATH": str(SRC)})
    try:
        assert holder.stdout.readline().strip() == "held"
        code, out, err = cli(capsys, "store", "repair", str(tmp_path / "out"))
        assert code == 2, err
        assert error_sentence(err) == (
            f"error: the study store '{store}' is in use (process {holder.pid} on host {os.uname().nodename} holds "
            f"its folder: a study or another repair); nothing was changed; run 'tunebench store repair "
            f"{tmp_path / 'out'}' again once it has ended")
        after = listing(tmp_path / "out")
        after.pop(".tunebench.study.lock")
        assert after == before  # not a file moved, not a byte written
    finally:
        holder.kill()
        holder.wait()
    code, out, err = cli(capsys, "store", "repair", str(tmp_path / "out"))  # the holder is gone: repaired
    assert code == 0 and out.startswith(f"copied what could be read into a new store at {store}"), err


def test_repair_of_a_healthy_store_changes_nothing(capsys, tmp_path):
    store = make_store(tmp_path / "out")
    os.chmod(store, 0o640)
    before = listing(tmp_path / "out")
    code, out, err = cli(capsys, "store", "repair", str(tmp_path / "out"))
    assert code == 0, err
    assert out.strip() == f"the study store '{store}' is intact: nothing to repair, nothing was changed"
    after = listing(tmp_path / "out")
    after.pop(".tunebench.study.lock")
    assert after == before and oct(store.stat().st_mode & 0o777) == "0o640"


def test_two_repairs_in_the_same_second_keep_both_originals(capsys, tmp_path):
    store = make_store(tmp_path / "out")
    damage(store)
    first = digest(store)
    assert cli(capsys, "store", "repair", str(tmp_path / "out"))[0] == 0
    damage(store)
    second = digest(store)
    assert cli(capsys, "store", "repair", str(tmp_path / "out"))[0] == 0
    kept = sorted(p for p in (tmp_path / "out").iterdir() if ".damaged-" in p.name and not p.name.endswith(("-wal",
                                                                                                           "-shm")))
    assert len(kept) == 2 and {digest(p) for p in kept} == {first, second}


def test_two_repairs_started_at_once(tmp_path):
    store = make_store(tmp_path / "out", n=600)  # a copy long enough for the two to overlap
    damage(store)
    procs = [tunebench("store", "repair", str(tmp_path / "out")) for _ in range(2)]
    results = [finish(p) for p in procs]
    for code, _out, err in results:
        assert "Traceback" not in err and code in (0, 2), err
        if code == 2:
            assert error_sentence(err).startswith(f"error: the study store '{store}' is in use (")
    sentences = [out.strip() for code, out, _ in results if code == 0]
    repaired = [s for s in sentences if s.startswith("copied what could be read")]
    assert len(repaired) == 1, results  # one repaired it; the other was refused, or found nothing left to repair
    assert all(s == repaired[0] or s.endswith("is intact: nothing to repair, nothing was changed") for s in sentences)
    assert not [p.name for p in (tmp_path / "out").iterdir() if ".repairing" in p.name]
    kept = [p for p in (tmp_path / "out").iterdir() if ".damaged-" in p.name and not p.name.endswith(("-wal", "-shm"))]
    assert len(kept) == 1


def newer_store(folder: Path) -> Path:
    store = make_store(folder, n=3)
    db = sqlite3.connect(store)
    db.execute("PRAGMA journal_mode=DELETE")
    db.execute("PRAGMA user_version=99")
    db.commit()
    db.close()
    return store


def foreign_store(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(folder / STORE_NAME)
    db.execute("CREATE TABLE runs (id INTEGER PRIMARY KEY, name TEXT, score REAL)")
    db.execute("INSERT INTO runs (name, score) VALUES ('mine', 0.5)")
    db.commit()
    db.close()
    return folder / STORE_NAME


@pytest.mark.parametrize("kind", ["newer", "foreign"])
def test_a_store_tunebench_does_not_recognise_is_never_written(capsys, tiny_bert, tmp_path, kind):
    out = tmp_path / "out"
    store = newer_store(out) if kind == "newer" else foreign_store(out)
    before = listing(out)
    expected = (f"error: the study store '{store}' was written by a newer tunebench (layout 99; this one knows up "
                "to 2); nothing was written to it" if kind == "newer" else
                f"error: '{store}' is not a tunebench study store (layout 0, tables: runs); nothing was written to it")
    for argv in (["store", "check", str(out)], ["store", "repair", str(out)], ["report", str(out)],
                 flags(tiny_bert, write_reviews(tmp_path), out, "-s", "head")):
        code, _, err = cli(capsys, *argv)
        assert code == 2, (argv, err)
        assert error_sentence(err).startswith(expected), (argv, err)
        now = listing(out)
        now.pop(".tunebench.study.lock", None)
        assert now == before, argv  # no WAL switch, no version rewritten, no profile beside it


def test_store_check_reads_only(capsys, tmp_path):
    store = make_store(tmp_path / "out", n=3)
    before = listing(tmp_path / "out")
    code, out, err = cli(capsys, "store", "check", str(tmp_path / "out"))
    assert code == 0 and out.startswith(f"the study store '{store}' is intact: 3 attempt(s) in 1 study(ies)"), err
    assert listing(tmp_path / "out") == before


@pytest.fixture()
def shared(tmp_path):
    """A folder the unprivileged user ``nobody`` can work in (pytest's own tmp_path is root's alone)."""
    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        pytest.skip("needs root and setpriv to run the CLI as an unprivileged user")
    folder = Path(tempfile.mkdtemp(prefix="tb-nobody-"))
    os.chmod(folder, 0o777)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def test_a_read_only_store_is_refused_for_writing_and_stays_read_only(shared, tiny_bert):
    out = shared / "out"
    store = make_store(out, n=3)
    damage(store)
    shutil.copytree(tiny_bert, shared / "model")
    csv = write_reviews(shared)
    for path in (shared, *shared.rglob("*")):
        os.chown(path, 65534, 65534)
    os.chmod(store, 0o444)
    before = listing(out)
    refusal = f"error: the study store '{store}' is read-only; nothing was written to it; make it writable"
    code, _, err = finish(tunebench("store", "repair", str(out), user="65534", cwd=shared))
    assert code == 2 and error_sentence(err).startswith(refusal), err
    assert oct(store.stat().st_mode & 0o777) == "0o444"
    now = listing(out)
    now.pop(".tunebench.study.lock", None)
    assert now == before
    # an intact read-only store: `run` refuses, `report` and `store check` only read it
    shutil.rmtree(out)
    store = make_store(out, n=3)
    for path in (out, *out.rglob("*")):
        os.chown(path, 65534, 65534)
    os.chmod(store, 0o444)
    before = listing(out)
    code, _, err = finish(tunebench(*flags(shared / "model", csv, out, "-s", "head"), user="65534", cwd=shared))
    assert code == 2 and error_sentence(err).startswith(refusal), err
    code, text, err = finish(tunebench("store", "check", str(out), user="65534", cwd=shared))
    assert code == 0 and "is intact: 3 attempt(s)" in text, err
    now = listing(out)
    now.pop(".tunebench.study.lock", None)
    assert now == before and oct(store.stat().st_mode & 0o777) == "0o444"


def test_read_only_and_locked_folders_are_one_sentence(shared, tiny_bert):
    """`-o` inside a chmod-000 folder or an existing read-only one, `report` and `store repair` in a read-only
    output folder: one sentence each, run as an unprivileged user (root would write anyway)."""
    shutil.copytree(tiny_bert, shared / "model")
    csv = write_reviews(shared)
    (shared / "locked").mkdir()
    (shared / "readonly").mkdir()
    for path in (shared, *shared.rglob("*")):
        os.chown(path, 65534, 65534)
    os.chmod(shared / "locked", 0o000)
    os.chmod(shared / "readonly", 0o555)

    def refused(*argv: str) -> str:
        code, _, err = finish(tunebench(*argv, user="65534", cwd=shared))
        assert code == 2 and len(err) < 4000, err
        return error_sentence(err)

    run = flags(shared / "model", csv, shared / "locked" / "out", "-s", "head")
    assert refused(*run) == (f"error: output folder '{shared / 'locked' / 'out'}' cannot be used (Permission "
                             "denied); choose another --output")
    run = flags(shared / "model", csv, shared / "readonly", "-s", "head")
    assert refused(*run).startswith(f"error: cannot write in the output folder '{shared / 'readonly'}' (Permission "
                                    "denied)")
    out = shared / "out"
    code, _, err = finish(tunebench(*flags(shared / "model", csv, out, "-s", "head"), user="65534", cwd=shared))
    assert code == 0, err
    damage_copy = shared / "damaged"
    shutil.copytree(out, damage_copy)
    damage(damage_copy / STORE_NAME)
    for path in (damage_copy, *damage_copy.rglob("*")):
        os.chown(path, 65534, 65534)
    (out / "report.html").unlink()
    os.chmod(out, 0o555)
    os.chmod(damage_copy, 0o555)
    text = refused("report", str(out))
    assert text.startswith("error: cannot use '") and "permission denied" in text, text
    text = refused("store", "repair", str(damage_copy))
    assert text.startswith(f"error: the folder '{damage_copy}' of the study store is read-only"), text
    os.chmod(out, 0o755)
    os.chmod(damage_copy, 0o755)
