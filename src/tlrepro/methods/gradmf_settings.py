"""GradMF's settings (torch-free, for the registry); the method is `gradmf.GradMF`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from tlrepro.methods.settings import Range, Settings, setting


@dataclass(frozen=True)
class GradMFSettings(Settings):
    variant: Literal["coded", "drawn"] = "coded"
    """coded: the release's one step; drawn: the paper's figure, using the three below."""
    tau: float = setting(0.9, Range(0, 1, low_open=True))
    """The cosine with the target gradient at which `drawn` stops altering."""
    max_steps: int = setting(5, Range(1))
    project: bool = True
