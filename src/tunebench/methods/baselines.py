"""Baselines: the floor every fine-tuning must clear, and the cheapest answer when it does not.

``majority`` always says the training split's most frequent class; ``tfidf-logreg`` is TF-IDF
word uni- and bigrams and a logistic regression, both scikit-learn (seconds on a CPU).  They train
no network, so they do not go through the engine: :meth:`BaselineMethod.fit_predict` gives class
probabilities for the validation and test splits, and the study records them like any run (with
no curves, no learning rate and no epochs) as reference rows.  A pair task (premise, hypothesis) gets
one TF-IDF vocabulary per side, side by side: a bag of words cannot compare the two texts, which is
exactly what a floor should show.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from tunebench.data.bundle import Split
from tunebench.methods.base import FittedMethod
from tunebench.methods.registry import register


class BaselineMethod(FittedMethod):
    """A reference method that trains no neural network (the options have ``baseline = True``): fitted by
    :meth:`~tunebench.methods.base.FittedMethod.fit_predict`, recorded as a reference row, never ranked."""

    engine_note: ClassVar[str] = "a baseline: scikit-learn, no network; tokens are whitespace words"

    @classmethod
    def architectures(cls) -> str:
        return "none (no network)"


@register
class MajorityMethod(BaselineMethod):
    """The training split's most frequent class, every time (ties: the lowest label id)."""

    kind = "majority"

    def fit(self, train: Split, n_labels: int) -> int:
        return int(np.bincount(np.asarray(train.labels, dtype=int), minlength=n_labels).argmax())

    def probabilities(self, fitted: int, split: Split, n_labels: int) -> np.ndarray:
        probs = np.zeros((len(split), n_labels), dtype=np.float32)
        probs[:, fitted] = 1.0
        return probs

    def parameter_count(self, fitted: Any) -> int:
        return 1


@register
class TfidfLogregMethod(BaselineMethod):
    """TF-IDF (word 1-2 grams, sublinear tf) and a multinomial logistic regression (lbfgs, deterministic),
    classes weighted inversely to their frequency by default (``class_weight``): the floor of a
    macro-F1 comparison should be fitted for macro-F1."""

    kind = "tfidf-logreg"

    def _vectorizer(self) -> Any:
        from sklearn.feature_extraction.text import TfidfVectorizer

        return TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=1,
                               max_features=int(self.spec.max_features))

    def fit(self, train: Split, n_labels: int) -> Any:
        from scipy.sparse import hstack
        from sklearn.linear_model import LogisticRegression

        sides = [self._vectorizer().fit(train.texts)]
        if train.pairs is not None:
            sides.append(self._vectorizer().fit(train.pairs))
        features = hstack([v.transform(t) for v, t in zip(sides, _texts(train), strict=True)]).tocsr()
        labels = np.asarray(train.labels, dtype=int)
        if len(np.unique(labels)) < 2:  # logistic regression needs two classes: the one there is, always
            return sides, int(labels[0]) if len(labels) else 0
        weights = None if self.spec.class_weight == "none" else self.spec.class_weight
        model = LogisticRegression(C=float(self.spec.C), class_weight=weights, max_iter=1000)
        model.fit(features, labels)
        return sides, model

    def probabilities(self, fitted: Any, split: Split, n_labels: int) -> np.ndarray:
        from scipy.sparse import hstack

        sides, model = fitted
        probs = np.zeros((len(split), n_labels), dtype=np.float32)
        if isinstance(model, int):
            probs[:, model] = 1.0
            return probs
        if len(split):
            features = hstack([v.transform(t) for v, t in zip(sides, _texts(split), strict=True)]).tocsr()
            probs[:, model.classes_] = model.predict_proba(features)  # classes unseen in training stay at 0
        return probs

    def parameter_count(self, fitted: Any) -> int:
        _, model = fitted
        return 1 if isinstance(model, int) else int(model.coef_.size + model.intercept_.size)


def _texts(split: Split) -> list[list[str]]:
    return [split.texts] + ([split.pairs] if split.pairs is not None else [])
