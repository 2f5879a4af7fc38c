"""``examples/quickstart.ipynb`` executed headless by nbclient on a real Jupyter kernel (this Python),
with a tiny model and a small CSV in its parameters cell; its outputs are the study's results."""

from __future__ import annotations

import json
import re
import sys
from html.parser import HTMLParser
from pathlib import Path

import nbformat
import pandas as pd
import pytest
from nbclient import NotebookClient

from .conftest import easy_reviews

NOTEBOOK = Path(__file__).resolve().parents[1] / "examples" / "quickstart.ipynb"
README = Path(__file__).resolve().parents[1] / "README.md"


def _kernel(tmp_path: Path, monkeypatch) -> str:
    """A kernelspec that starts ipykernel with this interpreter (the test's venv), whatever is on PATH."""
    folder = tmp_path / "jupyter" / "kernels" / "tunebench-test"
    folder.mkdir(parents=True)
    (folder / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "tunebench test", "language": "python"}))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    monkeypatch.setenv("JUPYTER_PLATFORM_DIRS", "1")
    return "tunebench-test"


def _text(cell) -> str:
    parts = []
    for output in cell.get("outputs", []):
        if output["output_type"] == "stream":
            parts.append(output["text"])
        elif "data" in output:
            parts.append(output["data"].get("text/plain", ""))
    return "".join(parts)


def _html(cell) -> str:
    return "".join(o.get("data", {}).get("text/html", "") for o in cell.get("outputs", []) if "data" in o)


class _Cells(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.rows: list[list[str]] = []
        self._cell: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        if tag == "tr":
            self.rows.append([])
        elif tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self.rows[-1].append("".join(self._cell).strip())
            self._cell = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)


def _frame(html: str) -> dict[str, list[str]]:
    """The columns of the first HTML table pandas drew (its index column dropped)."""
    parser = _Cells()
    parser.feed(html)
    header, *rows = [r for r in parser.rows if r]
    offset = len(rows[0]) - len(header) if rows else 0
    header = [""] * max(0, -offset) + header
    width = len(header)
    return {name: [r[-width:][i] for r in rows] for i, name in enumerate(header) if name}


def test_quickstart_notebook_runs_on_a_kernel(tiny_bert, tmp_path, monkeypatch):
    nb = nbformat.read(NOTEBOOK, as_version=4)
    params = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
    csv = tmp_path / "reviews.csv"
    easy_reviews().to_csv(csv, index=False)
    out = tmp_path / "out"
    params.source = (f"dataset = {str(csv)!r}\nmodel = {str(tiny_bert)!r}\noutput = {str(out)!r}\n"
                     "train_limit = None\nepochs = 2")
    client = NotebookClient(nb, timeout=600, kernel_name=_kernel(tmp_path, monkeypatch),
                            resources={"metadata": {"path": str(tmp_path)}})
    client.execute()
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(o["output_type"] != "error" for c in code for o in c.get("outputs", []))

    stored = pd.read_csv(out / "results.csv")
    assert stored["label"].tolist() == ["full", "lora:r=8", "head"]
    run_cell = next(c for c in code if "study.run()" in c.source)
    printed = _text(run_cell)
    assert "tunebench study 'reviews-bert': 3 strategies (full, lora:r=8, head)" in printed
    for label, f1 in zip(stored["label"], stored["test_macro_f1"], strict=True):
        assert f"✓ {label}: test macro-F1 {f1:.3f}" in printed  # the progress lines, one per run

    table = _html(next(c for c in code if c.source.startswith("result.table")))
    shown = _frame(table)
    assert shown["label"] == stored["label"].tolist()
    assert [float(v) for v in shown["test_macro_f1"]] == pytest.approx(stored["test_macro_f1"].tolist(), abs=1e-4)
    assert [int(v) for v in shown["trainable_params"]] == stored["trainable_params"].tolist()

    by_config = _html(next(c for c in code if c.source.startswith("result.by_config")))
    assert "test_macro_f1_ci_low" in by_config and "lora:r=8" in by_config

    sentence = _text(next(c for c in code if "print(result.recommendation)" in c.source)).strip()
    assert sentence and sentence in (out / "report.md").read_text()

    predicted = _text(next(c for c in code if ".predict(" in c.source))
    assert re.fullmatch(r"\['(pos|neg)', '(pos|neg)'\]", predicted.strip())

    report = _html(next(c for c in code if c.source.strip() == "result.report()"))
    assert report.startswith('<div class="tunebench-report">') and "tunebench report: reviews-bert" in report
    assert 'id="headline"' in report and "data:image/png;base64," in report  # tables and figures inline

    choice = _text(code[-1]).strip().strip("'")
    assert choice in stored["label"].tolist()


def test_readme_from_python_is_the_notebook_code():
    nb = nbformat.read(NOTEBOOK, as_version=4)
    readme = README.read_text()
    section = readme[readme.index("## From Python"):]
    section = section[:section.index("\n## ", 4)]
    for cell in nb.cells:
        if cell.cell_type == "code":
            for line in cell.source.splitlines():
                assert line in section, line
