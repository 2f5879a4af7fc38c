"""Statistics with known answers: McNemar by hand, bootstrap intervals that cover the truth."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.metrics import f1_score

from tunebench.results import stats


def _pairs(only_a: int, only_b: int, both: int = 20, neither: int = 5):
    """Labels and two prediction vectors with the given discordant counts (all class 0 = right)."""
    right_a = [1] * only_a + [0] * only_b + [1] * both + [0] * neither
    right_b = [0] * only_a + [1] * only_b + [1] * both + [0] * neither
    labels = [0] * len(right_a)
    return labels, [0 if r else 1 for r in right_a], [0 if r else 1 for r in right_b]


def test_mcnemar_exact_matches_the_hand_computed_binomial():
    # 1 vs 9 discordant: p = 2 * P(X <= 1 | n=10, 1/2) = 2 * (1 + 10) / 1024
    result = stats.mcnemar(*_pairs(1, 9))
    assert (result.only_a, result.only_b, result.exact) == (1, 9, True)
    assert result.p_value == pytest.approx(22 / 1024)


def test_mcnemar_chi_square_with_continuity_correction_for_many_discordant_pairs():
    # 40 vs 20: (|40 - 20| - 1)^2 / 60 = 6.0167; chi2(1) tail = erfc(sqrt(x / 2))
    result = stats.mcnemar(*_pairs(40, 20))
    assert not result.exact and result.statistic == pytest.approx(361 / 60)
    assert result.p_value == pytest.approx(math.erfc(math.sqrt(361 / 120)))


def test_identical_predictions_give_p_one_and_a_zero_difference():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 3, 300)
    p = np.where(rng.random(300) < 0.7, y, rng.integers(0, 3, 300))
    assert stats.mcnemar(y, p, p).p_value == 1.0
    diff = stats.paired_bootstrap(y, [p], [p])
    assert all(d.delta == 0 and d.low == 0 and d.high == 0 and d.includes_zero for d in diff.values())


def test_paired_bootstrap_interval_contains_the_true_difference():
    rng = np.random.default_rng(0)
    n = 4000
    y = rng.integers(0, 4, n)
    wrong = (y + 1) % 4
    a = np.where(rng.random(n) < 0.85, y, wrong)  # 85% right in expectation
    b = np.where(rng.random(n) < 0.75, y, wrong)  # 75%
    diff = stats.paired_bootstrap(y, [a], [b], seed=3)
    acc = diff["accuracy"]
    assert acc.low < 0.10 < acc.high and not acc.includes_zero
    assert acc.delta == pytest.approx(np.mean(a == y) - np.mean(b == y))
    assert diff["macro_f1"].delta == pytest.approx(f1_score(y, a, average="macro") - f1_score(y, b, average="macro"))
    assert 0.005 < acc.high - acc.low < 0.06


def test_paired_bootstrap_over_seeds_averages_the_seed_differences():
    rng = np.random.default_rng(2)
    y = rng.integers(0, 2, 500)
    a = [np.where(rng.random(500) < q, y, 1 - y) for q in (0.8, 0.82, 0.78)]
    b = [np.where(rng.random(500) < q, y, 1 - y) for q in (0.8, 0.79, 0.81)]
    diff = stats.paired_bootstrap(y, a, b)["accuracy"]
    assert diff.delta == pytest.approx(np.mean([np.mean(x == y) - np.mean(z == y) for x, z in zip(a, b, strict=True)]))
    assert diff.low < diff.delta < diff.high and diff.includes_zero  # the same quality: a tie


def test_vectorised_macro_f1_equals_scikit_learn_with_absent_classes():
    y = np.array([0, 0, 1, 1, 2, 2, 2])
    p = np.array([0, 1, 1, 1, 2, 0, 2])
    ours = stats.macro_f1_weighted(y, p, np.ones((1, len(y))), n_classes=4)[0]
    assert ours == pytest.approx(f1_score(y, p, labels=[0, 1, 2, 3], average="macro", zero_division=0))


def test_summarize_mean_std_and_an_interval_around_the_mean():
    s = stats.summarize([0.80, 0.82, 0.84])
    assert s.mean == pytest.approx(0.82) and s.std == pytest.approx(0.02) and s.n == 3
    assert 0.80 <= s.low <= s.mean <= s.high <= 0.84
    one = stats.summarize([0.5])
    assert one.mean == 0.5 and math.isnan(one.std) and math.isnan(one.low)
    assert stats.summarize([0.7, 0.7]).low == 0.7


def test_recommendation_uses_ties_not_point_estimates():
    import pandas as pd

    from tunebench.report.analysis import tied_pick

    frame = pd.DataFrame({"strategy": ["full", "partial:k=2", "head"], "test_macro_f1": [0.86, 0.85, 0.70],
                          "cost_usd": [0.30, 0.10, 0.01], "train_time_s": [300.0, 100.0, 10.0]})
    pick = tied_pick(frame, ["full", "partial:k=2"])
    assert pick.startswith("Recommended: partial:k=2 — full, partial:k=2 are tied") and "3.0× cheaper" in pick
    assert tied_pick(frame, ["full"]).startswith("Recommended: full — no other configuration is tied")
