"""ERM's settings (torch-free, for the registry): whether the body is frozen."""

from __future__ import annotations

from typing import ClassVar, Literal

from tlrepro.methods.settings import Settings


class ERMSettings(Settings):
    """scratch, finetune, source_only: every layer trains (no setting to give)."""

    freeze_body: ClassVar[bool] = False


class LinearProbeSettings(Settings):
    """linear_probe: the head alone trains on fixed features (the body gets no gradient and
    its batch-norm statistics stay as pretrained). `freeze_body: false` would make it
    fine-tuning under another name, so only `true` is accepted (it stays in the record)."""

    freeze_body: Literal[True] = True
