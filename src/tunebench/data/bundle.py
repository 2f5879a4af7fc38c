"""Splits of labelled text: :class:`Split`, :class:`DatasetBundle`, the constants every reader shares, the cache home."""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import platformdirs

SPLITS = ("train", "validation", "test")
FILE_FORMATS = {".csv": "CSV", ".tsv": "TSV", ".jsonl": "JSON Lines", ".json": "JSON", ".parquet": "Parquet"}
_COMPRESSIONS = (".gz", ".bz2", ".xz", ".zip", ".zst")
_TEXT_DEFAULTS = ("text", "sentence", "sentence1", "premise")
_PAIR_DEFAULTS = {"sentence1": "sentence2", "premise": "hypothesis"}
_LABEL_NA = {"", "nan", "NaN", "NA", "N/A", "n/a", "null", "NULL", "None", "none"}
_INT_LIKE = re.compile(r"[+-]?\d+(\.0*)?")
_FLOAT_LIKE = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")
_CACHE_FORMAT = 1


@dataclass(frozen=True)
class Split:
    """One split: parallel lists of texts, optional second texts, and labels: a class index per row, or (a
    multi-label split) a sorted tuple of label indices per row."""

    texts: list[str]
    pairs: list[str] | None
    labels: list[Any]

    def __post_init__(self) -> None:
        n = len(self.texts)
        if len(self.labels) != n or (self.pairs is not None and len(self.pairs) != n):
            raise ValueError("texts, pairs and labels must have the same length")

    def __len__(self) -> int:
        return len(self.texts)

    def content_hash(self) -> str:
        """First 16 hex digits of the sha256 of the rows (text, pair, label index) in order."""
        blob = json.dumps([self.texts, self.pairs, self.labels], separators=(",", ":"))
        return hashlib.sha256(blob.encode("ascii")).hexdigest()[:16]

    def select(self, indices: Sequence[int]) -> Split:
        """A new split holding the rows at ``indices``, in that order."""
        idx = [int(i) for i in indices]
        return Split(texts=[self.texts[i] for i in idx],
                     pairs=None if self.pairs is None else [self.pairs[i] for i in idx],
                     labels=[self.labels[i] for i in idx])


@dataclass(frozen=True)
class DatasetBundle:
    """A dataset ready for a study: label names, three splits, and how they were made."""

    name: str
    label_names: list[str]
    train: Split
    validation: Split
    test: Split
    notes: list[str]
    origin: str
    #: single_label (a class index per row) or multi_label (a tuple of label indices per row)
    task: str = "single_label"

    @property
    def num_labels(self) -> int:
        return len(self.label_names)

    @property
    def is_pair(self) -> bool:
        return self.train.pairs is not None

    def hashes(self) -> dict[str, str]:
        return {name: getattr(self, name).content_hash() for name in SPLITS}

    def sizes(self) -> dict[str, int]:
        return {name: len(getattr(self, name)) for name in SPLITS}


def tunebench_home() -> Path:
    """Folder for tunebench's caches: ``$TUNEBENCH_HOME``, else the user cache dir."""
    env = os.environ.get("TUNEBENCH_HOME")
    return Path(env).expanduser() if env else Path(platformdirs.user_cache_dir("tunebench"))


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
