"""The model card of an exported run (``tunebench export``), in Hugging Face's format.

The metadata block (base model, pipeline, library, tags, and the test metrics as a ``model-index``)
is built by ``huggingface_hub``'s :class:`~huggingface_hub.ModelCardData`, so it is what the Hub
parses; the Markdown below it is tunebench's: the task, the data and the hashes of its splits, the
method and its settings, the metrics with their intervals over seeds, the study's verdict and what
the run was compared against, the training cost and the environment.  A pure function of what
:class:`CardInputs` holds (the checkpoint's ``tunebench.json`` and, when the study's store is found,
the stored records), like the report.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tunebench.results.text import md

#: the figures of the evaluation table: (results.csv column without ``test_``, shown as)
METRICS = [("accuracy", "accuracy"), ("macro_f1", "macro-F1"), ("weighted_f1", "weighted F1"),
           ("macro_precision", "macro precision"), ("macro_recall", "macro recall"),
           ("micro_f1", "micro-F1"), ("hamming_loss", "Hamming loss"),  # multi-label only
           ("r2", "R²"), ("pearson", "Pearson r"), ("spearman", "Spearman ρ"), ("rmse", "RMSE"),  # regression only
           ("mae", "MAE")]


@dataclass
class CardInputs:
    """What the card says, gathered by :func:`tunebench.api.export.export_run`.

    ``meta``: the run's ``tunebench.json``; ``form``: what the folder holds (``merged``, ``model``,
    ``adapter``) and ``why_not_merged``; ``base_model``: the base's hub id or local path; ``record``,
    ``row`` (its results.csv row) and ``config`` (its configuration's results_by_config.csv row): None
    when the study's store was not found beside the run folder (``store_note`` says why); ``verdict``:
    the study's recommendation sentence, ``outcomes`` (configuration -> better/worse/...), ``floor``
    (baseline -> test macro-F1); ``usd_per_hour``: the price the cost was computed at."""

    meta: dict[str, Any]
    form: str
    base_model: str
    why_not_merged: str | None = None
    record: dict[str, Any] | None = None
    row: dict[str, Any] | None = None
    config: dict[str, Any] | None = None
    verdict: str | None = None
    group: str | None = None
    recommended: str | None = None
    outcomes: dict[str, str] = field(default_factory=dict)
    floor: dict[str, float] = field(default_factory=dict)
    cost_usd: float | None = None
    store_note: str | None = None
    location: str | None = None  # the Hub repository it is pushed to: the usage code names it
    onnx: dict[str, Any] | None = None  # model.onnx written beside it: {"file", "max_prob_diff"}


def card_data(c: CardInputs) -> Any:
    """The card's metadata (a ``ModelCardData``): what the Hub indexes."""
    from huggingface_hub import EvalResult, ModelCardData

    data = (c.record or {}).get("data") or {}
    dataset = str(c.meta.get("data", {}).get("source") or data.get("name") or "local data")
    results, regression = [], c.meta.get("task") == "regression"
    if c.row is not None:
        results = [EvalResult(task_type="text-classification", dataset_type=dataset, dataset_name=dataset,
                              dataset_split="test", metric_type=key.split("_")[-1] if key != "accuracy" else key,
                              metric_name=f"test {shown}", metric_value=round(float(c.row[f"test_{key}"]), 4),
                              metric_config=key.split("_")[0] if "_" in key else None)
                   for key, shown in METRICS if key in (("r2", "pearson", "rmse") if regression else
                                                        ("accuracy", "macro_f1", "weighted_f1"))
                   if c.row.get(f"test_{key}") is not None]
    return ModelCardData(
        base_model=c.base_model, library_name="peft" if c.form == "adapter" else "transformers",
        pipeline_tag="text-classification", tags=["tunebench", "text-classification", c.meta.get("strategy", "")],
        metrics=["r_squared", "pearsonr"] if regression else ["accuracy", "f1"],
        model_name=f"{_base_name(c.base_model)} {c.meta.get('strategy')} ({dataset})",
        eval_results=results or None)


def model_card(c: CardInputs) -> Any:
    """The whole card (a ``huggingface_hub.ModelCard``): metadata and Markdown."""
    from huggingface_hub import ModelCard

    sections = [_intro(c), _usage(c), _data(c), _training(c), _evaluation(c), _verdict(c), _cost(c), _environment(c)]
    body = "\n\n".join(s for s in sections if s)
    return ModelCard(f"---\n{card_data(c).to_yaml()}\n---\n\n{body}\n")


def code(value: Any) -> str:
    """``value`` as a Markdown code span (escapes do not apply inside one: a backtick becomes a quote)."""
    return "`" + str(value).replace("`", "'").replace("\n", " ") + "`"


def _base_name(base: str) -> str:
    return base.rstrip("/").split("/")[-1]


def _intro(c: CardInputs) -> str:
    names = c.meta["label_names"]
    shown = ", ".join(code(n) for n in names[:20]) + (f" and {len(names) - 20} more" if len(names) > 20 else "")
    pair = " of sentence pairs" if c.meta.get("is_pair") else ""
    form = {"merged": "the adapter merged into the base model (a plain transformers model)",
            "model": "a plain transformers model",
            "adapter": "a peft adapter on the base model" + (f" ({c.why_not_merged})" if c.why_not_merged else "")}
    multi = c.meta.get("task") == "multi_label"
    if c.meta.get("task") == "regression":  # one numeric output: the target, in its own units
        return (f"# {md(_base_name(c.base_model))} · {md(c.meta.get('strategy', '?'))}\n\n"
                f"Text regression{pair}: predicts {code(names[0])}, fine-tuned from {code(c.base_model)} with "
                f"{code(c.meta.get('strategy', '?'))} by [tunebench](https://pypi.org/project/tunebench/), run "
                f"`{c.meta.get('run_id', '?')}`, on the target standardised by its training mean and sd; the head "
                f"here is rescaled, so the output is in the target's units. This folder holds "
                f"{form.get(c.form, c.form)}.")
    kind = "Multi-label text classification" if multi else "Text classification"
    return (f"# {md(_base_name(c.base_model))} · {md(c.meta.get('strategy', '?'))}\n\n"
            f"{kind}{pair} into {len(names)} labels ({shown}){_thresholds(c)}, fine-tuned from {code(c.base_model)} "
            f"with {code(c.meta.get('strategy', '?'))} by [tunebench](https://pypi.org/project/tunebench/), run "
            f"`{c.meta.get('run_id', '?')}`. This folder holds {form.get(c.form, c.form)}.")


def _thresholds(c: CardInputs) -> str:
    """A multi-label run's decision rule: each label's threshold, chosen on the validation split."""
    if c.meta.get("task") != "multi_label" or not c.meta.get("thresholds"):
        return ""
    pairs = ", ".join(f"{code(n)} {t:g}" for n, t in zip(c.meta["label_names"], c.meta["thresholds"], strict=True))
    return (f"; a row gets every label whose sigmoid probability reaches the label's threshold, chosen on the "
            f"validation split ({pairs})")


def _usage(c: CardInputs) -> str:
    pair = ', text_pair="the second sentence"' if c.meta.get("is_pair") else ""
    if c.form == "adapter":
        code = ("from peft import PeftModel\n"
                "from transformers import AutoModelForSequenceClassification, AutoTokenizer\n\n"
                f"labels = {c.meta['label_names']!r}\n"
                "base = AutoModelForSequenceClassification.from_pretrained(\n"
                f"    {c.base_model!r}, num_labels=len(labels),\n"
                "    id2label=dict(enumerate(labels)), label2id={n: i for i, n in enumerate(labels)})\n"
                "model = PeftModel.from_pretrained(base, \"THIS_FOLDER\").eval()\n"
                "tokenizer = AutoTokenizer.from_pretrained(\"THIS_FOLDER\")\n"
                f"logits = model(**tokenizer(\"some text\"{pair}, truncation=True, max_length={c.meta['max_length']}, "
                "return_tensors=\"pt\")).logits")
    else:
        call = ('classify({"text": "some text", "text_pair": "the second sentence"})' if c.meta.get("is_pair")
                else 'classify("some text")')
        code = ('from transformers import pipeline\n\n'
                f'classify = pipeline("text-classification", model="THIS_FOLDER")\n{call}')
        if c.meta.get("task") == "regression":
            code = ('from transformers import pipeline\n\n'
                    'predict = pipeline("text-classification", model="THIS_FOLDER", function_to_apply="none")\n'
                    f'{call.replace("classify", "predict")}[0]["score"]  # the predicted target')
        elif c.meta.get("task") == "multi_label" and c.meta.get("thresholds"):  # sigmoid scores, the run's thresholds
            thresholds = dict(zip(c.meta["label_names"], c.meta["thresholds"], strict=True))
            code = ('from transformers import pipeline\n\n'
                    'classify = pipeline("text-classification", model="THIS_FOLDER", top_k=None)  # a sigmoid per label\n'
                    f"thresholds = {thresholds!r}\n"
                    f"labels = [s[\"label\"] for s in {call} if s[\"score\"] >= thresholds[s[\"label\"]]]")
    if c.onnx:
        file = (f"huggingface_hub.hf_hub_download({c.location!r}, {c.onnx['file']!r})" if c.location
                else f"\"THIS_FOLDER/{c.onnx['file']}\"")
        code += ("\n\n# or with ONNX Runtime (model.onnx: token tensors in, logits out)\nimport onnxruntime\n"
                 + ("import huggingface_hub\n" if c.location else "") + f"session = onnxruntime.InferenceSession({file})")
    where = ("" if c.location else " `THIS_FOLDER`: this folder or its Hub repository.")
    code = code.replace("THIS_FOLDER", c.location or "THIS_FOLDER")
    onnx = ("" if not c.onnx else f" `{c.onnx['file']}` is the same model exported with torch.onnx (opset 17); in "
            f"ONNX Runtime its probabilities were within {c.onnx['max_prob_diff']:.1g} of the model's on two sentences.")
    return (f"## How to use\n\nInputs were truncated to {c.meta['max_length']} tokens in training.{where}{onnx}"
            f"\n\n```python\n{code}\n```")


def _data(c: CardInputs) -> str:
    data = (c.record or {}).get("data")
    spec = c.meta.get("data") or {}
    lines = [f"## Training data\n\n- source: {code(spec.get('source'))}"
             + (f" (origin: {md(str(data['origin']))})" if data and data.get("origin") else "")]
    if data:
        sizes = data.get("sizes") or {}
        hashes = data.get("hashes") or {}
        lines.append("- splits (examples, sha256 of the split's content): " + "; ".join(
            f"{name} {sizes.get(name, '?')} (`{str(hashes.get(name, '?'))[:16]}`)"
            for name in ("train", "validation", "test")))
        lines += [f"- note: {md(str(n))}" for n in (data.get("notes") or [])[:8]]
    for key in ("train_limit", "val_limit", "test_limit"):
        if spec.get(key) is not None:
            lines.append(f"- {key.replace('_', ' ')}: {spec[key]} (stratified)")
    return "\n".join(lines)


def _training(c: CardInputs) -> str:
    lines = [f"## Training procedure\n\n- method: {code(c.meta.get('strategy'))} (seed {c.meta.get('seed')}, "
             f"{c.meta.get('precision', 'fp32')})"]
    if c.record is not None:
        r, params = c.record["resolved"], c.record.get("params") or {}
        lines.append(f"- trainable parameters: {params.get('trainable', 0):,} of {params.get('total', 0):,} "
                     f"({params.get('share_pct', 0):.2f} %)")
        lines.append(f"- learning rate {r['lr']:g}" + (f" (head {r['head_lr']:g})" if r.get("head_lr") else "")
                     + f", {r['scheduler']} schedule, warm-up {r['warmup_ratio']:g}, weight decay {r['weight_decay']:g}, "
                     f"batch {r['batch_size']}, up to {r['epochs']} epoch{'s' if r['epochs'] != 1 else ''}"
                     + (f" with early stopping (patience {r['patience']})" if r.get("patience") else ""))
        lines.append(f"- kept epoch: {c.record.get('best_epoch')} of {len(c.record.get('curves') or [])} trained "
                     f"(best validation {code(r.get('selection_metric', 'macro_f1'))})")
        weights = r.get("class_weights")
        shown = ", ".join(f"{md(n)} {w:.3g}" for n, w in zip(c.meta["label_names"], weights or [], strict=False))
        if c.meta.get("task") == "regression":
            lines.append("- loss: mean squared error of the standardised target (mean "
                         f"{c.meta['target_scale'][0]:.6g}, sd {c.meta['target_scale'][1]:.6g})"
                         if c.meta.get("target_scale") else "- loss: mean squared error")
        elif c.meta.get("task") == "multi_label":
            lines.append("- loss: binary cross-entropy per label" + (f", positive weights {shown}" if weights
                                                                     else ", unweighted"))
        else:
            lines.append("- loss: cross-entropy" + (f", class weights {shown}" if weights else ", unweighted"))
    return "\n".join(lines)


def _evaluation(c: CardInputs) -> str:
    if c.row is None:
        return f"## Evaluation\n\n{c.store_note or 'No stored result was found for this run.'}"
    n = (c.config or {}).get("seeds")
    head = ["metric (test split)", "this run"] + ([f"configuration: mean over {n} seeds [95 % t interval]"] if n else [])
    rows = []
    for key, shown in METRICS:
        value = c.row.get(f"test_{key}")
        if value is None:
            continue
        cells = [shown, f"{float(value):.4f}"]
        if n:
            mean, low, high = (c.config.get(f"test_{key}_{p}") for p in ("mean", "ci_low", "ci_high"))
            interval = "" if n < 2 or low is None else f" [{low:.4f}, {high:.4f}]"
            cells.append("—" if mean is None else f"{mean:.4f}{interval}")
        rows.append(cells)
    per_class = ((c.record or {}).get("test") or {}).get("per_class") or {}
    table = _table(head, rows)
    if per_class:
        table += "\n\nPer class (this run, test): " + "; ".join(
            f"{md(name)} F1 {float(v.get('f1-score', 0)):.3f}" for name, v in list(per_class.items())[:30])
    return f"## Evaluation\n\n{table}"


def _verdict(c: CardInputs) -> str:
    if c.verdict is None and not c.floor:
        return ""
    lines = ["## How it was chosen\n"]
    if c.verdict:
        lines.append(f"The study's verdict: {md(c.verdict)}\n")
    if c.recommended is not None and c.group is not None:
        lines.append("**This configuration is the study's recommendation.**\n" if c.group == c.recommended else
                     f"**The study recommended {code(c.recommended)}, not this configuration ({code(c.group)})**"
                     + (f"; against the reference it is {md(c.outcomes[c.group])}" if c.group in c.outcomes else "")
                     + ".\n")
    if c.outcomes:
        lines.append("Each configuration against the study's reference (the best on validation), on test macro-F1 "
                     "over seeds (the report's two-level paired test, Holm-corrected): "
                     + "; ".join(f"{code(k)}: {md(v)}" for k, v in list(c.outcomes.items())[:30]) + ".")
    if c.floor:
        lines.append("Baselines (test macro-F1): " + ", ".join(f"{md(k)} {v:.3f}" for k, v in c.floor.items()) + ".")
    return "\n".join(lines)


def _cost(c: CardInputs) -> str:
    if c.row is None:
        return ""
    row = c.row
    cost = "" if c.cost_usd is None else f", about ${c.cost_usd:.4f} at the report's price for the device"
    return (f"## Training cost\n\n{float(row['train_time_s']):.1f} s of training ({float(row['examples_per_s']):.1f} "
            f"examples/s), peak memory {float(row['peak_memory_mb']):.0f} MB on {md(str(row.get('device')))}{cost}; "
            f"{int(row['save_bytes']):,} bytes of trained parameters.")


def _environment(c: CardInputs) -> str:
    env = (c.record or {}).get("environment")
    if not env:
        return ""
    packages = env.get("packages") or {}
    shown = ", ".join(f"{k} {v}" for k, v in packages.items() if k in ("torch", "transformers", "peft", "tunebench"))
    return (f"## Environment\n\nPython {env.get('python')}, {shown}; {md(str(env.get('device')))}, "
            f"{env.get('torch_threads')} threads; {md(str(env.get('platform')))}.")


def _table(head: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows])
