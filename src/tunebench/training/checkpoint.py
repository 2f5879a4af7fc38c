"""Save a run's best model so plain transformers / peft can load it, and load it back.

Full, partial and head runs save a whole model with ``save_pretrained`` (safetensors).  LoRA runs
save the peft adapter, which includes the trained classifier and pooler (``modules_to_save``):
load with ``PeftModel.from_pretrained(base_model, folder)``.  Each folder also holds the tokenizer
and ``tunebench.json`` (labels, max length, strategy, base model) for ``tunebench evaluate`` and
``tunebench predict``.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from functools import lru_cache
from pathlib import Path
from typing import Any

from torch import nn

from tunebench.errors import ModelError, first_line

META = "tunebench.json"


def weights_bytes(folder: Path) -> int:
    """Bytes of the weight files in a saved folder (what must be kept to reuse the run)."""
    return sum(p.stat().st_size for p in Path(folder).glob("*.safetensors"))


def essential_bytes(model: nn.Module) -> int:
    """Bytes of a safetensors file holding only the trained parameters.

    That is what a user must keep to reproduce the run on top of the base model: everything for
    ``full``, the top layers and head for ``partial``, the head for ``head``, the adapter (LoRA
    matrices plus the head copies) for LoRA.  One rule for every strategy, so the figures compare.
    """
    from safetensors.torch import save

    state = {name: p.detach().cpu().contiguous() for name, p in model.named_parameters() if p.requires_grad}
    return len(save(state))


def save_checkpoint(model: nn.Module, tokenizer, folder: Path, meta: dict[str, Any]) -> int:
    """Save ``model`` (a transformers or peft model) + tokenizer + meta; return the weight bytes."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    (folder / META).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    return weights_bytes(folder)


def base_model_identity(source: str) -> dict[str, str]:
    """How an adapter's run folder names its base model unambiguously: a local folder by its absolute path
    and the sha256 of its config and weights (a relative ``tiny`` meant another folder in every working
    directory); a hub id as it is."""
    local = Path(source).expanduser()
    if not local.is_dir():
        return {"base_model": source}
    local = local.resolve()
    return {"base_model": str(local), "base_model_sha256": folder_digest(str(local), *_stamp(local))}


def _stamp(folder: Path) -> tuple[tuple[str, int, int], ...]:
    """(name, size, mtime) of the files that define a model: the digest's cache key."""
    files = sorted([*folder.glob("*.safetensors"), *folder.glob("*.bin"), folder / "config.json"])
    return tuple((p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in files if p.is_file())


@lru_cache(maxsize=8)
def folder_digest(folder: str, *stamp: tuple[str, int, int]) -> str:
    digest = hashlib.sha256()
    for name, _, _ in stamp:
        digest.update(name.encode() + b"\0")
        with open(Path(folder) / name, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                digest.update(chunk)
    return digest.hexdigest()


def check_base_model(meta: dict[str, Any], source: str, path: Path) -> None:
    """One sentence when the base model found is not the one the adapter was trained on."""
    expected = meta.get("base_model_sha256")
    if expected is None:
        return  # a run folder saved before the digest was recorded
    found = base_model_identity(source).get("base_model_sha256")
    if found != expected:
        raise ModelError(f"the base model '{meta['base_model']}' that the adapter in '{path.parent}' was trained on "
                         f"has changed (sha256 {str(found)[:12]}, recorded {str(expected)[:12]}); restore that model "
                         "folder or train the run again: an adapter on another base model predicts something else")


def read_meta(folder: Path) -> dict[str, Any]:
    folder = Path(folder)
    path = folder / META
    if not path.is_file():
        candidates = sorted(p.parent for p in folder.glob(f"**/{META}"))
        hint = f"; checkpoints found under it: {', '.join(str(c) for c in candidates[:4])}" if candidates else ""
        raise ModelError(f"'{folder}' is not a tunebench checkpoint folder (no {META}){hint}")
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise ModelError(f"'{path}' is not readable JSON ({type(exc).__name__}); the checkpoint folder is damaged") from None
    names = meta.get("label_names") if isinstance(meta, dict) else None
    length = meta.get("max_length") if isinstance(meta, dict) else None
    if not (isinstance(names, list) and names and all(isinstance(n, str) for n in names)
            and len(set(names)) == len(names) and isinstance(length, int) and not isinstance(length, bool)
            and 0 < length <= 1_000_000):
        raise ModelError(f"'{path}' lacks label_names (a list of distinct strings) or max_length (a positive "
                         "integer); the checkpoint folder is damaged")
    return meta


def load_checkpoint(folder: Path, *, trust_remote_code: bool = False, allow_pickle: bool = False
                    ) -> tuple[nn.Module, Any, dict[str, Any]]:
    """Load a saved run: (model in eval mode, tokenizer, meta).

    A run folder is data that may come from anyone, so what it says about itself never widens what
    is trusted: its ``tunebench.json`` may record that the run was trained with
    ``trust_remote_code`` or ``allow_pickle``, but only the caller's own arguments (the user's
    ``--trust-remote-code`` / ``--allow-pickle`` on this command) allow either.  The folder, and
    the base model an adapter names, get the same checks as ``run --model``.
    """
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from tunebench.training.modeling import check_folder_is_safe, check_model_source, load_classifier

    folder = Path(folder)
    meta = read_meta(folder)
    labels = meta["label_names"]
    check_folder_is_safe(folder, trust_remote_code=trust_remote_code, allow_pickle=allow_pickle)
    try:
        tokenizer = AutoTokenizer.from_pretrained(folder, trust_remote_code=trust_remote_code)
    except (OSError, ValueError) as exc:
        raise ModelError(f"could not load the tokenizer saved in '{folder}': {first_line(exc)}") from None
    if (folder / "adapter_config.json").is_file():
        from peft import PeftModel

        base_name = meta.get("base_model")
        if not isinstance(base_name, str):
            raise ModelError(f"'{folder / META}' names no base_model for its adapter; the checkpoint folder is damaged")
        base_source = check_model_source(base_name, trust_remote_code=trust_remote_code, allow_pickle=allow_pickle)
        check_base_model(meta, base_source, folder / META)
        base = load_classifier(base_source, labels, trust_remote_code=trust_remote_code, allow_pickle=allow_pickle,
                               task=meta.get("task", "single_label"))
        try:
            with warnings.catch_warnings():  # peft calls a name transformers 5 deprecated: not the user's to act on
                warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing", category=FutureWarning)
                model = PeftModel.from_pretrained(base, folder)
        except Exception as exc:  # a damaged file surfaces as any library's error (SafetensorError, ...)
            raise ModelError(f"could not load the adapter saved in '{folder}' ({type(exc).__name__}: "
                             f"{first_line(exc, 160)}); the checkpoint folder is damaged or incomplete") from None
    else:
        try:
            model = AutoModelForSequenceClassification.from_pretrained(
                folder, trust_remote_code=trust_remote_code, use_safetensors=None if allow_pickle else True)
        except Exception as exc:  # a truncated *.safetensors raises SafetensorError, not OSError
            raise ModelError(f"could not load the model saved in '{folder}' ({type(exc).__name__}: "
                             f"{first_line(exc, 160)}); the checkpoint folder is damaged or incomplete") from None
    classes = getattr(getattr(model, "config", None), "num_labels", len(labels))
    if classes != len(labels):
        raise ModelError(f"'{folder / META}' names {len(labels)} labels but the model saved beside it has {classes} "
                         "outputs; the checkpoint folder is damaged")
    model.eval()
    return model, tokenizer, meta

