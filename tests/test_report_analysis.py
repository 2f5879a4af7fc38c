"""Pure report functions: Pareto fronts, error analysis, cost, best values, recommendation."""

from __future__ import annotations

import math

import pandas as pd
import pytest
from scipy.stats import fisher_exact

from tunebench.errors import SpecError
from tunebench.report import analysis, cost
from tunebench.report import error_analysis as ea
from tunebench.report.verdict import recommendation
from tunebench.results.decisions import decide


def test_pareto_front_keeps_only_non_dominated_runs_in_cost_order():
    times = [10.0, 5.0, 20.0, 5.0, None]
    f1 = [0.80, 0.70, 0.90, 0.60, 0.99]
    # run 3 is dominated by run 1 (same time, lower F1); run 4 has no cost value and is left out
    assert analysis.pareto_front(times, f1) == [1, 0, 2]
    assert analysis.pareto_front([1.0, 1.0], [0.5, 0.5]) == [0, 1]  # ties dominate nobody


def test_word_lift_needs_support_and_ranks_by_a_test_not_by_the_raw_lift():
    texts, wrong = [], [i < 30 for i in range(100)]  # 100 test examples, the first 30 misclassified
    for i in range(100):
        words = ["filler"]  # in every example: lift 1
        words += ["alpha"] * (i < 10)  # 10 examples, all errors: lift 3.33
        words += ["beta"] * (i < 25 or 30 <= i < 45)  # 40 examples, 25 errors: lift 2.08, far more evidence
        words += ["rare"] * (i < 2)  # 2 examples, both errors: lift 3.33 from two examples, never tested
        words += ["noise"] * (25 <= i < 40)  # 15 examples, 5 errors: about what chance gives
        texts.append(" ".join(words))
    lifts = ea.word_lift(texts, wrong)
    assert [w.word for w in lifts] == ["beta", "alpha"]
    beta = lifts[0]
    assert beta.lift == pytest.approx(25 / 30 / 0.4) and (beta.in_errors, beta.in_all) == (25, 40)
    # the one-sided Fisher exact test of the 2x2 table (errors x contains the word)
    assert beta.p == pytest.approx(fisher_exact([[25, 15], [5, 55]], alternative="greater").pvalue)
    assert beta.q == pytest.approx(beta.p * 4 / 1)  # four words tested (alpha, beta, filler, noise); beta ranks 1st
    assert ea.MIN_SUPPORT == 10 and "rare" not in {w.word for w in ea.word_lift(texts, wrong, max_q=1.0)}
    assert [w.word for w in ea.word_lift(texts, wrong, min_support=2, max_q=1.0)] == ["beta", "alpha", "rare", "noise"]
    assert ea.word_lift(texts, [False] * 100) == [] and ea.word_lift(texts, [True] * 100) == []


def test_error_counts_gaps_disagreements_and_confident_errors():
    labels = [0, 0, 1, 1, 2]
    probs = [[0.9, 0.1, 0.0], [0.2, 0.7, 0.1], [0.1, 0.8, 0.1], [0.6, 0.3, 0.1], [0.3, 0.3, 0.4]]
    preds = decide(probs).tolist()  # the argmax every report section decides by
    assert preds == [0, 1, 1, 0, 2]
    assert ea.error_label_counts(labels, preds, 3) == ([1, 1, 0], [1, 1, 0])
    gaps = ea.probability_gaps(labels, probs)
    assert gaps.keys() == {0, 1} and gaps[0] == [pytest.approx(0.5)] and gaps[1] == [pytest.approx(0.3)]
    assert ea.confident_errors(labels, probs, top=1) == [(1, 1, pytest.approx(0.7))]
    other = [0, 0, 2, 0, 2]
    assert ea.disagreements({"a": preds, "b": other}, labels) == [1, 2]  # index 1: one right; 2: one right
    assert ea.disagreements({"a": preds}, labels) == []


def test_prices_parse_override_and_reject_bad_items():
    prices = cost.parse_prices(["t4=0.35", "L4=0.8"])
    assert prices["T4"] == 0.35 and prices["L4"] == 0.8 and prices["H100"] == cost.DEFAULT_PRICES["H100"]
    assert cost.parse_prices(None) == cost.DEFAULT_PRICES and cost.DEFAULT_PRICES["T4"] == 0.526
    for bad in ("T4", "T4=abc", "=1", "T4=-1", "T4=nan"):
        with pytest.raises(SpecError, match="NAME=USD_PER_HOUR"):
            cost.parse_prices([bad])


def _record(device: str, device_type: str, seconds: float, f1: float, strategy: str = "full", lr: float = 1e-3):
    return {"strategy": strategy, "environment": {"device": device, "device_type": device_type},
            "resolved": {"device": device_type, "seed": 0, "lr": lr, "epochs": 3},
            "resources": {"train_time_s": seconds}, "test": {"macro_f1": f1},
            "data": {"sizes": {"train": 100, "validation": 10, "test": 50}}}


def test_cost_uses_the_runs_device_and_estimates_the_others():
    prices = cost.parse_prices([])
    gpu = _record("NVIDIA A100-SXM4-40GB", "cuda", 3600.0, 0.8)
    assert cost.device_key(gpu, prices) == "A100"
    assert cost.run_cost(gpu, prices) == pytest.approx(4.096)
    assert cost.cost_per_f1_point(4.096, 0.8) == pytest.approx(4.096 / 80)
    assert cost.run_cost(_record("NVIDIA RTX 4090", "cuda", 10, 0.5), prices) is None
    rows = {r.device: r for r in cost.study_cost_by_device([gpu], prices)}
    assert rows["A100"].basis == "measured" and rows["A100"].usd == pytest.approx(4.096)
    assert rows["T4"].basis.startswith("estimate") and rows["T4"].hours == pytest.approx(5.0)
    assert rows["H100"].hours == pytest.approx(5 / 9)
    unknown = {r.device: r for r in cost.study_cost_by_device([gpu], {**prices, "L4": 0.8})}["L4"]
    assert unknown.usd is None and "no speed estimate" in unknown.basis


def test_best_rows_and_recommendation_pick_from_the_numbers():
    frame = pd.DataFrame({
        "strategy": ["full", "lora", "head"], "test_macro_f1": [0.90, 0.895, 0.70], "test_accuracy": [0.9, 0.9, 0.7],
        "train_time_s": [100.0, 60.0, 10.0], "examples_per_s": [10.0, 16.0, 100.0],
        "peak_memory_mb": [900.0, 700.0, 500.0], "cost_usd": [0.1, 0.06, 0.01], "trainable_params": [100, 10, 1],
    })
    marks = analysis.best_rows(frame)
    assert marks["test_macro_f1"] == {0} and marks["test_accuracy"] == {0, 1} and marks["cost_usd"] == {2}
    records = [_record("cpu", "cpu", t, f, s, lr) for t, f, s, lr in
               [(100, 0.9, "full", 2e-5), (60, 0.895, "lora", 5e-4), (10, 0.7, "head", 1e-3)]]
    picks, caveats = recommendation(frame, records)  # no family of comparisons: point estimates only
    assert picks[0].startswith("Highest mean test macro-F1: full") and not any("Recommended" in p for p in picks)
    assert picks[1].startswith("Fastest to train: head") and picks[2].startswith("Least memory: head")
    text = " ".join(caveats)
    assert "Single seed" in text and "Small data" in text and "Learning rate differs" in text


def test_confusion_summaries_for_many_classes():
    names = [f"c{i}" for i in range(20)]
    matrix = [[10 if i == j else 0 for j in range(20)] for i in range(20)]
    matrix[3][7], matrix[3][3] = 6, 4
    per_class = {n: {"f1-score": 1.0 if n != "c3" else 0.2} for n in names}
    record = {"strategy": "full", "data": {"label_names": names},
              "test": {"confusion_matrix": matrix, "per_class": per_class}}
    assert analysis.confused_pairs(record, 1) == [("c3", "c7", 6, pytest.approx(0.6))]
    worst = analysis.worst_classes([record], n=3)
    assert list(worst.index)[0] == "c3" and len(worst) == 3
    norm = analysis.normalised_confusion(matrix)
    assert math.isclose(norm[3].sum(), 1.0) and norm[3][7] == pytest.approx(0.6)


def test_a_runs_own_memory_leaves_the_process_out_and_says_what_it_is():
    cpu = {"resources": {"peak_rss_mb": 912.4, "rss_at_start_mb": 671.0, "cuda_max_allocated_mb": None}}
    gpu = {"resources": {"peak_rss_mb": 3000.0, "rss_at_start_mb": 2500.0, "cuda_max_allocated_mb": 812.0}}
    old = {"resources": {"peak_rss_mb": 900.0}}  # a record from before the start was stored
    assert analysis.own_memory_mb(cpu) == pytest.approx(241.4) and analysis.own_memory_mb(gpu) == 812.0
    assert analysis.own_memory_mb(old) == 900.0 and analysis.own_memory_mb({"resources": {}}) is None
    assert analysis.memory_measure([cpu, cpu])[0] == "memory added (MB, peak RSS above start)"
    assert analysis.memory_measure([gpu])[0] == "GPU memory (MB, peak allocated)"
    assert analysis.memory_measure([cpu, old])[0] == "memory (MB, process peak RSS)"
    assert analysis.memory_measure([cpu, gpu])[0].startswith("memory (MB: GPU peak allocated, CPU")
