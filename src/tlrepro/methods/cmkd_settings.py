"""The settings of the CLIP adaptation methods (torch-free, for the registry); the methods
are in `cmkd`."""

from __future__ import annotations

from pydantic import Field

from tlrepro.methods.settings import Settings


class ClipAdaptationSettings(Settings):
    """RN50's recipe (docs/clip_uda.md, "Recipe"); ViT-B/16 uses head_lr_scale 1000."""

    head_lr_scale: float = Field(10000.0, gt=0)
    """The task head's learning rate over the encoder's."""
    rst_tau: float | None = Field(None, gt=0)
    """RST's threshold (null: dense fine-tuning)."""


class CMKDSettings(ClipAdaptationSettings):
    l1: float = Field(0.25, ge=0)
    l2: float = Field(0.1, ge=0)
    l3: float = Field(0.025, ge=0)
    ramp_steps: int = Field(10000, ge=1)
    """T of the ramp r(t) = 2 / (1 + exp(-t / T)) - 1."""
    fixmatch: bool = False
    fixmatch_threshold: float = Field(0.95, ge=0, le=1)
    fixmatch_weight: float = Field(0.5, ge=0)
