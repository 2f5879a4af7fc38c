"""``tunebench export RUN DIR``: a saved run as a folder plain transformers (+ peft) loads, with a model card.

What is written: a full, partial or head-only run's whole model; a PEFT run merged into its base
model (``merge_and_unload``: a plain transformers model, as deployers are told to do before ONNX
export), or its adapter alone when asked (``merge=False``) or when the method cannot merge (prompt
methods: the card says so); the tokenizer; ``tunebench.json`` (so ``tunebench predict DIR`` works on
the export too); ``README.md``, the model card (:mod:`tunebench.report.card`).  The card's metrics,
intervals, verdict and cost come from the study's store beside the run folder (``OUTPUT/runs/<run>``
→ ``OUTPUT/tunebench.sqlite``), read only.  The folder is written beside ``DIR`` and renamed into
place, so a failed export leaves nothing half-written; ``push_to_hub`` uploads it with
``huggingface_hub`` afterwards, and a failed upload keeps the folder.
"""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path
from typing import Any

from tunebench.errors import ModelError, SpecError, first_line
from tunebench.faults import disk_guard
from tunebench.results.decisions import headline


def export_run(run_dir: str | Path, dest: str | Path, *, merge: bool = True, onnx: bool = False,
               push_to_hub: str | None = None, private: bool = True, trust_remote_code: bool = False,
               allow_pickle: bool = False) -> Path:
    """Write ``run_dir`` (a run's checkpoint folder) as ``dest``; ``onnx``: also ``model.onnx`` (:func:`write_onnx`);
    upload it to ``push_to_hub`` (a repo id) if given.  Permissions as for ``tunebench predict``: the caller's own,
    never the run folder's."""
    from tunebench.report.card import CardInputs, model_card
    from tunebench.training.checkpoint import META, load_checkpoint
    from tunebench.training.modeling import fold_target_scale
    from tunebench.training.serving import require_onnx_runtime

    run_dir, dest = Path(run_dir), Path(dest)
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise SpecError(f"'{dest}' already exists and is not an empty folder; export into a new folder")
    if onnx:
        require_onnx_runtime("--onnx")
    model, tokenizer, meta = load_checkpoint(run_dir, trust_remote_code=trust_remote_code, allow_pickle=allow_pickle)
    if meta.get("target_scale"):  # a regression trained on the standardised target: export it in the target's units
        fold_target_scale(model, *meta["target_scale"])
    tmp = dest.with_name(dest.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        with disk_guard("the export", dest):
            form, why, saved = _write_model(model, meta, tmp, merge)
            tokenizer.save_pretrained(tmp)
            checked = write_onnx(saved, tokenizer, meta, tmp) if onnx else None
            kept = {k: v for k, v in meta.items() if (form == "adapter" or k not in ("base_model", "base_model_sha256"))
                    and k != "target_scale"}  # folded into the head: the outputs are the target's
            (tmp / META).write_text(json.dumps({**kept, "exported_as": form, **({"onnx": checked} if checked else {})},
                                               indent=2) + "\n", encoding="utf-8")
            inputs = CardInputs(meta=meta, form=form, base_model=base_model_name(meta), why_not_merged=why,
                                location=push_to_hub, onnx=checked, **study_facts(run_dir, meta))
            model_card(inputs).save(tmp / "README.md")
        if dest.exists():
            dest.rmdir()
        tmp.rename(dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if push_to_hub:
        push(dest, push_to_hub, private)
    return dest


def base_model_name(meta: dict[str, Any]) -> str:
    """The base model as others can find it: a catalog model's hub id, a hub id as given, else the local folder."""
    from tunebench.training.model_catalog import hub_id

    name = str(meta.get("model_name") or meta.get("base_model") or "")
    return hub_id(name) or (name if name and not Path(name).expanduser().exists() else str(meta.get("base_model", name)))


#: what the exported ONNX file is checked on against the model (no data is at hand when exporting)
ONNX_CHECK_TEXTS = ["a short example", "a longer example sentence, with punctuation, to check the exported model"]


def write_onnx(model: Any, tokenizer: Any, meta: dict[str, Any], folder: Path) -> dict[str, Any]:
    """``folder/model.onnx`` (:func:`tunebench.training.serving.export_onnx`), checked in ONNX Runtime against the
    model on :data:`ONNX_CHECK_TEXTS` (as a batch and one by one): ``{"file", "max_prob_diff"}``.  A model the
    tracer cannot follow, or an ONNX file that predicts otherwise, is one sentence."""
    import numpy as np
    import onnxruntime as ort
    import torch

    from tunebench.training.serving import export_onnx, softmax

    def encode(texts: list[str]) -> dict[str, torch.Tensor]:
        pairs = texts[::-1] if meta.get("is_pair") else None
        batch = tokenizer(texts, pairs, padding=True, truncation=True, max_length=meta["max_length"],
                          return_tensors="pt")
        return {k: batch[k] for k in ("input_ids", "attention_mask", "token_type_ids") if k in batch}

    path = folder / "model.onnx"
    try:
        export_onnx(model, encode(ONNX_CHECK_TEXTS), path)
    except Exception as exc:  # an architecture or method the tracer cannot follow
        raise ModelError(f"could not export {meta.get('strategy')} to ONNX ({type(exc).__name__}: "
                         f"{first_line(exc, 160)}); export without --onnx") from None
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    worst = 0.0
    for texts in (ONNX_CHECK_TEXTS, ONNX_CHECK_TEXTS[:1]):
        batch = encode(texts)
        with torch.inference_mode():
            expected = torch.softmax(model.to("cpu").eval()(**batch).logits.float(), -1).numpy()
        logits = session.run(None, {k: v.numpy() for k, v in batch.items()})[0]
        worst = max(worst, float(np.abs(softmax(logits) - expected).max()))
    if worst > 1e-4:
        raise ModelError(f"the ONNX export of {meta.get('strategy')} does not predict as the model does (probabilities "
                         f"differ by up to {worst:.2g}); export without --onnx")
    return {"file": path.name, "max_prob_diff": worst}


def _write_model(model: Any, meta: dict[str, Any], folder: Path, merge: bool) -> tuple[str, str | None, Any]:
    """Save the model into ``folder``: ("model" | "merged" | "adapter", why it is not merged or None, what was
    saved)."""
    from peft import PeftModel

    with warnings.catch_warnings():  # peft calls a name transformers 5 deprecated: not the user's to act on
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing", category=FutureWarning)
        if not isinstance(model, PeftModel):
            model.save_pretrained(folder)
            return "model", None, model
        why = None if merge else "kept unmerged as asked (--adapter)"
        if merge:
            try:
                merged = model.merge_and_unload()
            except (AttributeError, ValueError, NotImplementedError, TypeError) as exc:  # prompt methods cannot merge
                why = f"{meta.get('strategy')} cannot be merged into the base model: {first_line(exc, 120)}"
            else:
                merged.save_pretrained(folder)
                return "merged", None, merged
        model.save_pretrained(folder)  # the base named by its local folder here: peft reads its config, offline
    config_path = folder / "adapter_config.json"  # then named as others find it (a catalog model by hub id)
    config = json.loads(config_path.read_text(encoding="utf-8"))
    config_path.write_text(json.dumps({**config, "base_model_name_or_path": base_model_name(meta)}, indent=2) + "\n",
                           encoding="utf-8")
    return "adapter", why, model


def study_facts(run_dir: Path, meta: dict[str, Any]) -> dict[str, Any]:
    """What the card reads from the study's store beside ``run_dir``: the run's record, its results.csv row, its
    configuration's row over seeds, the verdict, the outcomes and the floor; a note instead when not found."""
    from tunebench.api.result import load
    from tunebench.report.cost import DEFAULT_PRICES, run_cost
    from tunebench.report.significance import group_of
    from tunebench.results.store import STORE_NAME, Store

    out_dir = run_dir.resolve().parent.parent
    if not (out_dir / STORE_NAME).is_file():
        return {"store_note": f"The study's store was not found beside the run folder ({out_dir / STORE_NAME}): "
                              "no metrics are shown; export from the study's output folder to include them."}
    with Store(out_dir / STORE_NAME, readonly=True) as store:
        record = next((r for r in store.records() if r["run_id"] == meta.get("run_id") and r["status"] == "finished"
                       and r.get("test") and not r["study"].endswith((":tuning", ":baselines"))), None)  # a final run
        baselines = store.records(record["study"] + ":baselines") if record is not None else []
    if record is None:
        return {"store_note": f"The store in {out_dir} holds no finished run {meta.get('run_id')}."}
    result = load(out_dir, record["study"])
    table, configs = result.table, result.by_config
    row = table[table["run"] == record["run_id"]].iloc[0].to_dict() if "run" in table else None
    group = group_of(record)
    config = configs[configs["config"] == group]
    facts: dict[str, Any] = {"record": record, "row": row, "config": config.iloc[0].to_dict() if len(config) else None,
                             "cost_usd": run_cost(record, dict(DEFAULT_PRICES))}
    try:
        found = result.recommendation
    except Exception as exc:  # a study the report cannot judge still exports; the card says so
        facts["verdict"] = f"not computed ({type(exc).__name__}: {first_line(exc, 120)})"
        return facts
    facts.update(verdict=found.sentence, outcomes=dict(found.outcomes), group=group, recommended=found.choice)
    facts["floor"] = {str(b["strategy"]): float(b["test"][headline(b)]) for b in baselines
                      if b["status"] == "finished" and b.get("test")}
    return facts


def push(folder: Path, repo: str, private: bool) -> None:
    """Upload ``folder`` to the Hub repository ``repo`` (created if needed); one sentence when it cannot."""
    from huggingface_hub import HfApi

    try:
        api = HfApi()
        api.create_repo(repo, private=private, exist_ok=True, repo_type="model")
        api.upload_folder(folder_path=str(folder), repo_id=repo, repo_type="model",
                          commit_message="tunebench export")
    except Exception as exc:  # offline, no token, no rights: huggingface_hub raises many kinds
        raise ModelError(f"could not push to the Hugging Face Hub repository '{repo}' ({type(exc).__name__}: "
                         f"{first_line(exc, 160)}); the export is kept in '{folder}'") from None
