"""A complete training block: every key the trainer reads, its type, range and default.

Its own module because every training job reads it (the trainer, the job assembly, the
cost estimate) while the rest of the config's model (tlrepro.config.model) only matters
when the config is loaded. Torch-free."""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal

from pydantic import Field

from tlrepro.typed import Strict, absent, is_absent

Precision = Literal["bf16", "fp32"]
Augment = Literal[
    "none", "shift", "shift_flip", "decathlon_crop", "tlvfc_crop", "flip", "clip", "clip_digits"
]

Fraction = Annotated[float, Field(gt=0, lt=1)]


class Training(Strict):
    """A complete training block: every key, absent ones at their default."""

    epochs: int = Field(10, ge=1)
    batch_size: int = Field(64, ge=1)
    eval_batch_size: int = Field(512, ge=1)
    steps_per_epoch: int | None = Field(
        None, ge=1, description="null = one pass over the method's first data stream."
    )
    optimizer: Literal["sgd", "adamw"] = "sgd"
    lr: float = Field(0.01, gt=0)
    momentum: float = Field(0.9, ge=0, le=1)
    nesterov: bool = False
    weight_decay: float = Field(0.0, ge=0)
    schedule: Literal["constant", "cosine", "multistep", "inv"] = Field(
        "cosine",
        description="Per optimiser step t: constant; cosine (to 0 at the last step); multistep "
        "(x gamma at each milestone); inv: lr (1 + 0.0003 t)^-0.75 (CMKD's decay).",
    )
    milestones: list[Fraction] = Field(
        [],
        description="Fractions of the total number of steps where the lr is multiplied by gamma.",
    )
    gamma: float = Field(0.1, gt=0)
    label_smoothing: float = Field(0.0, ge=0, le=1)
    augment: Augment = Field(
        "none",
        description="shift(_flip): random translation by 1/8 of the side (and horizontal "
        "flips); decathlon_crop: random crop of 8/9 of the side (64 px of 72, Visual "
        "Decathlon); tlvfc_crop: TLVFC's release, Resize(S + 2, S + 2) + RandomCrop(S, "
        "padding=4, black fill) + horizontal flip (at most 5 px of translation at any size); "
        "flip: random horizontal flips only (MultiTune's CenterCrop(72) + flip of 72 px "
        "images); clip: CLIP's own preprocessing, which also replaces the dataset's mean and "
        "std by CLIP's (training: Resize(256, 256) + RandomCrop(224) + flip; evaluation: "
        "Resize(224, 224)); clip_digits: the CMKD release's digits views, CLIP's statistics "
        "(training: RandomResizedCrop(224, scale 0.75-1.2), no flip, and for a USPS source "
        "Resize(28) + Pad(4) + RandomCrop(28) + RandomRotation(10) + Resize(224); "
        "evaluation: Resize(224)).",
    )
    precision: Precision = absent(
        description="Arithmetic of the CUDA training and evaluation steps (weights are always "
        "fp32): bf16 (absent: the default) runs them under bf16 autocast; fp32 runs them in "
        "fp32, as the CMKD release runs CLIP. The CPU always computes in fp32."
    )

    @property
    def autocast(self) -> Precision:
        """The arithmetic of CUDA steps, the default where `precision` is absent."""
        return self.precision or "bf16"

    def record(self) -> dict[str, Any]:
        """The plain dict that jobs record (identity, metrics.json, DVC params): every key
        with a default, and an absent-able key only where it was given."""
        fields = type(self).model_fields
        return {
            key: value
            for key, value in self.model_dump().items()
            if key in self.model_fields_set or not is_absent(fields[key])
        }

    def epoch_steps(self, primary_size: float) -> int:
        """Optimiser steps per epoch: the configured number, or one pass over the method's
        first stream of `primary_size` images."""
        return self.steps_per_epoch or math.ceil(primary_size / self.batch_size)

    def updated(self, keys: dict[str, Any]) -> Training:
        """This block under `keys` (a method's over its group's, a task's over those)."""
        return Training.model_validate({**self.model_dump(exclude_unset=True), **keys})
