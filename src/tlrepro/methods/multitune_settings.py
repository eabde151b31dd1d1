"""MultiTune's settings (torch-free, for the registry); the method is `multitune.MultiTune`."""

from __future__ import annotations

from typing import Self

from pydantic import Field, model_validator

from tlrepro.methods.settings import Settings


class Branch(Settings):
    """One fine-tuned copy of the pretrained network and its fine-tuning setting."""

    name: str
    lr_scale: float = Field(gt=0)
    """Learning-rate multiplier of the branch's pretrained layers."""
    l2sp: float = Field(ge=0)
    """Strength alpha of L2-SP, alpha/2 * ||w - w_pretrained||^2, on those layers."""
    reinit_blocks: int = Field(ge=0)
    """How many top residual blocks start from a fresh initialisation (at most the
    network's number of blocks, checked when the method is built)."""


def _default_branches() -> list[Branch]:
    return [
        Branch(name="finetune", lr_scale=1.0, l2sp=0.0, reinit_blocks=0),
        Branch(name="l2sp_reinit", lr_scale=0.1, l2sp=0.01, reinit_blocks=1),
    ]


class MultiTuneSettings(Settings):
    branches: list[Branch] = Field(default_factory=_default_branches)

    @model_validator(mode="after")
    def _two_branches(self) -> Self:
        if len(self.branches) < 2:
            raise ValueError(
                f"setting 'branches' must list at least two branches, got {len(self.branches)}"
            )
        return self
