"""The built-in kinds' options models: full, head, partial, lora, bitfit, the baselines, the PEFT table and
the fitted candidates on sentence embeddings (embed-logreg, setfit).

Each is a :class:`~tunebench.spec.options.StrategyOptions` subclass registered in
:data:`~tunebench.spec.options.OPTIONS` on import, in the order kinds are listed to users: the
hand-written models first, then one model per row of :data:`tunebench.spec.peft_kinds.PEFT_KINDS`
(:func:`_table_kind`), then the fitted candidates (last, so that the option columns of results.csv
keep their order).
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import BaseModel, Field, create_model, model_validator

from tunebench.spec.options import StrategyOptions, _fmt, register_options
from tunebench.spec.peft_kinds import PEFT_KINDS, KindRow


@register_options
class FullOptions(StrategyOptions):
    """Every parameter trains."""

    kind: Literal["full"] = "full"
    default_lr: ClassVar[float] = 5e-5


@register_options
class HeadOptions(StrategyOptions):
    """The classifier (and pooler) train; the encoder is frozen."""

    kind: Literal["head"] = "head"
    # a freshly initialised head has no pretrained scale to protect
    default_lr: ClassVar[float] = 1e-3
    own_head_rate: ClassVar[bool] = False  # the head is the whole model that trains: lr is its rate


@register_options
class PartialOptions(StrategyOptions):
    """The top ``k`` encoder layers and the head train."""

    kind: Literal["partial"] = "partial"
    k: int = Field(default=2, ge=1, description="partial: number of top layers to train")
    default_lr: ClassVar[float] = 1e-4
    sweepable: ClassVar[tuple[str, ...]] = ("k",)

    def options_label(self) -> list[str]:
        return [f"k={self.k}"]


@register_options
class LoraOptions(StrategyOptions):
    """LoRA (peft) on the named module roles, optionally on some layers only; the head trains too."""

    kind: Literal["lora"] = "lora"
    display: ClassVar[str] = "LoRA"
    r: int = Field(default=8, ge=1, description="lora: rank")
    alpha: float | None = Field(default=None, gt=0, description="lora: scaling alpha (default 2*r)")
    dropout: float = Field(default=0.1, ge=0, lt=1, description="lora: dropout")
    targets: list[str] = Field(default_factory=lambda: ["query", "value"],
                               description="lora: module roles, e.g. query+value")
    layers: list[int] | None = Field(default=None, description="lora: layer indices to adapt")
    dora: bool = Field(default=False, description="lora: weight-decomposed LoRA (DoRA, peft use_dora)")
    rslora: bool = Field(default=False, description="lora: rank-stabilised scaling alpha/sqrt(r) (peft use_rslora)")
    init: Literal["default", "gaussian", "pissa", "olora"] = Field(
        default="default", description="lora: initialisation (peft init_lora_weights; pissa/olora change base weights)")
    bias: Literal["none", "all", "lora_only"] = Field(default="none", description="lora: biases that train too")
    # the low-rank update starts at zero: it needs a larger step than full fine-tuning
    default_lr: ClassVar[float] = 5e-4
    lr_source: ClassVar[str] = "tunebench's reference SNLI study (README): 5e-4 for MiniLM-L6, r=8"
    sweepable: ClassVar[tuple[str, ...]] = ("r", "alpha", "dropout", "targets", "layers", "dora", "rslora", "init")

    @model_validator(mode="after")
    def _defaults(self) -> LoraOptions:
        if self.alpha is None:
            object.__setattr__(self, "alpha", float(2 * self.r))  # not in model_fields_set: it follows r
        if not self.targets:
            raise ValueError("lora targets must name at least one module, e.g. targets=query+value")
        return self

    def options_label(self) -> list[str]:
        parts = [f"r={self.r}"]
        if self.alpha != 2 * self.r:
            parts.append(f"alpha={_fmt(self.alpha)}")
        if self.dropout != 0.1:
            parts.append(f"dropout={_fmt(self.dropout)}")
        if self.targets != ["query", "value"]:
            parts.append("targets=" + "+".join(self.targets))
        if self.layers is not None:
            parts.append("layers=" + "+".join(str(i) for i in self.layers))
        parts += [f"{name}={_fmt(getattr(self, name))}" for name in ("dora", "rslora", "init", "bias")
                  if getattr(self, name) != LoraOptions.model_fields[name].default]
        return parts

    def given(self) -> dict[str, Any]:
        fields = super().given()
        if self.alpha == 2 * self.r:
            fields.pop("alpha", None)  # the default alpha (2 r) follows a swept rank, even after a round trip
        return fields


@register_options
class BitFitOptions(StrategyOptions):
    """Every bias term of the encoder and the head train (Ben Zaken et al., ACL 2022)."""

    kind: Literal["bitfit"] = "bitfit"
    # Ben Zaken, Ravfogel & Goldberg, "BitFit", ACL 2022 (arXiv:2106.10199): BERT learning rates between
    # 1e-4 and 1e-3; their code's example run of full BitFit uses 1e-3.  Few trainable values, few epochs here.
    default_lr: ClassVar[float] = 1e-3


@register_options
class MajorityOptions(StrategyOptions):
    """Baseline: always the training split's most frequent class (no model, no training)."""

    kind: Literal["majority"] = "majority"
    default_lr: ClassVar[float] = 0.0  # trains nothing: no learning rate
    fitted: ClassVar[bool] = True
    baseline: ClassVar[bool] = True
    tasks: ClassVar[tuple[str, ...]] = ("single_label", "multi_label")


@register_options
class TfidfLogregOptions(StrategyOptions):
    """Baseline: TF-IDF word and bigram features and a logistic regression (scikit-learn); seconds on a CPU."""

    kind: Literal["tfidf-logreg"] = "tfidf-logreg"
    max_features: int = Field(default=50_000, ge=1, description="tfidf-logreg: vocabulary size")
    C: float = Field(default=1.0, gt=0, description="tfidf-logreg: inverse regularisation strength")
    # macro-F1 weighs classes alike; unweighted, R52's rare classes go unpredicted (test macro-F1 0.051 vs 0.406)
    class_weight: Literal["balanced", "none"] = Field(default="balanced", description="tfidf-logreg: class weights")
    default_lr: ClassVar[float] = 0.0  # trains no network: no learning rate
    fitted: ClassVar[bool] = True
    baseline: ClassVar[bool] = True
    tasks: ClassVar[tuple[str, ...]] = ("single_label", "multi_label")

    def options_label(self) -> list[str]:
        parts = [f"max_features={self.max_features}"] if self.max_features != 50_000 else []
        parts += [f"C={_fmt(self.C)}"] if self.C != 1.0 else []
        return parts + ([f"class_weight={self.class_weight}"] if self.class_weight != "balanced" else [])


@register_options
class MeanOptions(StrategyOptions):
    """Baseline of a regression: always the training split's mean target (no model, no training)."""

    kind: Literal["mean"] = "mean"
    default_lr: ClassVar[float] = 0.0
    fitted: ClassVar[bool] = True
    baseline: ClassVar[bool] = True
    tasks: ClassVar[tuple[str, ...]] = ("regression",)


@register_options
class TfidfRidgeOptions(StrategyOptions):
    """Baseline of a regression: TF-IDF word and bigram features and a ridge regression (scikit-learn)."""

    kind: Literal["tfidf-ridge"] = "tfidf-ridge"
    max_features: int = Field(default=50_000, ge=1, description="tfidf-ridge: vocabulary size")
    C: float = Field(default=1.0, gt=0, description="tfidf-ridge: inverse regularisation strength (ridge alpha = 1/C)")
    default_lr: ClassVar[float] = 0.0
    fitted: ClassVar[bool] = True
    baseline: ClassVar[bool] = True
    tasks: ClassVar[tuple[str, ...]] = ("regression",)

    def options_label(self) -> list[str]:
        parts = [f"max_features={self.max_features}"] if self.max_features != 50_000 else []
        return parts + ([f"C={_fmt(self.C)}"] if self.C != 1.0 else [])


class _TableLabel(BaseModel):
    """A kind built from a row of ``PEFT_KINDS``: its base's label parts, then every row option not at its default."""

    row_options: ClassVar[tuple[str, ...]] = ()

    def options_label(self) -> list[str]:
        parts = super().options_label()  # type: ignore[misc]
        for name in self.row_options:
            value, info = getattr(self, name), type(self).model_fields[name]
            if value != info.get_default(call_default_factory=True):
                parts.append(f"{name}=" + ("+".join(map(str, value)) if isinstance(value, list) else _fmt(value)))
        return parts


def _table_kind(row: KindRow) -> type[StrategyOptions]:
    base = LoraOptions if row.base == "lora" else StrategyOptions
    name = "".join(part.capitalize() for part in row.kind.replace("-", " ").split()) + "Options"
    cls = create_model(name, __base__=(_TableLabel, base), __doc__=row.doc,
                       kind=(Literal[row.kind], row.kind), **row.fields)  # type: ignore[call-overload]
    cls.__module__ = __name__
    cls.default_lr, cls.lr_source, cls.default_head_lr = row.default_lr, row.lr_source, row.default_head_lr
    cls.display, cls.peft = row.display, row.peft
    cls.sweepable = tuple(dict.fromkeys((*base.sweepable, *row.sweepable)))
    cls.row_options = tuple(row.fields)
    return register_options(cls)


globals().update({cls.__name__: cls for cls in map(_table_kind, PEFT_KINDS)})  # LoraFaOptions, ...


@register_options
class EmbedLogregOptions(StrategyOptions):
    """Frozen sentence embeddings of the study's encoder (sentence-transformers: the folder's own pooling, else
    the mean over tokens by the attention mask; a pair: each side embedded, then [u, v, |u-v|]) and a logistic
    regression (scikit-learn). A candidate ranked like any fine-tuning, not a floor; seconds to minutes on a CPU."""

    kind: Literal["embed-logreg"] = "embed-logreg"
    C: float = Field(default=1.0, gt=0, description="embed-logreg: inverse regularisation strength")
    class_weight: Literal["balanced", "none"] = Field(default="balanced", description="embed-logreg: class weights "
                                                      "(follows training.class_weight unless set)")
    default_lr: ClassVar[float] = 0.0  # the encoder is frozen and the head is fitted by lbfgs: no learning rate
    fitted: ClassVar[bool] = True
    sweepable: ClassVar[tuple[str, ...]] = ("C",)
    tasks: ClassVar[tuple[str, ...]] = ("single_label", "multi_label")  # multi-label: one regression per label

    def options_label(self) -> list[str]:
        parts = [f"C={_fmt(self.C)}"] if self.C != 1.0 else []
        return parts + ([f"class_weight={self.class_weight}"] if self.class_weight != "balanced" else [])


@register_options
class SetfitOptions(StrategyOptions):
    """SetFit (setfit): contrastive fine-tuning of the whole sentence encoder on pairs of training examples, then
    a logistic regression (scikit-learn) on its embeddings (Tunstall et al., 2022); a pair task: the two texts
    joined by the tokenizer's separator. Trains its own ``epochs`` (default 1) of ``iterations`` pairs per example
    at its own ``lr`` (default 2e-5), setfit's defaults (training.epochs and training.lr are the engine's), batch
    training.batch_size, head classes weighted as training.class_weight."""

    kind: Literal["setfit"] = "setfit"
    display: ClassVar[str] = "SetFit"
    tasks: ClassVar[tuple[str, ...]] = ("single_label",)
    iterations: int = Field(default=20, ge=1, description="setfit: pairs generated per training example "
                                                          "(setfit's num_iterations)")
    # setfit 1.2 TrainingArguments.body_learning_rate = (2e-5, 1e-5): the first is the contrastive phase's
    default_lr: ClassVar[float] = 2e-5
    lr_source: ClassVar[str] = ("setfit 1.2's TrainingArguments default body_learning_rate (2e-5 for the contrastive "
                                "phase; src/setfit/training_args.py)")
    own_head_rate: ClassVar[bool] = False  # the head is a logistic regression fitted by lbfgs: no rate
    fitted: ClassVar[bool] = True
    sweepable: ClassVar[tuple[str, ...]] = ("iterations",)

    def options_label(self) -> list[str]:
        return [f"iterations={self.iterations}"] if self.iterations != 20 else []
