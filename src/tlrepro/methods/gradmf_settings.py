"""GradMF's settings (torch-free, for the registry); the method is `gradmf.GradMF`."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from tlrepro.methods.settings import Settings


class GradMFSettings(Settings):
    variant: Literal["coded", "drawn"] = "coded"
    """coded: the release's one step; drawn: the paper's figure, using the three below."""
    tau: float = Field(0.9, gt=0, le=1)
    """The cosine with the target gradient at which `drawn` stops altering."""
    max_steps: int = Field(5, ge=1)
    project: bool = True
    schedule: Literal["joint", "release"] = "joint"
    """joint: every step combines a source and a target gradient (the paper's description).
    release: the released scripts' alternation (docs/gradmf.md, "Schedules"): source-only
    epochs, and every `release_period`-th epoch a GradMF epoch that restarts from the best
    source state and reuses one source gradient for all its steps."""
    release_period: int = Field(3, ge=2)
    """With schedule `release`: epochs 0, 1, ... (from 0) that are a multiple of it, except
    0, are GradMF epochs (3: MNIST and SVHN scripts; 2: Caltech-256, Office-31)."""
