"""The verdict's statistics against known truth: simulated studies (tests/simulated.py), no training.

What an expert would check: the seed interval covers the true mean 95 % of the time; with no true
difference, a 10-configuration family says better/worse in at most α of studies (Holm); a real
difference is found more often with more seeds and is never called equivalent; a tiny difference is
called equivalent only when the data can show it; one seed never makes a method-level claim.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.metrics import f1_score

from tunebench.results import stats

from .simulated import study

RESAMPLES = 200  # enough for the test-example variance; the report uses stats.N_RESAMPLES


def _verdicts(tests: list[stats.PairedTest], alpha: float = stats.ALPHA) -> list[str]:
    adjusted = stats.holm([t.p_value for t in tests])
    adjusted_eq = stats.holm([t.p_equivalence for t in tests])
    return [stats.outcome(t, p, q, alpha) for t, p, q in zip(tests, adjusted, adjusted_eq, strict=True)]


def test_summarize_is_the_t_interval_of_the_mean():
    s = stats.summarize([0.80, 0.82, 0.84])
    half = 4.302652729911275 * 0.02 / math.sqrt(3)  # t(0.975, 2 df) * sd / sqrt(n)
    assert s.mean == pytest.approx(0.82) and s.std == pytest.approx(0.02)
    assert (s.low, s.high) == pytest.approx((0.82 - half, 0.82 + half))
    one = stats.summarize([0.5])
    assert one.n == 1 and math.isnan(one.low) and math.isnan(one.std)
    assert (stats.summarize([0.7, 0.7]).low, stats.summarize([0.7, 0.7]).high) == (0.7, 0.7)


def test_the_seed_interval_covers_the_true_mean_95_percent_of_the_time():
    rng = np.random.default_rng(0)
    hits = 0
    trials = 4000
    for _ in range(trials):
        s = stats.summarize(0.8 + 0.02 * rng.standard_normal(3))
        hits += s.low <= 0.8 <= s.high
    assert 0.93 <= hits / trials <= 0.97


def test_macro_f1_counts_only_the_classes_present_in_the_test_labels():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 3, size=300)  # class 3 of 4 never occurs in the test labels
    p = np.where(rng.random(300) < 0.7, y, rng.integers(0, 4, size=300))
    ours = stats.weighted_metric("macro_f1", y, p, np.ones((1, len(y))), n_classes=4)[0]
    assert ours == pytest.approx(f1_score(y, p, labels=[0, 1, 2], average="macro", zero_division=0))
    weighted = stats.weighted_metric("weighted_f1", y, p, np.ones((1, len(y))), n_classes=4)[0]
    assert weighted == pytest.approx(f1_score(y, p, average="weighted", zero_division=0))
    with pytest.raises(ValueError, match="unknown metric 'auc'"):
        stats.weighted_metric("auc", y, p, np.ones((1, len(y))))


def test_identical_predictions_are_equivalent_and_not_different():
    rng = np.random.default_rng(2)
    y = rng.integers(0, 3, size=200)
    seeds = [np.where(rng.random(200) < 0.8, y, (y + 1) % 3) for _ in range(3)]
    t = stats.paired_test(y, seeds, seeds, n_resamples=RESAMPLES)
    assert t.delta == 0 and t.p_value == 1.0 and t.seed_level
    assert stats.outcome(t, t.p_value, t.p_equivalence) == "equivalent"


def test_with_no_true_difference_a_ten_configuration_family_errs_in_at_most_alpha_of_studies():
    rng = np.random.default_rng(3)
    studies, wrong = 500, 0
    for k in range(studies):
        labels, preds = study(rng, [0.8] * 10, seeds=3, n_test=200)
        tests = [stats.paired_test(labels, preds[i], preds[0], n_resamples=RESAMPLES, seed=k) for i in range(1, 10)]
        wrong += any(v in ("better", "worse") for v in _verdicts(tests))
    assert wrong / studies <= stats.ALPHA


def test_a_real_difference_is_found_more_often_with_more_seeds_and_never_called_equivalent():
    rng = np.random.default_rng(4)
    rates = {}
    for seeds in (1, 3, 5):
        outcomes = []
        for k in range(60):
            labels, (a, b) = study(rng, [0.84, 0.80], seeds=seeds, n_test=1000)
            t = stats.paired_test(labels, a, b, n_resamples=RESAMPLES, seed=k)
            outcomes.append(stats.outcome(t, t.p_value, t.p_equivalence))
        assert "equivalent" not in outcomes and "worse" not in outcomes
        rates[seeds] = outcomes.count("better") / len(outcomes)
    assert rates[1] == 0  # one seed: a test-set p-value speaks for that seed, never for the method
    assert rates[1] < rates[3] < rates[5] and rates[5] >= 0.8


def test_a_tiny_difference_is_equivalent_with_enough_data_and_inconclusive_with_too_little():
    rng = np.random.default_rng(5)
    enough, little = [], []
    for k in range(15):
        labels, (a, b) = study(rng, [0.802, 0.800], seeds=5, n_test=20_000, seed_sd=0.002)
        t = stats.paired_test(labels, a, b, n_resamples=RESAMPLES, seed=k)
        enough.append(stats.outcome(t, t.p_value, t.p_equivalence))
        labels, (a, b) = study(rng, [0.802, 0.800], seeds=3, n_test=300)
        t = stats.paired_test(labels, a, b, n_resamples=RESAMPLES, seed=k)
        little.append(stats.outcome(t, t.p_value, t.p_equivalence))
    assert enough.count("equivalent") >= 13
    assert "equivalent" not in little and little.count("inconclusive") >= 13


def test_the_difference_interval_covers_the_true_difference():
    """The true difference of the methods: 4 points of accuracy (the simulated truth, seeds and examples both random)."""
    rng = np.random.default_rng(6)
    hits, trials = 0, 200
    for k in range(trials):
        labels, (a, b) = study(rng, [0.84, 0.80], seeds=3, n_test=500, n_classes=2)
        t = stats.paired_test(labels, a, b, metric="accuracy", n_resamples=RESAMPLES, seed=k)
        hits += t.low <= 0.04 <= t.high
    assert 0.93 <= hits / trials <= 1.0


def test_one_seed_speaks_for_that_seed_only_and_a_baseline_pairs_with_every_seed():
    rng = np.random.default_rng(7)
    labels, (a, b) = study(rng, [0.9, 0.6], seeds=3, n_test=500)
    one = stats.paired_test(labels, a[:1], b[:1], n_resamples=RESAMPLES)
    assert one.p_value < 1e-6 and not one.seed_level and "this seed only" in one.basis
    assert stats.outcome(one, one.p_value, one.p_equivalence) == "inconclusive"
    assert stats.settle(one).startswith("at least 2 seeds")
    # a baseline (seed-free) against three seeds of a fine-tuning: seed-level evidence
    floor = stats.paired_test(labels, a, b[:1], n_resamples=RESAMPLES, seed_free_b=True)
    assert floor.seed_level and floor.seeds == 3 and stats.outcome(floor, floor.p_value, floor.p_equivalence) == "better"
    assert "3 seeds × 500 test examples" in floor.basis and "macro-F1" in floor.basis
    # the same single run on the other side, not declared seed-free: its seed noise is unmeasured
    assert not stats.paired_test(labels, a, b[:1], n_resamples=RESAMPLES).seed_level
    with pytest.raises(ValueError, match="same number of seeds"):
        stats.paired_test(labels, a, b[:2])


def test_holm_adjusts_as_by_hand_and_as_statsmodels_does():
    from statsmodels.stats.multitest import multipletests

    assert stats.holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert stats.holm([]) == []
    p = np.random.default_rng(9).random(12) ** 3
    assert stats.holm(p) == pytest.approx(list(multipletests(p, method="holm")[1]))


def test_settle_says_how_many_seeds_or_test_examples_a_comparison_needs():
    # seed noise dominates: per-seed variance 3e-4 over 3 seeds, a 1-point difference
    seedy = stats._from_variances("macro_f1", 0.01, 1e-4, 1e-6, 3, 1000, 0.01, 0.95, True, 200)
    assert stats.outcome(seedy, seedy.p_value, seedy.p_equivalence) == "inconclusive"
    # (0.01 / (z(0.975) + z(0.8)))^2 = 1.274e-5; minus the test part 1e-6; 3e-4 / 1.174e-5 = 25.6
    assert stats.settle(seedy) == "about 26 seeds for a difference of 1.0 points (80 % power, α = 0.05)"
    # test-example noise dominates: more seeds cannot help, more test examples can (1e-4 / 1.264e-5 = 7.9x)
    testy = stats._from_variances("macro_f1", 0.01, 1e-7, 1e-4, 3, 1000, 0.01, 0.95, True, 200)
    assert stats.settle(testy) == "about 7,911 test examples for a difference of 1.0 points (80 % power, α = 0.05)"
    # a small difference: what would show equivalence
    close = stats._from_variances("macro_f1", 0.001, 1e-5, 1e-5, 3, 1000, 0.01, 0.95, True, 200)
    assert "equivalence within ±1 point" in stats.settle(close)
