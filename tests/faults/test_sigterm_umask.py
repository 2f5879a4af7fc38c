"""Issue 26: SIGTERM (what Slurm, Kubernetes and ``timeout`` send) is treated like Ctrl-C, and the files a
study writes follow the umask (a shared results folder stays readable by the team)."""

from __future__ import annotations

import os
import signal
import stat

import pandas as pd

from .common import error_sentence, flags, integrity_ok, start_driver, stored, wait_for_step
from .common import write_reviews as reviews


def test_sigterm_records_the_run_as_interrupted_like_ctrl_c(tiny_bert, tmp_path):
    out = tmp_path / "out"
    argv = flags(tiny_bert, reviews(tmp_path), out, "-s", "head partial:k=1", "--epochs", "50")
    proc = start_driver(argv, fault="slow")
    wait_for_step(proc, 0, 3)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err
    assert "Traceback" not in err
    assert error_sentence(err).startswith("error: terminated (SIGTERM): interrupted during run 'head' at step ")
    (record,) = stored(out)
    assert record["status"] == "interrupted" and record["failure"]["epoch"] == 1
    assert pd.read_csv(out / "results.csv")["status"].tolist() == ["interrupted"]
    assert integrity_ok(out)


def test_output_files_follow_the_umask(tiny_bert, tmp_path):
    out = tmp_path / "out"
    proc = start_driver(flags(tiny_bert, reviews(tmp_path), out, "-s", "head", "--epochs", "1"),
                        preexec_fn=lambda: os.umask(0o002))
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    for name in ("results.csv", "results.json", "summary.md", "report.md", "report.html", "dataset_profile.json"):
        assert stat.S_IMODE((out / name).stat().st_mode) == 0o664, name
    figures = list((out / "figures").glob("*.png"))
    assert figures and all(stat.S_IMODE(p.stat().st_mode) == 0o664 for p in figures)
