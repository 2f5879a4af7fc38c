"""Batching: tokenize a split once (``encode_split``), plan batches with little padding
(``batches``), pad per batch (``collate``).  Used by the engine and by the frozen-prefix cache."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from tunebench.data.labelsets import multi_hot


@dataclass
class EncodedSplit:
    """Token ids of one split, unpadded; built once per study and shared by every run."""

    input_ids: list[list[int]]
    token_type_ids: list[list[int]] | None
    labels: np.ndarray  # class ids (int64), a multi-label split's 0/1 rows (float32, a column per label), or targets

    def __len__(self) -> int:
        return len(self.input_ids)

    @property
    def lengths(self) -> np.ndarray:
        return np.fromiter((len(ids) for ids in self.input_ids), dtype=np.int64, count=len(self))


def encode_split(tokenizer, texts: list[str], pairs: list[str] | None, labels: list[Any],
                 max_length: int, n_labels: int | None = None) -> EncodedSplit:
    """Tokenize a split once, truncating to ``max_length`` and without padding.  ``labels`` of tuples (a
    multi-label split's label sets) become 0/1 rows of ``n_labels`` columns, the BCE loss's targets."""
    enc = tokenizer(texts, pairs, truncation=True, max_length=max_length, padding=False)
    token_type_ids = enc.get("token_type_ids")
    if labels and isinstance(labels[0], tuple):
        if n_labels is None:
            raise ValueError("multi-label rows need n_labels")
        targets = multi_hot(labels, n_labels).astype(np.float32)
    elif labels and isinstance(labels[0], float):  # a regression's targets
        targets = np.asarray(labels, dtype=np.float32)
    else:
        targets = np.asarray(labels, dtype=np.int64)
    return EncodedSplit(input_ids=enc["input_ids"], token_type_ids=token_type_ids, labels=targets)


def batches(split: EncodedSplit, batch_size: int, *, shuffle: bool, seed: int | list[int] = 0,
            bucket: int = 50) -> list[np.ndarray]:
    """Index batches with little padding.

    Shuffled (training): a seeded permutation, cut into chunks of ``bucket`` batches; each chunk
    is sorted by length and cut into batches; the batch order is shuffled again.  Not shuffled
    (evaluation): sorted by length overall.  Every example appears exactly once.
    """
    lengths = split.lengths
    if shuffle and bucket <= 0:  # bucketing off: a plain seeded shuffle (more padding)
        order = np.random.default_rng(seed).permutation(len(split))
        return [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
    if not shuffle:
        order = np.argsort(lengths, kind="stable")
        return [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(split))
    out: list[np.ndarray] = []
    chunk = batch_size * max(bucket, 1)
    for start in range(0, len(order), chunk):
        part = order[start:start + chunk]
        part = part[np.argsort(lengths[part], kind="stable")]
        out.extend(part[i:i + batch_size] for i in range(0, len(part), batch_size))
    rng.shuffle(out)
    return out


def collate(split: EncodedSplit, index: np.ndarray, pad_id: int, device: torch.device) -> dict[str, Any]:
    """Pad one batch to its longest member (dynamic padding)."""
    rows = [split.input_ids[i] for i in index]
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for j, row in enumerate(rows):
        ids[j, :len(row)] = torch.tensor(row, dtype=torch.long)
        mask[j, :len(row)] = 1
    batch = {"input_ids": ids, "attention_mask": mask}
    if split.token_type_ids is not None:
        types = torch.zeros((len(rows), width), dtype=torch.long)
        for j, i in enumerate(index):
            row = split.token_type_ids[i]
            types[j, :len(row)] = torch.tensor(row, dtype=torch.long)
        batch["token_type_ids"] = types
    batch = {k: v.to(device, non_blocking=True) for k, v in batch.items()}
    batch["labels"] = torch.as_tensor(split.labels[index], device=device)
    return batch
