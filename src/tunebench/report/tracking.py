"""Send runs where people already look: TensorBoard, MLflow, Weights & Biases.

Live, while a study trains (``tunebench run --track``, ``training.track``, ``tb.Study(track=...)``:
:class:`tunebench.report.live.TrackingReporter`), or afterwards from the store (``tunebench report
--track``: :func:`track`).  Both go through the same backends (:mod:`tunebench.report.trackers`),
so a run logged live and the same run exported later look the same.  The packages are optional
extras (``pip install 'tunebench[tracking]'``); a missing one is one sentence, before any work.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

from tunebench.errors import SpecError, first_line
from tunebench.report.trackers import BACKENDS, CURVE_KEYS, MISSING, TEST_KEYS, TrackingError, folder_name, params

__all__ = ["BACKENDS", "CURVE_KEYS", "MISSING", "TEST_KEYS", "TrackingError", "check_backends", "folder_name",
           "params", "track"]

#: the package each backend imports (TensorBoard's writer is torch's, which needs the tensorboard package)
PACKAGES = {"tensorboard": "tensorboard", "mlflow": "mlflow", "wandb": "wandb"}


def check_backends(names: list[str] | str | None) -> list[str]:
    """The chosen backends, checked before any work: known names, packages installed; ``"a b"`` and
    ``"a,b"`` are two names."""
    if isinstance(names, str):
        names = [names]
    chosen = [n.strip().lower() for item in names or [] for n in item.replace(",", " ").split() if n.strip()]
    for n in chosen:
        if n not in BACKENDS:
            raise SpecError(f"--track must be one of {', '.join(BACKENDS)} (got '{n}')")
        if importlib.util.find_spec(PACKAGES[n]) is None:
            raise TrackingError(MISSING[n])
        try:  # installed but broken (a version clash, a missing library) fails here, not after the study
            importlib.import_module(PACKAGES[n])
        except Exception as exc:
            raise TrackingError(f"--track {n}: the package '{PACKAGES[n]}' is installed but fails to import "
                                f"({type(exc).__name__}: {first_line(exc, 160)}); reinstall it, or leave out "
                                f"--track {n}") from None
    return list(dict.fromkeys(chosen))


def track(backends: list[str], records: list[dict[str, Any]], out_dir: Path, reports: dict[str, Path]) -> dict[str, str]:
    """Log stored ``records`` to each backend (one tracker run per record, replacing an earlier export of
    the same run); attach the ``reports``; return where each backend wrote."""
    from tunebench.report.live import replay

    chosen = check_backends(backends)
    if not chosen or not records:
        return {}
    return replay(chosen, records, Path(out_dir), list(reports.values()))
