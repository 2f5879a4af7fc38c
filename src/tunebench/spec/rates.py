"""Every learning rate a run trains at, resolved here once: the body's (:func:`body_rate`) and the
classifier head's (:func:`head_rate`, with a default chosen by measurement).

Its own module so that :mod:`tunebench.spec.strategy` stays a registry of options.  ``strategy`` is
any strategy options model (:mod:`tunebench.spec.strategy`); only its class attributes
``default_lr``, ``own_head_rate``, ``fitted`` and ``default_head_lr`` and its ``lr`` and
``head_lr`` are read.
"""

from __future__ import annotations

from typing import Any

#: The freshly initialised classifier head's rate when nothing sets one: the head never trains slower
#: than this, nor than the body (:func:`head_rate`).  Chosen by measurement on the offline twins
#: (docs/METHODS.md, "The head's rate"): at the body's own rate (5e-5 for full fine-tuning) a new
#: 52-class head barely moves in three epochs.
DEFAULT_HEAD_LR = 3e-3


def body_rate(strategy: Any, given: float | None = None) -> float:
    """The rate ``strategy`` trains at: ``strategy.lr``, else ``given`` (``training.lr``), else its kind's
    default (``default_lr``; the study's runs, and the centre of its tuning grid)."""
    return strategy.lr or given or type(strategy).default_lr


def head_rate(strategy: Any, lr: float, given: float | None = None) -> float | None:
    """The head's rate for ``strategy`` training at ``lr``: ``strategy.head_lr``, else ``given``
    (``training.head_lr``), else the kind's own default (VeRA, FourierFT), else
    ``max(DEFAULT_HEAD_LR, lr)``.  None when it is ``lr`` (one rate for all: the engine's single group,
    and the run id of runs stored before heads had a rate of their own), and always for a kind whose
    head is all that trains (head-only) or that is fitted by its own recipe (the baselines, embed-logreg,
    setfit: no engine, no head rate)."""
    options = type(strategy)
    if not options.own_head_rate or options.fitted:
        return None
    rate = strategy.head_lr or given or options.default_head_lr or max(DEFAULT_HEAD_LR, lr)
    return None if rate == lr else rate
