"""Data-efficiency curves (issue 27, part 1): nested stratified subsets, a study per size, a verdict per size."""

from __future__ import annotations

import json
import sqlite3
from collections import Counter

import numpy as np
import pandas as pd
import pytest

from tunebench.data.bundle import Split
from tunebench.data.subsets import nested_order, nested_subset
from tunebench.report.curve import _PICK, Curve, answer, line_name

from .conftest import cli, easy_reviews, one_error


def _labels(counts: dict[int, int], seed: int = 0) -> list[int]:
    labels = [c for c, n in counts.items() for _ in range(n)]
    np.random.default_rng(seed).shuffle(labels)
    return labels


def test_subsets_are_nested_and_stratified_per_class():
    labels = _labels({0: 600, 1: 300, 2: 100})  # 60 / 30 / 10 %
    pool = Split([f"t{i}" for i in range(len(labels))], None, labels)
    small, _ = nested_subset(pool, 64, draw=3)
    large, note = nested_subset(pool, 256, draw=3)
    assert set(small) < set(large)  # the ids of size 64 inside those of 256 ...
    for c in range(3):  # ... class by class, each within one row of its share of the size
        in_small = {i for i in small if labels[i] == c}
        assert in_small <= {i for i in large if labels[i] == c}
        for size, idx in ((64, small), (256, large)):
            share = size * labels.count(c) / len(labels)
            assert abs(sum(labels[i] == c for i in idx) - share) <= 1, (c, size)
    assert "256 of the 1,000-row training pool" in note and "draw 3" in note
    order = nested_order(labels, 3)
    assert sorted(order.tolist()) == list(range(len(labels)))  # every row once
    assert {labels[i] for i in order[:3]} == {0, 1, 2}  # the first k rows hold one of each of the k classes
    assert np.array_equal(order, nested_order(labels, 3))  # seeded
    assert not np.array_equal(order, nested_order(labels, 4))  # another draw, other rows


def test_a_size_too_small_for_every_class_says_so():
    labels = _labels({0: 50, 1: 40, 2: 10})
    _, note = nested_subset(Split(["t"] * 100, None, labels), 2, draw=0)
    assert "1 of the pool's 3 classes have no row at this size" in note


def test_the_curve_answer_names_the_pick_of_each_run_of_sizes():
    curve = Curve("macro_f1", [64, 256, 1024, 4096], pd.DataFrame(),
                  picks={64: "lora:r=8", 256: "lora:r=8", 1024: "full", 4096: "full"},
                  bases=["two-level test over 3 seeds × 1,000 test examples, macro-F1"])
    assert answer(curve) == ("Recommended at 64–256 training examples lora:r=8; at 1,024–4,096 training examples full "
                             "(each size's own verdict: two-level test over 3 seeds × 1,000 test examples, macro-F1, "
                             "Holm-corrected).")
    same = Curve("macro_f1", [64, 256], pd.DataFrame(), picks={64: "full", 256: "full"})
    assert answer(same) == "Recommended at every size measured (64, 256 training examples): full."
    none = Curve("macro_f1", [64, 256], pd.DataFrame(), picks={64: None, 256: "head"})
    assert answer(none) == "Recommended at 64 training examples no verdict; at 256 training examples head."


def test_the_pick_is_read_from_the_verdicts_sentences_and_lines_drop_tuned_rates():
    assert _PICK.match("Recommended: full:lr=1e-4,head_lr=3e-3 — the best on validation").group(1) == \
        "full:lr=1e-4,head_lr=3e-3"
    assert _PICK.match("Recommended: tfidf-logreg (a baseline) — no fine-tuning …").group(1) == "tfidf-logreg"
    assert _PICK.match("No verdict: every fine-tuning strategy was flagged") is None
    assert line_name({"kind": "lora", "r": 8, "lr": 5e-4, "head_lr": 3e-3, "k": None}) == "lora:r=8"
    assert line_name({"kind": "full", "lr": 1e-4}) == "full"


CURVE_STUDY = """
name: curve
data: {{source: {csv}, train_sizes: [16, 48], data_seeds: [0, 1], val_limit: 40, test_limit: 60}}
model: {{name: {model}, max_length: 16}}
strategies: [head]
training: {{epochs: 1, batch_size: 8}}
sweep: {{seeds: [0, 1]}}
output: {{dir: {out}, save_checkpoints: false, measure_serving: false}}
"""


def _rows(store) -> list[dict]:
    with sqlite3.connect(store) as db:
        return [json.loads(r) | {"_label": lab, "_study": st}
                for st, lab, r in db.execute("select study, label, record from runs")]


def test_a_curve_study_runs_every_size_and_gives_one_verdict_per_size(tmp_path, tiny_bert, capsys):
    csv = tmp_path / "reviews.csv"
    easy_reviews(240).to_csv(csv, index=False)
    out = tmp_path / "out"
    study = tmp_path / "curve.yaml"
    study.write_text(CURVE_STUDY.format(csv=csv, model=tiny_bert, out=out))
    code, stdout, err = cli(capsys, "run", str(study))
    assert code == 0, err
    assert "Recommended" in stdout and "curve.md" in stdout
    for name in ("curve.csv", "curve.json", "curve.md", "curve.png"):
        assert (out / name).is_file()
    saved = json.loads((out / "curve.json").read_text())
    assert saved["sizes"] == [16, 48] and set(saved["verdicts"]) == {"16", "48"}  # one verdict per size
    table = pd.read_csv(out / "curve.csv")
    assert sorted(set(table["train_size"])) == [16, 48]
    assert set(table["strategy"]) == {"head", "majority", "tfidf-logreg"}
    assert (table["seeds"] == 2).all()
    # the records: seed i trains on draw i; validation and test the same at every size; 16 inside 48, per draw
    rows = {size: [r for r in _rows(out / f"n={size}" / "tunebench.sqlite") if r["_study"] == "curve"]
            for size in (16, 48)}
    for size, runs in rows.items():
        assert {(r["resolved"]["seed"], r["data"]["subset"]["draw"], r["data"]["sizes"]["train"]) for r in runs} == \
            {(0, 0, size), (1, 1, size)}
    hashes = {(r["data"]["hashes"]["validation"], r["data"]["hashes"]["test"]) for rs in rows.values() for r in rs}
    assert len(hashes) == 1
    assert len({r["data"]["hashes"]["train"] for r in rows[48]}) == 2  # two draws, two training subsets
    # the floor is fitted per draw and paired with each seed's runs (a seed-level test, not a seed-free one)
    from tunebench.report.inputs import load_inputs
    from tunebench.report.significance import family

    inputs = load_inputs(out / "n=48")
    floors = family(inputs.runs, inputs.predictions).floors
    assert floors and all(c.test is not None and c.test.seed_level and c.test.seeds == 2 for c in floors)
    assert saved["answer"].startswith("Recommended") and saved["answer"] in (out / "curve.md").read_text()
    # the report rebuilds the curve from the stores alone
    (out / "curve.md").unlink()
    code, stdout, err = cli(capsys, "report", str(out))
    assert code == 0, err
    assert (out / "curve.md").read_text().startswith("# Data-efficiency curve")
    # a rerun trains nothing again: no new attempt in any size's store
    def attempts() -> int:
        return sum(sqlite3.connect(out / f"n={size}" / "tunebench.sqlite").execute(
            "select count(*) from attempts").fetchone()[0] for size in (16, 48))

    before = attempts()
    code, _, err = cli(capsys, "run", str(study))
    assert code == 0, err
    assert attempts() == before


def test_training_sets_of_smaller_sizes_are_inside_the_larger_ones_for_each_draw(tmp_path, tiny_bert, capsys):
    from tunebench.spec.study import load_spec
    from tunebench.study.driver import prepare
    from tunebench.study.run import SilentReporter

    csv = tmp_path / "reviews.csv"
    easy_reviews(240).to_csv(csv, index=False)
    study = tmp_path / "curve.yaml"
    study.write_text(CURVE_STUDY.format(csv=csv, model=tiny_bert, out=tmp_path / "out"))
    pool = prepare(load_spec(study), SilentReporter())
    for draw in (0, 1):
        small, large = pool.subset_of(16, draw), pool.subset_of(48, draw)
        assert Counter(small.bundle.train.texts) <= Counter(large.bundle.train.texts)
        assert len(small.train) == 16 and small.train.labels.tolist() == small.bundle.train.labels
        assert small.validation is pool.validation and small.test is pool.test
    with pytest.raises(Exception, match="larger than the training pool"):
        pool.subset_of(10_000, 0)


@pytest.mark.parametrize(("args", "expected"), [
    (["--train-sizes", "16", "48", "--data-seeds", "0", "1"],
     "data.data_seeds pairs one draw with each seed: 3 seeds (0 1 2) need 3 draws, got 2 (0 1)"),
    (["--data-seeds", "0", "1", "2"], "data.data_seeds draws training subsets: it needs data.train_sizes"),
    (["--train-sizes", "16,x"], "--train-sizes must be whole numbers separated by spaces or commas"),
    (["--train-sizes", "100000"], "data.train_size 100,000 is larger than the training pool"),
    (["--train-sizes", "0"], "train_sizes"),
])
def test_bad_curve_options_are_one_sentence_and_exit_2(tmp_path, tiny_bert, capsys, args, expected):
    csv = tmp_path / "reviews.csv"
    easy_reviews(120).to_csv(csv, index=False)
    code, _, err = cli(capsys, "run", "--model", str(tiny_bert), "--dataset", str(csv), "-s", "head", "--epochs", "1",
                       "-o", str(tmp_path / "out"), *args)
    assert code == 2
    assert expected in one_error(err)


def test_min_steps_per_epoch_gives_small_training_sets_passes_and_leaves_large_ones_alone():
    from tunebench.spec.parts import TrainingSpec
    from tunebench.study.plan import passes_for

    t = TrainingSpec(batch_size=16, min_steps_per_epoch=16)
    assert [passes_for(t, n) for n in (16, 17, 64, 256, 1024)] == [16, 8, 4, 1, 1]
    assert passes_for(TrainingSpec(batch_size=16), 16) == 1  # not set: one pass
    assert passes_for(TrainingSpec(batch_size=8, grad_accumulation=2, min_steps_per_epoch=4), 16) == 4


def test_an_epoch_of_two_passes_takes_twice_the_steps_and_keeps_the_first_passs_order(tiny_bert):
    from tunebench.training import engine
    from tunebench.training.batching import EncodedSplit

    from .test_engine import _cfg, _train

    _, one, _ = _train(tiny_bert, _cfg(epochs=1))
    _, two, _ = _train(tiny_bert, _cfg(epochs=1, passes=2))
    assert two.resources["optimizer_steps"] == 2 * one.resources["optimizer_steps"] == 16  # 64 rows, batches of 8
    split = EncodedSplit([[1] * (2 + i % 7) for i in range(64)], None, np.zeros(64, dtype=np.int64))
    cfg = _cfg(passes=2)
    first = [b.tolist() for b in engine.epoch_plan(split, _cfg(), 3)]
    both = [b.tolist() for b in engine.epoch_plan(split, cfg, 3)]
    assert both[:len(first)] == first and both[len(first):] != first  # the second pass: its own order
    assert sorted(i for b in both for i in b) == sorted(list(range(64)) * 2)


def test_run_ids_of_one_pass_are_unchanged_by_the_setting():
    from tunebench.study.plan import identity_settings
    from tunebench.training import engine

    from .test_engine import _cfg

    assert "passes" not in identity_settings(_cfg())  # one pass: the computation of every run before it
    assert identity_settings(_cfg(passes=4))["passes"] == 4
    assert engine.LATER_FIELDS["passes"] == 1


def test_the_command_line_sets_the_curve_and_warns_when_small_sizes_get_few_steps(tmp_path, tiny_bert, capsys):
    from tunebench.cli.run import spec_from_options

    spec = spec_from_options({"study_file": None, "train_sizes": "16 64", "data_seeds": "0,1,2",
                              "min_steps_per_epoch": 8, "train_limit": 200})
    assert spec.data.train_sizes == [16, 64] and spec.data.data_seeds == [0, 1, 2]
    assert spec.training.min_steps_per_epoch == 8
    csv = tmp_path / "reviews.csv"
    easy_reviews(120).to_csv(csv, index=False)
    code, _, err = cli(capsys, "run", "--model", str(tiny_bert), "--dataset", str(csv), "-s", "head", "--epochs", "1",
                       "--train-sizes", "8", "--no-checkpoints", "-o", str(tmp_path / "out"))
    assert code == 0, err
    assert "at 8 training examples an epoch is 1 optimizer step (1 in 1 epochs)" in " ".join(err.split())
