"""Equal-budget learning-rate tuning (``tuning:`` in the spec, ``--tune``): the same search for every strategy.

Comparing strategies at one untuned learning rate each compares learning rates.  Here every
strategy (the fitted ones aside: the baselines, embed-logreg, setfit keep their own recipe) gets the
same search, scored on the validation split alone (the engine is told not to evaluate the test
split, ``RunConfig.evaluate_test``; no checkpoint is saved):

- **Candidates**: the body's rate times :data:`~tunebench.spec.parts.GRID_FACTORS` (or the listed
  rates, or ``trials`` rates evenly spaced over a range) *times* the head's rate times
  :data:`~tunebench.spec.parts.HEAD_FACTORS` around its default (or ``tuning.head_lr``): 3 x 2 = 6
  pairs by default.  A kind whose head is all that trains (head-only) has one rate; its grid of
  body rates is widened by the same step, alternately up and down, to the same number of candidates.
- **Synchronous successive halving** (``halving``, the default): every candidate trains
  ``min_epochs`` epochs (default 2) on each of the ``tuning.seeds`` seeds (default 2); the best
  ``1/reduction_factor`` of the first rung's count (by the mean over seeds of the best validation
  score) train again at ``min_epochs x reduction_factor`` epochs, and so on up to
  ``training.epochs``.  Every trial of a rung trains the same epochs before any is cut, and each
  trial's schedule (warm-up and decay) is sized to its rung: a trial is an ordinary run with
  ``epochs`` = its rung, trained from the start, so a small rate is never judged in the middle of its
  warm-up and every trial is a run that can be stored, reused and executed on any backend.  (Optuna's
  pruners are asynchronous: with a handful of trials one after another the first one, the
  default, is never cut and every later one must beat it at epoch 1; no library does the
  synchronous form, so it is written here.  Optuna stays for ``sweep.search: optuna``.)
- **The edge of the grid**: when the first rung's best body rate (or head rate) is an end of its
  grid, one more candidate a step beyond it trains at that rung, up to ``tuning.extend`` extra
  candidates (default 2) for every strategy alike; the report says so.
- **The choice**: at the last rung, the best mean validation score; among the candidates within the
  verdict's margin of it (``verdict.margin``), the one nearest the method's default rates, said in a
  sentence (a gap of a few thousandths on one validation split is noise, not a reason).  When one
  candidate is left for the last rung (3 candidates, ``reduction_factor`` 3), that rung decides
  nothing and is not trained: it would repeat the final runs (the same rates, epochs and seeds), which
  are its full-length training.

Every trial runs through :func:`~tunebench.study.execute.execute` and the study's backend (a rung's
trials at once: on Ray they run concurrently; diverged and failed trials are recorded and the
tuning goes on; Ctrl-C is recorded and stops the study), stored one transaction each as rows of the
study ``"<name>:tuning"`` with a ``tuning`` field (strategy, lr, head_lr, candidate, rung, epochs,
seed, value).  A rerun (after Ctrl-C, a crash or SIGKILL) reuses every stored trial by its run id and
resumes a trial cut short from its resume point, so the decisions come out the same and nothing
trains twice.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any

from tunebench.errors import SpecError
from tunebench.spec.metrics import display
from tunebench.spec.parts import GRID_FACTORS, HEAD_FACTORS, RangeSpec
from tunebench.spec.rates import body_rate, head_rate
from tunebench.spec.strategy import OPTIONS, StrategyOptions, strategy_spec
from tunebench.spec.study import StudySpec
from tunebench.study.execute import Execution, execute, set_plan
from tunebench.study.plan import PlannedRun, run_config, run_id_for

#: a range's number of body rates when ``tuning.trials`` is not given
DEFAULT_TRIALS = 3
SUFFIX = ":tuning"


def tuning_name(spec: StudySpec) -> str:
    """The store's study name of ``spec``'s learning-rate trials."""
    return spec.name + SUFFIX


@dataclass(frozen=True)
class Candidate:
    """One pair of rates a strategy is tried at: the body's, and the head's (None: no rate of its own).

    Kept exact (a grid's steps and its extension stay exact half-decades); a run trains at them rounded
    to 3 significant digits (:attr:`rates`), as its label shows."""

    lr: float
    head_lr: float | None
    number: int = 0
    extra: bool = False  # added by the edge-of-grid rule

    @property
    def rates(self) -> tuple[float, float | None]:
        return _round(self.lr), None if self.head_lr is None else _round(self.head_lr)


@dataclass
class Tuned:
    """One strategy's tuning: its trials' records, each candidate's score per rung, and the choice."""

    strategy: StrategyOptions
    candidates: list[Candidate] = field(default_factory=list)
    trials: list[dict[str, Any]] = field(default_factory=list)
    scores: dict[int, dict[Candidate, float | None]] = field(default_factory=dict)  # rung epochs -> mean value
    best: Candidate | None = None
    best_value: float | None = None
    reason: str = ""
    decided_at: int | None = None  # the rung (epochs) whose scores chose, when that was not the last (one was left)


def _round(rate: float) -> float:
    return float(f"{rate:.3g}")


def widen(rates: list[float], count: int) -> list[float]:
    """``rates`` (sorted) widened to ``count`` by their own geometric step, alternately up and down."""
    out = sorted(rates)
    step = (out[-1] / out[0]) ** (1 / (len(out) - 1)) if len(out) > 1 else 10 ** 0.5
    up = True
    while len(out) < count:
        out = out + [out[-1] * step] if up else [out[0] / step] + out
        up = not up
    return out


def body_rates(spec: StudySpec, strategy: StrategyOptions) -> list[float]:
    """The body's rates: the spec's list, ``trials`` points over its range, else the factors times the default."""
    assert spec.tuning is not None
    space = spec.tuning.lr
    if isinstance(space, list):
        return sorted(float(v) for v in space)
    if isinstance(space, RangeSpec):
        n = spec.tuning.trials or DEFAULT_TRIALS
        lo, hi = space.low, space.high
        return sorted({lo * (hi / lo) ** (i / (n - 1)) if space.log else lo + (hi - lo) * i / (n - 1)
                       for i in range(n)})
    center = body_rate(strategy, spec.training.lr)
    return sorted(center * f for f in GRID_FACTORS)


def head_rates(spec: StudySpec, strategy: StrategyOptions) -> list[float] | None:
    """The head's rates to try (None: the kind has no head rate of its own, e.g. head-only)."""
    assert spec.tuning is not None
    if not OPTIONS[strategy.kind].own_head_rate:
        return None
    center = body_rate(strategy, spec.training.lr)
    default = head_rate(strategy, center, spec.training.head_lr) or center
    if not spec.tuning.tune_head:
        return [default]
    if spec.tuning.head_lr is not None:
        return sorted(float(v) for v in spec.tuning.head_lr)
    return sorted(default * f for f in HEAD_FACTORS)


def grid_size(spec: StudySpec) -> int:
    """The number of candidates every strategy gets, from the spec alone (not from which strategies are in
    it): body rates x head rates; a kind without a head rate gets as many body rates."""
    assert spec.tuning is not None
    t = spec.tuning
    bodies = len(t.lr) if isinstance(t.lr, list) else (t.trials or DEFAULT_TRIALS) if t.lr else len(GRID_FACTORS)
    heads = 1 if not t.tune_head else len(t.head_lr) if t.head_lr is not None else len(HEAD_FACTORS)
    return bodies * heads


def candidates(spec: StudySpec, strategy: StrategyOptions) -> list[Candidate]:
    """``strategy``'s candidates: every body rate with every head rate, as many for every strategy."""
    heads, size = head_rates(spec, strategy), grid_size(spec)
    bodies = body_rates(spec, strategy)
    if heads is None or len(bodies) * len(heads) < size:
        bodies = widen(bodies, math.ceil(size / len(heads or [None])))
    pairs = [(lr, h) for lr in bodies for h in (heads or [None])]
    return [Candidate(lr, h, i) for i, (lr, h) in enumerate(pairs)]


def rungs(spec: StudySpec) -> list[int]:
    """The epochs of each rung: ``min_epochs``, times ``reduction_factor`` each rung, up to ``training.epochs``."""
    assert spec.tuning is not None
    top = spec.training.epochs
    if not spec.tuning.halving or top <= spec.tuning.min_epochs:
        return [top]
    out = [spec.tuning.min_epochs]
    while out[-1] * spec.tuning.reduction_factor < top:
        out.append(out[-1] * spec.tuning.reduction_factor)
    return out + [top]


def seeds(spec: StudySpec) -> list[int]:
    """The tuning seeds: ``tuning.seeds`` of them from ``tuning.seed`` (default: ``training.seed``)."""
    assert spec.tuning is not None
    first = spec.training.seed if spec.tuning.seed is None else spec.tuning.seed
    return [first + i for i in range(spec.tuning.seeds)]


def most_trials(spec: StudySpec) -> int:
    """The most trials one strategy's search can train (every seed of every candidate at every rung, the
    edge's extra candidates included): what the progress counts up to."""
    assert spec.tuning is not None
    size, eta, depths = grid_size(spec), spec.tuning.reduction_factor, len(rungs(spec))
    later = [math.ceil(size / eta ** d) for d in range(1, depths)]
    if later and later[-1] == 1:
        later.pop()  # a last rung of one candidate is not trained (its final runs are its training)
    per_seed = size + spec.tuning.extend + sum(later)
    return per_seed * spec.tuning.seeds


def tunable(spec: StudySpec) -> list[StrategyOptions]:
    """The strategies that are tuned: all but the fitted ones (the baselines, embed-logreg, setfit), which are
    fitted by their own recipe at their own defaults: no engine rate to tune."""
    return [s for s in spec.strategies if not OPTIONS[s.kind].fitted]


#: what the tuning says of a fitted candidate (the terminal, and the report's learning-rate section)
NOT_TUNED = "not tuned: fitted by its own recipe, at its own defaults"


def at_rates(strategy: StrategyOptions, c: Candidate) -> StrategyOptions:
    """``strategy`` at ``c``'s rates."""
    lr, head_lr = c.rates
    return strategy_spec(strategy, lr=lr) if head_lr is None else strategy_spec(strategy, lr=lr, head_lr=head_lr)


def trial_label(strategy: StrategyOptions, c: Candidate, epochs: int, seed: int) -> str:
    lr, head_lr = c.rates
    head = "" if head_lr is None else f" head_lr={head_lr:g}"
    return f"{strategy.label} lr={lr:g}{head} epochs={epochs} seed={seed}"


def trial_run(spec: StudySpec, ex: Execution, strategy: StrategyOptions, c: Candidate, epochs: int, seed: int,
              position: int) -> PlannedRun:
    """A trial: ``strategy`` at ``c``'s rates for ``epochs`` (its schedule sized to them), without the test split."""
    s = at_rates(strategy, c)
    cfg = replace(run_config(spec, s, ex.prepared.precision, seed=seed, compile_auto=ex.prepared.compile_auto,
                             class_weights=ex.prepared.class_weights(spec.training.class_weight),
                             n_train=len(ex.prepared.train), target_scale=ex.prepared.target_scale),
                  epochs=epochs, evaluate_test=False)
    return PlannedRun(position, s, cfg, run_id_for(spec, s, ex.prepared.bundle, cfg, ex.prepared.device),
                      trial_label(strategy, c, epochs, seed), strategy.label,
                      {"lr": c.rates[0], "head_lr": c.rates[1], "candidate": c.number, "epochs": epochs,
                       "seed": seed, "extra": c.extra})


def distance(strategy: StrategyOptions, spec: StudySpec, c: Candidate) -> float:
    """How far ``c`` is from the method's default rates, in decades (a tie between scores goes to the nearer)."""
    center = body_rate(strategy, spec.training.lr)
    head = head_rate(strategy, center, spec.training.head_lr) or center
    return abs(math.log10(c.lr / center)) + (0.0 if c.head_lr is None else abs(math.log10(c.head_lr / head)))


def ranked(scores: dict[Candidate, float | None], near: Any) -> list[Candidate]:
    """The scored candidates, best first; equal scores: nearer the default first, then the earlier."""
    return sorted((c for c, v in scores.items() if v is not None), key=lambda c: (-scores[c], near(c), c.number))


def choose(scores: dict[Candidate, float | None], near: Any, margin: float) -> tuple[Candidate | None, str]:
    """The last rung's choice: the best score; among those within ``margin`` of it, the nearest the default."""
    order = ranked(scores, near)
    if not order:
        return None, "no trial finished"
    top = order[0]
    close = [c for c in order if scores[top] - scores[c] <= margin]  # type: ignore[operator]
    pick = min(close, key=lambda c: (near(c), c.number))
    if pick == top:
        return top, "the best mean validation score"
    return pick, (f"within the margin ({margin:g}) of the best ({scores[top]:.4f} at lr {top.rates[0]:g}) and nearer "
                  "the method's default rates")


def tune(spec: StudySpec, ex: Execution) -> tuple[StudySpec, list[Tuned]]:
    """Tune every strategy's rates through ``ex``; return the study at the chosen rates, and each tuning."""
    assert spec.tuning is not None
    trials_spec = spec.model_copy(update={"name": tuning_name(spec),
                                          "output": spec.output.model_copy(update={"save_checkpoints": False})})
    outcomes: list[Tuned] = []
    labels: list[str] = []
    metric = display(spec.training.selection_metric)
    for strategy in spec.strategies:
        if OPTIONS[strategy.kind].fitted and not OPTIONS[strategy.kind].baseline:
            ex.reporter.message(f"tuning {strategy.label}: {NOT_TUNED}")
    for strategy in tunable(spec):
        tuned = _tune_one(spec, trials_spec, ex, strategy, len(labels))
        labels += [r["label"] for r in tuned.trials]
        outcomes.append(tuned)
        set_plan(ex, trials_spec.name, labels)
        if tuned.best is None:
            ex.reporter.message(f"tuning {strategy.label}: no trial finished; it keeps its default rate")
        else:
            lr, head_lr = tuned.best.rates
            head = "" if head_lr is None else f", head lr {head_lr:g}"
            at = "" if tuned.decided_at is None else f" at {tuned.decided_at} epochs"
            ex.reporter.message(f"tuning {strategy.label}: lr {lr:g}{head} (validation {metric} "
                                f"{tuned.best_value:.4f}{at}, mean of {len(seeds(spec))} seeds): {tuned.reason}")
    chosen = {t.strategy.label: t.best for t in outcomes}
    out = [s if chosen.get(s.label) is None else at_rates(s, chosen[s.label]) for s in spec.strategies]
    return spec.model_copy(update={"strategies": out}), outcomes


def _tune_one(spec: StudySpec, trials_spec: StudySpec, ex: Execution, strategy: StrategyOptions,
              first: int) -> Tuned:
    """One strategy's synchronous successive halving, with the edge-of-grid extension at its first rung."""
    assert spec.tuning is not None
    tuned = Tuned(strategy, candidates(spec, strategy))
    plan_rungs, near = rungs(spec), (lambda c: distance(strategy, spec, c))
    ex.reporter.message(
        f"tuning {strategy.label}: {len(tuned.candidates)} candidates x {len(seeds(spec))} seeds, rungs at "
        f"{', '.join(map(str, plan_rungs))} epochs, on validation {display(spec.training.selection_metric)}")

    def run_rung(group: list[Candidate], epochs: int) -> None:
        plan = [trial_run(spec, ex, strategy, c, epochs, seed, first + len(tuned.trials) + i * len(seeds(spec)) + j)
                for i, c in enumerate(group) for j, seed in enumerate(seeds(spec))]
        records = execute(ex, trials_spec, plan, total=most_trials(spec) * len(tunable(spec)), outputs=False,
                          annotate=_annotate(strategy, plan_rungs, spec.training.selection_metric))
        per: dict[Candidate, list[float]] = {c: [] for c in group}
        by_number = {c.number: c for c in group}
        for planned, record in zip(plan, records, strict=True):
            assert record is not None  # tuning runs in one process, which writes
            tuned.trials.append(record)
            if record["status"] == "finished":
                per[by_number[planned.params["candidate"]]].append(record["val"][spec.training.selection_metric])
            else:
                ex.reporter.message(f"{planned.label}: the trial {record['status']}; the tuning goes on")
        rung = tuned.scores.setdefault(epochs, {})
        for c, values in per.items():  # a candidate is scored only when every seed finished
            rung[c] = sum(values) / len(values) if len(values) == len(seeds(spec)) else None

    alive = list(tuned.candidates)
    for depth, epochs in enumerate(plan_rungs):
        if depth:
            # the grid's size, not counting the edge's extra candidates: the same number goes on for every strategy
            keep = max(1, math.ceil(sum(not c.extra for c in tuned.candidates) / spec.tuning.reduction_factor ** depth))
            alive = ranked({c: tuned.scores[plan_rungs[depth - 1]].get(c) for c in alive}, near)[:keep]
            if not alive:
                break
            if len(alive) == 1 and depth == len(plan_rungs) - 1:
                # a last rung of one candidate decides nothing: training it would repeat the final runs (the same
                # rates, epochs and seeds), so they are its full-length training
                earlier = plan_rungs[depth - 1]
                tuned.best, tuned.best_value, tuned.decided_at = alive[0], tuned.scores[earlier][alive[0]], earlier
                tuned.reason = (f"the best at {earlier} epochs and the only candidate left for the last rung, which "
                                f"is not trained: the final runs train it at {epochs} epochs")
                return tuned
        run_rung(alive, epochs)
        if depth == 0:
            alive += _extend(spec, strategy, tuned, epochs, run_rung, near)
    last = tuned.scores.get(plan_rungs[-1], {})
    tuned.best, tuned.reason = choose(last, near, spec.verdict.margin)
    tuned.best_value = None if tuned.best is None else last[tuned.best]
    return tuned


def _extend(spec: StudySpec, strategy: StrategyOptions, tuned: Tuned, epochs: int, run_rung: Any,
            near: Any) -> list[Candidate]:
    """Candidates a step beyond the first rung's best when it is an end of the grid (body rate first, then
    the head's), at most ``tuning.extend`` of them; each is trained at that rung before the next check."""
    assert spec.tuning is not None
    added: list[Candidate] = []
    while len(added) < spec.tuning.extend:
        scores = tuned.scores[epochs]
        order = ranked(scores, near)
        if not order:
            break
        best, new = order[0], None
        for attr in ("lr", "head_lr"):
            values = sorted({getattr(c, attr) for c in tuned.candidates if getattr(c, attr) is not None})
            if len(values) < 2 or getattr(best, attr) not in (values[0], values[-1]):
                continue
            step = values[1] / values[0] if getattr(best, attr) == values[0] else values[-1] / values[-2]
            value = getattr(best, attr) / step if getattr(best, attr) == values[0] else getattr(best, attr) * step
            new = replace(best, **{attr: value}, number=len(tuned.candidates), extra=True)
            break
        if new is None:
            break
        tuned.candidates.append(new)
        added.append(new)
        run_rung([new], epochs)
    return added


def _annotate(strategy: StrategyOptions, plan_rungs: list[int], metric: str) -> Any:
    def annotate(planned: PlannedRun, record: dict[str, Any]) -> None:
        p, curves = planned.params, record.get("curves") or []
        record["tuning"] = {
            "strategy": strategy.label, "lr": p["lr"], "head_lr": p["head_lr"], "trial": p["candidate"],
            "candidate": p["candidate"], "epochs": p["epochs"], "rung": plan_rungs.index(p["epochs"]),
            "rungs": plan_rungs, "seed": p["seed"], "extra": p["extra"],
            "metric": metric,
            "value": (record.get("val") or {}).get(metric) if record["status"] == "finished" else None,
            "epochs_run": len(curves)}
    return annotate


def check_tuning(spec: StudySpec, world_size: int) -> None:
    """Tuning picks each rung's survivors from the records of the one writing process: one process."""
    if spec.tuning is not None and spec.tuning.enabled and world_size > 1:
        raise SpecError("tuning compares each rung's trials with each other, so it runs in one process; "
                        "run --tune without torchrun / --nproc")
