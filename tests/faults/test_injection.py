"""Issue 26: text from data (labels, the study name) is shown in summary.md, report.md and the terminal,
never obeyed: no HTML, no links, no block breaking out of its line or code fence, no escape sequence
reaching the terminal even when stderr is a pipe (``2>&1 | tee log``)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import tunebench

from ..conftest import easy_reviews
from .common import flags

SRC = Path(tunebench.__file__).resolve().parents[1]  # the tunebench these tests import
NAME = '<script>alert("name")</script>\n```\n# owned [x](https://evil.example/n) \x1b]0;title\x07\x1b[2J'
LABELS = {"pos": "<img src=x onerror=alert(1)>\x1b[2J", "neg": "neg\n```\n# owned [x](https://evil.example/x)"}


def test_text_from_data_is_shown_not_obeyed(tiny_bert, tmp_path):
    csv = tmp_path / "hostile.csv"
    frame = easy_reviews(60)
    frame["label"] = frame["label"].map(LABELS)
    frame.to_csv(csv, index=False)
    out = tmp_path / "out"
    argv = flags(tiny_bert, csv, out, "-s", "head", "--name", NAME)
    argv[argv.index("--no-checkpoints")] = "--epochs=1"
    proc = subprocess.run([sys.executable, "-m", "tunebench", *argv], capture_output=True, text=True, timeout=600,
                          env={**os.environ, "PYTHONPATH": str(SRC), "COLUMNS": "200"})
    assert proc.returncode == 0, proc.stderr
    terminal = proc.stdout + proc.stderr
    assert "\x1b" not in terminal and "\x9b" not in terminal and "\x07" not in terminal
    assert "\\x1b]0;title" in terminal  # shown, escaped

    summary = (out / "summary.md").read_text()
    assert summary.splitlines()[0].startswith("# tunebench study: &lt;script&gt;alert")
    assert "<script>" not in summary and not [line for line in summary.splitlines() if line.startswith("```")]

    report = (out / "report.md").read_text().splitlines()
    opening = report.index(next(line for line in report if line.startswith("```")))
    fence = report[opening]
    closing = report.index(fence, opening + 1)
    inside = "\n".join(report[opening + 1:closing])
    assert "owned" in inside  # the spec, study name and all, stays inside its code block (shown, not rendered)
    assert max(len(run) for run in re.findall(r"`+", inside)) < len(fence)
    outside = "\n".join(report[:opening] + report[closing + 1:])
    for text in (summary, outside):
        assert "<img" not in text and "<script" not in text and "https://evil" not in text
        assert not re.search(r"(?<!\\)\](\((?!figures/))", text)  # no live [text](link) but the figures
        assert not [line for line in text.splitlines() if line.startswith("# owned")]
        assert "\x1b" not in text and "\x07" not in text  # `cat summary.md` in a terminal obeys nothing either
