"""The verdict's trust rules in the report: flagged runs are not ranked as beaten, baselines are the floor,
and the learning-rate sensitivity of the tuning trials — on synthetic records, no training."""

from __future__ import annotations

import re

import numpy as np
import pytest

from tunebench.report import analysis, build_report, significance
from tunebench.report import verdict as verdict_module
from tunebench.report.inputs import load_inputs
from tunebench.report.verdict import recommendation
from tunebench.results import stats
from tunebench.results.store import STORE_NAME, Store
from tunebench.training.metrics import classification_metrics

NAMES = ["neg", "pos"]
LABELS = [0, 1] * 30  # 60 test examples


def curves(f1s):
    return [{"epoch": i + 1, "train_loss": 1.0 - 0.2 * i, "val_loss": 0.9 - 0.1 * i, "val_accuracy": f,
             "val_macro_f1": f, "train_time_s": 1.0} for i, f in enumerate(f1s)]


def predictions(correct: int, one_class: bool = False) -> list[list[float]]:
    """Probabilities that get ``correct`` of the test examples right (or say class 1 for all)."""
    out = []
    for i, y in enumerate(LABELS):
        p = 1 if one_class else (y if i < correct else 1 - y)
        out.append([0.2, 0.8] if p == 1 else [0.8, 0.2])
    return out


def full_record(strategy: str, position: int, probs, f1s=(0.5, 0.7, 0.72), kind=None, seconds=10.0,
                study="syn", lr=1e-3, **extra):
    preds = np.asarray(probs).argmax(1)
    baseline = kind in ("majority", "tfidf-logreg")
    return {
        "run_id": f"r{position}-{strategy}", "study": study, "position": position, "strategy": strategy,
        "label": strategy, "group": strategy, "sweep": {}, "status": "finished",
        "started_at": "2026-01-01T00:00:00", "finished_at": f"2026-01-01T00:00:{position:02d}.000",
        "spec": {"kind": kind or strategy.split(":")[0]},
        "study_spec": {"name": study, "data": {"source": "/nonexistent/syn.csv"}},
        "resolved": {"lr": None if baseline else lr, "scheduler": None if baseline else "linear",
                     "epochs": None if baseline else len(f1s), "batch_size": 8, "seed": 0, "precision": "fp32",
                     "device": "cpu", "max_length": 32},
        "data": {"name": "syn", "origin": "synthetic", "label_names": NAMES,
                 "sizes": {"train": 200, "validation": 40, "test": len(LABELS)},
                 "hashes": {"train": "a", "validation": "b", "test": "c"}, "notes": [], "is_pair": False},
        "environment": {"device": "cpu", "device_type": "cpu", "torch_threads": 2, "python": "3.11",
                        "platform": "linux", "packages": {}},
        "model": {"name": "tiny", "n_layers": 2},
        "params": {"trainable": 0 if baseline else 1000 * (position + 1), "total": 10_000,
                   "share_pct": 0.0 if baseline else 10.0 * (position + 1)},
        "resources": {"train_time_s": seconds, "eval_time_s": 1.0, "train_examples_per_s": 50.0,
                      "train_tokens_per_s": 500.0, "peak_rss_mb": 900.0 + position},
        "save_bytes": 1000, "checkpoint_bytes": None, "checkpoint": None,
        "curves": [] if baseline else curves(f1s), "best_epoch": None if baseline else len(f1s),
        "val": {**classification_metrics(np.asarray(LABELS), preds, NAMES), "macro_f1": 0.5 if baseline else max(f1s)},
        "test": classification_metrics(np.asarray(LABELS), preds, NAMES), "wall_time_s": seconds,
        **({"baseline": True} if baseline else {}), **extra}


def store_of(tmp_path, records, tuning=()):
    out = tmp_path / "out"
    with Store(out / STORE_NAME) as store:
        for r in [*records, *tuning]:
            store.put(r, LABELS, predictions(60) if r.get("tuning") else r.pop("_probs"))
        store.set_plan("syn:tuning", [r["label"] for r in tuning]) if tuning else None
        store.set_plan("syn", [r["label"] for r in records])
    return out


def study(converged_full=False, baselines=True):
    rows = [("full", predictions(40), (0.5, 0.72, 0.715) if converged_full else (0.4, 0.5, 0.56), None, 60.0),
            ("lora:r=8", predictions(52), (0.6, 0.81, 0.805), None, 30.0),
            ("head", predictions(47), (0.6, 0.76, 0.755), None, 5.0)]
    if baselines:
        rows += [("majority", predictions(0, one_class=True), (), "majority", 0.01),
                 ("tfidf-logreg", predictions(45), (), "tfidf-logreg", 0.5)]
    return [{**full_record(s, i, p, f, k, t), "_probs": p} for i, (s, p, f, k, t) in enumerate(rows)]


def trial(strategy, lr, value, n, pruned_at=None):
    r = full_record(f"{strategy} lr={lr:g}", 100 + n, predictions(60), study="syn:tuning", lr=lr)
    r["status"] = "pruned" if pruned_at else "finished"
    r["tuning"] = {"strategy": strategy, "lr": lr, "trial": n, "value": value, "pruned_at": pruned_at,
                   "epochs_run": pruned_at or 3}
    return r


def rung_trial(strategy, lr, head_lr, candidate, epochs, seed, value, position, extra=False, rungs=(2, 3)):
    """A trial of the synchronous search: one candidate on one seed at one rung."""
    r = full_record(f"{strategy} lr={lr:g} epochs={epochs} seed={seed}", position, predictions(60),
                    study="syn:tuning", lr=lr, seconds=5.0 * epochs)
    r["tuning"] = {"strategy": strategy, "lr": lr, "head_lr": head_lr, "trial": candidate, "candidate": candidate,
                   "epochs": epochs, "rung": list(rungs).index(epochs), "rungs": list(rungs), "seed": seed,
                   "value": value, "epochs_run": epochs, "extra": extra}
    return r


def frame_of(records):
    return analysis.headline_frame(records, {"CPU": 0.34})


def fam(reference, outcomes=None, floors=None, floor="tfidf-logreg", seed_level=True):
    """A family of comparisons with the given outcomes (the numbers behind them are made up to match)."""
    def comparison(group, against, outcome):
        delta = {"better": 0.05, "worse": -0.05, "equivalent": 0.001, "inconclusive": -0.006}[outcome]
        test = stats._from_variances("macro_f1", delta, 1e-5 if seed_level else 0.0, 1e-5, 3 if seed_level else 1,
                                     60, 0.01, 0.95, seed_level, 200)
        p = 0.001 if outcome in ("better", "worse") else 0.4
        q = 0.001 if outcome == "equivalent" else 0.6
        return significance.Comparison(group, against, test, p if seed_level else None, q if seed_level else None,
                                       outcome, "", "about 9 seeds" if outcome == "inconclusive" else "")
    return significance.Family("macro_f1", 0.01, 0.05, reference, floor if floors else None,
                               [comparison(g, reference, o) for g, o in (outcomes or {}).items()],
                               [comparison(g, floor, o) for g, o in (floors or {}).items()])


def test_a_still_improving_strategy_is_not_ranked_as_the_loser_and_the_sentence_says_what_to_do():
    records = [{k: v for k, v in r.items() if k != "_probs"} for r in study(baselines=False)]
    frame = frame_of(records)
    assert frame.loc[0, "diagnosis"] == "still improving"
    picks, caveats = recommendation(frame, records, fam("lora:r=8", {"full": "worse", "head": "worse"}))
    text = " ".join(picks)
    assert picks[0].startswith("Highest mean test macro-F1 among the strategies that converged: lora:r=8")
    assert "Not ranked as beaten: full did not converge: best epoch = last (3 of 3), +6.0 points" in text
    assert "rerun with --tune or more epochs" in text
    assert not any(p.startswith("Recommended") and "full" in p.split("—")[0] for p in picks)
    assert next(p for p in picks if p.startswith("Recommended: ")).startswith(
        "Recommended: lora:r=8 — the best on validation macro-F1; no other configuration is shown equivalent")
    # the same study with full converged: full is ranked (and loses) as before
    records = [{k: v for k, v in r.items() if k != "_probs"} for r in study(converged_full=True, baselines=False)]
    picks, _ = recommendation(frame_of(records), records, fam("lora:r=8", {"full": "worse", "head": "worse"}))
    assert picks[0].startswith("Highest mean test macro-F1: lora:r=8") and "Not ranked" not in " ".join(picks)


def test_a_collapsed_strategy_is_not_ranked_either():
    records = [{k: v for k, v in r.items() if k != "_probs"} for r in study(converged_full=True, baselines=False)]
    records[0] = full_record("full", 0, predictions(0, one_class=True), (0.5, 0.7, 0.69))
    frame = frame_of(records)
    assert frame.loc[0, "diagnosis"] == "collapsed"
    picks, _ = recommendation(frame, records, fam("lora:r=8", {"full": "worse", "head": "worse"}))
    assert any(p.startswith("Not ranked as beaten: full collapsed: 100 % of its validation predictions") for p in picks)
    # every strategy flagged: no verdict, only what to do
    frame["diagnosis"] = "still improving"
    picks, _ = recommendation(frame, records, fam(None))
    assert picks[0].startswith("No verdict") and sum(p.startswith("Not ranked") for p in picks) == 3


def test_a_still_improving_strategy_better_than_the_reference_is_the_provisional_answer():
    records = [{k: v for k, v in r.items() if k != "_probs"} for r in study(baselines=False)]
    frame = frame_of(records)
    picks, _ = recommendation(frame, records, fam("lora:r=8", {"full": "better", "head": "worse"}))
    rec = next(p for p in picks if p.startswith("Recommended: "))
    assert rec.startswith("Recommended: full — provisionally: it is better on test macro-F1 than lora:r=8, the best "
                          "converged configuration on validation (Δ +0.050 [")
    assert "Holm p = 0.001" in rec and "rerun with more epochs" in rec
    # collapsed: never the answer, however it scores
    collapsed = frame.copy()
    collapsed.loc[collapsed["strategy"] == "full", "diagnosis"] = "collapsed + still improving"
    picks, _ = recommendation(collapsed, records, fam("lora:r=8", {"full": "better", "head": "worse"}))
    assert not any("provisionally" in p for p in picks)
    # not shown better (inconclusive): not the provisional answer either
    picks, _ = recommendation(frame, records, fam("lora:r=8", {"full": "inconclusive", "head": "worse"}))
    assert not any("provisionally" in p for p in picks)


def test_the_answer_is_the_cheapest_shown_equivalent_and_inconclusive_ones_say_what_would_settle_them():
    records = [{k: v for k, v in r.items() if k != "_probs"} for r in study(converged_full=True, baselines=False)]
    frame = frame_of(records)  # train s: full 60, lora:r=8 30, head 5
    picks, _ = recommendation(frame, records, fam("full", {"lora:r=8": "equivalent", "head": "inconclusive"}))
    rec = next(p for p in picks if p.startswith("Recommended: "))
    assert rec.startswith("Recommended: lora:r=8 — equivalent to full, the best on validation, within ±1 point of "
                          "test macro-F1 (Δ +0.001 [")
    assert "TOST Holm p = 0.001), and 2.0× cheaper to train" in rec
    assert "not shown equivalent or different: head (Δ -0.006" in rec and "about 9 seeds would settle it" in rec
    # one better than the validation pick: it is the answer
    picks, _ = recommendation(frame, records, fam("full", {"lora:r=8": "better", "head": "worse"}))
    assert next(p for p in picks if p.startswith("Recommended: ")).startswith(
        "Recommended: lora:r=8 — better on test macro-F1 than full, the best on validation (Δ +0.050")
    # one seed: provisional, and it says how to get a verdict
    picks, _ = recommendation(frame, records, fam("full", {"lora:r=8": "inconclusive"}, seed_level=False))
    assert next(p for p in picks if p.startswith("Recommended: ")).startswith(
        "Recommended: full — provisionally: the best on validation macro-F1; no comparison with it is a claim about "
        "the methods; one seed per configuration measures no seed noise — run 3 or more seeds")
    # the reference kept, no substitute: the ones shown worse than it are named with their test
    picks, _ = recommendation(frame, records, fam("full", {"lora:r=8": "inconclusive", "head": "worse"}))
    rec = next(p for p in picks if p.startswith("Recommended: "))
    assert rec.startswith("Recommended: full — the best on validation macro-F1; no other configuration is shown "
                          "equivalent; worse than full: head (Δ ")
    assert rec.index("worse than full: head") < rec.index("not shown equivalent or different: lora:r=8")
    assert verdict_module._eq(0.0004) == "< 0.001" and verdict_module._eq(0.21) == "= 0.210"  # never "p = < 0.001"


def test_baselines_are_the_floor_never_marked_best_and_the_answer_only_when_nothing_clears_them():
    records = [{k: v for k, v in r.items() if k != "_probs"} for r in study(converged_full=True)]
    frame = frame_of(records)
    assert list(analysis.baseline_mask(frame)) == [False, False, False, True, True]
    marks = analysis.best_rows(frame)
    assert marks["train_time_s"] == {2} and marks["trainable_params"] == {0}  # not the baselines' 0 parameters
    # what means nothing for a baseline (it trains no network) is missing, shown "—"; its fit time is kept
    reference = analysis.baseline_mask(frame)
    assert frame.loc[reference, list(analysis.NOT_FOR_BASELINES)].isna().all().all()
    assert frame.loc[~reference, list(analysis.NOT_FOR_BASELINES)].notna().all().all()
    assert frame.loc[reference, "train_time_s"].tolist() == [0.01, 0.5]
    cleared = fam("lora:r=8", {"full": "worse", "head": "worse"},
                  {"full": "inconclusive", "lora:r=8": "better", "head": "better"})
    picks, caveats = recommendation(frame, records, cleared)
    assert picks[0].startswith("Highest mean test macro-F1: lora:r=8")
    floor = next(p for p in picks if p.startswith("Baseline floor"))
    assert floor == ("Baseline floor: tfidf-logreg (test macro-F1 0.750); better than it: lora:r=8, head; not shown "
                     "better: full (each a two-level test against the floor, Holm-corrected with the ranking).")
    assert "Learning rate differs per strategy (full 0.001, lora:r=8 0.001" not in " ".join(caveats)  # no baselines
    # nothing clears the floor, each shown worse or equivalent: the cheapest baseline is the answer, and why
    weak = frame.copy()
    weak.loc[~analysis.baseline_mask(weak), "test_macro_f1"] = [0.6, 0.7, 0.65]
    beaten = fam("lora:r=8", {"full": "worse", "head": "worse"},
                 {"full": "worse", "lora:r=8": "equivalent", "head": "worse"})
    picks, _ = recommendation(weak, records, beaten)
    assert picks[0].startswith("Recommended: tfidf-logreg (a baseline) — no fine-tuning strategy is better than the "
                               "baseline floor (each is worse or equivalent, Holm-corrected): the best, lora:r=8, "
                               "scores test macro-F1 0.700 against 0.750")
    assert not any(p.startswith("Recommended: lora") for p in picks)
    # not shown either way (inconclusive) with seed-level evidence: no baseline answer
    unsure = fam("lora:r=8", {"full": "worse", "head": "worse"},
                 {"full": "worse", "lora:r=8": "inconclusive", "head": "worse"})
    picks, _ = recommendation(weak, records, unsure)
    assert not picks[0].startswith("Recommended: tfidf-logreg")


def test_flagged_runs_that_already_clear_the_floor_never_make_a_baseline_the_answer():
    """The default study at 3 epochs: every strategy still improving, some better than tfidf-logreg.
    That is no verdict between them, and fine-tuning is worth it: not "use the baseline"."""
    records = [{k: v for k, v in r.items() if k != "_probs"} for r in study()]
    frame = frame_of(records)
    frame.loc[~analysis.baseline_mask(frame), "diagnosis"] = "still improving"
    frame.loc[~analysis.baseline_mask(frame), "test_macro_f1"] = [0.80, 0.85, 0.70]
    flagged = fam(None, {}, {"full": "better", "lora:r=8": "better", "head": "worse"})
    picks, _ = recommendation(frame, records, flagged)
    assert not any(p.startswith("Recommended:") for p in picks)
    verdict = next(p for p in picks if p.startswith("No verdict"))
    assert verdict.endswith("Already better than the baseline floor (tfidf-logreg) on test macro-F1: full, lora:r=8; "
                            "fine-tuning is worth it here.")
    # and when every flagged run is shown worse than it, the cheapest baseline is the answer
    frame.loc[~analysis.baseline_mask(frame), "test_macro_f1"] = [0.60, 0.65, 0.70]
    picks, _ = recommendation(frame, records, fam(None, {}, {"full": "worse", "lora:r=8": "worse", "head": "worse"}))
    assert picks[0].startswith("Recommended: tfidf-logreg (a baseline) — no fine-tuning strategy is better than")


def _section(html: str, key: str) -> str:
    found = re.search(rf'<section id="{key}">(.*?)</section>', html, re.S)
    return found.group(1) if found else ""


def test_the_report_marks_flagged_runs_lists_their_advice_and_shows_baselines_as_reference_rows(tmp_path):
    out = store_of(tmp_path, study())
    html = build_report(out)["html"].read_text()
    headline = _section(html, "headline")
    assert "full ⚠" in headline and "majority (baseline)" in headline and "tfidf-logreg (baseline)" in headline
    assert "reference: no fine-tuning" in headline and "floor every fine-tuning must clear" in headline
    checks = _section(html, "convergence")
    assert "full did not converge: best epoch = last (3 of 3), +6.0 points" in checks
    assert 'data-table="convergence"' in checks and "<td>majority" not in checks  # baselines are not diagnosed
    recommendation = _section(html, "recommendation")
    assert "Not ranked as beaten: full did not converge" in recommendation and "Baseline floor" in recommendation
    assert 'id="lr-sensitivity"' not in html and not (out / "figures" / "lr_sensitivity.png").exists()


def test_learning_rate_sensitivity_shows_each_rung_the_choice_and_the_budget_as_compute(tmp_path):
    tuning, n = [], 200
    # full: three candidates at 2 epochs on two seeds, one beyond the grid's top; the best at 3 epochs
    for cand, lr, values, extra in ((0, 1e-4, (0.60, 0.62), False), (1, 1e-3, (0.70, 0.72), False),
                                    (2, 1e-2, (0.66, 0.64), True)):
        for seed, v in enumerate(values):
            tuning.append(rung_trial("full", lr, 3e-3, cand, 2, seed, v, n, extra))
            n += 1
    tuning += [rung_trial("full", 1e-3, 3e-3, 1, 3, seed, v, n + seed) for seed, v in enumerate((0.75, 0.77))]
    # lora:r=8: the best at 3 epochs (0.80) is within the margin of the one nearer its default (0.795)
    n += 2
    for cand, lr, values, final in ((0, 5e-4, (0.79, 0.79), 0.795), (1, 1.6e-3, (0.80, 0.80), 0.80)):
        for seed, v in enumerate(values):
            tuning.append(rung_trial("lora:r=8", lr, 3e-3, cand, 2, seed, v, n))
            n += 1
        tuning += [rung_trial("lora:r=8", lr, 3e-3, cand, 3, seed, final, n + seed) for seed in range(2)]
        n += 2
    records = study(converged_full=True)
    for r in records:
        if r["strategy"] == "lora:r=8":
            r["resolved"].update(lr=5e-4, head_lr=3e-3)
        elif r["strategy"] == "full":
            r["resolved"]["head_lr"] = 3e-3
    out = store_of(tmp_path, records, tuning)
    html = build_report(out)["html"].read_text()
    section = _section(html, "lr-sensitivity")
    assert "Every strategy had the same budget: 2 candidates, rungs at 2, 3 epochs" in section
    assert "full: 8 trials, 18 epochs; lora:r=8: 8 trials, 20 epochs" in section
    assert "full: lr 0.001, head lr 0.003, validation macro-F1 0.760 at 3 epochs (mean of 2 seeds)." in section
    assert ("lora:r=8: lr 0.0005, head lr 0.003, validation macro-F1 0.795 at 3 epochs (mean of 2 seeds) — within "
            "the verdict&#x27;s margin (0.01) of the best (0.800 at lr 0.0016)") in section
    budget = re.search(r'<table data-table="tuning-budget">(.*?)</table>', section, re.S).group(1)
    cells = re.findall(r"<tr><td>full</td>(.*?)</tr>", budget)[0]
    # 3 candidates (1 beyond the grid), 2 seeds, 8 trials, 18 epochs, 90 s in tuning, 60 s of final runs: 1.5x
    assert re.findall(r">([^<]+)</td>", cells) == ["3", "1", "2", "8", "18", "90", "60", "1.5"]
    rows = re.search(r'<table data-table="tuning-trials">(.*?)</table>', section, re.S).group(1)
    assert rows.count(">cut<") == 1 and ">cut (edge of the grid)<" in rows and rows.count(">went on<") == 3
    assert rows.count(">chosen<") == 2 and ">trained to the end<" in rows
    assert (out / "figures" / "lr_sensitivity.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "tuned per strategy with the same budget" in _section(html, "recommendation")


def test_learning_rate_sensitivity_of_trials_stored_by_the_earlier_asynchronous_search(tmp_path):
    tuning = [trial("full", lr, v, n, p) for n, (lr, v, p) in
              enumerate([(5e-5, 0.70, None), (1.6e-4, 0.78, None), (1.6e-5, 0.55, 1), (5e-4, 0.40, 1)])]
    tuning += [trial("lora:r=8", lr, v, 4 + n, p) for n, (lr, v, p) in
               enumerate([(5e-4, 0.80, None), (1.6e-3, 0.82, None), (1.6e-4, 0.61, 1), (5e-3, None, 1)])]
    out = store_of(tmp_path, study(converged_full=True), tuning)
    inputs = load_inputs(out)
    assert inputs.study == "syn" and len(inputs.tuning) == 8  # the ":tuning" study is never the default one
    html = build_report(out)["html"].read_text()
    section = _section(html, "lr-sensitivity")
    assert "Every strategy had the same budget: 4 candidates, rungs at 1, 3 epochs" in section
    assert "full: 4 trials, 8 epochs; lora:r=8: 4 trials, 8 epochs" in section
    assert 'data-table="tuning-budget"' in section and 'data-table="tuning-trials"' in section
    rows = re.search(r'<table data-table="tuning-trials">(.*?)</table>', section, re.S).group(1)
    assert rows.count(">cut<") == 4 and "0.00016" in rows and "0.0016" in rows  # pruned trials are cut ones
    # each strategy once, its rate once: never "full:lr=0.00016 0.00016", never once per seed
    seeded = [{**r, "strategy": "full:lr=0.00016", "resolved": {**r["resolved"], "lr": 1.6e-4, "seed": s}}
              for s, r in enumerate([study(converged_full=True)[0]] * 3)]
    rates = next(c for c in analysis.caveats(frame_of(seeded), seeded, tuned=True) if "were tuned" in c)
    assert rates.endswith("(see Learning-rate sensitivity): full:lr=0.00016.")
    # unequal budgets are said, not hidden
    out2 = store_of(tmp_path / "b", study(converged_full=True), tuning[:-1])
    assert "did not have the same number of candidates" in build_report(out2)["html"].read_text()


def seeded_study():
    """full, lora:r=8 and head over 3 seeds each, plus the two baselines: lora is clearly ahead of head."""
    out = []
    for strategy, correct, f1s in (("full", 50, (0.5, 0.80, 0.805)), ("lora:r=8", 54, (0.5, 0.85, 0.852)),
                                   ("head", 40, (0.5, 0.70, 0.701))):
        for seed in range(3):
            probs = predictions(correct + seed)
            r = full_record(strategy, len(out), probs, f1s, label=f"{strategy} seed={seed}")
            r["resolved"]["seed"] = seed
            out.append({**r, "_probs": probs})
    out += [{**full_record(s, len(out) + i, p, (), k, t), "_probs": p} for i, (s, p, k, t) in enumerate(
        [("majority", predictions(0, one_class=True), "majority", 0.01), ("tfidf-logreg", predictions(45),
                                                                          "tfidf-logreg", 0.5)])]
    return out


def test_the_ranking_shows_four_outcomes_the_margin_holm_and_labelled_p_values(tmp_path, capsys):
    from .conftest import cli, one_error

    out = store_of(tmp_path, seeded_study())
    html = build_report(out)["html"].read_text()
    section = _section(html, "significance")
    assert "The reference is lora:r=8: the highest mean validation macro-F1" in section
    # 2 against the reference + 3 against the floor
    assert "Holm–Bonferroni adjusted across the family of 5 comparisons with seed-level evidence" in section
    assert "within ±1 point (the margin, --margin)" in section
    assert "two-level test over 3 seeds × 60 test examples" in section and "macro-F1" in section
    assert "reference (best on validation)" in section
    assert "<td>worse</td>" in section  # head: 40-42 of 60 right against lora's 54-56
    assert "tied" not in section and "McNemar" not in section
    # the verdict's metric is a report option: nothing retrains
    code, _, _ = cli(capsys, "report", str(out), "--metric", "accuracy", "--margin", "0.02")
    assert code == 0
    section = _section((out / "report.html").read_text(), "significance")
    assert "Test accuracy of each configuration" in section and "within ±2 points" in section
    code, _, err = cli(capsys, "report", str(out), "--metric", "auc")
    assert code == 2 and "verdict: field 'metric' must be one of" in one_error(err) and "'auc'" in err


def test_the_verdict_settings_are_spec_fields_for_run_and_the_api(capsys, tmp_path):
    from tunebench.api.spec import build_spec

    from .conftest import cli, one_error

    spec = build_spec(None, {"metric": "accuracy", "margin": 0.02})
    assert (spec.verdict.metric, spec.verdict.margin, spec.verdict.alpha) == ("accuracy", 0.02, 0.05)
    code, _, err = cli(capsys, "run", "--metric", "auc", "-o", str(tmp_path / "o"))
    assert code == 2 and "metric" in one_error(err) and "'auc'" in err
    assert not (tmp_path / "o").exists()  # refused before anything is written


def test_a_last_rung_of_one_is_reported_as_chosen_and_trained_by_the_final_runs(tmp_path, monkeypatch):
    from tunebench.report import figures

    drawn = {}
    real = figures.lr_sensitivity
    monkeypatch.setattr(figures, "lr_sensitivity", lambda points, *a, **k: drawn.update(points) or real(points, *a, **k))
    tuning = [rung_trial("full", lr, 3e-3, cand, 2, 0, v, 200 + cand, rungs=(2, 5))
              for cand, lr, v in ((0, 1e-4, 0.60), (1, 1e-3, 0.70), (2, 1e-2, 0.66))]
    records = study(converged_full=True)
    for r in records:
        if r["strategy"] == "full":
            r["resolved"].update(lr=1e-3, head_lr=3e-3)
    out = store_of(tmp_path, records, tuning)
    section = _section(build_report(out)["html"].read_text(), "lr-sensitivity")
    final = next(r for r in records if r["strategy"] == "full")["val"]["macro_f1"]
    assert ("full: lr 0.001, head lr 0.003, validation macro-F1 0.700 at 2 epochs (mean of 1 seed); the only "
            "candidate left for the last rung (5 epochs), which was not trained: its final runs are that training."
            ) in section
    rows = re.search(r'<table data-table="tuning-trials">(.*?)</table>', section, re.S).group(1)
    assert rows.count(">cut<") == 2
    assert ">chosen: the last rung&#x27;s only candidate, trained there by the final runs<" in rows
    # the figure draws the final runs' validation score at the last rung as the fully trained point
    assert (1e-3, pytest.approx(final), False, 5) in drawn["full"]
