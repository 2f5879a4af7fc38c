"""Convergence diagnostics of one run, from its training and validation data only.

A run that was not trained is no evidence that its strategy is worse: :func:`diagnose` says when
a run *collapsed*, is *still improving* or is *overfitting*, with the numbers, and one sentence of
advice per flag.  The recommendation refuses to rank a collapsed or still-improving run as
beaten.  These flags decide what may be ranked, so they never read the test split: the test split
decides nothing but the final scores.  Plain Python and numpy (no torch): it runs on stored records
too (:func:`diagnose_record`).

The rules (thresholds are module constants):

- **collapsed**: at least :data:`COLLAPSE_SHARE` (90 %) of the validation predictions at the kept
  epoch are one class — unless the validation labels themselves are that concentrated in that class
  (then predicting it is the data, not a collapse, and only the next rule decides) — or the kept
  epoch's validation macro-F1 is within :data:`COLLAPSE_MARGIN` (0.02) of the majority baseline's on
  the same validation split (given, else computed from the labels: the constant prediction of their
  most frequent class).
- **still improving**: the best epoch (highest validation macro-F1, the first one on ties, as the
  engine keeps it) is the last one and validation macro-F1 gained at least :data:`IMPROVING_GAIN`
  (0.01, one point) in it against the epoch before — for a one-epoch run, against the validation
  score before training (``initial``, epoch 0, which the engine measures).  A one-epoch run with no
  epoch 0 (stored before it was measured) has no evidence that it converged, and is flagged too.
- **overfitting**: the last epoch's validation loss is at least :data:`OVERFIT_RISE` (10 %) above
  the lowest validation loss of the run *and* at least :data:`OVERFIT_MIN_RISE` (0.02) above it in
  absolute terms, the minimum came at an earlier epoch, and the training loss fell from that epoch
  to the last.  The checkpoint kept is still the best-F1 epoch, so this flag does not stop a run
  from being ranked; it says the later epochs were wasted.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

COLLAPSE_SHARE = 0.90
COLLAPSE_MARGIN = 0.02
IMPROVING_GAIN = 0.01
OVERFIT_RISE = 0.10
OVERFIT_MIN_RISE = 0.02
_EPS = 1e-9

#: a regression whose validation predictions vary less than this share of the target's sd predicts a constant
CONSTANT_SPREAD = 0.05
#: the flags, most serious first: ``diagnosis`` is the first one raised, else "ok"
FLAGS = ("collapsed", "still improving", "overfitting")
#: flags that stop a run from being called beaten: it was not trained, so it lost nothing
UNRANKABLE = ("collapsed", "still improving")
#: kinds of the reference methods: no curves, never diagnosed
BASELINE_KINDS = ("majority", "tfidf-logreg", "mean", "tfidf-ridge")


def macro_f1(labels: Sequence[int], preds: Sequence[int], n_classes: int) -> float:
    """Macro-F1 over the classes present in ``labels`` (as training.metrics computes it)."""
    y, p = np.asarray(labels, dtype=int), np.asarray(preds, dtype=int)
    scores = []
    for c in sorted(set(y.tolist())):
        tp = float(np.sum((y == c) & (p == c)))
        scores.append(2 * tp / float(np.sum(y == c) + np.sum(p == c)))
    return float(np.mean(scores)) if scores else 0.0


def majority_macro_f1_of(label_counts: Sequence[int]) -> float:
    """Macro-F1 of always predicting the most frequent class of ``label_counts`` (one count per class),
    over the classes present (count > 0)."""
    counts = np.asarray(label_counts, dtype=float)
    if counts.sum() == 0 or len(counts) == 0:
        return 0.0
    share = counts.max() / counts.sum()
    return float(2 * share / (1 + share) / int(np.sum(counts > 0)))


def _collapse(pred_counts: np.ndarray | None, label_counts: np.ndarray | None, val_f1: float | None,
              majority: float | None, majority_basis: str, predicted_sets: int | None = None,
              spread: float | None = None) -> tuple[bool | None, dict[str, Any]]:
    ev: dict[str, Any] = {}
    if spread is not None:  # a regression: the predictions' sd over the target's; near 0 is a constant
        ev["prediction_spread"] = round(float(spread), 4)
        ev["constant"] = bool(spread < CONSTANT_SPREAD)
    if predicted_sets is not None:  # multi-label: one label set answered for every example is a constant
        ev["predicted_sets"] = int(predicted_sets)
    top = int(pred_counts.argmax()) if pred_counts is not None and pred_counts.sum() else None
    if top is not None:
        ev["top_class"] = top
        ev["top_class_share"] = round(float(pred_counts[top] / pred_counts.sum()), 4)
    if label_counts is not None and label_counts.sum() and top is not None:
        ev["top_class_label_share"] = round(float(label_counts[top] / label_counts.sum()), 4)
    if majority is not None:
        ev["majority_macro_f1"], ev["majority_basis"] = round(majority, 4), majority_basis
    if val_f1 is not None:
        ev["val_macro_f1"] = round(val_f1, 4)
    by_share = top is not None and ev["top_class_share"] >= COLLAPSE_SHARE - _EPS and \
        ev.get("top_class_label_share", 0.0) < COLLAPSE_SHARE - _EPS
    by_f1 = val_f1 is not None and majority is not None and val_f1 <= majority + COLLAPSE_MARGIN + _EPS
    by_sets = (predicted_sets is not None and predicted_sets <= 1) or bool(ev.get("constant"))
    if top is None and predicted_sets is None and spread is None and not (val_f1 is not None and majority is not None):
        return None, ev
    return bool(by_share or by_f1 or by_sets), ev


def _improving(f1: list[float], initial: float | None) -> tuple[bool | None, dict[str, Any]]:
    if not f1:
        return None, {}
    best = int(np.argmax(f1)) + 1  # the first maximum: the epoch the engine keeps
    ev: dict[str, Any] = {"best_epoch": best, "epochs_run": len(f1)}
    before = [initial] if initial is not None else []
    points = before + f1
    if len(points) < 2:
        ev["unverified"] = True  # one epoch, no epoch 0: nothing shows it converged
        return True, ev
    ev["last_gain"] = round(points[-1] - points[-2], 4)
    return best == len(f1) and points[-1] - points[-2] >= IMPROVING_GAIN - _EPS, ev


def _overfitting(val_loss: list[float | None], train_loss: list[float | None]) -> tuple[bool | None, dict[str, Any]]:
    pairs = [(i, v, t) for i, (v, t) in enumerate(zip(val_loss, train_loss, strict=True), 1)
             if v is not None and t is not None and np.isfinite(v) and np.isfinite(t)]
    if len(pairs) < 2:
        return None, {}
    low = min(pairs, key=lambda p: p[1])
    last = pairs[-1]
    ev = {"val_loss_min": round(low[1], 4), "val_loss_min_epoch": low[0], "val_loss_last": round(last[1], 4),
          "train_loss_at_min": round(low[2], 4), "train_loss_last": round(last[2], 4)}
    rise = last[1] - low[1]
    ev["val_loss_rise_pct"] = round(100 * rise / max(abs(low[1]), _EPS), 1)
    flagged = (low[0] < last[0] and rise >= OVERFIT_MIN_RISE - _EPS and rise >= OVERFIT_RISE * abs(low[1]) - _EPS
               and last[2] < low[2])
    return flagged, ev


def _shown(evidence: dict[str, Any]) -> str:
    """The metric a diagnosis judged by (macro-F1 unless its evidence names another: a regression's R²)."""
    return {"r2": "R²"}.get(evidence.get("metric", ""), "macro-F1")


def advice_for(flag: str, evidence: dict[str, Any], label: str = "this run") -> str:
    """One sentence for ``flag``, with the numbers of ``evidence`` (re-rendered for any label)."""
    e = evidence
    if flag == "collapsed":
        share = e.get("top_class_share")
        what = (f"{100 * share:.0f} % of its validation predictions are one class (class {e.get('top_class')})"
                if share is not None and share >= COLLAPSE_SHARE - _EPS else
                "it answers the same label set for every validation example" if e.get("predicted_sets") == 1 else
                "it predicts nearly the same value for every validation example" if e.get("constant") else
                "its validation predictions are no better than a constant")
        score = e.get("val_macro_f1", e.get("test_macro_f1"))  # records diagnosed before 0.2 name the test split
        if score is not None and e.get("majority_macro_f1") is not None:
            floor = "mean" if e.get("metric") == "r2" else "majority"
            what += (f", validation {_shown(e)} {score:.3f} against the {floor} baseline's "
                     f"{e['majority_macro_f1']:.3f}")
        if e.get("fitted"):
            return (f"{label} collapsed: {what}; it is fitted by its own recipe, not tuned: check its options (C, "
                    "iterations, lr=) and the data before comparing it.")
        if e.get("tuned"):
            return (f"{label} collapsed: {what}, even at its tuned learning rate; widen tuning.lr or give it more "
                    "epochs before comparing it.")
        return (f"{label} collapsed: {what}; its learning rate is likely wrong for it — rerun with --tune "
                "(or set lr= for it) before comparing it.")
    if flag == "still improving" and e.get("unverified"):
        return (f"{label} has no evidence that it converged: one epoch and no validation score before training "
                "to compare it with; rerun it (the engine now measures epoch 0) or give it more epochs.")
    if flag == "still improving":
        return (f"{label} did not converge: best epoch = last ({e.get('best_epoch')} of {e.get('epochs_run')}), "
                f"+{100 * e.get('last_gain', 0.0):.1f} points of validation {_shown(e)} in it; "
                + ("its rate is already tuned: rerun with more epochs." if e.get("tuned")
                   else "rerun with --tune or more epochs."))
    if flag == "overfitting":
        return (f"{label} overfits: validation loss rose from {e['val_loss_min']:.3f} (epoch {e['val_loss_min_epoch']}) "
                f"to {e['val_loss_last']:.3f} (+{e['val_loss_rise_pct']:.0f} %) while training loss fell from "
                f"{e['train_loss_at_min']:.3f} to {e['train_loss_last']:.3f}; the kept epoch is the best-F1 one, but "
                "early stopping (training.early_stopping) or fewer epochs would save the time.")
    raise ValueError(f"unknown flag {flag!r}; one of {', '.join(FLAGS)}")


def diagnose(curves: list[dict[str, Any]], val_predictions: Sequence[int] | None = None,
             val_labels: Sequence[int] | None = None, majority_macro_f1: float | None = None,
             val_macro_f1: float | None = None, *, n_classes: int | None = None,
             label: str = "this run", pred_counts: Sequence[int] | None = None,
             label_counts: Sequence[int] | None = None, tuned: bool = False,
             initial: dict[str, Any] | None = None, fitted: bool = False,
             predicted_sets: int | None = None, metric: str = "macro_f1", spread: float | None = None) -> dict[str, Any]:
    """The diagnosis of one run: ``{"diagnosis", "flags", "evidence", "advice", "advices", "undecided"}``.

    ``curves``: the run's per-epoch dicts (``epoch, train_loss, val_loss, val_accuracy,
    val_macro_f1``); ``val_predictions`` / ``val_labels``: class ids on the validation split at the
    kept epoch; ``majority_macro_f1``: the majority baseline's validation macro-F1 (None: computed
    from ``val_labels``); ``val_macro_f1``: the run's at the kept epoch (None: computed from the
    predictions); ``n_classes``: the number of classes (None: from the ids seen); ``pred_counts`` /
    ``label_counts`` (per class) instead of the predictions and labels, as a stored confusion matrix
    gives them; ``initial``: the validation score before training (epoch 0); ``label`` names the run
    in the advice; ``fitted``: a fitted candidate (embed-logreg, setfit), which has no epochs by design — only
    collapse is judged, and its lack of curves is said as such, never flagged; ``predicted_sets``: a multi-label
    run's count of distinct label sets answered on validation (1: collapsed); ``metric``: the validation curve the
    checks read (``val_<metric>``; a regression's ``r2``, whose ``val_macro_f1`` / ``majority_macro_f1`` arguments
    then carry R²s); ``spread``: a regression's prediction sd over the target's (below
    :data:`CONSTANT_SPREAD`: collapsed).  ``diagnosis`` is the most
    serious flag (:data:`FLAGS`) or "ok"; ``advice`` one
    sentence per flag, joined (``advices``: by flag); ``undecided`` says which checks the inputs
    could not decide.
    """
    evidence: dict[str, Any] = {"tuned": True} if tuned else {}
    if metric != "macro_f1":
        evidence["metric"] = metric
    if fitted:
        evidence["fitted"] = True
    undecided: list[str] = []
    curves = sorted(curves or [], key=lambda c: c.get("epoch", 0))
    f1 = [float(c[f"val_{metric}"]) for c in curves if c.get(f"val_{metric}") is not None]

    if pred_counts is not None:
        pred_counts = np.asarray(pred_counts, dtype=float)
        label_counts = None if label_counts is None else np.asarray(label_counts, dtype=float)
    elif val_predictions is not None and len(val_predictions):
        k = max(n_classes or 0, int(np.max(val_predictions)) + 1,
                int(np.max(val_labels)) + 1 if val_labels is not None and len(val_labels) else 0)
        n_classes = k
        pred_counts = np.bincount(np.asarray(val_predictions, dtype=int), minlength=k).astype(float)
        if val_labels is not None and len(val_labels):
            label_counts = np.bincount(np.asarray(val_labels, dtype=int), minlength=k).astype(float)
            if val_macro_f1 is None:
                val_macro_f1 = macro_f1(val_labels, val_predictions, k)
    basis = "given"
    if majority_macro_f1 is None and label_counts is not None:
        majority_macro_f1, basis = majority_macro_f1_of(label_counts), "validation labels"
    flags: list[str] = []
    start = (initial or {}).get(f"val_{metric}")
    checks = {"collapsed": _collapse(pred_counts, label_counts, val_macro_f1, majority_macro_f1, basis, predicted_sets,
                                     spread)
              if pred_counts is not None or predicted_sets is not None or spread is not None
              or (val_macro_f1 is not None and majority_macro_f1 is not None) else (None, {}),
              "still improving": _improving(f1, None if start is None else float(start)),
              "overfitting": _overfitting([c.get("val_loss") for c in curves], [c.get("train_loss") for c in curves])}
    why_not = {"collapsed": "collapse: no validation predictions (nor a validation macro-F1 and a majority "
                            "baseline) to judge by",
               "still improving": "still improving: no validation curve",
               "overfitting": "overfitting: fewer than two epochs with both losses"}
    if fitted:  # no epochs: not a missing curve but the recipe (nothing to converge or overfit epoch by epoch)
        why_not.update({name: f"{name}: not applicable, fitted by its own recipe (no epochs)"
                        for name in ("still improving", "overfitting")})
    for name in FLAGS:
        raised, ev = checks[name]
        evidence.update(ev)
        if raised is None:
            undecided.append(why_not[name])
        elif raised:
            flags.append(name)
    advices = {flag: advice_for(flag, evidence, label) for flag in flags}
    return {"diagnosis": flags[0] if flags else "ok", "flags": flags, "evidence": evidence,
            "advice": " ".join(advices.values()), "advices": advices, "undecided": undecided}


def is_baseline(record: dict[str, Any]) -> bool:
    return bool(record.get("baseline")) or (record.get("spec") or {}).get("kind") in BASELINE_KINDS


def is_fitted_candidate(record: dict[str, Any]) -> bool:
    """A candidate fitted by its own recipe (embed-logreg, setfit): ranked like any run, never tuned by rates."""
    return bool(record.get("fitted")) and not is_baseline(record)


def baseline_diagnosis() -> dict[str, Any]:
    """What a baseline run gets: a reference, never flagged (a majority baseline *is* one class)."""
    return {"diagnosis": "baseline", "flags": [], "evidence": {}, "advice": "", "advices": {}, "undecided": []}


def diagnose_record(record: dict[str, Any], majority_macro_f1: float | None = None,
                    label: str | None = None, recompute: bool = False) -> dict[str, Any] | None:
    """The diagnosis of a stored record: ``record["diagnosis"]`` when it was judged on validation data
    (unless ``recompute``), else computed from its curves, its epoch-0 score and the kept epoch's
    validation confusion matrix (column sums are the predictions per class, row sums the labels),
    which every finished record holds.  A diagnosis stored before 0.2 judged collapse on the test
    split; it is recomputed, so no stored test prediction decides what is ranked.  None for a run
    without a result (diverged, failed, interrupted, pruned); :func:`baseline_diagnosis` for a baseline."""
    stored = record.get("diagnosis")
    if isinstance(stored, dict) and "flags" in stored and not recompute and \
            "test_macro_f1" not in (stored.get("evidence") or {}):
        return stored
    if record.get("status", "finished") != "finished":
        return None
    if is_baseline(record):
        return baseline_diagnosis()
    val = record.get("val") or {}
    matrix = val.get("confusion_matrix")
    preds = labels = None
    if matrix:
        m = np.asarray(matrix, dtype=float)
        preds, labels = m.sum(axis=0), m.sum(axis=1)
    name = label or record.get("label") or record.get("strategy", "this run")
    tuned = bool(((stored or {}).get("evidence") or {}).get("tuned")) if isinstance(stored, dict) else False
    regression = (record.get("data") or {}).get("task") == "regression"
    return diagnose(record.get("curves") or [], majority_macro_f1=majority_macro_f1,
                    val_macro_f1=val.get("r2" if regression else "macro_f1"), label=name, pred_counts=preds,
                    label_counts=labels, tuned=tuned, initial=record.get("val_initial"),
                    fitted=bool(record.get("fitted")), predicted_sets=val.get("predicted_sets"),
                    metric="r2" if regression else "macro_f1", spread=spread_of(val) if regression else None)


def spread_of(val: dict[str, Any]) -> float | None:
    """A regression's validation prediction sd over its target sd (None without them)."""
    sd, target = val.get("prediction_sd"), val.get("target_sd")
    return None if sd is None or not target else float(sd) / float(target)
