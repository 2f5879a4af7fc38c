"""Save a run's best model so plain transformers / peft can load it, and load it back.

Full, partial and head runs save a whole model with ``save_pretrained`` (safetensors).  LoRA runs
save the peft adapter, which includes the trained classifier and pooler (``modules_to_save``):
load with ``PeftModel.from_pretrained(base_model, folder)``.  Each folder also holds the tokenizer
and ``tunebench.json`` (labels, max length, strategy, base model) for ``tunebench evaluate`` and
``tunebench predict``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from torch import nn

from tunebench.errors import ModelError

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


def read_meta(folder: Path) -> dict[str, Any]:
    folder = Path(folder)
    path = folder / META
    if not path.is_file():
        candidates = sorted(p.parent for p in folder.glob(f"**/{META}"))
        hint = f"; checkpoints found under it: {', '.join(str(c) for c in candidates[:4])}" if candidates else ""
        raise ModelError(f"'{folder}' is not a tunebench checkpoint folder (no {META}){hint}")
    return json.loads(path.read_text(encoding="utf-8"))


def load_checkpoint(folder: Path) -> tuple[nn.Module, Any, dict[str, Any]]:
    """Load a saved run: (model in eval mode, tokenizer, meta)."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    folder = Path(folder)
    meta = read_meta(folder)
    labels = meta["label_names"]
    trust, pickle_ok = bool(meta.get("trust_remote_code")), bool(meta.get("allow_pickle"))
    tokenizer = AutoTokenizer.from_pretrained(folder, trust_remote_code=trust)
    if (folder / "adapter_config.json").is_file():
        from peft import PeftModel

        from tunebench.modeling import load_classifier

        base = load_classifier(meta["base_model"], labels, trust_remote_code=trust, allow_pickle=pickle_ok)
        model = PeftModel.from_pretrained(base, folder)
    else:
        try:
            model = AutoModelForSequenceClassification.from_pretrained(
                folder, trust_remote_code=trust, use_safetensors=None if pickle_ok else True)
        except OSError as exc:
            raise ModelError(f"could not load the model saved in '{folder}': {exc}") from None
    model.eval()
    return model, tokenizer, meta
