"""One run across 2 CPU processes (gloo over loopback) against the same run in one process.

The tiny model here has no dropout, so the two runs compute the same thing and differ only in the
order of floating-point sums (two half-batch gradients added vs one batch): accuracy and
predictions must be equal, losses equal to 1e-4 (fp32 rounding over 18 optimizer steps stays
orders of magnitude below that; a wrong effective batch or a missing all-reduce moves the
validation loss by more than 1e-2).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tunebench.results.store import STORE_NAME, Store
from tunebench.spec.study import StudySpec
from tunebench.study import driver as study_module
from tunebench.training import distributed

from .conftest import _tiny_config, cli, minilm_path

STRATEGIES = "full partial:k=1"


@pytest.fixture(scope="module")
def no_dropout_bert(tmp_path_factory):
    from transformers import AutoModel, AutoTokenizer

    folder = tmp_path_factory.mktemp("no-dropout-bert")
    tokenizer = AutoTokenizer.from_pretrained(minilm_path())
    config = _tiny_config("bert", tokenizer.vocab_size, tokenizer.pad_token_id)
    config.hidden_dropout_prob = config.attention_probs_dropout_prob = 0.0
    torch.manual_seed(0)
    AutoModel.from_config(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def _spec(model, csv, out, strategies, epochs) -> StudySpec:
    """The study ``_flags`` describes, built in Python (same run ids)."""
    return StudySpec(name="ddp", data={"source": str(csv)}, model={"name": str(model), "max_length": 32},
                     strategies=strategies, training={"epochs": epochs, "batch_size": 8, "lr": 3e-3},
                     output={"dir": str(out)})


def _flags(model, csv, out, *extra):
    return ["run", "--quick", "--model", str(model), "--dataset", str(csv), "--strategies", STRATEGIES, "--epochs", "2",
            "--batch-size", "8", "--lr", "3e-3", "--max-length", "32", "--name", "ddp", "-o", str(out), *extra]


def test_two_processes_match_one_process_with_the_same_effective_batch(capsys, no_dropout_bert, reviews_csv,
                                                                         tmp_path):
    study_module.run_study(_spec(no_dropout_bert, reviews_csv, tmp_path / "one", STRATEGIES.split(), epochs=2))
    code, stdout, _ = cli(capsys, *_flags(no_dropout_bert, reviews_csv, tmp_path / "two", "--nproc", "2"))
    assert code == 0
    with Store(tmp_path / "one" / STORE_NAME) as a, Store(tmp_path / "two" / STORE_NAME) as b:
        one, two = a.records("ddp"), b.records("ddp")
        assert [r["run_id"] for r in two] == [r["run_id"] for r in one]  # the same runs (same id)
        for x, y in zip(one, two, strict=True):
            assert y["resources"]["processes"] == 2 and x["resources"]["processes"] == 1
            assert "trained in 2 processes" in y["resources"]["engine_notes"][-1]
            assert y["resources"]["train_examples"] == x["resources"]["train_examples"]  # every example once
            assert y["test"]["accuracy"] == x["test"]["accuracy"] and y["best_epoch"] == x["best_epoch"]
            for cx, cy in zip(x["curves"], y["curves"], strict=True):
                assert cy["val_accuracy"] == cx["val_accuracy"]
                assert abs(cy["val_loss"] - cx["val_loss"]) < 1e-4
                assert abs(cy["train_loss"] - cx["train_loss"]) < 1e-4
            px, py = np.asarray(a.predictions(x["run_id"])[1]), np.asarray(b.predictions(y["run_id"])[1])
            assert (px.argmax(1) == py.argmax(1)).all() and np.abs(px - py).max() < 1e-4
    # rank 0 alone wrote: one row and one checkpoint per run, no half-written folders, one report
    assert len(two) == 2 and len(list((tmp_path / "two" / "runs").iterdir())) == 2
    assert (tmp_path / "two" / "report.html").is_file()


def test_a_process_other_than_rank_0_writes_nothing(no_dropout_bert, reviews_csv, tmp_path, monkeypatch):
    monkeypatch.setattr(distributed, "rank", lambda: 1)
    assert study_module.run_study(_spec(no_dropout_bert, reviews_csv, tmp_path / "out", ["head"], epochs=1)) == []
    assert [p for p in (tmp_path / "out").rglob("*")] == []


def test_shard_splits_a_batch_into_disjoint_balanced_parts(monkeypatch):
    monkeypatch.setattr(distributed, "world_size", lambda: 3)
    whole = np.arange(10)
    parts = []
    for r in range(3):
        monkeypatch.setattr(distributed, "rank", lambda r=r: r)
        parts.append(distributed.shard(whole))
    assert sorted(np.concatenate(parts).tolist()) == whole.tolist() and [len(p) for p in parts] == [4, 3, 3]
