"""Two engine choices a study makes once, before its first run, and why: the attention kernel
(:mod:`tunebench.training.attention` makes the record: ``model.attention: auto`` measured, or as asked) and
whether runs are compiled (``training.compile: auto``: only where a run trains long enough for compiling
to pay back, from the kernel probe's step time).  Each is a record in every run's environment and the
sentence the terminal and the report print from it.  Plain data, no torch: the report reads them back."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

#: the kernels ``auto`` chooses between, the default first (kept on a tie)
KERNELS = ("sdpa", "eager")
#: relative gap under which the default is kept: the two sittings that motivated the probe measured gaps
#: of 14 % and 17 % (BENCHMARKS.md); a smaller band would let timing noise flip the kernel, and with it
#: the last digits of a study's results, between two runs on the same machine
TIE = 0.10
#: a model narrower than this (a tiny test model) spends too little of a step in attention for the kernel to
#: matter: the default is kept without timing, so that the choice cannot follow a loaded machine's noise
MIN_HIDDEN = 128


def pick_kernel(step_s: dict[str, float]) -> str:
    """The faster kernel unless the default is within :data:`TIE` of it."""
    fastest = min(step_s, key=step_s.get)
    return KERNELS[0] if step_s[KERNELS[0]] <= step_s[fastest] * (1 + TIE) else fastest


@dataclass
class AttentionChoice:
    """Which kernel a study's runs load, and why (recorded in every run's environment, shown in the report)."""

    requested: str  # the spec's model.attention
    kernel: str | None  # what runs load: "sdpa" | "eager", or None: transformers' own choice
    how: str  # "asked" | "measured" | "cached" | "too small" | "one kernel" | "not probed"
    step_s: dict[str, float] = field(default_factory=dict)  # median seconds of one training step per kernel
    detail: str = ""  # why it is not probed, or the probe batch's shape

    def as_record(self) -> dict[str, Any]:
        return asdict(self)

    def sentence(self) -> str:
        """One line for the terminal and the report."""
        if self.how == "asked":
            return f"attention kernel: {self.kernel} (as asked)"
        if self.how == "not probed":
            return f"attention kernel: transformers' default (auto, not probed: {self.detail})"
        if self.how == "too small":
            return (f"attention kernel: transformers' default (auto, not timed: a model {self.detail} wide spends "
                    "too little of a step in attention for the kernel to matter)")
        if self.how == "one kernel":
            return f"attention kernel: {self.kernel} (auto: {self.detail})"
        times = ", ".join(f"{k} {s * 1000:.1f} ms" for k, s in self.step_s.items())
        fastest = min(self.step_s, key=self.step_s.get)
        why = "the faster" if self.kernel == fastest else f"the default, {fastest} within {TIE:.0%}"
        when = "measured now" if self.how == "measured" else "measured earlier on this machine, cached"
        return (f"attention kernel: {self.kernel} (auto: {why}; one training step of the whole model on "
                f"{self.detail}: {times}; {when})")


#: seconds of training of one run after which ``torch.compile`` has paid back its compile time, per device
#: type, measured by ``benchmarks/compile_cpu.py`` on the default study's workload (BENCHMARKS.md, "Does
#: torch.compile pay"); ``auto`` never compiles on a device type that has no measurement here.  CPU
#: (2026-12-06, 2-core AMD EPYC, AVX512): compiled full fine-tuning ran its steady epoch at 0.91x plain speed
#: after 61 s of compiling (and 40 s more in evaluation), so it never pays back: infinity.
COMPILE_BREAK_EVEN_S: dict[str, float] = {"cpu": math.inf}


@dataclass
class CompileChoice:
    """Whether a study's runs are compiled (``training.compile``), and why."""

    requested: bool | str  # true | false | "auto"
    on: bool
    estimate_s: float | None = None  # auto: the longest run's training seconds, estimated from the kernel probe
    break_even_s: float | None = None  # auto: the training seconds after which compiling pays back here
    detail: str = ""  # auto: why there is no estimate, or the device type

    def as_record(self) -> dict[str, Any]:
        return asdict(self)

    def sentence(self) -> str:
        if self.requested is not None and not isinstance(self.requested, str):
            return f"torch.compile: {'on' if self.on else 'off'} (as asked)"
        if self.estimate_s is None or self.break_even_s is None:
            return f"torch.compile: off (auto: {self.detail})"
        than = "more than" if self.on else "less than"
        return (f"torch.compile: {'on' if self.on else 'off'} (auto: the longest run trains an estimated "
                f"{self.estimate_s:,.0f} s, {than} the {self.break_even_s:,.0f} s after which compiling pays back on "
                f"{self.detail}; BENCHMARKS.md)")


def compile_choice(requested: bool | str, device_type: str, step_s: float | None, batches: int) -> CompileChoice:
    """``training.compile``'s answer for a study whose longest run trains ``batches`` batches at ``step_s``
    seconds each (the kernel probe's forward + backward step of the whole model: full fine-tuning's cost,
    an upper bound for methods that train less)."""
    if not isinstance(requested, str):
        return CompileChoice(requested, bool(requested))
    break_even = COMPILE_BREAK_EVEN_S.get(device_type)
    if break_even is None:
        return CompileChoice(requested, False, detail=f"compile time not measured on {device_type} "
                                                      "(benchmarks/compile_cpu.py); --compile turns it on")
    if math.isinf(break_even):
        return CompileChoice(requested, False, detail=f"compiled training was no faster than plain training on "
                                                      f"{device_type} when measured (BENCHMARKS.md); --compile turns it on")
    if step_s is None:
        return CompileChoice(requested, False, detail="no step time to estimate a run's length (the attention "
                                                      "kernel was not timed)")
    estimate = step_s * batches
    return CompileChoice(requested, estimate > break_even, estimate, break_even, f"this {device_type}")
