"""Hugging Face hub datasets (and local ``save_to_disk`` folders), with a clear error offline."""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlparse

from tunebench.data.bundle import DatasetBundle
from tunebench.data.catalog import HUB_PREFIX, hub_entry, offline_twin
from tunebench.data.splits import _assemble, _clean, _label_value, _pick, _resolve_columns
from tunebench.errors import DataError, first_line
from tunebench.spec.parts import DataSpec


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
    offline = local_dir or _offline_requested() or not hub_reachable()
    try:
        with _hub_offline(offline):
            loaded = datasets.load_dataset(source, spec.config)
    except Exception as exc:
        if local_dir:
            raise DataError(f"could not load the data folder '{source}': {first_line(exc)}") from None
        names = {cls.__name__ for cls in type(exc).__mro__}
        if isinstance(exc, (ConnectionError, FileNotFoundError, TimeoutError)) or names & {
                "DatasetNotFoundError", "RepositoryNotFoundError", "LocalEntryNotFoundError",
                "OfflineModeIsEnabled", "HfHubHTTPError", "GatedRepoError"}:
            raise DataError(unreachable) from None
        raise DataError(f"could not load dataset '{source}' from the Hugging Face hub: "
                        f"{first_line(exc)}") from None
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
    inner = getattr(feature, "feature", None)  # Sequence(ClassLabel) / List(ClassLabel): a multi-label column
    set_names = list(inner.names) if isinstance(inner, datasets.ClassLabel) else None
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
        elif set_names is not None:  # each row's ids -> names (a multi-label row)
            rows.labels = [None if v is None else [set_names[int(i)] for i in v] for v in rows.labels]
        cleaned = _clean(rows, split, where, label, notes, allow_unlabelled=split != "train")
        if cleaned is not None:
            parts[split] = cleaned
            notes.append(f"{split}: the source's own '{key}' split ({len(cleaned):,} rows)")
    origin = (f"local folder {Path(source).resolve()}" if local_dir
              else f"Hugging Face hub dataset {source}" + (f" (config {spec.config})" if spec.config else ""))
    return _assemble(name, origin, parts, class_names or (set_names if spec.task == "multi_label" else None), spec,
                     seed, notes)


def _offline_requested() -> bool:
    flags = ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE")
    if any(os.environ.get(f, "").strip().upper() in {"1", "ON", "YES", "TRUE"} for f in flags):
        return True
    import datasets.config

    return bool(datasets.config.HF_HUB_OFFLINE)


def hub_reachable(timeout: float = 3.0) -> bool:
    """Quick TCP probe of the hub endpoint, so an offline machine fails fast instead of retrying.

    The one probe for models and datasets alike; False when offline mode is requested.
    """
    if _offline_requested():
        return False
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


