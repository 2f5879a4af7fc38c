"""``tb.Study``: a study defined in Python (or a YAML file), run with progress, returning a :class:`Result`.

``tunebench run`` and ``tunebench sweep`` are this class with the terminal's progress bars
(:func:`run_spec`): one code path, the same store, the same skip-what-is-finished rule.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tunebench.api.result import Result, load
from tunebench.api.spec import build_spec, has_track_field, load_study_file
from tunebench.errors import TunebenchError, shorten
from tunebench.spec.study import StudySpec


class LaunchFailed(TunebenchError):
    """The processes of a multi-process (DDP) study ended with an error; their own output says which."""

    def __init__(self, code: int) -> None:
        super().__init__(f"the study's processes ended with exit code {code}; their output above says why")
        self.exit_code = code


class Study:
    """A comparison of fine-tuning strategies on one dataset and encoder.

    >>> study = Study(dataset="rotten-tomatoes", model="minilm-l6", strategies=["full", "lora:r=8", "head"],
    ...               epochs=3, train_limit=1000)                                        # doctest: +SKIP
    >>> result = study.run()                                                             # doctest: +SKIP

    Parameters
    ----------
    spec
        A :class:`~tunebench.spec.study.StudySpec`, or a mapping in the study file's shape; default: the
        built-in study (the verdict protocol on a Rotten Tomatoes slice), as for ``tunebench run``.
    track
        Trackers to log to while the study trains: ``"tensorboard"``, ``"mlflow"``, ``"wandb"`` (or a
        list); added to the spec's ``training.track``.
    prices
        Device prices in USD per hour for the report's cost section, e.g. ``{"T4": 0.35}``.
    quick
        Start from the quick study (``tunebench run --quick``: one seed, default rates, no tuning) instead
        of the default protocol; ignored when ``spec`` is given.
    **settings
        Any spec field by name (``epochs=3``, ``train_limit=1000``, ``lr=1e-4``, ``backend="ray"``), a
        whole section (``training={...}``), or a shorthand: ``dataset``, ``model``, ``output``,
        ``seeds``, ``grid``.  See :mod:`tunebench.api.spec`.

    Bad settings raise :class:`tunebench.SpecError` (a :class:`tunebench.TunebenchError`) with the
    sentence ``tunebench run`` prints.
    """

    def __init__(self, spec: StudySpec | dict[str, Any] | None = None, *, track: str | list[str] | None = None,
                 prices: dict[str, float] | None = None, quick: bool = False, **settings: Any) -> None:
        from tunebench.report.tracking import check_backends

        in_section = None  # training={"track": [...]} while the spec has no training.track of its own
        if isinstance(settings.get("training"), dict) and "track" in settings["training"] and not has_track_field():
            settings["training"] = dict(settings["training"])
            in_section = settings["training"].pop("track")
        self.spec = build_spec(spec, settings, quick=quick)
        self._track = check_backends([*_spec_track(self.spec), *check_backends(in_section), *check_backends(track)])
        self.prices = _check_prices(prices)

    @classmethod
    def from_yaml(cls, path: str | Path, *, track: str | list[str] | None = None,
                  prices: dict[str, float] | None = None, **settings: Any) -> Study:
        """The study of a YAML file (``training.track`` included), with ``settings`` over it."""
        spec, file_track = load_study_file(path)
        study = cls(spec, track=[*file_track, *([track] if isinstance(track, str) else track or [])],
                    prices=prices, **settings)
        return study

    @property
    def track(self) -> list[str]:
        """The trackers this study logs to."""
        return list(self._track)

    @property
    def output(self) -> Path:
        return Path(self.spec.output.dir)

    def __repr__(self) -> str:
        return f"Study({describe(self.spec)!r})"

    def run(self, *, force: bool = False, progress: Any = True, announce: bool = True) -> Result:
        """Run every planned run not already finished in the store; build the report; return the result.

        ``force``: redo finished runs.  ``progress``: True (bars: in Jupyter, in a terminal, or plain lines
        elsewhere), False (quiet), or a :class:`tunebench.study.run.Reporter` of your own.  Runs that
        diverge or fail are recorded and listed in ``result.unfinished``; Ctrl-C (or the notebook's
        interrupt) stops at the next step, keeps every finished run and raises
        :class:`tunebench.faults.StudyInterrupted`.
        """
        from tunebench.api.progress import progress_reporter

        reporter = progress_reporter(progress)
        if announce:
            reporter.message(describe(self.spec))
        return run_spec(self.spec, force=force, reporter=reporter, track=self._track, prices=self.prices)


def _spec_track(spec: StudySpec) -> list[str]:
    return list(getattr(spec.training, "track", None) or [])


def _check_prices(prices: dict[str, float] | None) -> dict[str, float] | None:
    if prices is None:
        return None
    from tunebench.report.cost import parse_prices

    if not isinstance(prices, dict):
        raise _price_error(prices)
    return parse_prices([f"{k}={v}" for k, v in prices.items()])


def _price_error(prices: Any) -> TunebenchError:
    from tunebench.errors import SpecError

    return SpecError(f"prices must be a mapping of device to USD per hour such as {{'T4': 0.35}} (got {prices!r:.80})")


def describe(spec: StudySpec) -> str:
    """The one line a study says before it starts: its name, strategies, sweep, number of runs, output."""
    from tunebench.spec.study import count_runs

    swept = f", sweep: {spec.sweep.method}" if spec.sweep.method else ""
    seeds = f", seeds {' '.join(map(str, spec.sweep.seed_list))}" if spec.sweep.seed_list else ""
    sizes = spec.data.train_sizes
    seeds += f", at {len(sizes)} training sizes ({' '.join(map(str, sizes))})" if sizes else ""
    seeds += f", subset draws {' '.join(map(str, spec.data.data_seeds))}" if spec.data.data_seeds else ""
    runs = count_runs(spec)
    tuned = ""
    if spec.tuning is not None and spec.tuning.enabled:
        from tunebench.study.tuning import most_trials, tunable

        tuned = f", each tuned first (up to {most_trials(spec)} trials per strategy)" if tunable(spec) else ""
    return (f"tunebench study '{shorten(spec.name, 80)}': {len(spec.strategies)} strategies "
            f"({', '.join(s.label for s in spec.strategies)}){tuned}{swept}{seeds}, "
            f"{'up to ' if spec.sweep.method in ('random', 'optuna') else ''}{runs:,} run{'s' * (runs != 1)} → "
            f"{shorten(str(spec.output.dir), 200)}"
            + (f", on Ray ({spec.execution.address or 'a local instance'})" if spec.execution.backend == "ray" else ""))


def run_spec(spec: StudySpec, *, force: bool = False, reporter: Any = None, track: list[str] | None = None,
             prices: dict[str, float] | None = None) -> Result:
    """Run ``spec`` (the one path of ``Study.run``, ``tunebench run`` and ``tunebench sweep``): start the
    processes of a DDP study, train what is not finished, build the report, log to the trackers."""
    from tunebench.report.tracking import check_backends
    from tunebench.study.driver import run_study
    from tunebench.study.run import SilentReporter
    from tunebench.training import distributed
    from tunebench.training.modeling import quiet_libraries

    track = check_backends(track)  # before anything loads: a missing package is one sentence now
    reporter = reporter or SilentReporter()
    if spec.data.train_sizes is not None:
        return run_curve(spec, force=force, reporter=reporter, track=track, prices=prices)
    distributed.check_nproc(spec.execution.nproc, spec.training.device)
    if spec.execution.nproc > 1 and distributed.launched_world_size() == 1:
        reporter.message(f"tunebench: starting {spec.execution.nproc} processes (torch.distributed.run)")
        code = distributed.launch(spec.to_dict(), spec.execution.nproc, force)
        if code:
            raise LaunchFailed(code)
        return load(spec.output.dir, study=spec.name, prices=prices)
    quiet_libraries()
    if distributed.launched_rank() != 0:  # the other processes of a DDP launch train and stay quiet
        records = run_study(spec, force=force)
        return Result(spec.output.dir, spec.name, list(records), prices)
    tracking = None
    if track:
        from tunebench.report.live import TrackingReporter

        tracking = reporter = TrackingReporter(reporter, track, Path(spec.output.dir), spec.name)
    try:
        try:
            records = run_study(spec, force=force, reporter=reporter)
        finally:
            if hasattr(reporter, "close") and tracking is None:
                reporter.close()
        result = Result(spec.output.dir, spec.name, records, prices)
        if any(r["status"] == "finished" for r in records):
            paths = result.report().paths
            if tracking is not None:
                tracking.attach_report([paths["html"], paths["markdown"]])
    finally:
        if tracking is not None:
            tracking.close()
    if tracking is not None:
        for name, where in tracking.where.items():
            reporter.message(f"{name}: {where}")
    return result


def size_spec(spec: StudySpec, size: int) -> StudySpec:
    """One point of a ``data.train_sizes`` curve: the same study on ``size`` training rows, in ``OUTPUT/n=<size>``."""
    from tunebench.report.curve import size_folder

    data = spec.data.model_copy(update={"train_sizes": None, "train_size": size})
    output = spec.output.model_copy(update={"dir": size_folder(spec.output.dir, size)})
    return spec.model_copy(update={"data": data, "output": output})


def run_curve(spec: StudySpec, *, force: bool = False, reporter: Any = None, track: list[str] | None = None,
              prices: dict[str, float] | None = None) -> Result:
    """A data-efficiency curve: the whole study once per ``data.train_sizes`` size, smallest first, each an
    ordinary study (its own store, report and verdict) in ``OUTPUT/n=<size>``; then ``OUTPUT/curve.*``
    (:mod:`tunebench.report.curve`).  Returns the largest size's result, with ``result.curve``.  An
    interrupted size keeps every finished run; a rerun continues where it stopped."""
    from tunebench.report.curve import build_curve, write_curve
    from tunebench.study.driver import make_output_dir
    from tunebench.study.plan import steps_per_pass
    from tunebench.study.run import SilentReporter

    reporter = reporter or SilentReporter()
    out = make_output_dir(Path(spec.output.dir))
    sizes = spec.data.train_sizes or []
    t = spec.training
    few = steps_per_pass(t, sizes[0]) if sizes else 0
    if sizes and t.min_steps_per_epoch is None and few * t.epochs < 50:
        reporter.message(f"at {sizes[0]:,} training examples an epoch is {few} optimizer step{'s' * (few != 1)} "
                         f"({few * t.epochs} in {t.epochs} epochs): fine-tuning is likely to be flagged still "
                         "improving there; --min-steps-per-epoch N (training.min_steps_per_epoch) gives small sizes "
                         "more passes per epoch")
    result = None
    for i, size in enumerate(sizes, 1):
        one = size_spec(spec, size)
        reporter.message(f"data-efficiency curve: size {i} of {len(sizes)}, {size:,} training examples → "
                         f"{shorten(str(one.output.dir), 200)}")
        result = run_spec(one, force=force, reporter=reporter, track=track, prices=prices)
    curve = build_curve(out, sizes)
    paths = write_curve(curve, out)
    reporter.message(f"curve written: {paths['md']}, {paths['png'].name}, {paths['csv'].name}")
    result.curve = curve
    return result
