"""The attention kernel a study's runs load, and why: the record :mod:`tunebench.training.attention` makes
(``model.attention: auto`` measured, or as asked) and the sentence the terminal and the report print from it.
Plain data, no torch: the report reads it back from every run's environment record."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

#: the kernels ``auto`` chooses between, the default first (kept on a tie)
KERNELS = ("sdpa", "eager")
#: relative gap under which the default is kept
TIE = 0.03


@dataclass
class AttentionChoice:
    """Which kernel a study's runs load, and why (recorded in every run's environment, shown in the report)."""

    requested: str  # the spec's model.attention
    kernel: str | None  # what runs load: "sdpa" | "eager", or None: transformers' own choice
    how: str  # "asked" | "measured" | "cached" | "one kernel" | "not probed"
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
        if self.how == "one kernel":
            return f"attention kernel: {self.kernel} (auto: {self.detail})"
        times = ", ".join(f"{k} {s * 1000:.1f} ms" for k, s in self.step_s.items())
        fastest = min(self.step_s, key=self.step_s.get)
        why = "the faster" if self.kernel == fastest else f"the default, {fastest} within {TIE:.0%}"
        when = "measured now" if self.how == "measured" else "measured earlier on this machine, cached"
        return (f"attention kernel: {self.kernel} (auto: {why}; one training step of the whole model on "
                f"{self.detail}: {times}; {when})")
