"""The PEFT kinds beyond LoRA, as data: options (name, type, default), default learning rates and their sources.

:mod:`tunebench.spec.kinds` builds one options model per row (:func:`~tunebench.spec.kinds._table_kind`),
registered after the hand-written kinds, so every list of kinds still derives from ``OPTIONS``.  Option
names are shared across kinds where they mean the same: ``r`` (rank or its method's equivalent), ``alpha``,
``dropout``, ``targets`` (module roles), ``layers`` (layer indices), ``tokens`` (virtual tokens),
``block_size``.  A row's label names every option that differs from its default.

A row's ``peft`` recipe (:class:`~tunebench.spec.options.PeftRecipe`) says how its options become the peft
config: the config class by name, option -> config field, fixed fields.  A kind that needs nothing more
(VeRA, LoHa, LoKr) has no method class at all; the others add a check or a computed field in
:mod:`tunebench.methods`.

Every default learning rate says where it comes from (``lr_source``); ``tunebench methods`` and
``docs/METHODS.md`` print it.  Where no encoder-classification source exists the row says so and uses
LoRA's default (5e-4), the closest method tunebench has a measured rate for.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import Field

from tunebench.spec.options import PeftRecipe

ROLES_HELP = "module roles, e.g. query+value (query, key, value, attention.output, ffn.in, ffn.out, dense)"


def _targets(default: list[str], kind: str) -> tuple[Any, Any]:
    return list[str], Field(default_factory=lambda: list(default), description=f"{kind}: {ROLES_HELP}")


def _layers(kind: str) -> tuple[Any, Any]:
    return list[int] | None, Field(default=None, description=f"{kind}: layer indices to adapt (default: all)")


def _rank(default: int, kind: str, what: str = "rank") -> tuple[Any, Any]:
    return int, Field(default=default, ge=1, description=f"{kind}: {what}")


def _alpha(kind: str, what: str) -> tuple[Any, Any]:
    return float | None, Field(default=None, gt=0, description=f"{kind}: scaling alpha ({what})")


def _dropout(default: float, kind: str) -> tuple[Any, Any]:
    return float, Field(default=default, ge=0, lt=1, description=f"{kind}: dropout")


def _tokens(default: int, kind: str) -> tuple[Any, Any]:
    return int, Field(default=default, ge=1, le=512, description=f"{kind}: virtual tokens (count against max positions)")


@dataclass(frozen=True)
class KindRow:
    """One PEFT kind: what the spec needs to validate, label and list it."""

    kind: str
    doc: str  # one line: what trains
    default_lr: float
    lr_source: str
    fields: dict[str, tuple[Any, Any]] = field(default_factory=dict)
    base: Literal["lora", "plain"] = "plain"  # lora: takes every LoRA option too
    default_head_lr: float | None = None
    sweepable: tuple[str, ...] = ()
    display: str = ""  # how sentences name it: VeRA, LoHa
    #: the peft config the options translate to, as data; None: a method class of its own builds it
    peft: PeftRecipe | None = None


LORA_SOURCE = "tunebench's LoRA default (README); no encoder-classification rate published for this method in peft"

PEFT_KINDS: tuple[KindRow, ...] = (
    KindRow("lora-fa", "LoRA with A frozen at its random init, only B trains (LoRA-FA, Zhang et al. 2023; "
                       "peft.optimizers.create_lorafa_optimizer)", 5e-4,
            "peft create_lorafa_optimizer docstring: 'LoRA-FA uses the same hyper-params as AdamW' in LoRA tuning, "
            "so LoRA's 5e-4", base="lora",
            display="LoRA-FA"),
    KindRow("lora-plus", "LoRA with B stepped loraplus_ratio times faster than A (LoRA+, Hayou et al. 2024; "
                         "peft.optimizers.create_loraplus_optimizer's grouping)", 2.5e-4,
            "peft create_loraplus_optimizer docstring: the optimizer lr 'slightly smaller (e.g. by a factor of 2) "
            "than typical vanilla LoRA learning rates'; ratio 16 = 2^4, the paper's recommended lambda",
            fields={"loraplus_ratio": (float, Field(default=16.0, ge=1, description="lora-plus: lr(B) / lr(A)"))},
            base="lora", sweepable=("loraplus_ratio",),
            display="LoRA+"),
    KindRow("adalora", "LoRA whose rank budget is pruned from init_r to target_r by SVD importance (AdaLoRA, "
                       "Zhang et al. ICLR 2023)", 5e-4,
            "AdaLoRA paper, GLUE with DeBERTaV3-base: learning rates 5e-4 to 1.2e-3; the low end",
            fields={"init_r": _rank(12, "adalora", "initial rank per module"),
                    "target_r": _rank(8, "adalora", "average target rank per module"),
                    "alpha": _alpha("adalora", "default 2*init_r"),
                    "dropout": _dropout(0.1, "adalora"),
                    "targets": _targets(["query", "value"], "adalora"), "layers": _layers("adalora"),
                    "tinit": (float, Field(default=0.1, ge=0, description="adalora: steps before pruning starts "
                                                                          "(below 1: share of the run's steps)")),
                    "tfinal": (float, Field(default=0.2, ge=0, description="adalora: final steps at the target "
                                                                           "budget (below 1: share of the run's steps)")),
                    "deltaT": (int, Field(default=10, ge=1, description="adalora: steps between budget updates"))},
            sweepable=("init_r", "target_r", "targets", "tinit", "tfinal"),
            display="AdaLoRA"),
    KindRow("ia3", "learned rescaling vectors on keys, values and the feed-forward input (IA3, Liu et al. 2022)",
            3e-3, "T-Few paper (Liu et al. 2022, IA3): lr 3e-3; peft's IA3 notebook uses 3e-4 for RoBERTa-large "
                  "over 20 epochs, too slow for a few epochs",
            fields={"targets": _targets(["key", "value", "ffn.out"], "ia3"), "layers": _layers("ia3")},
            sweepable=("targets",),
            display="IA3", peft=PeftRecipe("IA3Config")),
    KindRow("vera", "per-layer scaling vectors over one frozen random low-rank pair shared by all layers (VeRA, "
                    "Kopiczko et al. ICLR 2024)", 2e-2,
            "peft examples/sequence_classification/VeRA.ipynb (RoBERTa, MRPC): vera_lr 2e-2, head_lr 1e-2",
            fields={"r": _rank(256, "vera"), "dropout": _dropout(0.0, "vera"),
                    "targets": _targets(["query", "value"], "vera"), "layers": _layers("vera")},
            default_head_lr=1e-2, sweepable=("r", "targets"),
            display="VeRA", peft=PeftRecipe("VeraConfig", {"r": "r", "dropout": "vera_dropout"}, {"save_projection": True})),
    KindRow("loha", "low-rank Hadamard product update (LoHa, LyCORIS; Hyeon-Woo et al. 2022)", 5e-4, LORA_SOURCE,
            fields={"r": _rank(8, "loha"), "alpha": _alpha("loha", "default r"),
                    "targets": _targets(["query", "value"], "loha"), "layers": _layers("loha")},
            sweepable=("r", "alpha", "targets"),
            display="LoHa", peft=PeftRecipe("LoHaConfig", {"r": "r", "alpha": "alpha"}, fallbacks={"alpha": "r"})),
    KindRow("lokr", "low-rank Kronecker product update (LoKr, LyCORIS; Edalati et al. 2022)", 5e-4, LORA_SOURCE,
            fields={"r": _rank(8, "lokr"), "alpha": _alpha("lokr", "default r"),
                    "targets": _targets(["query", "value"], "lokr"), "layers": _layers("lokr")},
            sweepable=("r", "alpha", "targets"),
            display="LoKr", peft=PeftRecipe("LoKrConfig", {"r": "r", "alpha": "alpha"}, fallbacks={"alpha": "r"})),
    KindRow("oft", "block-diagonal orthogonal rotation of each targeted weight (OFT, Qiu et al. NeurIPS 2023)",
            5e-4, LORA_SOURCE,
            fields={"block_size": (int, Field(default=32, ge=2, description="oft/boft: orthogonal block size "
                                                                           "(must divide the layer's input width)")),
                    "dropout": _dropout(0.0, "oft"),
                    "targets": _targets(["query", "value"], "oft"), "layers": _layers("oft")},
            sweepable=("block_size", "targets"),
            display="OFT",
            peft=PeftRecipe("OFTConfig", {"block_size": "oft_block_size", "dropout": "module_dropout"}, {"r": 0})),
    KindRow("boft", "butterfly-factorised orthogonal rotation (BOFT, Liu et al. ICLR 2024)", 5e-4, LORA_SOURCE,
            fields={"block_size": (int, Field(default=4, ge=2, description="oft/boft: orthogonal block size")),
                    "butterfly": (int, Field(default=1, ge=1, description="boft: butterfly factors")),
                    "dropout": _dropout(0.0, "boft"),
                    "targets": _targets(["query", "value"], "boft"), "layers": _layers("boft")},
            sweepable=("block_size", "butterfly", "targets"),
            display="BOFT", peft=PeftRecipe("BOFTConfig", {"block_size": "boft_block_size",
                                                           "butterfly": "boft_n_butterfly_factor",
                                                           "dropout": "boft_dropout"})),
    KindRow("fourierft", "a few learned spectral coefficients per weight, inverse-DFT to the update (FourierFT, "
                         "Gao et al. ICML 2024)", 6e-2,
            "peft examples/sequence_classification/FourierFT.ipynb (RoBERTa-base, MRPC): fft_lr 6e-2, head_lr 6e-3, "
            "n_frequency 1000, scaling 150",
            fields={"n_frequency": (int, Field(default=1000, ge=1, description="fourierft: learned coefficients "
                                                                               "per weight")),
                    "scaling": (float, Field(default=150.0, gt=0, description="fourierft: scaling")),
                    "targets": _targets(["query", "value"], "fourierft"), "layers": _layers("fourierft")},
            default_head_lr=6e-3, sweepable=("n_frequency", "scaling", "targets"),
            display="FourierFT", peft=PeftRecipe("FourierFTConfig", {"n_frequency": "n_frequency", "scaling": "scaling"})),
    KindRow("hra", "a product of r learned Householder reflections per weight (HRA, Yuan et al. NeurIPS 2024)",
            5e-4, LORA_SOURCE,
            fields={"r": _rank(8, "hra", "number of reflections (even)"),
                    "targets": _targets(["query", "value"], "hra"), "layers": _layers("hra")},
            sweepable=("r", "targets"),
            display="HRA", peft=PeftRecipe("HRAConfig", {"r": "r"})),
    KindRow("ln-tuning", "every LayerNorm of the layer stack, weight and bias (LN tuning, Zhao et al. 2023)", 1e-3,
            "no classification rate in peft; BitFit's 1e-3 (Ben Zaken et al. 2022), the closest vector-only method",
            fields={"layers": _layers("ln-tuning")},
            display="LN tuning", peft=PeftRecipe("LNTuningConfig")),
    KindRow("prefix", "trained key/value prefixes in every layer (prefix tuning, Li & Liang 2021; P-tuning v2)",
            1e-2, "peft examples/sequence_classification/prefix_tuning.ipynb (RoBERTa-large): 20 tokens, lr 1e-2",
            fields={"tokens": _tokens(20, "prefix"),
                    "projection": (bool, Field(default=False, description="prefix: reparametrise through an MLP"))},
            sweepable=("tokens",),
            display="prefix tuning",
            peft=PeftRecipe("PrefixTuningConfig", {"tokens": "num_virtual_tokens", "projection": "prefix_projection"})),
    KindRow("prompt", "trained soft-prompt embeddings before the input (prompt tuning, Lester et al. 2021)", 1e-3,
            "peft examples/sequence_classification/Prompt_Tuning.ipynb (RoBERTa-large): 10 tokens, lr 1e-3",
            fields={"tokens": _tokens(10, "prompt")}, sweepable=("tokens",),
            display="prompt tuning", peft=PeftRecipe("PromptTuningConfig", {"tokens": "num_virtual_tokens"})),
    KindRow("p-tuning", "soft prompt produced by a small trained encoder (P-tuning, Liu et al. 2021)", 1e-3,
            "peft examples/sequence_classification/P_Tuning.ipynb (RoBERTa-large): 20 tokens, encoder 128, lr 1e-3",
            fields={"tokens": _tokens(20, "p-tuning"),
                    "encoder": (Literal["mlp", "lstm"], Field(default="mlp", description="p-tuning: prompt encoder")),
                    "encoder_hidden": (int, Field(default=128, ge=1, description="p-tuning: encoder width"))},
            sweepable=("tokens", "encoder_hidden"),
            display="P-tuning",
            peft=PeftRecipe("PromptEncoderConfig", {"tokens": "num_virtual_tokens",
                                                    "encoder_hidden": "encoder_hidden_size"})),
)
