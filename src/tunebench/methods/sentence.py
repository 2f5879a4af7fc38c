"""Fitted candidates on sentence embeddings of the study's encoder: ``embed-logreg`` and ``setfit``.

Both train by their own recipe, not tunebench's engine (:class:`~tunebench.methods.base.FittedMethod`),
yet they are *candidates*, ranked by the same statistics as every fine-tuning method (not reference
rows, not the floor):

- ``embed-logreg``: the encoder frozen, as sentence-transformers loads it (a sentence-transformers folder's
  own modules, e.g. MiniLM's mean pooling and normalisation; any other transformers folder gets the mean over
  tokens by the attention mask), each text embedded once, and a scikit-learn logistic regression (lbfgs, so
  deterministic: every seed gives the same predictions, and pairing by seed still works).  A pair task
  (premise, hypothesis) embeds each side and concatenates ``[u, v, |u - v|]`` (Reimers & Gurevych,
  Sentence-BERT, 2019): the features a linear head needs to compare two texts, which one joined text
  embedded as a whole does not give it.
- ``setfit``: the ``setfit`` package's recipe (Tunstall et al., 2022): contrastive fine-tuning of the whole
  encoder on pairs of training examples (``iterations`` pairs per example, ``epochs``, the body's rate
  ``lr``), then a logistic regression on its embeddings.  A pair task joins the two texts with the tokenizer's
  separator token (a SetFit model classifies one string).  Seeded by the run's seed (setfit's
  ``TrainingArguments.seed``).

Offline by construction: the encoder is the study's local folder, loaded by ``SentenceTransformer(folder,
local_files_only=True)``, and the SetFit model is built around it (``SetFitModel(model_body=...)``, not
``SetFitModel.from_pretrained``, whose model card asks the hub whether the name is a hub model); setfit
reports to nothing and saves no checkpoint (a temporary output folder, removed after).
"""

from __future__ import annotations

import logging
import tempfile
from typing import Any, ClassVar

import numpy as np

from tunebench.data.bundle import Split
from tunebench.data.labelsets import is_label_set, multi_hot
from tunebench.errors import ModelError, first_line
from tunebench.methods.base import FittedMethod, coefficient_count
from tunebench.methods.registry import register
from tunebench.training.modeling import quiet_libraries

#: setfit's own defaults (1.2, src/setfit/training_args.py) for what tunebench does not set
SETFIT_EPOCHS = 1


def sentence_encoder(method: FittedMethod) -> Any:
    """The study's encoder as a ``SentenceTransformer`` on the run's device, truncating at ``max_length``; a folder
    sentence-transformers cannot load is one sentence."""
    from sentence_transformers import SentenceTransformer

    quiet_libraries()  # transformers' weight-loading bars and torch's notes, as for every run
    ctx = method.context
    quiet = logging.getLogger("sentence_transformers")
    level = quiet.level
    quiet.setLevel(logging.ERROR)  # "no sentence-transformers model found, creating one with mean pooling": the design
    try:
        encoder = SentenceTransformer(ctx.model_source, device=ctx.device.type, local_files_only=True,
                                      trust_remote_code=ctx.trust_remote_code)
    except Exception as exc:  # the library raises several kinds for a folder it cannot read
        raise ModelError(f"{method.kind} cannot load the encoder '{ctx.model_source}' with sentence-transformers: "
                         f"{first_line(exc)}") from None
    finally:
        quiet.setLevel(level)
    if ctx.max_length:
        encoder.max_seq_length = ctx.max_length
    return encoder


def parameter_total(encoder: Any) -> tuple[int, int]:
    """(values, bytes) of the encoder's parameters."""
    params = list(encoder.parameters())
    return sum(p.numel() for p in params), sum(p.numel() * p.element_size() for p in params)


def head_size(head: Any) -> int:
    """The logistic regression's coefficients and intercepts; 1 for a constant (one class in training)."""
    return 1 if isinstance(head, int) else coefficient_count(head)


def head_probabilities(head: Any, features: np.ndarray, n: int, n_labels: int) -> np.ndarray:
    probs = np.zeros((n, n_labels), dtype=np.float32)
    if isinstance(head, int):
        probs[:, head] = 1.0
    elif n and hasattr(head, "estimators_"):  # one-vs-rest (multi-label): a probability per label
        return head.predict_proba(features).astype(np.float32)
    elif n:
        probs[:, head.classes_] = head.predict_proba(features)  # classes unseen in training stay at 0
    return probs


def single_class(labels: list[int]) -> int | None:
    """The one class of a training split with fewer than two (a logistic regression needs two), else None."""
    present = np.unique(np.asarray(labels, dtype=int))
    return (int(present[0]) if len(present) else 0) if len(present) < 2 else None


@register
class EmbedLogregMethod(FittedMethod):
    """Frozen sentence embeddings and a logistic regression (see the module docstring)."""

    kind = "embed-logreg"
    cache_note = "n/a (each text is embedded once, frozen)"
    engine_note: ClassVar[str] = ("embed-logreg: frozen sentence embeddings (sentence-transformers) and a "
                                  "scikit-learn logistic regression; tokens are whitespace words")

    @classmethod
    def architectures(cls) -> str:
        return "any encoder sentence-transformers loads"

    def embed(self, encoder: Any, split: Split) -> np.ndarray:
        def one(texts: list[str]) -> np.ndarray:
            return np.asarray(encoder.encode(texts, batch_size=self.context.eval_batch_size, convert_to_numpy=True,
                                             show_progress_bar=False), dtype=np.float32)

        u = one(split.texts)
        if split.pairs is None:
            return u
        v = one(split.pairs)
        return np.concatenate([u, v, np.abs(u - v)], axis=1)

    def fit(self, train: Split, n_labels: int) -> tuple[Any, Any]:
        from sklearn.linear_model import LogisticRegression

        encoder = sentence_encoder(self)
        weights = None if self.spec.class_weight == "none" else self.spec.class_weight
        if len(train.labels) and is_label_set(train.labels[0]):  # multi-label: one regression per label
            from sklearn.multiclass import OneVsRestClassifier

            head = OneVsRestClassifier(LogisticRegression(C=float(self.spec.C), class_weight=weights, max_iter=1000))
            head.fit(self.embed(encoder, train), multi_hot(train.labels, n_labels))
            return encoder, head
        constant = single_class(train.labels)
        if constant is not None:
            return encoder, constant
        head = LogisticRegression(C=float(self.spec.C), class_weight=weights, max_iter=1000)
        head.fit(self.embed(encoder, train), np.asarray(train.labels, dtype=int))
        return encoder, head

    def probabilities(self, fitted: tuple[Any, Any], split: Split, n_labels: int) -> np.ndarray:
        encoder, head = fitted
        features = self.embed(encoder, split) if len(split) and not isinstance(head, int) else None
        return head_probabilities(head, features, len(split), n_labels)

    def parameter_count(self, fitted: tuple[Any, Any]) -> int:
        return head_size(fitted[1])

    def total_parameters(self, fitted: tuple[Any, Any]) -> int:
        return parameter_total(fitted[0])[0] + head_size(fitted[1])

    def stored_bytes(self, fitted: tuple[Any, Any]) -> int:
        import pickle

        return len(pickle.dumps(fitted[1]))  # the encoder is the study's, unchanged: only the head is new

    def deploy_bytes(self, fitted: tuple[Any, Any]) -> int:
        return parameter_total(fitted[0])[1] + self.stored_bytes(fitted)


@register
class SetfitMethod(FittedMethod):
    """SetFit through the ``setfit`` package (see the module docstring)."""

    kind = "setfit"
    cache_note = "no (the whole encoder trains)"
    engine_note: ClassVar[str] = ("setfit: contrastive fine-tuning of the encoder and a scikit-learn logistic "
                                  "regression (the setfit package); tokens are whitespace words")

    @classmethod
    def architectures(cls) -> str:
        return "any encoder sentence-transformers loads"

    @property
    def rate(self) -> float:
        """The body's contrastive rate: the strategy's ``lr``, else setfit's default (``training.lr`` is the
        engine's setting and does not apply)."""
        return float(self.spec.lr or type(self.spec).default_lr)

    @property
    def epochs(self) -> int:
        return int(self.spec.epochs or SETFIT_EPOCHS)

    def resolved(self) -> dict[str, Any]:
        return {"lr": self.rate, "epochs": self.epochs, "scheduler": "linear", "head_lr": None}

    def texts(self, split: Split, encoder: Any) -> list[str]:
        if split.pairs is None:
            return list(split.texts)
        sep = encoder.tokenizer.sep_token or "\n"
        return [f"{a} {sep} {b}" for a, b in zip(split.texts, split.pairs, strict=True)]

    def fit(self, train: Split, n_labels: int) -> tuple[Any, Any]:
        from sklearn.linear_model import LogisticRegression

        encoder = sentence_encoder(self)
        constant = single_class(train.labels)
        if constant is not None:  # no pair of different classes to contrast: the one class there is, always
            return encoder, constant
        from datasets import Dataset, are_progress_bars_disabled, disable_progress_bars, enable_progress_bars
        from setfit import SetFitModel, Trainer, TrainingArguments
        from setfit import logging as setfit_logging
        from transformers import PrinterCallback, ProgressCallback

        setfit_logging.set_verbosity_warning()  # setfit.trainer turns its logger to "info" on import
        ctx = self.context
        weights = None if ctx.class_weights is None else dict(enumerate(ctx.class_weights))
        model = SetFitModel(model_body=encoder, model_head=LogisticRegression(class_weight=weights, max_iter=1000))
        data = Dataset.from_dict({"text": self.texts(train, encoder), "label": [int(y) for y in train.labels]})
        bars = not are_progress_bars_disabled()
        disable_progress_bars()  # datasets' "Map" bars over the generated pairs: tunebench draws its own progress
        try:
            with tempfile.TemporaryDirectory(prefix="tunebench-setfit-") as folder:
                args = TrainingArguments(output_dir=folder, batch_size=ctx.batch_size, num_epochs=self.epochs,
                                         num_iterations=self.spec.iterations, body_learning_rate=self.rate,
                                         seed=ctx.seed, max_length=ctx.max_length, report_to="none",
                                         show_progress_bar=False, save_strategy="no", logging_strategy="no",
                                         logging_first_step=False)
                trainer = Trainer(model=model, args=args, train_dataset=data)
                for callback in (ProgressCallback, PrinterCallback):
                    trainer.st_trainer.remove_callback(callback)
                trainer.train()
        finally:
            if bars:
                enable_progress_bars()
        return model, model.model_head

    def probabilities(self, fitted: tuple[Any, Any], split: Split, n_labels: int) -> np.ndarray:
        model, head = fitted
        if isinstance(head, int) or not len(split):
            return head_probabilities(head, None, len(split), n_labels)
        features = model.encode(self.texts(split, model.model_body), batch_size=self.context.eval_batch_size,
                              show_progress_bar=False)
        return head_probabilities(head, np.asarray(features), len(split), n_labels)

    def _body(self, fitted: tuple[Any, Any]) -> Any:
        model = fitted[0]
        return getattr(model, "model_body", model)

    def parameter_count(self, fitted: tuple[Any, Any]) -> int:
        return parameter_total(self._body(fitted))[0] + head_size(fitted[1])

    def stored_bytes(self, fitted: tuple[Any, Any]) -> int:
        import pickle

        return parameter_total(self._body(fitted))[1] + len(pickle.dumps(fitted[1]))  # body and head both trained
