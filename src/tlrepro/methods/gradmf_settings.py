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
    schedule: Literal["joint", "release"] = "joint"
    """joint: every step combines a source and a target gradient (the paper's description).
    release: the released scripts' alternation (docs/gradmf.md, "Schedules"): source-only
    epochs, and every `release_period`-th epoch a GradMF epoch that restarts from the best
    source state and reuses one source gradient for all its steps."""
    release_period: int = setting(3, Range(2))
    """With schedule `release`: epochs 0, 1, ... (from 0) that are a multiple of it, except
    0, are GradMF epochs (3: MNIST and SVHN scripts; 2: Caltech-256, Office-31)."""
