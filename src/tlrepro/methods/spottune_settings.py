"""SpotTune's settings (torch-free, for the registry); the method is `spottune.SpotTune`."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from tlrepro.methods.settings import Settings

Policy = Literal["per_image", "global"]
FrozenBN = Literal["release", "frozen"]


class SpotTuneSettings(Settings):
    tau: float = Field(5.0, gt=0)
    """The Gumbel-softmax temperature of the policy's samples."""
    policy_lr_scale: float = Field(0.1, gt=0)
    policy_weight_decay: float = Field(0.001, ge=0)
    policy: Policy = "per_image"
    """"global": SpotTune-Global, one learned routing for all images."""
    budget_blocks: int | None = Field(None, ge=0)
    """k of the budget loss budget_weight * (blocks fine-tuned - k)^2; null: no budget loss
    (at most the network's number of blocks, checked when the method is built)."""
    budget_weight: float = Field(0.1, ge=0)
    frozen_bn: FrozenBN = "release"
    """The frozen copies' batch norm. "release": as the authors ran it, only their other
    weights are frozen: the batch-norm affine parameters train and the running statistics
    follow the target in training mode. "frozen": the copies stay exactly the pretrained
    blocks (eval mode, no gradient)."""
