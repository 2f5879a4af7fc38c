"""Class-weighted fine-tuning (issue 28, part 3): ``training.class_weight`` for every method, the floor alike."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch

from tunebench.spec.study import StudySpec
from tunebench.study.plan import Prepared, follow_class_weight, run_config, run_id_for
from tunebench.training.loop import Objective

from .conftest import cli, easy_reviews, one_error
from .test_engine import _cfg, _train

BUNDLE = SimpleNamespace(hashes=lambda: {"train": "t", "validation": "v", "test": "x"})


def _prepared(labels: list[int], names: tuple[str, ...] = ("a", "b", "c")) -> Prepared:
    """A stand-in for a study's shared state with only what ``class_weights`` reads."""
    return Prepared(bundle=SimpleNamespace(label_names=list(names), task="single_label"), model_source="m", tokenizer=None,
                    train=SimpleNamespace(labels=np.asarray(labels)), validation=None, test=None,
                    device=torch.device("cpu"), precision="fp32")


def test_balanced_weights_are_scikit_learns_rule_over_the_training_split():
    prepared = _prepared([0] * 6 + [1] * 3 + [2] * 1)  # 10 examples, 3 classes
    assert prepared.class_weights("balanced") == pytest.approx((10 / 18, 10 / 9, 10 / 3))
    assert prepared.class_weights("none") is None
    assert _prepared([0, 1, 2] * 4).class_weights("balanced") is None  # equal counts: equal weights, unweighted
    absent = _prepared([0] * 3 + [1] * 1)  # class c never in training keeps weight 1
    assert absent.class_weights("balanced") == pytest.approx((4 / 6, 4 / 2, 1.0))


def test_the_weighted_loss_is_the_weighted_mean_and_shards_add_up_to_the_batch():
    logits = torch.tensor([[2.0, 0.0], [0.5, 1.5], [0.0, 0.3], [1.0, -1.0], [0.2, 0.1]])
    labels = np.array([0, 1, 1, 0, 1])
    weights = (0.5, 2.0)
    objective = Objective(weights, labels, torch.device("cpu"))
    per_example = -torch.log_softmax(logits, 1)[torch.arange(5), torch.as_tensor(labels)]
    w = torch.tensor([weights[y] for y in labels])
    assert float(objective.loss(logits, torch.as_tensor(labels))) == pytest.approx(float((w * per_example).sum() / w.sum()))
    whole = np.arange(5)
    shards = [np.array([0, 1]), np.array([2, 3, 4])]  # two processes' parts of one batch
    combined = sum(float(objective.loss(logits[s], torch.as_tensor(labels[s]))) * objective.share(s, whole)
                   for s in shards)
    assert combined == pytest.approx(float((w * per_example).sum() / w.sum()))
    plain = Objective(None, labels, torch.device("cpu"))
    assert float(plain.loss(logits, torch.as_tensor(labels))) == pytest.approx(float(per_example.mean()))
    assert plain.share(shards[0], whole) == pytest.approx(2 / 5)


def test_class_weights_change_the_training_loss_and_equal_weights_do_not(tiny_bert):
    _, plain, _ = _train(tiny_bert, _cfg(epochs=1))
    _, equal, _ = _train(tiny_bert, _cfg(epochs=1, class_weights=(2.0, 2.0)))
    _, skewed, _ = _train(tiny_bert, _cfg(epochs=1, class_weights=(1.0, 5.0)))
    assert equal.curves[0]["train_loss"] == pytest.approx(plain.curves[0]["train_loss"], rel=1e-5)
    assert skewed.curves[0]["train_loss"] != pytest.approx(plain.curves[0]["train_loss"], rel=1e-3)


def _spec(tmp_path, csv, model, **training) -> StudySpec:
    return StudySpec(name="cw", data={"source": str(csv)}, model={"name": str(model), "max_length": 32},
                     strategies=["head"], baselines=["tfidf-logreg"], output={"dir": str(tmp_path / "out")},
                     training={"epochs": 1, "batch_size": 8, **training})


def test_run_ids_hash_weights_only_when_they_weigh(tmp_path):
    spec = _spec(tmp_path, "x.csv", "m")
    none = spec.model_copy(update={"training": spec.training.model_copy(update={"class_weight": "none"})})
    strategy = spec.strategies[0]

    def run_id(s, weights):
        return run_id_for(s, strategy, BUNDLE, run_config(s, strategy, "fp32", class_weights=weights),
                          torch.device("cpu"))

    assert spec.training.class_weight == "balanced"
    assert run_id(spec, None) == run_id(none, None)  # balanced data: the same computation, the same id
    assert run_id(spec, (0.75, 1.5)) != run_id(spec, None)


def test_the_tfidf_floor_follows_the_studys_class_weight_unless_it_sets_its_own(tmp_path):
    from tunebench.spec.strategy import parse_strategy

    spec = _spec(tmp_path, "x.csv", "m", class_weight="none")
    assert follow_class_weight(parse_strategy("tfidf-logreg"), spec.training).class_weight == "none"
    own = parse_strategy("tfidf-logreg:class_weight=balanced")
    assert follow_class_weight(own, spec.training).class_weight == "balanced"
    assert follow_class_weight(parse_strategy("head"), spec.training) == parse_strategy("head")


def _imbalanced(tmp_path):
    frame = easy_reviews(120)
    frame = pd.concat([frame[frame.label == "pos"], frame[frame.label == "neg"].iloc[:20]])  # 60 pos, 20 neg
    path = tmp_path / "imbalanced.csv"
    frame.to_csv(path, index=False)
    return path


def test_a_study_records_and_reports_its_class_weights(tiny_bert, tmp_path):
    from tunebench.data.loading import load_dataset_bundle
    from tunebench.report import build_report
    from tunebench.results.store import STORE_NAME, Store
    from tunebench.study.driver import run_study

    spec = _spec(tmp_path, _imbalanced(tmp_path), tiny_bert)
    records = run_study(spec)
    (head,) = [r for r in records if r["strategy"] == "head"]
    bundle = load_dataset_bundle(spec.data, spec.training.seed)
    counts = np.bincount(np.asarray(bundle.train.labels), minlength=2)
    assert head["data"]["label_names"] == bundle.label_names == ["neg", "pos"]
    assert counts[1] > 2 * counts[0]  # the split kept the 1 : 3 imbalance
    assert head["resolved"]["class_weights"] == pytest.approx([counts.sum() / (2 * c) for c in counts], rel=1e-5)
    with Store(tmp_path / "out" / STORE_NAME, readonly=True) as store:
        (floor,) = store.records("cw:baselines")
    assert floor["spec"]["class_weight"] == "balanced"
    build_report(tmp_path / "out")
    assert "class-weighted" in (tmp_path / "out" / "report.md").read_text(encoding="utf-8")


def test_an_unknown_class_weight_is_one_sentence(capsys, tmp_path):
    code, _, err = cli(capsys, "run", "--class-weight", "heavy", "-o", str(tmp_path / "o"))
    assert code == 2
    assert "class_weight" in one_error(err) and "balanced" in one_error(err)
