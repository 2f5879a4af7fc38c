"""Send stored runs where people already look: TensorBoard event files and a local MLflow store.

Both are optional extras (``pip install 'tunebench[tracking]'``); a missing package is one clear
sentence, not a traceback.  Each run is written afresh on every call, so repeating a report
does not duplicate curves.
"""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path
from typing import Any

from tunebench.errors import SpecError, TunebenchError

BACKENDS = ("tensorboard", "mlflow")
MISSING = {
    "tensorboard": "--track tensorboard needs the tensorboard package: pip install 'tunebench[tracking]' "
                   "(or pip install tensorboard)",
    "mlflow": "--track mlflow needs the mlflow package, which is not installed: pip install mlflow",
}
CURVE_KEYS = ("train_loss", "val_loss", "val_accuracy", "val_macro_f1", "train_time_s")
TEST_KEYS = ("accuracy", "macro_f1", "macro_precision", "macro_recall", "weighted_f1", "weighted_precision",
             "weighted_recall")


class TrackingError(TunebenchError):
    """A tracking backend is unknown or not installed."""


def check_backends(names: list[str] | None) -> list[str]:
    """The chosen backends, checked before any work: known names, packages installed."""
    chosen = [n.strip().lower() for n in names or [] if n.strip()]
    for n in chosen:
        if n not in BACKENDS:
            raise SpecError(f"--track must be one of {', '.join(BACKENDS)} (got '{n}')")
        if importlib.util.find_spec(n) is None:
            raise TrackingError(MISSING[n])
    return list(dict.fromkeys(chosen))


def slug(record: dict[str, Any]) -> str:
    label = record["strategy"].replace(":", "-").replace(",", "_").replace("=", "").replace("+", "-")
    return f"{record['position']:02d}-{label}-{record['run_id']}"


def track(backends: list[str], records: list[dict[str, Any]], out_dir: Path, reports: dict[str, Path]) -> dict[str, Path]:
    """Log ``records`` to each backend; return where each one wrote."""
    written = {}
    for name in check_backends(backends):
        if name == "tensorboard":
            written[name] = to_tensorboard(records, Path(out_dir) / "tensorboard")
        else:
            written[name] = to_mlflow(records, Path(out_dir) / "mlruns", reports)
    return written


def to_tensorboard(records: list[dict[str, Any]], log_dir: Path) -> Path:
    """Per-epoch scalars of every run, one sub-folder per run, plus its test metrics at the best epoch."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError as exc:
        raise TrackingError(MISSING["tensorboard"]) from exc
    for r in records:
        run_dir = log_dir / slug(r)
        shutil.rmtree(run_dir, ignore_errors=True)
        with SummaryWriter(log_dir=str(run_dir)) as writer:
            for c in r["curves"]:
                for key in CURVE_KEYS:
                    if c.get(key) is not None:
                        writer.add_scalar(f"epoch/{key}", c[key], global_step=c["epoch"])
            for key in TEST_KEYS:
                writer.add_scalar(f"test/{key}", r["test"][key], global_step=r["best_epoch"])
            writer.add_text("run", f"{r['strategy']} ({r['run_id']}), study {r['study']}")
    return log_dir


def to_mlflow(records: list[dict[str, Any]], store_dir: Path, reports: dict[str, Path]) -> Path:
    """One MLflow run per tunebench run in a local file store: params, per-epoch and test metrics, the report."""
    try:
        import mlflow
    except ImportError as exc:
        raise TrackingError(MISSING["mlflow"]) from exc
    mlflow.set_tracking_uri(store_dir.resolve().as_uri())
    experiment = mlflow.set_experiment(records[0]["study"])
    client = mlflow.MlflowClient()
    for r in records:
        for old in client.search_runs([experiment.experiment_id], f"tags.tunebench_run_id = '{r['run_id']}'"):
            client.delete_run(old.info.run_id)
        with mlflow.start_run(run_name=r["strategy"], tags={"tunebench_run_id": r["run_id"]}):
            mlflow.log_params(params(r))
            for c in r["curves"]:
                mlflow.log_metrics({k: float(c[k]) for k in CURVE_KEYS if c.get(k) is not None}, step=c["epoch"])
            mlflow.log_metrics({f"test_{k}": float(r["test"][k]) for k in TEST_KEYS})
            mlflow.log_metrics({"train_time_s": float(r["resources"]["train_time_s"]),
                                "trainable_params": float(r["params"]["trainable"])})
            for path in reports.values():
                mlflow.log_artifact(str(path))
    return store_dir


def params(record: dict[str, Any]) -> dict[str, str]:
    """Flat string params: the strategy's fields and the resolved training settings."""
    out = {f"strategy.{k}": v for k, v in record["spec"].items() if v is not None}
    out.update({f"training.{k}": v for k, v in record["resolved"].items()})
    out.update({"model": record["model"]["name"], "data": record["data"]["name"], "run_id": record["run_id"]})
    return {k: str(v) for k, v in sorted(out.items())}
