"""What a study gives back in Python: tables, the recommendation, the best run as a classifier, the report.

Every value is computed from the stored records, as ``results.csv``, ``results_by_config.csv`` and
the report are, so ``tb.load(folder)`` on a finished study gives the same answers as the
``Result`` its ``run()`` returned, without retraining.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import pandas as pd

from tunebench.errors import SpecError
from tunebench.results.decisions import headline


@dataclass
class Recommendation:
    """The report's recommendation as data: the configuration it picks and the sentence that says why.

    ``choice``: the recommended configuration (the cheapest of the reference and those shown equivalent
    to it, unless one is shown better); ``best``: the highest mean test macro-F1 (a point estimate);
    ``equivalent``: the reference (best on validation) and the configurations shown equivalent to it
    within the margin; ``outcomes``: each other configuration's outcome against the reference (better,
    worse, equivalent, inconclusive); ``picks`` and ``caveats``: the report's bullets.
    """

    choice: str
    best: str
    sentence: str
    equivalent: list[str] = field(default_factory=list)
    picks: list[str] = field(default_factory=list)
    caveats: list[str] = field(default_factory=list)
    outcomes: dict[str, str] = field(default_factory=dict)

    def __str__(self) -> str:
        return self.sentence


class Run:
    """One stored run: its record, metrics and checkpoint; :meth:`predict` classifies new text with it."""

    def __init__(self, record: dict[str, Any]) -> None:
        self.record = record

    label = property(lambda self: self.record.get("label", self.record["strategy"]))
    strategy = property(lambda self: self.record["strategy"])
    run_id = property(lambda self: self.record["run_id"])
    status = property(lambda self: self.record["status"])
    test = property(lambda self: dict(self.record.get("test") or {}))

    @property
    def checkpoint(self) -> Path | None:
        """The run's best checkpoint folder (None when checkpoints were not saved)."""
        where = self.record.get("checkpoint")
        return Path(where) if where else None

    def __repr__(self) -> str:
        name = headline(self.record)
        value = self.test.get(name)
        shown = "R²" if name == "r2" else "macro-F1"
        return f"Run({self.label!r}, {self.status}" + (f", test {shown} {value:.3f})" if value is not None else ")")

    def _predicted(self, texts: str | list[str], pair: str | None, **permissions: bool) -> tuple[list[str], list]:
        from tunebench.errors import ModelError
        from tunebench.training.inference import predict_texts

        texts = [texts] if isinstance(texts, str) else list(texts)
        if self.checkpoint is None and self.record.get("fitted"):  # a baseline, embed-logreg, setfit
            raise ModelError(f"run '{self.label}' is fitted by its own recipe and saves no model to predict with; "
                             "predict with a fine-tuned run (result.run(label))")
        if self.checkpoint is None:
            raise ModelError(f"run '{self.label}' has no checkpoint (the study ran with output.save_checkpoints "
                             "off); run it again with checkpoints to predict with it")
        return texts, predict_texts(self.checkpoint, texts, pair=pair, **permissions)

    def predict_proba(self, texts: str | list[str], pair: str | None = None, *, trust_remote_code: bool = False,
                      allow_pickle: bool = False) -> pd.DataFrame:
        """Class probabilities for each text: one row per text, one column per label (multi-label: each label's
        sigmoid; a regression: the prediction, one column)."""
        texts, found = self._predicted(texts, pair, trust_remote_code=trust_remote_code, allow_pickle=allow_pickle)
        return pd.DataFrame([probs for _, probs in found], index=pd.Index(texts, name="text"))

    def predict(self, texts: str | list[str], pair: str | None = None, **permissions: bool) -> list[str]:
        """The predicted label of each text (``pair``: the second sentence, for a sentence-pair model), as
        ``tunebench predict`` prints it: a multi-label run's label set joined by ``|`` (at its thresholds), a
        regression's value."""
        return [label for label, _ in self._predicted(texts, pair, **permissions)[1]]


class Report:
    """The study's report files; shown inline in Jupyter (``_repr_html_``: the HTML report, its styles scoped)."""

    def __init__(self, paths: dict[str, Path]) -> None:
        self.paths = paths
        self.html = paths["html"]
        self.markdown = paths["markdown"]

    def __repr__(self) -> str:
        return f"Report(html={str(self.html)!r}, markdown={str(self.markdown)!r})"

    def _repr_html_(self) -> str:
        from tunebench.report.html import STYLE

        page = self.html.read_text(encoding="utf-8")
        body = page[page.index("<body>") + len("<body>"):page.rindex("</body>")]
        return f'<div class="tunebench-report"><style>{scoped(STYLE, ".tunebench-report")}</style>{body}</div>'


def scoped(css: str, scope: str) -> str:
    """``css`` with every rule limited to ``scope`` (``body`` becomes the scope itself; nothing sticks)."""
    rules = []
    for rule in css.split("}"):
        if "{" not in rule:
            continue
        selectors, body = rule.split("{", 1)
        chosen = [scope if s.strip() == "body" else f"{scope} {s.strip()}" for s in selectors.split(",") if s.strip()]
        rules.append(f"{','.join(chosen)}{{{body.replace('position:sticky', 'position:static')}}}")
    return "".join(rules)


class Result:
    """A study's runs, from its ``run()`` or :func:`load`.

    ``table`` (one row per run, the columns of results.csv), ``by_config`` (per configuration: mean,
    std and 95% CI over its seeds), ``recommendation``, ``best`` (a :class:`Run`), ``runs``,
    ``unfinished``, ``report()``.
    """

    def __init__(self, out_dir: str | Path, study: str, records: list[dict[str, Any]],
                 prices: dict[str, float] | None = None) -> None:
        self.out_dir = Path(out_dir)
        self.study = study
        self.records = records
        self.prices = prices
        self.built: Report | None = None  # the report this result's run() built (report() shows it again)
        self.curve: Any = None  # a data.train_sizes study's curve (tunebench.report.curve.Curve); this is its largest size

    def __repr__(self) -> str:
        done = sum(r["status"] == "finished" for r in self.records)
        return f"Result(study={self.study!r}, runs={len(self.records)}, finished={done}, out_dir={str(self.out_dir)!r})"

    def _repr_html_(self) -> str:
        return self.table.to_html(index=False, na_rep="")

    @cached_property
    def table(self) -> pd.DataFrame:
        from tunebench.results.outputs import results_frame

        return results_frame(self.records)

    @cached_property
    def by_config(self) -> pd.DataFrame:
        from tunebench.results.outputs import config_frame

        return config_frame(self.table)

    @property
    def runs(self) -> list[Run]:
        return [Run(r) for r in self.records]

    @property
    def finished(self) -> list[dict[str, Any]]:
        return [r for r in self.records if r["status"] == "finished"]

    @property
    def unfinished(self) -> list[Run]:
        """Runs that diverged, failed or were interrupted (the next run of the study tries them again)."""
        return [Run(r) for r in self.records if r["status"] != "finished"]

    def run(self, label: str) -> Run:
        """The run named ``label`` (as in ``table['label']``)."""
        for r in self.records:
            if r.get("label", r["strategy"]) == label:
                return Run(r)
        labels = ", ".join(r.get("label", r["strategy"]) for r in self.records)
        raise SpecError(f"no run labelled '{label}' in study '{self.study}' (runs: {labels})")

    def _require_finished(self) -> list[dict[str, Any]]:
        if not self.finished:
            raise SpecError(f"study '{self.study}' has no finished runs; run it first")
        return self.finished

    @cached_property
    def recommendation(self) -> Recommendation:
        """The report's recommendation, computed as the report computes it (significance and cost)."""
        from tunebench.report.analysis import baseline_mask
        from tunebench.report.cost import DEFAULT_PRICES
        from tunebench.report.inputs import load_inputs
        from tunebench.report.verdict import configuration_frame, verdict

        self._require_finished()
        inputs = load_inputs(self.out_dir, self.study)  # what the report reads: the same verdict
        frame = configuration_frame(inputs, dict(DEFAULT_PRICES if self.prices is None else self.prices))
        found = verdict(inputs, frame)
        tuned_frame = frame[~baseline_mask(frame)]  # a baseline is a reference row, never "the best run"
        best = str((tuned_frame if len(tuned_frame) else frame).sort_values(
            f"test_{inputs.metric}", ascending=False, kind="stable").iloc[0]["strategy"])
        picks, caveats, equivalent = found.picks, found.caveats, found.equivalent
        sentence = next((p for p in picks if p.startswith("Recommended: ")), picks[0])
        names = set(frame["strategy"])
        named = sentence.removeprefix("Recommended: ").split(" — ")[0]
        choice = named if sentence.startswith("Recommended: ") and named in names else best
        return Recommendation(choice=choice, best=best, sentence=sentence, equivalent=list(equivalent or [best]),
                              picks=picks, caveats=caveats, outcomes=found.family.outcomes() if found.family else {})

    def _first_of(self, config: str) -> Run:
        from tunebench.report.significance import group_of

        found = next((r for r in self.finished if group_of(r) == config), None)
        if found is None:  # a baseline: a reference row of the study, stored beside it
            raise SpecError(f"'{config}' is a baseline (a reference row with no saved model); "
                            "predict with one of the study's runs instead")
        return Run(found)

    @property
    def best(self) -> Run:
        """The run of the configuration with the highest mean test macro-F1 (its first seed)."""
        return self._first_of(self.recommendation.best)

    @property
    def recommended(self) -> Run:
        """The run of the recommended configuration (its first seed)."""
        return self._first_of(self.recommendation.choice)

    def report(self, prices: dict[str, float] | None = None) -> Report:
        """``report.html`` and ``report.md``, built from the store (shown inline in Jupyter); the report the
        study's run just built when no other ``prices`` are asked for."""
        from tunebench.report import build_report

        self._require_finished()
        if prices is None and self.built is not None and self.built.html.is_file():
            return self.built
        self.built = Report(build_report(self.out_dir, prices=self.prices if prices is None else prices,
                                         study=self.study))
        return self.built


def load(out_dir: str | Path = "tunebench-out", study: str | None = None,
         prices: dict[str, float] | None = None) -> Result:
    """The :class:`Result` of a study folder's store, without retraining; ``study``: default, the latest."""
    from tunebench.report.inputs import choose_study, store_path
    from tunebench.results.store import Store

    out_dir = Path(out_dir)
    with Store(store_path(out_dir), readonly=True) as store:
        everything = store.records()
        if not everything:
            raise SpecError(f"the store in {out_dir} holds no runs; run a study first")
        study = choose_study(store, everything, study, out_dir)  # as the report chooses it
    return Result(out_dir, study, [r for r in everything if r["study"] == study], prices)
