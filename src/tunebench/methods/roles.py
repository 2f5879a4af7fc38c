"""Target roles → module names per architecture: one table for every method that adapts linear layers.

A role names a part of a transformer block (``query``, ``key``, ``value``, ``attention.output``, ``ffn.in``,
``ffn.out``; ``dense`` = attention output + both feed-forward linears; ``norm`` = the block's LayerNorms).
Each maps, per ``model_type``, to the module path inside one block of the layer stack, and is resolved to
full module names (``bert.encoder.layer.3.attention.self.query``), so that peft matches exactly the modules
meant (``output.dense`` would otherwise also match ``attention.output.dense``) and a ``layers`` choice is
exact.  peft has no defaults for DistilBERT or MPNet; this table is theirs.  An unknown role is taken as a
literal module-name suffix inside the blocks, as before.
"""

from __future__ import annotations

from torch import nn

from tunebench.errors import SpecError
from tunebench.training.modeling import find_layer_stack

_BERT = {"query": ["attention.self.query"], "key": ["attention.self.key"], "value": ["attention.self.value"],
         "attention.output": ["attention.output.dense"], "ffn.in": ["intermediate.dense"],
         "ffn.out": ["output.dense"], "norm": ["attention.output.LayerNorm", "output.LayerNorm"]}

#: role -> module paths inside one block, per ``config.model_type``
ROLE_MODULES: dict[str, dict[str, list[str]]] = {
    "bert": _BERT, "roberta": _BERT, "xlm-roberta": _BERT, "electra": _BERT,
    "distilbert": {"query": ["attention.q_lin"], "key": ["attention.k_lin"], "value": ["attention.v_lin"],
                   "attention.output": ["attention.out_lin"], "ffn.in": ["ffn.lin1"], "ffn.out": ["ffn.lin2"],
                   "norm": ["sa_layer_norm", "output_layer_norm"]},
    "mpnet": {"query": ["attention.attn.q"], "key": ["attention.attn.k"], "value": ["attention.attn.v"],
              "attention.output": ["attention.attn.o"], "ffn.in": ["intermediate.dense"], "ffn.out": ["output.dense"],
              "norm": ["attention.LayerNorm", "output.LayerNorm"]},
    "deberta-v2": {**_BERT, "query": ["attention.self.query_proj"], "key": ["attention.self.key_proj"],
                   "value": ["attention.self.value_proj"]},
    "deberta": {**_BERT, "query": ["attention.self.in_proj"], "key": ["attention.self.in_proj"],
                "value": ["attention.self.in_proj"]},
}
for _table in ROLE_MODULES.values():
    _table.setdefault("dense", [*_table["attention.output"], *_table["ffn.in"], *_table["ffn.out"]])
FFN_ROLES = ("ffn.in", "ffn.out")
ROLES = ("query", "key", "value", "attention.output", "ffn.in", "ffn.out", "dense", "norm")

#: the old name: role -> last module-name parts, per architecture (kept for callers of ``LORA_TARGET_NAMES``)
LORA_TARGET_NAMES: dict[str, dict[str, list[str]]] = {
    arch: {role: sorted({p.rsplit(".", 1)[-1] for p in paths}) for role, paths in table.items()}
    for arch, table in ROLE_MODULES.items()}


def model_type(model: nn.Module) -> str:
    return str(getattr(getattr(model, "config", None), "model_type", ""))


def resolve_layers(model: nn.Module, layers: list[int] | None, label: str) -> list[int]:
    """The layer indices ``layers`` names (negative from the top), all of them when None; one sentence if out of range."""
    _, stack = find_layer_stack(model)
    if layers is None:
        return list(range(len(stack)))
    resolved = [i if i >= 0 else len(stack) + i for i in layers]
    bad = [i for i in resolved if not 0 <= i < len(stack)]
    if bad:
        raise SpecError(f"strategy '{label}' names layer(s) {bad} but the model has layers 0..{len(stack) - 1}")
    return sorted(set(resolved))


def target_modules(model: nn.Module, roles: list[str], layers: list[int] | None, label: str, what: str = "LoRA",
                   *, kinds: tuple[type[nn.Module], ...] = (nn.Linear,)) -> list[str]:
    """Full names of the modules ``roles`` name in the chosen layers; one :class:`SpecError` sentence naming the
    role(s) this architecture lacks, or the module type a role names that the method cannot adapt."""
    stack_name, _ = find_layer_stack(model)
    table = ROLE_MODULES.get(model_type(model), {})
    modules = dict(model.named_modules())
    chosen = resolve_layers(model, layers, label)
    names: list[str] = []
    missing: list[str] = []
    for role in roles:
        found = []
        for i in chosen:
            block = f"{stack_name}.{i}."
            paths = table.get(role)
            if paths is not None:
                found += [block + p for p in paths if block + p in modules]
            else:  # a literal module-name suffix inside the block
                found += [n for n in modules if n.startswith(block) and (n[len(block):] == role
                                                                        or n.endswith("." + role))]
        if not found:
            missing.append(role)
        names += [n for n in found if n not in names]
    if missing:
        known = ", ".join(r for r in ROLES if r in table) if table else "module names of the blocks"
        raise SpecError(f"{what} target(s) {', '.join(missing)} not found in {type(model).__name__} "
                        f"(strategy '{label}'); use roles from: {known}")
    wrong = [n for n in names if not isinstance(modules[n], kinds)]
    if wrong:
        raise SpecError(f"strategy '{label}' targets {wrong[0]}, a {type(modules[wrong[0]]).__name__}; this method "
                        f"adapts {' or '.join(k.__name__ for k in kinds)} modules only")
    return names


def norm_modules(model: nn.Module, layers: list[int] | None, label: str) -> list[str]:
    """Full names of the LayerNorms inside the chosen blocks of the layer stack."""
    stack_name, _ = find_layer_stack(model)
    prefixes = tuple(f"{stack_name}.{i}." for i in resolve_layers(model, layers, label))
    names = [n for n, m in model.named_modules() if n.startswith(prefixes) and isinstance(m, nn.LayerNorm)]
    if not names:
        raise SpecError(f"strategy '{label}': {type(model).__name__} has no LayerNorm inside its layer stack")
    return names
