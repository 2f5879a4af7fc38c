"""tunebench: which way of fine-tuning is best for my text-classification task?

From Python::

    import tunebench as tb
    result = tb.Study(dataset="rotten-tomatoes", strategies=["full", "lora:r=8", "head"], epochs=3).run()
    result.table, result.by_config, result.recommendation, result.best.predict(["a fine film"])
    result.report()                      # inline in Jupyter
    tb.load("tunebench-out")             # the same, from a finished study folder

Names are imported on first use (module ``__getattr__``), so ``import tunebench`` stays cheap for
the command line.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

#: public name → the module that defines it
_EXPORTS = {
    "Study": "tunebench.api.study",
    "Result": "tunebench.api.result",
    "Run": "tunebench.api.result",
    "Report": "tunebench.api.result",
    "Recommendation": "tunebench.api.result",
    "load": "tunebench.api.result",
    "export_run": "tunebench.api.export",
    "StudySpec": "tunebench.spec.study",
    "TunebenchError": "tunebench.errors",
    "SpecError": "tunebench.errors",
    "DataError": "tunebench.errors",
    "ModelError": "tunebench.errors",
    "StoreError": "tunebench.errors",
}

__all__ = ["DataError", "ModelError", "Recommendation", "Report", "Result", "Run", "SpecError", "StoreError", "Study",
           "StudySpec", "TunebenchError", "__version__", "export_run", "load"]

if TYPE_CHECKING:  # pragma: no cover
    from tunebench.api.export import export_run
    from tunebench.api.result import Recommendation, Report, Result, Run, load
    from tunebench.api.study import Study
    from tunebench.errors import DataError, ModelError, SpecError, StoreError, TunebenchError
    from tunebench.spec.study import StudySpec


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'tunebench' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # the next access is a plain lookup
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})
