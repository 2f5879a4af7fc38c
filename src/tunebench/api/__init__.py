"""tunebench's Python API: ``Study(...).run()`` and ``load(folder)`` give a :class:`Result`.

The layer between the command line and the study: ``tunebench run`` / ``sweep`` call
:func:`tunebench.api.study.run_spec`, the same path as ``Study.run``.
"""

from tunebench.api.result import Recommendation, Report, Result, Run, load
from tunebench.api.study import LaunchFailed, Study, describe, run_spec

__all__ = ["LaunchFailed", "Recommendation", "Report", "Result", "Run", "Study", "describe", "load", "run_spec"]
