"""The bad-input corpus: every broken config, data file and command line gets its exact sentence and exit 2."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from ..conftest import cli, easy_reviews
from .common import error_sentence

HERE = Path(__file__).with_name("bad_inputs")
CASES = yaml.safe_load((HERE / "cases.yaml").read_text(encoding="utf-8"))


def test_the_corpus_has_at_least_25_cases():
    assert len(CASES) >= 25 and len({c["id"] for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[c["id"] for c in CASES])
def test_bad_input_gets_one_exact_sentence_and_exit_2(case, capsys, tiny_bert, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # a study that wrongly started would write here, not in the repository
    data = tmp_path / "reviews.csv"
    easy_reviews(40).to_csv(data, index=False)
    places = {"here": str(HERE), "model": str(tiny_bert), "data": str(data), "out": str(tmp_path / "out")}
    argv = [a.format(**places) for a in case["argv"]]
    code, _, err = cli(capsys, *argv)
    assert "Traceback" not in err
    assert (code, error_sentence(err)) == (2, "error: " + case["expect"].format(**places))
    assert not (tmp_path / "pwned.txt").exists()
