"""Tracking while a study trains, read back with each tracker's own tools (no fakes):
TensorBoard's EventAccumulator, MLflow's MlflowClient on the SQLite store, W&B's offline run files."""

from __future__ import annotations

import json
import struct
import zlib
from pathlib import Path

import pytest

from tunebench.report import trackers, tracking
from tunebench.report.live import TrackingReporter, _Quiet

from .conftest import cli, easy_reviews, one_error

LABELS = ["head", "partial:k=1"]


@pytest.fixture(scope="module")
def tracked(tiny_bert, tmp_path_factory, monkeypatch_module):
    monkeypatch_module.delenv("WANDB_MODE", raising=False)  # the default: offline
    monkeypatch_module.delenv("MLFLOW_TRACKING_URI", raising=False)
    root = tmp_path_factory.mktemp("tracking")
    easy_reviews().to_csv(root / "reviews.csv", index=False)
    out = root / "out"
    from tunebench.cli.app import main

    code = main(["run", "--quick", "--model", str(tiny_bert), "--dataset", str(root / "reviews.csv"), "--epochs", "2",
                 "--batch-size", "16", "--max-length", "32", "--lr", "0.003", "-o", str(out), "--name", "trk",
                 "-s", "head", "partial:k=1", "--track", "tensorboard", "mlflow", "wandb", "--price", "CPU=3.6"])
    assert code == 0
    records = {r["label"]: r for r in json.loads((out / "results.json").read_text())["runs"]}
    assert list(records) == LABELS
    return out, records


def tracked_labels(out: Path) -> list[str]:
    """Every run the study logged: its strategies (the baselines, seconds of scikit-learn, are not tracked)."""
    return sorted(LABELS)


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as mp:
        yield mp


def test_price_on_run_reaches_the_report(tracked):
    out, records = tracked
    html = (out / "report.html").read_text()
    assert "CPU" in html and "3.6" in html


def test_tensorboard_event_files_hold_the_stored_curves(tracked):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out, records = tracked
    study_dir = out / "tensorboard" / "trk"
    assert sorted(p.name for p in study_dir.iterdir()) == sorted(trackers.folder_name(x) for x in tracked_labels(out))
    for label, record in records.items():
        acc = EventAccumulator(str(study_dir / trackers.folder_name(label)), size_guidance={"scalars": 0})
        acc.Reload()
        batches = trackers.batches_per_epoch(record)
        f1 = acc.Scalars("epoch/val_macro_f1")
        assert [e.value for e in f1] == pytest.approx([c["val_macro_f1"] for c in record["curves"]])
        assert [e.step for e in f1] == [c["epoch"] * batches for c in record["curves"]]
        assert [e.value for e in acc.Scalars("epoch/train_loss")] == pytest.approx(
            [c["train_loss"] for c in record["curves"]])
        losses = acc.Scalars("step/loss")
        assert [e.step for e in losses] == list(range(1, 2 * batches + 1))  # every batch, live
        assert len(acc.Scalars("step/lr")) == len(losses) and acc.Scalars("step/lr")[0].value > 0
        assert acc.Scalars("test/macro_f1")[0].value == pytest.approx(record["test"]["macro_f1"])
        assert acc.Scalars("params/trainable")[0].value == record["params"]["trainable"]


def _mlflow(out: Path):
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=f"sqlite:///{out.resolve() / 'mlflow.db'}")


def test_mlflow_store_holds_one_run_per_tunebench_run(tracked):
    out, records = tracked
    client = _mlflow(out)
    experiment = client.get_experiment_by_name("trk")
    runs = {r.info.run_name: r for r in client.search_runs([experiment.experiment_id])}
    assert sorted(runs) == tracked_labels(out)
    for label, record in records.items():
        run = runs[label]
        assert run.info.status == "FINISHED" and run.data.tags["tunebench_run_id"] == record["run_id"]
        assert run.data.params["training.lr"] == str(record["resolved"]["lr"])
        assert run.data.params["strategy.kind"] == record["spec"]["kind"]
        history = client.get_metric_history(run.info.run_id, "epoch/val_macro_f1")
        assert [m.value for m in sorted(history, key=lambda m: m.step)] == pytest.approx(
            [c["val_macro_f1"] for c in record["curves"]])
        assert run.data.metrics["test/macro_f1"] == pytest.approx(record["test"]["macro_f1"])
        assert run.data.metrics["resources/train_time_s"] == pytest.approx(record["resources"]["train_time_s"])
        assert len(client.get_metric_history(run.info.run_id, "step/loss")) == 2 * trackers.batches_per_epoch(record)
        assert {a.path for a in client.list_artifacts(run.info.run_id)} == {"report.html", "report.md"}


def wandb_records(path: Path):
    """The protobuf records of a W&B transaction log (``run-ID.wandb``: a LevelDB-style log of 32 KiB blocks)."""
    from wandb.proto import wandb_internal_pb2 as pb

    data = path.read_bytes()
    assert data[:4] == b":W&B" and struct.unpack("<H", data[4:6])[0] == 0xBEE1
    pos, block, pending = 7, 32768, b""
    while pos + 7 <= len(data):
        left = block - pos % block
        if left < 7:  # the block's tail is padding
            pos += left
            continue
        checksum, length, kind = struct.unpack("<IHB", data[pos:pos + 7])
        if length == 0 and kind == 0:
            break
        chunk = data[pos + 7:pos + 7 + length]
        assert zlib.crc32(chunk, zlib.crc32(bytes([kind]))) & 0xFFFFFFFF == checksum
        pos += 7 + length
        pending += chunk
        if kind in (1, 4):  # FULL or LAST
            record = pb.Record()
            record.ParseFromString(pending)
            pending = b""
            yield record


def _item_key(item) -> str:
    return item.key or "/".join(item.nested_key)


def test_wandb_offline_runs_hold_the_stored_metrics(tracked):
    out, records = tracked
    files = sorted((out / "wandb").glob("offline-run-*/run-*.wandb"))
    assert len(files) == len(tracked_labels(out))  # offline by default: nothing left the machine
    seen = {}
    for path in files:
        run, history, summary, artifacts = None, [], {}, []
        for r in wandb_records(path):
            kind = r.WhichOneof("record_type")
            if kind == "run":
                run = r.run
            elif kind == "history":
                history.append({_item_key(i): json.loads(i.value_json) for i in r.history.item})
            elif kind == "summary":
                summary.update({_item_key(i): json.loads(i.value_json) for i in r.summary.update})
            elif kind == "artifact":
                artifacts.append(r.artifact.type)
        seen[run.display_name] = (run, history, summary, artifacts)
    assert sorted(seen) == tracked_labels(out)
    for label, record in records.items():
        run, history, summary, _ = seen[label]
        assert run.run_group == "trk" and run.project == "tunebench"
        f1 = [h["epoch/val_macro_f1"] for h in history if "epoch/val_macro_f1" in h]
        assert f1 == pytest.approx([c["val_macro_f1"] for c in record["curves"]])
        assert sum("step/loss" in h for h in history) == 2 * trackers.batches_per_epoch(record)
        assert summary["test/macro_f1"] == pytest.approx(record["test"]["macro_f1"])
    assert sum(a == ["report"] for *_, a in seen.values()) == 1  # the report: an artifact of the study's last run


def test_report_track_replays_the_store_once_per_run(tracked, capsys):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out, records = tracked
    code, stdout, err = cli(capsys, "report", str(out), "--track", "tensorboard", "--track", "mlflow")
    assert code == 0, err
    assert "tensorboard: " in stdout and "mlflow: sqlite:" in stdout
    client = _mlflow(out)
    experiment = client.get_experiment_by_name("trk")
    runs = client.search_runs([experiment.experiment_id])
    assert sorted(r.info.run_name for r in runs) == tracked_labels(out)  # replaced, not duplicated
    head = next(r for r in runs if r.info.run_name == "head")
    assert head.data.metrics["test/macro_f1"] == pytest.approx(records["head"]["test"]["macro_f1"])
    acc = EventAccumulator(str(out / "tensorboard" / "trk" / "head"))
    acc.Reload()
    assert [e.value for e in acc.Scalars("epoch/val_macro_f1")] == pytest.approx(
        [c["val_macro_f1"] for c in records["head"]["curves"]])
    assert "step/loss" not in acc.Tags()["scalars"]  # a replay has the epochs, not the steps


def test_unknown_or_missing_tracker_is_one_sentence_before_training(capsys, tmp_path, monkeypatch):
    code, _, err = cli(capsys, "run", "--track", "neptune", "-o", str(tmp_path / "o"))
    assert code == 2 and "--track must be one of tensorboard, mlflow, wandb (got 'neptune')" in one_error(err)
    assert not (tmp_path / "o").exists()
    assert tracking.check_backends("tensorboard, mlflow wandb") == ["tensorboard", "mlflow", "wandb"]
    monkeypatch.setattr(tracking.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(tracking.TrackingError, match="pip install wandb"):
        tracking.check_backends(["wandb"])


def test_tracking_reporter_forwards_and_logs_each_step(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    calls = []

    class Inner(_Quiet):
        def step(self, info):
            calls.append(info["batch"])

    reporter = TrackingReporter(Inner(), ["tensorboard"], tmp_path, "s")
    reporter.run_started(0, 1, "lora:r=8", 3, 2)
    for epoch in (1, 2):
        for batch in (1, 2, 3):
            reporter.step({"epoch": epoch, "epochs": 2, "batch": batch, "batches": 3, "loss": 1.0 / batch,
                           "examples_per_s": 10.0, "lr": 0.01 * (7 - 3 * epoch - batch)})
        reporter.epoch({"epoch": epoch, "val_macro_f1": 0.5 + epoch / 10})
    record = {"run_id": "x", "study": "s", "label": "lora:r=8", "strategy": "lora:r=8", "status": "finished",
              "position": 0, "curves": [{"epoch": 1, "val_macro_f1": 0.6}, {"epoch": 2, "val_macro_f1": 0.7}],
              "test": {"macro_f1": 0.8}, "params": {"trainable": 5}, "resources": {"train_time_s": 1.5}}
    reporter.run_finished(record)
    reporter.close()
    assert calls == [1, 2, 3, 1, 2, 3]
    acc = EventAccumulator(str(tmp_path / "tensorboard" / "s" / "lora-r=8"))
    acc.Reload()
    f1 = acc.Scalars("epoch/val_macro_f1")  # logged once, when each epoch ended (not again with the record)
    assert [e.step for e in f1] == [3, 6] and [e.value for e in f1] == pytest.approx([0.6, 0.7])
    assert [e.step for e in acc.Scalars("step/lr")] == [1, 2, 3, 4, 5, 6]
    assert acc.Scalars("step/lr")[0].value == pytest.approx(0.03)
