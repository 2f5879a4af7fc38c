"""Everything the report reads, gathered once: records and predictions from the store, the test
texts rebuilt from the stored data spec (checked against the stored split hash), and the dataset
profile if one was written."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tunebench.errors import SpecError
from tunebench.results.store import STORE_NAME, Store, label_of
from tunebench.spec import metrics

PROFILE_NAME = "dataset_profile.json"
#: a study's tuning trials are stored as the study ``<name>:tuning``
TUNING_SUFFIX = ":tuning"
#: and its baselines (majority, tfidf-logreg: study.driver.run_baselines) as the study ``<name>:baselines``
BASELINES_SUFFIX = ":baselines"


@dataclass
class TestTexts:
    """The test split's texts (pairs joined) in prediction order, or why they are unavailable."""

    texts: list[str] | None
    note: str
    split_texts: dict[str, list[str]] = field(default_factory=dict)
    split_labels: dict[str, list[int]] = field(default_factory=dict)


@dataclass
class ReportInputs:
    """``runs``: every finished run; ``records``: one run per configuration (its first seed), named by
    the configuration (``strategy`` holds the group, e.g. ``lora:r=8 lr=0.0005``) — the rows of
    the report's per-configuration sections.  Without sweeps or seeds the two lists are the same."""

    out_dir: Path
    study: str
    records: list[dict[str, Any]]
    predictions: dict[str, tuple[list[int], list[list[float]]]]
    texts: TestTexts
    profile: dict[str, Any] | None
    runs: list[dict[str, Any]] = field(default_factory=list)
    unfinished: list[dict[str, Any]] = field(default_factory=list)  # diverged / failed / interrupted runs
    tuning: list[dict[str, Any]] = field(default_factory=list)  # the tuning trials (study "<name>:tuning")
    #: the verdict's settings (spec.parts.VerdictSpec): from the study's spec, or the report's options
    metric: str = "macro_f1"
    margin: float = 0.01
    alpha: float = 0.05
    cache: dict[Any, Any] = field(default_factory=dict, repr=False, compare=False)  # computed once per inputs

    @property
    def repeated(self) -> bool:
        """True when some configuration ran with several seeds."""
        return len(self.runs) > len(self.records)


def store_path(out_dir: Path) -> Path:
    """``out_dir``'s study store, or one sentence saying there is none (the report and ``tb.load``)."""
    path = Path(out_dir) / STORE_NAME
    if not path.is_file():
        raise SpecError(f"no study store in {out_dir} (expected {path.name}); run 'tunebench run -o {out_dir}' first")
    return path


#: the fields of a finished record the report reads, and their types (a store edited by hand, or by
#: another program, may hold anything: one sentence, not a TypeError deep in a section)
SHAPE = {"test": dict, "val": dict, "params": dict, "resources": dict, "curves": list, "data": dict, "model": dict,
         "environment": dict, "resolved": dict, "position": int, "strategy": str, "run_id": str}
NUMBERS = {"test": ("accuracy", "macro_f1"), "val": ("macro_f1",), "params": ("trainable", "total")}


def check_shape(record: dict[str, Any], path: Path) -> None:
    """One :class:`StoreError` sentence when a finished record's fields are not of the types stored."""
    from tunebench.errors import StoreError

    wrong = [k for k, kind in SHAPE.items() if k in record and not isinstance(record[k], kind)
             and not (k == "test" and record[k] is None)]
    wrong += [f"{k}.{n}" for k, names in NUMBERS.items() if isinstance(record.get(k), dict)
              for n in names if n in record[k] and (isinstance(record[k][n], bool)
                                                   or not isinstance(record[k][n], int | float))]
    data = record.get("data")
    if isinstance(data, dict) and not (isinstance(data.get("label_names"), list)
                                       and all(isinstance(n, str) for n in data["label_names"])):
        wrong.append("data.label_names")
    if wrong:
        raise StoreError(f"the study store '{path}' holds a record with fields of the wrong type (attempt "
                         f"{record.get('attempt')}: {', '.join(wrong[:6])}); nothing was written to it; it was "
                         "changed outside tunebench: restore it from a copy, or run the study again in another "
                         "--output")


def load_inputs(out_dir: Path, study: str | None = None, verdict: dict[str, Any] | None = None) -> ReportInputs:
    """Read the store in ``out_dir``; ``study`` defaults to the one that ran last; ``verdict``: settings
    that override the stored spec's (``metric``, ``margin``, ``alpha``; None values are ignored)."""
    out_dir = Path(out_dir)
    with Store(store_path(out_dir), readonly=True) as store:
        stored = store.records()
        everything = [r for r in stored if r["status"] == "finished"]
        for record in everything:
            check_shape(record, store.path)
        if not everything:
            raise SpecError(f"the store in {out_dir} holds no finished runs; run a study first")
        study = choose_study(store, everything, study, out_dir)
        runs, preds = verdict_runs(store, study, everything)
        unfinished = _unfinished(store.history(study), [r for r in stored if r["study"] == study], runs)
        tuning = tuning_records(store, study)
    records = representatives(runs)
    return ReportInputs(out_dir, study, records, preds, load_test_texts(records[0]), load_profile(out_dir), runs,
                        unfinished, tuning, **verdict_settings(records[0], verdict))


def verdict_settings(record: dict[str, Any], overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """The verdict's metric, margin and alpha: the study spec's ``verdict`` section (defaults for a study
    stored before it had one), then ``overrides`` (the report's options) where they are not None."""
    from pydantic import ValidationError

    from tunebench.spec.parts import VerdictSpec, _explain

    stored = (record.get("study_spec") or {}).get("verdict") or {}
    given = {k: v for k, v in (overrides or {}).items() if v is not None}
    try:
        settings = VerdictSpec(**{**stored, **given}).model_dump()
        metrics.check_task(settings["metric"], (record.get("data") or {}).get("task") or "single_label", "--metric")
        return settings
    except ValidationError as exc:
        raise SpecError(_explain(exc, "verdict")) from None
    except ValueError as exc:  # a metric of another task shape (micro_f1 of a single-label study)
        raise SpecError(str(exc)) from None


def choose_study(store: Store, records: list[dict[str, Any]], study: str | None, out_dir: Path) -> str:
    """``study`` if ``records`` hold it (else one sentence naming the studies there); None: the study
    planned last among them, never a study's tuning trials or baselines (the report and the API alike)."""
    names = sorted({r["study"] for r in records})
    if study is None:
        finals = [n for n in names if not n.endswith((TUNING_SUFFIX, BASELINES_SUFFIX))] or names
        return store.latest_study(finals) or max((r for r in records if r["study"] in finals),
                                                 key=lambda r: r["finished_at"])["study"]
    if study not in names:
        raise SpecError(f"no study named '{study}' in {out_dir} (studies there: {', '.join(names)})")
    return study


def verdict_runs(store: Store, study: str, finished: list[dict[str, Any]] | None = None
                 ) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """What a study's verdict is computed from (the report and the Python API alike): its finished runs,
    then its baselines' (study ``<name>:baselines``; a baseline listed as a strategy is a row already),
    and their stored test predictions by run id."""
    finished = [r for r in store.records() if r["status"] == "finished"] if finished is None else finished
    runs = [r for r in finished if r["study"] == study]
    kinds = {r["spec"]["kind"] for r in runs}
    runs += [r for r in finished if r["study"] == study + BASELINES_SUFFIX and r["spec"]["kind"] not in kinds]
    return runs, {r["run_id"]: p for r in runs if (p := store.predictions_of(r)) is not None}


def tuning_records(store: Store, study: str) -> list[dict[str, Any]]:
    """The tuning trials of ``study`` (stored as study ``<study>:tuning``), finished or pruned."""
    return [r for r in store.records(study + TUNING_SUFFIX)
            if r.get("status") in ("finished", "pruned") and isinstance(r.get("tuning"), dict)]


def _unfinished(history: list[dict[str, Any]], current: list[dict[str, Any]],
                finished: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The newest unfinished attempt of each row of the study's plan, unless the row finished later
    (an attempt that failed after a finished result, e.g. an interrupted ``--force`` rerun, is listed:
    the finished result is the one shown)."""
    rows = {label_of(r) for r in current}
    done = {label_of(r): r["finished_at"] for r in finished}
    latest: dict[str, dict[str, Any]] = {}
    for r in history:  # oldest first: the last one of each label wins
        if r["status"] not in ("finished", "pruned") and label_of(r) in rows:
            latest[label_of(r)] = r
    order = {label_of(r): i for i, r in enumerate(current)}
    return sorted((r for label, r in latest.items() if r["finished_at"] > done.get(label, "")),
                  key=lambda r: order[label_of(r)])


def representatives(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The first run (lowest seed) of each configuration, named by its configuration."""
    from tunebench.report.significance import groups

    return [{**rs[0], "strategy": group} for group, rs in groups(runs).items()]


def load_test_texts(record: dict[str, Any]) -> TestTexts:
    """Rebuild the splits from the stored data spec and seed; use them only if the test hash matches."""
    from tunebench.data.bundle import SPLITS
    from tunebench.data.loading import load_dataset_bundle
    from tunebench.errors import TunebenchError
    from tunebench.spec.parts import DataSpec

    try:
        bundle = load_dataset_bundle(DataSpec.model_validate(record["study_spec"]["data"]),
                                     seed=record["resolved"]["seed"])
    except (TunebenchError, OSError, ValueError) as exc:
        return TestTexts(None, f"The test texts could not be reloaded ({exc}); the analysis below uses "
                               "labels and probabilities only.")
    stored = record["data"]["hashes"]["test"]
    if bundle.hashes()["test"] != stored:
        return TestTexts(None, f"The data now gives a different test split (hash {bundle.hashes()['test']}, "
                               f"stored {stored}): the data changed since the study ran, so texts are not shown.")
    joined = {s: _join(getattr(bundle, s)) for s in SPLITS}
    return TestTexts(joined["test"], f"Test texts rebuilt from the stored data spec (split hash {stored} matches).",
                     joined, {s: list(getattr(bundle, s).labels) for s in SPLITS})


def _join(split: Any) -> list[str]:
    if split.pairs is None:
        return list(split.texts)
    return [f"{a} ‖ {b}" for a, b in zip(split.texts, split.pairs, strict=True)]


def load_profile(out_dir: Path) -> dict[str, Any] | None:
    path = out_dir / PROFILE_NAME
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
