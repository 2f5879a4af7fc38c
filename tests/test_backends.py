"""The Ray backend on a local, loopback-only Ray instance: same results as local, lost workers retried or failed.

One Ray study of three runs covers the three behaviours at once (Ray's start-up is the slow part):
``head`` has its worker SIGKILLed mid-training on the first attempt, ``partial:k=1`` on every attempt,
``lora:r=4`` runs undisturbed.
"""

from __future__ import annotations

import functools
import json
import os
import signal
from pathlib import Path

import pytest
import torch

from tunebench.results.store import STORE_NAME, Store
from tunebench.spec.study import StudySpec
from tunebench.study import driver as study_module
from tunebench.study import run as run_module

from .conftest import easy_reviews

ray = pytest.importorskip("ray")

SAME = ["head", "lora:r=4"]  # run by both backends
KILLED_ONCE, KILLED_ALWAYS = "head", "partial:k=1"
RETRIES = 1


def spec_for(model, csv, out, strategies) -> StudySpec:
    return StudySpec(name="tiny", data={"source": str(csv)}, model={"name": str(model), "max_length": 32},
                     strategies=strategies, training={"epochs": 2, "batch_size": 8, "lr": 3e-3},
                     output={"dir": str(out)})


def killing_run(marker_dir: str, kills: dict[str, int], spec, planned, total, prepared, env, reporter):
    """``execute_run`` whose worker process SIGKILLs itself at its first training step, ``kills[label]`` times."""
    attempts = Path(marker_dir) / f"{planned.position}.attempts"
    attempt = int(attempts.read_text()) + 1 if attempts.exists() else 1
    attempts.write_text(str(attempt))
    step = reporter.step

    def step_or_die(info):
        if attempt <= kills.get(planned.label, 0):
            os.kill(os.getpid(), signal.SIGKILL)  # the worker is lost mid-run, as when a node dies
        step(info)

    reporter.step = step_or_die
    return run_module.execute_run(spec, planned, total, prepared, env, reporter)


@pytest.fixture(scope="module")
def ray_cluster():
    """A local Ray instance on loopback whose workers can import this module (for ``killing_run``)."""
    saved = os.environ.get("PYTHONPATH")
    root = str(Path(__file__).resolve().parents[1])
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [root, saved]))  # workers inherit it
    try:
        ray.init(num_cpus=max(2, torch.get_num_threads()), include_dashboard=False, log_to_driver=False,
                 _node_ip_address="127.0.0.1")
    finally:
        if saved is None:
            os.environ.pop("PYTHONPATH")
        else:
            os.environ["PYTHONPATH"] = saved
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def both(ray_cluster, tiny_models, tmp_path_factory):
    """(local records, ray records, ray output folder, marker folder)."""
    from tunebench.study.backends import RayBackend

    root = tmp_path_factory.mktemp("backends")
    csv = root / "reviews.csv"
    easy_reviews().to_csv(csv, index=False)
    markers = root / "markers"
    markers.mkdir()
    local = study_module.run_study(spec_for(tiny_models["bert"], csv, root / "local", SAME))
    run = functools.partial(killing_run, str(markers), {KILLED_ONCE: 1, KILLED_ALWAYS: RETRIES + 1})
    backend = RayBackend(max_retries=RETRIES, run=run)
    spec = spec_for(tiny_models["bert"], csv, root / "ray", SAME + [KILLED_ALWAYS])
    remote = study_module.run_study(spec, backend=backend)
    return local, remote, root / "ray", markers


def _results(record):
    curves = [{k: v for k, v in c.items() if k != "train_time_s"} for c in record["curves"]]
    return record["run_id"], record["val"], record["test"], record["best_epoch"], curves, record["params"]


def test_ray_backend_gives_the_local_backends_metrics_and_predictions(both):
    local, remote, ray_out, _ = both
    by_label = {r["label"]: r for r in remote}
    for record in local:
        assert _results(by_label[record["label"]]) == _results(record)  # equal, not close
    local_store = Store(Path(local[0]["checkpoint"]).parents[1] / STORE_NAME)
    with local_store, Store(ray_out / STORE_NAME) as ray_store:
        for record in local:
            assert ray_store.predictions(record["run_id"]) == local_store.predictions(record["run_id"])
    assert Path(by_label["lora:r=4"]["checkpoint"]).is_dir()  # written by the worker into the output folder


def test_a_worker_killed_mid_run_is_retried_and_the_run_finishes(both):
    _, remote, _, markers = both
    head = next(r for r in remote if r["label"] == KILLED_ONCE)
    assert (markers / f"{head['position']}.attempts").read_text() == "2"
    assert head["status"] == "finished" and head["test"]["accuracy"] > 0


def test_a_run_lost_on_every_retry_is_failed_and_the_others_finish(both):
    _, remote, ray_out, markers = both
    assert [(r["label"], r["status"]) for r in remote] == [
        ("head", "finished"), ("lora:r=4", "finished"), ("partial:k=1", "failed")]
    failed = remote[-1]
    assert (markers / f"{failed['position']}.attempts").read_text() == str(RETRIES + 1)
    assert failed["failure"]["error"].startswith(f"its Ray worker was lost {RETRIES + 1} times")
    with Store(ray_out / STORE_NAME) as store:  # the driver wrote it, with its reason
        stored = {r["label"]: r for r in store.records("tiny")}
        assert stored["partial:k=1"]["status"] == "failed"
        assert stored["partial:k=1"]["failure"]["error"] == failed["failure"]["error"]
        assert not store.finished(failed["run_id"])  # a re-run tries it again
    csv = (ray_out / "results.csv").read_text().splitlines()
    assert len(csv) == 4 and csv[-1].startswith(f"{failed['run_id']},partial:k=1,")
    assert ",failed,its Ray worker was lost" in csv[-1]
    assert "- **partial:k=1**: failed — its Ray worker was lost" in (ray_out / "summary.md").read_text()
    assert len(json.loads((ray_out / "results.json").read_text())["runs"]) == 3


GRID = {"lora.r": [2, 4], "lr": [1e-3, 3e-3]}
SEEDS = [0, 1, 2]


@pytest.fixture(scope="module")
def grid_both(ray_cluster, tiny_models, tmp_path_factory):
    """A rank × LR grid with three seeds (12 runs) from one spec, run locally and on Ray."""
    from tunebench.study.backends import RayBackend

    root = tmp_path_factory.mktemp("grid")
    csv = root / "reviews.csv"
    easy_reviews().to_csv(csv, index=False)

    def spec(out):
        return StudySpec(name="grid", data={"source": str(csv)}, model={"name": str(tiny_models["bert"]),
                                                                       "max_length": 32},
                         strategies=["lora"], training={"epochs": 2, "batch_size": 8},
                         sweep={"grid": GRID, "seeds": SEEDS}, output={"dir": str(out)})

    local = study_module.run_study(spec(root / "local"))
    # each Ray run with as many threads as the local run: another thread count sums floats in another order
    backend = RayBackend(max_retries=0, cpus_per_run=torch.get_num_threads())
    remote = study_module.run_study(spec(root / "ray"), backend=backend)
    return local, remote, root


def _table_without_times(path: Path) -> list[dict[str, str]]:
    import csv as csv_module

    with path.open() as handle:
        rows = list(csv_module.DictReader(handle))
    timing = ("time", "per_s", "memory", "bytes", "cost", "usd", "checkpoint", "device", "processes")
    return [{k: v for k, v in row.items() if not any(t in k for t in timing)} for row in rows]


def test_a_rank_by_lr_grid_with_three_seeds_is_identical_locally_and_on_ray(grid_both):
    local, remote, root = grid_both
    groups = sorted({r["group"] for r in local})
    assert groups == ["lora:r=2 lr=0.001", "lora:r=2 lr=0.003", "lora:r=4 lr=0.001", "lora:r=4 lr=0.003"]
    assert len(local) == len(remote) == 12
    assert sorted(r["label"].rsplit(" seed=", 1)[1] for r in local) == sorted(str(s) for s in SEEDS * 4)
    assert all(r["status"] == "finished" for r in local + remote)
    by_id = {r["run_id"]: r for r in remote}
    assert set(by_id) == {r["run_id"] for r in local}
    for record in local:
        assert _results(by_id[record["run_id"]]) == _results(record)  # equal, not close
    with Store(root / "local" / STORE_NAME) as a, Store(root / "ray" / STORE_NAME) as b:
        for record in local:
            assert a.predictions(record["run_id"]) == b.predictions(record["run_id"])
    by_config = _table_without_times(root / "local" / "results_by_config.csv")
    assert len(by_config) == 4 and all(row["seeds"] == "3" for row in by_config)
    assert _table_without_times(root / "ray" / "results_by_config.csv") == by_config


def test_the_grid_report_shows_intervals_and_significance(grid_both):
    from tunebench.report import build_report

    _, _, root = grid_both
    build_report(root / "ray", study="grid")
    report = (root / "ray" / "report.md").read_text()
    ranking = report.split("Ranking and significance", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in ranking.splitlines() if line.startswith("| ") and "lora:r=" in line]
    assert len(rows) == 4  # one row per configuration, each over its 3 seeds
    assert all(row.split(" | ")[1] == "3" for row in rows)  # configuration | seeds | ...
    references = sum("| reference (best on validation) |" in row for row in rows)
    flagged = sum("| not compared (flagged, no reference) |" in row for row in rows)
    assert references == 1 or flagged == 4  # a reference chosen on validation, or every configuration flagged
    assert "two-level test over 3 seeds" in ranking or flagged == 4
    assert "Holm–Bonferroni" in ranking and "McNemar" not in ranking


class Said:
    """A reporter that keeps the study's sentences."""

    def __init__(self):
        self.messages = []

    def message(self, text):
        self.messages.append(text)

    def __getattr__(self, name):  # run_started, step, epoch, run_finished, run_skipped: not needed here
        return lambda *args, **kwargs: None


def test_tuning_trials_run_on_ray_and_choose_the_local_backends_rate(ray_cluster, tiny_models, tmp_path):
    """Each rung's trials go to the Ray backend as one batch (every candidate on every tuning seed at once:
    no trial waits for another's epochs), and the choice, the trials and the final run equal the local ones."""
    from tunebench.study.backends import RayBackend

    csv = tmp_path / "reviews.csv"
    easy_reviews(400).to_csv(csv, index=False)

    def spec(out):
        return StudySpec(name="tuned", data={"source": str(csv)}, model={"name": str(tiny_models["bert"]),
                                                                        "max_length": 32},
                         strategies=["full"], baselines=[], training={"epochs": 3, "batch_size": 8},
                         tuning={"lr": [3e-3, 1e-5, 3e-6], "tune_head": False, "extend": 0, "reduction_factor": 2},
                         output={"dir": str(out)})

    class Counting(RayBackend):
        batches = []

        def run(self, spec, todo, *args, **kwargs):
            self.batches.append((spec.name, len(todo)))
            return super().run(spec, todo, *args, **kwargs)

    local, = study_module.run_study(spec(tmp_path / "local"))
    backend = Counting(max_retries=0, cpus_per_run=torch.get_num_threads())
    remote, = study_module.run_study(spec(tmp_path / "ray"), backend=backend)
    assert local["resolved"]["lr"] == remote["resolved"]["lr"] == 3e-3
    assert _results(remote) == _results(local)  # the final run: equal, not close
    with Store(tmp_path / "local" / STORE_NAME) as a, Store(tmp_path / "ray" / STORE_NAME) as b:
        here = {r["label"]: r for r in a.records("tuned:tuning")}
        there = {r["label"]: r for r in b.records("tuned:tuning")}
    # 3 rates x 2 seeds at 2 epochs, the best ceil(3 / 2) = 2 at 3
    assert sorted(here) == sorted(there) and len(here) == 3 * 2 + 2 * 2
    assert all(_results(there[label]) == _results(here[label]) for label in here)
    # rung 1: every rate on both seeds at once; rung 2: the best two on both seeds; then the final run
    assert backend.batches == [("tuned:tuning", 6), ("tuned:tuning", 4), ("tuned", 1)]
