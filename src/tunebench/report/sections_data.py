"""The report's data-facing sections: error analysis (6) and the dataset (7)."""

from __future__ import annotations

from collections import Counter
from typing import Any

from tunebench.report import error_analysis as ea
from tunebench.report import figures, figures_errors
from tunebench.report.document import Bullets, Figure, Para, Section, cell, text_table
from tunebench.report.sections import Context, answers, short
from tunebench.results.diagnosis import is_baseline

WORDS_PER_RUN = 10


def errors(ctx: Context) -> Section | None:
    if ctx.records[0]["data"].get("task") in ("multi_label", "regression"):  # sections_labels / sections_targets
        return None
    section = Section("errors", "6. Error analysis")
    preds = answers(ctx)[1]  # each run's class ids, decided as every section decides
    if not preds:
        return section.add(Para("No test predictions are stored for these runs."))
    labels = ctx.inputs.predictions[ctx.records[0]["run_id"]][0]
    names, texts = ctx.names, ctx.inputs.texts.texts
    section.add(Para(ctx.inputs.texts.note))
    if texts is not None:
        section.add(_word_lift(ctx, preds, labels, texts))
    counts = {run: ea.error_label_counts(labels, p, len(names)) for run, p in preds.items()}
    section.add(Figure(figures_errors.error_labels(counts, names, ctx.figure("error_labels.png")),
                       "Among each run's errors: the true labels and the labels predicted instead."))
    rows = [[name] + [f"{true[k]} / {pred[k]}" for true, pred in counts.values()] for k, name in enumerate(names)]
    section.add(text_table(["class"] + [f"{run} (true / predicted)" for run in counts], rows, key="error-labels"))
    gaps = {r["strategy"]: ea.probability_gaps(*ctx.inputs.predictions[r["run_id"]])
            for r in ctx.records if r["run_id"] in ctx.inputs.predictions}
    section.add(Figure(figures_errors.probability_gaps(gaps, names, ctx.figure("probability_gaps.png")),
                       "Predicted-minus-true probability of each error, per true class: near 1 means confidently "
                       "wrong, near 0 a near miss."))
    section.add(_disagreements(preds, labels, names, texts), _confident(ctx, names, texts))
    return section


def _word_lift(ctx: Context, preds: dict[str, Any], labels: list[int], texts: list[str]):
    rows = []
    baselines = {r["strategy"] for r in ctx.records if is_baseline(r)}  # a majority classifier's "errors" say nothing
    for run, p in preds.items():
        if run in baselines:
            continue
        wrong = [int(a) != int(b) for a, b in zip(p, labels, strict=True)]
        lifts = ea.word_lift(texts, wrong, top=WORDS_PER_RUN)
        rows += [[run, w.word, cell(w.lift, ".2f"), w.in_errors, w.in_all, cell(w.p, ".2g"), cell(w.q, ".2g")]
                 for w in lifts]
        if not lifts:
            rows.append([run, f"(no word beyond chance among its {sum(wrong)} errors)", None, None, None, None, None])
    return text_table(["run", "word", "lift", "errors containing it", "examples containing it", "p", "q"], rows,
                      key="word-lift",
                      caption=f"Words over-represented among each fine-tuned run's misclassified test examples beyond "
                              f"chance: lift = share of errors containing the word / share of all test examples "
                              f"containing it. Only words in at least {ea.MIN_SUPPORT} test examples are tested; p is "
                              f"the one-sided Fisher exact test of that many errors among them by chance, q the same "
                              f"adjusted for the number of words tested (Benjamini-Hochberg); rows with q ≤ "
                              f"{ea.MAX_Q:g}, most significant first. Baselines are left out.")


def _disagreements(preds: dict[str, Any], labels: list[int], names: list[str], texts: list[str] | None):
    idx = ea.disagreements(preds, labels)
    rows = [[i, short(texts[i]) if texts else "(text unavailable)", names[labels[i]]] +
            [names[int(p[i])] + ("" if int(p[i]) == labels[i] else " ✗") for p in preds.values()] for i in idx]
    if not rows:
        return Para("The strategies agree on every test example." if len(preds) > 1 else
                    "One run only: there is no disagreement between strategies to show.")
    return text_table(["#", "text", "true"] + list(preds), rows, key="disagreements",
                      caption="Test examples where the strategies disagree (✗ = wrong).")


def _confident(ctx: Context, names: list[str], texts: list[str] | None):
    rows = []
    for r in ctx.records:
        if r["run_id"] not in ctx.inputs.predictions:
            continue
        labels, probs = ctx.inputs.predictions[r["run_id"]]
        for i, pred, p in ea.confident_errors(labels, probs, top=5):
            rows.append([r["strategy"], i, short(texts[i]) if texts else "(text unavailable)", names[labels[i]],
                         names[pred], cell(p, ".3f")])
    return text_table(["run", "#", "text", "true", "predicted", "p(predicted)"], rows, key="confident-errors",
                      caption="The most confident errors of each run.")


def dataset(ctx: Context) -> Section:
    profile = ctx.inputs.profile
    if isinstance(profile, dict) and profile:
        try:
            return _from_profile(ctx, profile)
        except (TypeError, AttributeError, KeyError, ValueError):
            pass  # a malformed dataset_profile.json: the stored records describe the data too
    return _from_records(ctx)


def _from_profile(ctx: Context, profile: dict[str, Any]) -> Section:
    section = Section("dataset", "7. Dataset")
    kinds = {"multi_label": "labels (multi-label: a row holds any number of them; counts are rows holding each)",
             "regression": "numeric target (regression)"}.get(profile.get("task", ""), "classes")
    section.add(Para(f"{profile.get('name')} ({profile.get('origin')}); {len(profile.get('label_names', []))} {kinds}; "
                     f"{'sentence pairs' if profile.get('is_pair') else 'single texts'}; tokenizer "
                     f"{profile.get('tokenizer')}, max length {profile.get('max_length')} (from dataset_profile.json)."))
    splits = profile.get("splits") or {}
    labels = profile.get("label_names") or sorted({k for s in splits.values() for k in s.get("label_counts", {})})
    rows = [[lab] + [s.get("label_counts", {}).get(lab, 0) for s in splits.values()] for lab in labels]
    section.add(text_table(["label"] + list(splits), rows, key="label-counts", caption="Examples per label and split."))
    if any("target" in sp for sp in splits.values()):  # a regression: the target's distribution per split
        keys = ("mean", "sd", "min", "q1", "median", "q3", "max")
        section.add(text_table(["split", *keys], [[name] + [cell((sp.get("target") or {}).get(k), ".4g") for k in keys]
                                                  for name, sp in splits.items()], key="target",
                               caption="The target per split."))
    tok = [[name, s.get("rows"), cell((s.get("tokens") or {}).get("mean"), ".1f"), (s.get("tokens") or {}).get("median"),
            (s.get("tokens") or {}).get("p95"), (s.get("tokens") or {}).get("max"),
            cell((s.get("tokens") or {}).get("truncated_share"), ".1%"), s.get("empty_texts"), s.get("duplicates")]
           for name, s in splits.items()]
    section.add(text_table(["split", "rows", "mean tokens", "median", "p95", "max", "truncated", "empty", "duplicates"],
                           tok, key="token-stats"))
    for key, rel in sorted((profile.get("figures") or {}).items()):
        path = ctx.inputs.out_dir / rel
        if path.is_file() and path.suffix.lower() == ".png":
            section.add(Figure(path, f"Dataset profile: {key}."))
    return _notes(section, profile.get("notes") or [])


def _from_records(ctx: Context) -> Section:
    section = Section("dataset", "7. Dataset")
    data = ctx.records[0]["data"]
    section.add(Para(f"{data['name']} ({data['origin']}); {len(data['label_names'])} classes; "
                     f"{'sentence pairs' if data.get('is_pair') else 'single texts'}. No dataset_profile.json in the "
                     "output folder: token statistics are not available; word counts are shown instead."))
    texts = ctx.inputs.texts
    if texts.split_labels:
        counts = {s: Counter(v) for s, v in texts.split_labels.items()}
        rows = [[name] + [counts[s].get(k, 0) for s in counts] for k, name in enumerate(data["label_names"])]
        section.add(text_table(["label"] + list(counts), rows, key="label-counts", caption="Examples per label and split."))
        section.add(Figure(figures.text_lengths(texts.split_texts, ctx.figure("data_words.png")),
                           "Words per example, per split (normalised histograms)."))
    else:
        support = {n: int(v["support"]) for n, v in ctx.records[0]["test"]["per_class"].items() if n in data["label_names"]}
        section.add(text_table(["label", "test"], [[n, support.get(n, 0)] for n in data["label_names"]],
                               key="label-counts", caption="Test examples per label (from the stored metrics)."))
    sizes = [[s, n, data["hashes"].get(s)] for s, n in data["sizes"].items()]
    section.add(text_table(["split", "rows", "content hash"], sizes, key="splits"))
    return _notes(section, data.get("notes") or [])


def _notes(section: Section, notes: list[str]) -> Section:
    if notes:
        section.add(Para("Notes from loading the data:"), Bullets([str(n) for n in notes]))
    return section

