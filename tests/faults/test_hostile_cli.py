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
