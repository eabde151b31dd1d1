"""The settings of the CLIP adaptation methods (torch-free, for the registry); the methods
are in `cmkd`."""

from __future__ import annotations

from dataclasses import dataclass

from tlrepro.methods.settings import NON_NEGATIVE, POSITIVE, PROBABILITY, Range, Settings, setting


@dataclass(frozen=True)
class ClipAdaptationSettings(Settings):
    """RN50's recipe (docs/clip_uda.md, "Recipe"); ViT-B/16 uses head_lr_scale 1000."""

    head_lr_scale: float = setting(10000.0, POSITIVE)
    """The task head's learning rate over the encoder's."""
    rst_tau: float | None = setting(None, POSITIVE)
    """RST's threshold (null: dense fine-tuning)."""


@dataclass(frozen=True)
class CMKDSettings(ClipAdaptationSettings):
    l1: float = setting(0.25, NON_NEGATIVE)
    l2: float = setting(0.1, NON_NEGATIVE)
    l3: float = setting(0.025, NON_NEGATIVE)
    ramp_steps: int = setting(10000, Range(1))
    """T of the ramp r(t) = 2 / (1 + exp(-t / T)) - 1."""
    fixmatch: bool = False
    fixmatch_threshold: float = setting(0.95, PROBABILITY)
    fixmatch_weight: float = setting(0.5, NON_NEGATIVE)
