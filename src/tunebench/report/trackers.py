"""The experiment trackers tunebench logs to: TensorBoard event files, an MLflow store, W&B runs.

One tunebench run is one tracker run, grouped by its study and named by its label:

- TensorBoard: ``OUTPUT/tensorboard/<study>/<label>/`` (``tensorboard --logdir OUTPUT/tensorboard``);
- MLflow: the experiment named after the study, in ``$MLFLOW_TRACKING_URI`` when set, else a SQLite
  store in the output folder (``OUTPUT/mlflow.db``, artifacts in ``OUTPUT/mlartifacts``);
- W&B: project ``$WANDB_PROJECT`` (default ``tunebench``), group = the study, files under
  ``OUTPUT/wandb``; offline (``WANDB_MODE=offline``) unless the user set ``WANDB_MODE``.

Every backend has the same five calls, used both while a study trains (:mod:`tunebench.report.live`)
and afterwards from the store (:func:`tunebench.report.tracking.track`): ``open`` a run, ``log``
metrics at a step, ``finish`` it with its record, ``attach`` the report, ``close``.  The step axis
is the number of training batches seen, so per-step and per-epoch metrics share one x axis.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import time
from pathlib import Path
from typing import Any

from tunebench.errors import TunebenchError
from tunebench.spec import metrics

BACKENDS = ("tensorboard", "mlflow", "wandb")
MISSING = {
    "tensorboard": "--track tensorboard needs the tensorboard package: pip install 'tunebench[tracking]' "
                   "(or pip install tensorboard)",
    "mlflow": "--track mlflow needs the mlflow package, which is not installed: pip install mlflow "
              "(or pip install 'tunebench[tracking]')",
    "wandb": "--track wandb needs the wandb package, which is not installed: pip install wandb "
             "(or pip install 'tunebench[tracking]')",
}
#: per epoch (the record's curves) → tracked as ``epoch/<key>``: the losses, every metric of the table a
#: curve point holds (``val_accuracy``, ``val_macro_f1``, the selection metric's), the epoch's time
CURVE_KEYS = ("train_loss", "val_loss", *(metrics.curve_key(name) for name in metrics.names()), "train_time_s")
#: the test metrics at the best epoch → ``test/<key>``: the table's, and the loss
TEST_KEYS = (*metrics.names(), "loss")


class TrackingError(TunebenchError):
    """A tracking backend is unknown, not installed, or refused what was logged."""


def folder_name(text: str) -> str:
    """A folder name from a study name or run label (letters, digits, ``.``, ``_``, ``-``, ``=``)."""
    name = re.sub(r"[^A-Za-z0-9._=-]+", "_", text.replace(":", "-").replace(",", "_").replace("+", "-"))
    return name.strip("._") or "run"


def batches_per_epoch(record: dict[str, Any]) -> int:
    """Training batches per epoch of a stored run (the step axis of its per-epoch metrics)."""
    train = record.get("data", {}).get("sizes", {}).get("train") or 0
    batch = (record.get("resolved") or {}).get("batch_size") or 1
    return max(1, -(-int(train) // int(batch)))


def epoch_metrics(curve: dict[str, Any]) -> dict[str, float]:
    values = {f"epoch/{k}": float(curve[k]) for k in CURVE_KEYS if curve.get(k) is not None}
    values["epoch"] = float(curve["epoch"])
    return values


def final_metrics(record: dict[str, Any]) -> dict[str, float]:
    """What a finished run ends with: test metrics, best epoch, parameters and resources (numbers only)."""
    out: dict[str, float] = {}
    for k in TEST_KEYS:
        if (record.get("test") or {}).get(k) is not None:
            out[f"test/{k}"] = float(record["test"][k])
    if record.get("best_epoch") is not None:
        out["best_epoch"] = float(record["best_epoch"])
    for section in ("params", "resources"):
        for k, v in (record.get(section) or {}).items():
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                out[f"{section}/{k}"] = float(v)
    if record.get("save_bytes") is not None:
        out["params/save_bytes"] = float(record["save_bytes"])
    return out


def params(record: dict[str, Any]) -> dict[str, str]:
    """Flat string params: the strategy's fields, the resolved training settings, model, data, ids."""
    out = {f"strategy.{k}": v for k, v in (record.get("spec") or {}).items() if v is not None}
    out.update({f"training.{k}": v for k, v in (record.get("resolved") or {}).items()})
    out.update({"model": (record.get("model") or {}).get("name"), "data": (record.get("data") or {}).get("name"),
                "run_id": record["run_id"], "study": record["study"], "label": record.get("label", record["strategy"]),
                "status": record["status"]})
    out.update({f"sweep.{k}": v for k, v in (record.get("sweep") or {}).items()})
    return {k: str(v) for k, v in sorted(out.items()) if v is not None}


class TensorBoardBackend:
    """Event files, one folder per run under ``<log_dir>/<study>/<label>``; a new attempt replaces the folder."""

    name = "tensorboard"

    def __init__(self, out_dir: Path) -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError as exc:
            raise TrackingError(MISSING["tensorboard"]) from exc
        self._writer_type = SummaryWriter
        self.where = Path(out_dir) / "tensorboard"

    def open(self, study: str, label: str) -> Any:
        folder = self.where / folder_name(study) / folder_name(label)
        shutil.rmtree(folder, ignore_errors=True)
        return self._writer_type(log_dir=str(folder))

    def log(self, writer: Any, values: dict[str, float], step: int) -> None:
        for key, value in values.items():
            writer.add_scalar(key, value, global_step=step)

    def finish(self, writer: Any, record: dict[str, Any], step: int) -> None:
        self.log(writer, final_metrics(record), step)
        writer.add_text("run", f"{record.get('label', record['strategy'])} ({record['run_id']}), study "
                               f"{record['study']}: {record['status']}")
        writer.add_text("params", "\n".join(f"    {k} = {v}" for k, v in params(record).items()))
        writer.close()

    def attach(self, handles: list[Any], paths: list[Path]) -> None:
        """TensorBoard keeps no files: the report stays in the output folder."""

    def close(self) -> None:
        pass


class MlflowBackend:
    """One MLflow run per tunebench run, in the experiment named after the study (MlflowClient: runs
    that train at the same time on Ray each get their own)."""

    name = "mlflow"

    def __init__(self, out_dir: Path) -> None:
        try:
            from mlflow import MlflowClient
        except ImportError as exc:
            raise TrackingError(MISSING["mlflow"]) from exc
        for noisy in ("mlflow", "alembic"):
            logging.getLogger(noisy).setLevel(logging.WARNING)
        out_dir = Path(out_dir).resolve()
        self.uri = os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{out_dir / 'mlflow.db'}"
        self.artifacts = (out_dir / "mlartifacts").as_uri()
        self.where = self.uri
        self.client = MlflowClient(tracking_uri=self.uri)
        self._experiments: dict[str, str] = {}

    def experiment(self, study: str) -> str:
        if study not in self._experiments:
            found = self.client.get_experiment_by_name(study)
            self._experiments[study] = found.experiment_id if found is not None else self.client.create_experiment(
                study, artifact_location=None if os.environ.get("MLFLOW_TRACKING_URI") else f"{self.artifacts}/{study}")
        return self._experiments[study]

    def open(self, study: str, label: str) -> str:
        experiment = self.experiment(study)
        quoted = label.replace("'", "\\'")
        for old in self.client.search_runs([experiment], f"tags.tunebench_label = '{quoted}'"):
            self.client.delete_run(old.info.run_id)  # a new attempt at the row replaces the old one
        run = self.client.create_run(experiment, run_name=label,
                                     tags={"tunebench_label": label, "tunebench_study": study})
        return run.info.run_id

    def log(self, run_id: str, values: dict[str, float], step: int) -> None:
        from mlflow.entities import Metric

        stamp = int(time.time() * 1000)
        self.client.log_batch(run_id, metrics=[Metric(k, v, stamp, step) for k, v in values.items()])

    def finish(self, run_id: str, record: dict[str, Any], step: int) -> None:
        from mlflow.entities import Param, RunTag

        self.log(run_id, final_metrics(record), step)
        self.client.log_batch(run_id, params=[Param(k, v[:6000]) for k, v in params(record).items()],
                              tags=[RunTag("tunebench_run_id", record["run_id"]),
                                    RunTag("tunebench_status", record["status"])])
        status = {"finished": "FINISHED", "interrupted": "KILLED", "pruned": "KILLED"}.get(record["status"], "FAILED")
        self.client.set_terminated(run_id, status=status)

    def attach(self, handles: list[str], paths: list[Path]) -> None:
        for run_id in handles:
            for path in paths:
                self.client.log_artifact(run_id, str(path))

    def close(self) -> None:
        pass


class WandbBackend:
    """One W&B run per tunebench run (``group`` = the study, ``name`` = the label), offline by default.

    W&B cannot add to a run once it has finished, so each run stays open until the next one finishes
    or the study ends: the report is an artifact of the study's last run."""

    name = "wandb"

    def __init__(self, out_dir: Path) -> None:
        os.environ.setdefault("WANDB_MODE", "offline")  # online only when the user says so
        os.environ.setdefault("WANDB_SILENT", "true")
        try:
            import wandb
        except ImportError as exc:
            raise TrackingError(MISSING["wandb"]) from exc
        self.wandb = wandb
        self.root = Path(out_dir).resolve()
        self.root.mkdir(parents=True, exist_ok=True)
        self.where = self.root / "wandb"
        self.project = os.environ.get("WANDB_PROJECT", "tunebench")
        self._open_after_finish: list[tuple[Any, int]] = []

    def open(self, study: str, label: str) -> Any:
        try:
            run = self.wandb.init(project=self.project, group=study, name=label, dir=str(self.root),
                                  job_type="tunebench-run", config={"study": study, "label": label},
                                  reinit="create_new",
                                  settings=self.wandb.Settings(console="off", silent=True, save_code=False))
        except Exception as exc:  # not logged in while WANDB_MODE=online, a bad entity, ...
            raise TrackingError(f"W&B could not start a run for '{label}' ({type(exc).__name__}: "
                                f"{str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ''}); "
                                "log in with 'wandb login' or leave WANDB_MODE unset to log offline") from None
        run.define_metric("batch")
        run.define_metric("step/*", step_metric="batch")
        run.define_metric("epoch/*", step_metric="batch")
        return run

    def log(self, run: Any, values: dict[str, float], step: int) -> None:
        run.log({**values, "batch": step})

    def finish(self, run: Any, record: dict[str, Any], step: int) -> None:
        final = final_metrics(record)
        run.log({**final, "batch": step})
        run.summary.update({**final, "status": record["status"]})
        run.config.update(params(record), allow_val_change=True)
        self.close()  # the run finished before this one is complete now
        self._open_after_finish = [(run, 0 if record["status"] == "finished" else 1)]

    def attach(self, handles: list[Any], paths: list[Path]) -> None:
        for run, _ in self._open_after_finish:
            artifact = self.wandb.Artifact(f"report-{folder_name(run.group or 'study')}", type="report")
            for path in paths:
                artifact.add_file(str(path))
            run.log_artifact(artifact)

    def close(self) -> None:
        for run, code in self._open_after_finish:
            run.finish(exit_code=code)
        self._open_after_finish = []


BACKEND_TYPES = {"tensorboard": TensorBoardBackend, "mlflow": MlflowBackend, "wandb": WandbBackend}


def open_backends(names: list[str], out_dir: Path) -> list[Any]:
    """The backends named (already checked by :func:`tunebench.report.tracking.check_backends`)."""
    return [BACKEND_TYPES[name](Path(out_dir)) for name in names]
