"""A real full disk: the output folder on a small tmpfs, filled up by the checkpoint or by a ballast file.

The simulated cases in test_oom_disk_lock.py raise ``OSError(ENOSPC)`` where tunebench writes; here
the libraries hit the real thing, and wrap it their own ways (safetensors' ``SafetensorError``,
SQLite's "database or disk is full").  Mounting needs root (CI runs as root); elsewhere these
tests are skipped with that reason.
"""

from __future__ import annotations

import errno
import subprocess

import pytest

from tunebench.cli import console

from ..conftest import cli
from .common import error_sentence, flags, integrity_ok, stored, write_reviews


@pytest.fixture()
def small_disk(tmp_path):
    """A 2 MiB tmpfs: room for a tiny study's store, tables and report, not for a checkpoint (~4.6 MB)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {done.stderr.strip()}")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(folder) -> None:
    """Write a ballast file until the file system says it is full."""
    with open(folder / "ballast", "wb") as fh:
        try:
            while True:
                fh.write(b"\0" * 65536)
                fh.flush()
        except OSError as exc:
            assert exc.errno == errno.ENOSPC


def test_a_checkpoint_that_fills_the_disk_is_one_sentence_and_keeps_the_store(capsys, tiny_bert, tmp_path, small_disk):
    csv, out = write_reviews(tmp_path), small_disk / "out"
    code, _, err = cli(capsys, *flags(tiny_bert, csv, out, "-s", "head"))  # no checkpoints: it fits
    assert code == 0, err
    before = stored(out)
    argv = [a for a in flags(tiny_bert, csv, out, "-s", "head partial:k=1") if a != "--no-checkpoints"]
    code, _, err = cli(capsys, *argv)
    assert code == 2
    text = error_sentence(err)
    assert text.startswith(f"error: no space left on the device while saving the best checkpoint to '{out}/runs/01-")
    assert text.endswith("; free some space and run the same command again (finished runs are kept in the store)")
    assert len(err) < 4000
    assert stored(out) == before and integrity_ok(out)
    assert not any(p.name.endswith(".tmp") for p in (out / "runs").iterdir())  # no half-written folder left


@pytest.mark.parametrize("hook, what", [
    ("run_started", "a run's result to '{out}/tunebench.sqlite'"),  # full while the second run trains
    ("run_finished", "the study's tables to '{out}'"),  # full between the first result and its tables
])
def test_a_result_written_to_a_full_disk_is_one_sentence_and_the_rerun_finishes(capsys, tiny_bert, tmp_path,
                                                                                small_disk, monkeypatch, hook, what):
    csv, out = write_reviews(tmp_path), small_disk / "out"
    real = getattr(console.RichReporter, hook)

    def filling(self, *args, **kwargs):
        if hook == "run_finished" or args[0] == 1:
            fill(small_disk)
        return real(self, *args, **kwargs)

    monkeypatch.setattr(console.RichReporter, hook, filling)
    argv = flags(tiny_bert, csv, out, "-s", "head partial:k=1")
    code, _, err = cli(capsys, *argv)
    assert code == 2
    assert error_sentence(err) == (f"error: no space left on the device while saving {what.format(out=out)}; free some "
                                   "space and run the same command again (finished runs are kept in the store)")
    before = stored(out)
    assert [(r["strategy"], r["status"]) for r in before] == [("head", "finished")] and integrity_ok(out)

    monkeypatch.undo()
    (small_disk / "ballast").unlink()  # space again: the same command finishes the study
    code, _, err = cli(capsys, *argv)
    assert code == 0, err
    after = stored(out)
    assert [r["status"] for r in after] == ["finished", "finished"] and after[0] == before[0]
