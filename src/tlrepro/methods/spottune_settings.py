"""SpotTune's settings (torch-free, for the registry); the method is `spottune.SpotTune`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from tlrepro.methods.settings import NON_NEGATIVE, POSITIVE, Settings, setting

Policy = Literal["per_image", "global"]
FrozenBN = Literal["release", "frozen"]


@dataclass(frozen=True)
class SpotTuneSettings(Settings):
    tau: float = setting(5.0, POSITIVE)
    """The Gumbel-softmax temperature of the policy's samples."""
    policy_lr_scale: float = setting(0.1, POSITIVE)
    policy_weight_decay: float = setting(0.001, NON_NEGATIVE)
    policy: Policy = "per_image"
    """"global": SpotTune-Global, one learned routing for all images."""
    budget_blocks: int | None = setting(None, NON_NEGATIVE)
    """k of the budget loss budget_weight * (blocks fine-tuned - k)^2; null: no budget loss
    (at most the network's number of blocks, checked when the method is built)."""
    budget_weight: float = setting(0.1, NON_NEGATIVE)
    frozen_bn: FrozenBN = "release"
    """The frozen copies' batch norm. "release": as the authors ran it, only their other
    weights are frozen: the batch-norm affine parameters train and the running statistics
    follow the target in training mode. "frozen": the copies stay exactly the pretrained
    blocks (eval mode, no gradient)."""
