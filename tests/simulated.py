"""Simulated studies with a known truth, for the statistics tests (no training).

Each configuration has a true accuracy; each seed moves it by normal noise (``seed_sd``); each test
example has a difficulty shared by every configuration and seed (``shared``: the correlation that makes
paired tests paired).  A wrong prediction is a random other class.  Macro-F1 then follows from the
predictions, as in a real study.
"""

from __future__ import annotations

import numpy as np
from scipy import stats as sps


def study(rng: np.random.Generator, accuracies: list[float], seeds: int, n_test: int, n_classes: int = 3,
          seed_sd: float = 0.01, shared: float = 0.6) -> tuple[np.ndarray, list[list[np.ndarray]]]:
    """Test labels and, per configuration, one prediction vector per seed."""
    labels = rng.integers(0, n_classes, size=n_test)
    difficulty = rng.standard_normal(n_test)
    out = []
    for acc in accuracies:
        preds = []
        for _ in range(seeds):
            p = float(np.clip(acc + seed_sd * rng.standard_normal(), 0.01, 0.99))
            latent = shared * difficulty + np.sqrt(1 - shared ** 2) * rng.standard_normal(n_test)
            right = latent < sps.norm.ppf(p)
            wrong = (labels + rng.integers(1, n_classes, size=n_test)) % n_classes
            preds.append(np.where(right, labels, wrong))
        out.append(preds)
    return labels, out
