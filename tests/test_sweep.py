"""Sweeps: keys and values checked up front, grids and random draws expanded, seeds repeated,
stable run ids, and a tiny rank × seed study that reruns without training."""

from __future__ import annotations

import re
from types import SimpleNamespace

import pandas as pd
import pytest
import torch

from tunebench.errors import SpecError
from tunebench.results import stats
from tunebench.spec.study import StudySpec, spec_from_dict
from tunebench.study import driver as study_module
from tunebench.study.plan import configurations


def _spec(strategies, **sweep) -> StudySpec:
    return StudySpec(strategies=strategies, sweep=sweep)


def _prepared():
    bundle = SimpleNamespace(hashes=lambda: {"train": "t", "validation": "v", "test": "x"})
    return SimpleNamespace(precision="fp32", bundle=bundle, device=torch.device("cpu"), compile_auto=False,
                           class_weights=lambda mode: None, train=(), target_scale=None)


def test_grid_applies_kind_keys_to_their_kind_and_plain_keys_to_all():
    spec = _spec(["full", "lora:r=8", "partial:k=2"],
                 grid={"lr": [1e-4, 5e-4], "lora.r": [4, 9], "partial.k": [1, 2]})
    groups = [c.group for c in configurations(spec)]
    assert groups == ["full lr=0.0001", "full lr=0.0005",
                      "lora:r=4 lr=0.0001", "lora:r=4 lr=0.0005", "lora:r=9 lr=0.0001", "lora:r=9 lr=0.0005",
                      "partial:k=1 lr=0.0001", "partial:k=1 lr=0.0005", "partial:k=2 lr=0.0001",
                      "partial:k=2 lr=0.0005"]
    lora = [c for c in configurations(spec) if c.strategy.kind == "lora"]
    assert [(c.strategy.r, c.strategy.alpha, c.strategy.lr) for c in lora[:2]] == [(4, 8.0, 1e-4), (4, 8.0, 5e-4)]
    assert lora[0].params == {"lora.r": 4, "lr": 1e-4}
    round_trip = spec_from_dict(spec.to_dict())  # as the CLI rebuilds a spec: every default now explicit
    assert [c.group for c in configurations(round_trip)] == groups
    assert [c.strategy.alpha for c in configurations(round_trip) if c.strategy.kind == "lora"][0] == 8.0


def test_grid_over_training_fields_targets_and_explicit_alpha():
    spec = _spec(["lora:r=8,alpha=32"], grid={"lora.targets": ["query+value", "query+key+value"],
                                              "warmup": [0.0, 0.1], "batch_size": [8]})
    configs = configurations(spec)
    assert len(configs) == 4 and configs[0].strategy.alpha == 32  # a given alpha is kept
    assert configs[2].strategy.targets == ["query", "key", "value"]
    assert [c.training.warmup_ratio for c in configs] == [0.0, 0.1, 0.0, 0.1]
    assert configs[1].group == "lora:r=8,alpha=32 warmup_ratio=0.1 batch_size=8"


def test_random_search_is_seeded_and_samples_ranges():
    sweep = {"random": {"lora.r": [4, 8, 16, 32], "lr": {"low": 1e-5, "high": 1e-3, "log": True},
                        "epochs": {"low": 1, "high": 3}}, "trials": 6, "sampler_seed": 7}
    first = [c.group for c in configurations(_spec(["lora"], **sweep))]
    assert first == [c.group for c in configurations(_spec(["lora"], **sweep))]
    assert first != [c.group for c in configurations(_spec(["lora"], **{**sweep, "sampler_seed": 8}))]
    for c in configurations(_spec(["lora"], **sweep)):
        assert c.strategy.r in (4, 8, 16, 32) and 1e-5 <= c.strategy.lr <= 1e-3 and c.strategy.epochs in (1, 2, 3)


@pytest.mark.parametrize("sweep, message", [
    ({"grid": {"lora.rank2": [1]}}, "sweep key 'lora.rank2' is not something a sweep can vary; use one of: lr,"),
    ({"grid": {"lora.r": [0]}}, "sweep value lora.r=0: field 'r' Input should be greater than or equal to 1"),
    ({"grid": {"partial.k": [1]}}, "sweep key 'partial.k' varies partial strategies, but the study has none"),
    ({"grid": {"scheduler": ["cosin"]}}, "field 'scheduler' must be one of 'linear', 'cosine' or 'constant'"),
    ({"grid": {"lr": []}}, "sweep key 'lr' has no values"),
    ({"random": {"lr": [1e-4]}}, "search: random needs sweep.trials"),
    ({"random": {"lr": {"low": 1, "high": 0}}, "trials": 2}, "range for 'lr': a range needs low < high"),
    ({"grid": {"lr": [1e-4]}, "random": {"lr": [1e-4]}}, "give either sweep.grid"),
    ({"grid": {"lr": [1e-4]}, "trials": 3}, "a grid runs every combination"),
    ({"search": "random", "trials": 3}, "no space is given"),
])
def test_bad_sweeps_are_one_sentence(sweep, message):
    with pytest.raises(SpecError, match=None) as info:
        spec_from_dict({"strategies": ["lora"], "sweep": sweep})
    assert message in str(info.value)


def test_seeds_repeat_every_configuration_with_stable_distinct_ids():
    spec = _spec(["head", "lora"], grid={"lora.r": [4, 8]}, seeds=[0, 1, 2])
    plan = study_module.plan_runs(spec, _prepared())
    assert [p.label for p in plan][:4] == ["head seed=0", "head seed=1", "head seed=2", "lora:r=4 seed=0"]
    assert len(plan) == 9 and len({p.run_id for p in plan}) == 9 and len({p.label for p in plan}) == 9
    assert {p.group for p in plan} == {"head", "lora:r=4", "lora:r=8"}
    assert [p.cfg.seed for p in plan[:3]] == [0, 1, 2]
    again = study_module.plan_runs(_spec(["head", "lora"], grid={"lora.r": [4, 8]}, seeds=[0, 1, 2]), _prepared())
    assert [p.run_id for p in again] == [p.run_id for p in plan]


def test_a_study_without_a_sweep_plans_as_before():
    spec = _spec(["full", "lora:r=4"])
    plan = study_module.plan_runs(spec, _prepared())
    assert [(p.label, p.group, p.params, p.cfg.seed) for p in plan] == [("full", "full", {}, 0),
                                                                         ("lora:r=4", "lora:r=4", {}, 0)]


def test_rank_by_seed_study_runs_and_reruns_without_training(tiny_bert, reviews_csv, tmp_path, monkeypatch):
    spec = StudySpec(name="sweep", data={"source": str(reviews_csv)}, model={"name": str(tiny_bert), "max_length": 32},
                     strategies=["lora"], training={"epochs": 1, "batch_size": 16, "lr": 3e-3},
                     sweep={"grid": {"lora.r": [2, 4]}, "seeds": [0, 1]},
                     output={"dir": str(tmp_path), "save_checkpoints": False})
    records = study_module.run_study(spec)
    assert [r["label"] for r in records] == ["lora:r=2 seed=0", "lora:r=2 seed=1", "lora:r=4 seed=0", "lora:r=4 seed=1"]
    assert [r["group"] for r in records] == ["lora:r=2", "lora:r=2", "lora:r=4", "lora:r=4"]
    assert [r["resolved"]["seed"] for r in records] == [0, 1, 0, 1] and records[0]["sweep"] == {"lora.r": 2}
    assert len({r["data"]["hashes"]["test"] for r in records}) == 1  # seeds vary training, never the split
    assert records[0]["params"]["trainable"] < records[2]["params"]["trainable"]
    calls = []
    monkeypatch.setattr(study_module.engine, "train_and_evaluate", lambda *a, **k: calls.append(1))
    again = study_module.run_study(spec)
    assert calls == [] and [r["run_id"] for r in again] == [r["run_id"] for r in records]

    by_config = pd.read_csv(tmp_path / "results_by_config.csv")
    assert by_config["config"].tolist() == ["lora:r=2", "lora:r=4"] and by_config["seeds"].tolist() == [2, 2]
    f1 = [r["test"]["macro_f1"] for r in records[:2]]
    assert by_config.loc[0, "test_macro_f1_mean"] == pytest.approx(sum(f1) / 2, abs=1e-4)
    summary = (tmp_path / "summary.md").read_text()
    assert "Over seeds (mean ± std [95% t interval of the mean" in summary
    assert "; seeds 0, 1\n" in summary and "one seed per strategy" not in summary  # not the one-seed caveat
    assert "Caveats: seeds 0, 1 (report.md's Ranking and significance says which differences" in summary

    from tunebench.report import build_report

    markdown = build_report(tmp_path)["markdown"].read_text()
    assert "| configuration | settings | seeds | test macro-F1 95% CI |" in markdown  # headline over seeds
    # numbered in order; the convergence checks come first when a tiny run is flagged
    assert re.search(r"## (\d+)\. Ranking and significance", markdown) and re.search(r"## \d+\. Sweep", markdown)
    ranking, sweep = (int(re.search(rf"## (\d+)\. {t}", markdown).group(1)) for t in ("Ranking", "Sweep"))
    assert sweep == ranking + 1
    ranking = [line for line in markdown.splitlines() if line.startswith(("| lora:r=2 | 2 |", "| lora:r=4 | 2 |"))]
    assert len(ranking) == 2 and not any("tied" in line for line in ranking)
    if any("| reference (best on validation) |" in line for line in ranking):  # a converged configuration
        outcome = next(line for line in ranking if "reference" not in line)
        assert any(f"| {o} |" in outcome for o in stats.OUTCOMES)  # one of the four outcomes
    else:  # one epoch of a tiny model: both flagged, so neither is a reference nor ranked against one
        assert all("| not compared (flagged, no reference) |" in line for line in ranking)
        assert markdown.count("- Not ranked as beaten: lora:r=") == 2
    assert "| lora.r | configurations | mean test macro-F1 |" in markdown
    assert "Recommended: " in markdown and "Up to 2 seeds per configuration" in markdown


def test_optuna_search_prunes_is_seeded_and_resumes_from_the_store(tiny_bert, reviews_csv, tmp_path, monkeypatch):
    import optuna

    from tunebench.results.store import STORE_NAME, Store
    from tunebench.study.search import search_name

    def spec(out, trials=4):
        return StudySpec(name="search", data={"source": str(reviews_csv)},
                         model={"name": str(tiny_bert), "max_length": 32}, strategies=["head", "lora"],
                         training={"epochs": 2, "batch_size": 32},
                         sweep={"search": "optuna", "trials": trials, "sampler_seed": 3,
                                "random": {"lr": {"low": 1e-4, "high": 1e-2, "log": True}, "lora.r": [2, 4]}},
                         output={"dir": str(out), "save_checkpoints": False})

    # the head at each trial's own rate, as before heads had a default of their own: on 90 tiny reviews
    # that is what makes the trials' first-epoch scores differ (at the default head rate every LoRA
    # trial scores the same), and the median pruner stop one; the search's mechanics are under test here
    monkeypatch.setattr("tunebench.study.plan.head_rate", lambda strategy, lr, given=None: None)
    first = study_module.run_study(spec(tmp_path / "a"))
    url = f"sqlite:///{tmp_path / 'a' / STORE_NAME}"
    trials = optuna.load_study(study_name=search_name(spec(tmp_path / "a")), storage=url).trials
    assert len(trials) == 4 and all(t.state.name in ("COMPLETE", "PRUNED") for t in trials)
    complete = [t for t in trials if t.state.name == "COMPLETE"]
    assert len(first) == len({r["run_id"] for r in first}) >= 1
    assert all(r["status"] == "finished" and "trial" in r for r in first)
    with Store(tmp_path / "a" / STORE_NAME) as store:  # pruned runs are attempts, not rows of the outputs
        pruned = [r for r in store.history("search") if r["status"] == "pruned"]
        assert not [r for r in store.records("search") if r["status"] == "pruned"]
    assert len(pruned) == len(trials) - len(complete) >= 1 and all(r["curves"] for r in pruned)
    best = max(complete, key=lambda t: t.value)
    assert best.value == max(r["val"]["macro_f1"] for r in first)

    calls = []
    monkeypatch.setattr(study_module.engine, "train_and_evaluate", lambda *a, **k: calls.append(1))
    again = study_module.run_study(spec(tmp_path / "a"))
    assert calls == [] and [r["run_id"] for r in again] == [r["run_id"] for r in first]
    monkeypatch.undo()
    study_module.run_study(spec(tmp_path / "b", trials=2))
    fresh = optuna.load_study(study_name=search_name(spec(tmp_path / "b")),
                              storage=f"sqlite:///{tmp_path / 'b' / STORE_NAME}").trials
    assert [t.params for t in fresh] == [t.params for t in trials[:2]]  # seeded: a fresh search proposes the same



def test_cli_sweep_is_run_with_a_grid_and_seeds(capsys, tiny_bert, reviews_csv, tmp_path):
    from .conftest import cli, one_error

    out = tmp_path / "out"
    code, stdout, stderr = cli(capsys, "sweep", "--model", str(tiny_bert), "--dataset", str(reviews_csv), "-s", "head",
                               "--epochs", "1", "--max-length", "32", "--no-checkpoints", "-o", str(out),
                               "--grid", "lr=1e-3,5e-3", "--seeds", "0,1")
    assert code == 0, stderr
    assert "sweep: grid, seeds 0 1" in " ".join(stderr.split())
    frame = pd.read_csv(out / "results.csv")
    assert frame["label"].tolist() == ["head lr=0.001 seed=0", "head lr=0.001 seed=1",
                                       "head lr=0.005 seed=0", "head lr=0.005 seed=1"]
    assert frame["lr"].tolist() == [1e-3, 1e-3, 5e-3, 5e-3] and frame["seed"].tolist() == [0, 1, 0, 1]
    assert (out / "report.html").is_file() and (out / "results_by_config.csv").is_file()

    for argv, message in [(["--grid", "lora.rr=1,2"], "sweep key 'lora.rr' is not something a sweep can vary"),
                          (["--grid", "lr"], "--grid must look like KEY=V1,V2"),
                          (["--random", "3"], "--random and --optuna draw from the --grid values"),
                          (["--seeds", "0,x"], "--seeds must be whole numbers"),
                          ([], "tunebench sweep needs --grid")]:
        code, _, stderr = cli(capsys, "sweep", "--dataset", str(reviews_csv), "-s", "lora", *argv)
        assert code == 2 and message in one_error(stderr)


def test_a_grid_of_single_layers_from_the_command_line():
    """``--grid lora.layers=0,-1`` reads each value as a number: each is a one-layer list, negative ones too."""
    from tunebench.spec.study import StudySpec
    from tunebench.study.plan import configurations

    spec = StudySpec(strategies=["lora"], sweep={"grid": {"lora.layers": [0, -1, "0+1"]}})
    assert [c.strategy.layers for c in configurations(spec)] == [[0], [-1], [0, 1]]
