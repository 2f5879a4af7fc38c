"""Baselines: the floor every fine-tuning must clear, and the cheapest answer when it does not.

``majority`` always says the training split's most frequent class; ``tfidf-logreg`` is TF-IDF
word uni- and bigrams and a logistic regression, both scikit-learn (seconds on a CPU).  Multi-label data:
the majority per label (each label's training share as its probability, said where above 0.5) and one
balanced logistic regression per label (scikit-learn's ``OneVsRestClassifier``).  A regression's floor: ``mean``
(the training target's mean) and ``tfidf-ridge`` (the same features, a ridge regression).  They train
no network, so they do not go through the engine: :meth:`BaselineMethod.fit_predict` gives class
probabilities for the validation and test splits, and the study records them like any run (with
no curves, no learning rate and no epochs) as reference rows.  A pair task (premise, hypothesis) gets
one TF-IDF vocabulary per side, side by side: a bag of words cannot compare the two texts, which is
exactly what a floor should show.
"""

from __future__ import annotations

import warnings
from typing import Any, ClassVar

import numpy as np

from tunebench.data.bundle import Split
from tunebench.data.labelsets import is_label_set, multi_hot
from tunebench.methods.base import FittedMethod, coefficient_count
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

    def fit(self, train: Split, n_labels: int) -> Any:
        if _is_multi(train):  # each label's share of the training rows: above 0.5, the majority says it
            return multi_hot(train.labels, n_labels).mean(axis=0).astype(np.float32)
        return int(np.bincount(np.asarray(train.labels, dtype=int), minlength=n_labels).argmax())

    def probabilities(self, fitted: Any, split: Split, n_labels: int) -> np.ndarray:
        if isinstance(fitted, np.ndarray):
            return np.tile(fitted, (len(split), 1))
        probs = np.zeros((len(split), n_labels), dtype=np.float32)
        probs[:, fitted] = 1.0
        return probs

    def parameter_count(self, fitted: Any) -> int:
        return int(fitted.size) if isinstance(fitted, np.ndarray) else 1  # multi-label: a share per label


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
        weights = None if self.spec.class_weight == "none" else self.spec.class_weight
        if _is_multi(train):  # one logistic regression per label (one-vs-rest), each balanced on its own counts
            from sklearn.multiclass import OneVsRestClassifier

            model = OneVsRestClassifier(LogisticRegression(C=float(self.spec.C), class_weight=weights, max_iter=1000))
            with warnings.catch_warnings():  # a label no training row holds: predicted absent, as it should be
                warnings.filterwarnings("ignore", message="Label .* is present in all training examples")
                warnings.filterwarnings("ignore", message="Label not .* is present in all training examples")
                model.fit(features, multi_hot(train.labels, n_labels))
            return sides, model
        labels = np.asarray(train.labels, dtype=int)
        if len(np.unique(labels)) < 2:  # logistic regression needs two classes: the one there is, always
            return sides, int(labels[0]) if len(labels) else 0
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
            if hasattr(model, "estimators_"):  # one-vs-rest (multi-label): a probability per label
                return model.predict_proba(features).astype(np.float32)
            probs[:, model.classes_] = model.predict_proba(features)  # classes unseen in training stay at 0
        return probs

    def parameter_count(self, fitted: Any) -> int:
        _, model = fitted
        return 1 if isinstance(model, int) else coefficient_count(model)


@register
class MeanMethod(BaselineMethod):
    """A regression's floor: the training split's mean target, every time (R² about 0 on any split)."""

    kind = "mean"

    def fit(self, train: Split, n_labels: int) -> float:
        return float(np.mean(np.asarray(train.labels, dtype=float)))

    def probabilities(self, fitted: float, split: Split, n_labels: int) -> np.ndarray:
        return np.full((len(split), 1), fitted, dtype=np.float32)

    def parameter_count(self, fitted: Any) -> int:
        return 1


@register
class TfidfRidgeMethod(TfidfLogregMethod):
    """A regression's floor with words: TF-IDF (as ``tfidf-logreg``'s) and a ridge regression (scikit-learn,
    ``alpha = 1 / C``) on the target."""

    kind = "tfidf-ridge"

    def fit(self, train: Split, n_labels: int) -> Any:
        from scipy.sparse import hstack
        from sklearn.linear_model import Ridge

        sides = [self._vectorizer().fit(train.texts)]
        if train.pairs is not None:
            sides.append(self._vectorizer().fit(train.pairs))
        features = hstack([v.transform(t) for v, t in zip(sides, _texts(train), strict=True)]).tocsr()
        return sides, Ridge(alpha=1.0 / float(self.spec.C)).fit(features, np.asarray(train.labels, dtype=float))

    def probabilities(self, fitted: Any, split: Split, n_labels: int) -> np.ndarray:
        from scipy.sparse import hstack

        sides, model = fitted
        if not len(split):
            return np.zeros((0, 1), dtype=np.float32)
        features = hstack([v.transform(t) for v, t in zip(sides, _texts(split), strict=True)]).tocsr()
        return model.predict(features).astype(np.float32)[:, None]


def _is_multi(split: Split) -> bool:
    return bool(len(split.labels)) and is_label_set(split.labels[0])


def _texts(split: Split) -> list[list[str]]:
    return [split.texts] + ([split.pairs] if split.pairs is not None else [])
