"""Local data files: CSV, TSV, JSON Lines, JSON, Parquet (optionally compressed)."""

from __future__ import annotations

import codecs
from pathlib import Path

import pandas as pd

from tunebench.data.bundle import _COMPRESSIONS, FILE_FORMATS, DatasetBundle, _sha256_file
from tunebench.data.splits import _assemble, _clean, _pick, _resolve_columns
from tunebench.errors import DataError, first_line
from tunebench.spec.parts import DataSpec


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
                        f"{first_line(exc)}") from None
