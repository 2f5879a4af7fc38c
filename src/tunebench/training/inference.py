"""Use a saved run: re-evaluate it on a dataset split, or classify new text."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from tunebench.errors import DataError
from tunebench.results.decisions import decide
from tunebench.spec.parts import DataSpec
from tunebench.training import batching, engine
from tunebench.training.checkpoint import load_checkpoint
from tunebench.training.metrics import evaluate_outputs


def evaluate_checkpoint(run_dir: Path, *, dataset: str | None = None, text_column: str | None = None,
                        text_pair_column: str | None = None, label_column: str | None = None,
                        split: str = "test", batch_size: int = 64, trust_remote_code: bool = False,
                        allow_pickle: bool = False) -> dict[str, Any]:
    """Metrics of a saved run on ``split`` of ``dataset`` (default: the data it was trained on).

    ``trust_remote_code`` / ``allow_pickle``: the caller's own permission; the run folder's
    ``tunebench.json`` cannot grant it (see :func:`tunebench.training.checkpoint.load_checkpoint`).
    """
    from tunebench.data.loading import load_dataset_bundle

    model, tokenizer, meta = load_checkpoint(run_dir, trust_remote_code=trust_remote_code, allow_pickle=allow_pickle)
    data = DataSpec.model_validate(meta["data"])
    if dataset is not None:
        data = DataSpec(source=dataset, text_column=text_column, text_pair_column=text_pair_column,
                        label_column=label_column, task=data.task, label_sep=data.label_sep)
    # the splits' seed (training.seed), not the run's: a seed-1 run of a study tested on training.seed's splits
    bundle = load_dataset_bundle(data, seed=meta.get("split_seed", meta.get("seed", 0)))
    chosen = getattr(bundle, split)
    label_names = meta["label_names"]
    unknown = sorted(set(bundle.label_names) - set(label_names)) if meta.get("task") != "regression" else []
    if unknown:
        raise DataError(f"the data has label(s) the model was not trained on: {', '.join(unknown[:10])}; "
                        f"the model knows: {', '.join(label_names[:20])}")
    scale = meta.get("target_scale")  # a regression's (mean, sd): the checkpoint outputs the standardised target
    if meta.get("task") == "regression":
        encoded = batching.encode_split(tokenizer, chosen.texts, chosen.pairs, [float(v) for v in chosen.labels],
                                        meta["max_length"])
        probs, loss = engine.predict(model, encoded, batch_size, tokenizer.pad_token_id or 0, torch.device("cpu"),
                                     "fp32", target_scale=tuple(scale) if scale else (0.0, 1.0))  # exported: folded
        return {**evaluate_outputs(encoded.labels, probs, label_names), "loss": loss}
    remap = np.array([label_names.index(name) for name in bundle.label_names])
    if meta.get("task") == "multi_label":  # each row's label set in the model's label order
        labels = [tuple(sorted(int(remap[i]) for i in row)) for row in chosen.labels]
    else:
        labels = remap[np.asarray(chosen.labels, dtype=np.int64)].tolist()
    encoded = batching.encode_split(tokenizer, chosen.texts, chosen.pairs, labels, meta["max_length"], len(label_names))
    probs, loss = engine.predict(model, encoded, batch_size, tokenizer.pad_token_id or 0,
                                 torch.device("cpu"), "fp32")
    metrics = evaluate_outputs(encoded.labels, probs, label_names, meta.get("thresholds"))  # the run's own thresholds
    metrics["loss"] = loss
    return metrics


def predict_texts(run_dir: Path, texts: list[str], pair: str | None = None, *, trust_remote_code: bool = False,
                  allow_pickle: bool = False) -> list[tuple[str, dict[str, float]]]:
    """(label, {label: probability}) for each text (permissions as for :func:`evaluate_checkpoint`); a regression:
    (the predicted value as text, {target: value}).  A multi-label
    run's label is its label set, the names joined by ``|`` in the model's order ("" for none), each decided at
    the threshold the run chose for it on validation."""
    model, tokenizer, meta = load_checkpoint(run_dir, trust_remote_code=trust_remote_code, allow_pickle=allow_pickle)
    if meta.get("is_pair") and pair is None:
        raise DataError("this run was trained on sentence pairs; give the second sentence with --pair")
    pairs = [pair] * len(texts) if pair is not None else None
    names = meta["label_names"]
    multi, regression = meta.get("task") == "multi_label", meta.get("task") == "regression"
    dummy = [()] * len(texts) if multi else [0.0] * len(texts) if regression else [0] * len(texts)  # loss not read
    encoded = batching.encode_split(tokenizer, list(texts), pairs, dummy, meta["max_length"], len(names))
    scale = meta.get("target_scale")
    probs, _ = engine.predict(model, encoded, 64, tokenizer.pad_token_id or 0, torch.device("cpu"), "fp32",
                              target_scale=(tuple(scale) if scale else (0.0, 1.0)) if regression else None)
    if regression:  # the predicted value, as text and as the one output
        return [(f"{row[0]:.6g}", {names[0]: float(row[0])}) for row in probs]
    answers = decide(probs, meta.get("thresholds") if multi else None)
    shown = ["|".join(n for n, a in zip(names, row, strict=True) if a) for row in answers] if multi else \
        [names[int(a)] for a in answers]
    return [(label, {n: float(p) for n, p in zip(names, row, strict=True)}) for label, row in zip(shown, probs,
                                                                                                  strict=True)]
