"""Empirical risk minimisation on one labelled stream: scratch, finetune, linear_probe, source_only.

The baselines differ only in their registry entry (which stream, which
initialisation, which validation split, whether the body is frozen), not in their maths.
"""

from __future__ import annotations

from typing import Any

from torch import Tensor

from tlrepro.methods.base import Batches, Method
from tlrepro.models.base import Classifier


class ERM(Method):
    def __init__(
        self,
        network: Classifier,
        streams: tuple[str, ...],
        settings: dict[str, Any],
        *args,
        **kwargs,
    ):
        """`settings["freeze_body"]` trains the head alone on fixed features (feature extraction):
        the body gets no gradient and its batch-norm statistics stay as pretrained."""
        super().__init__(network, streams, settings, *args, **kwargs)
        self.freeze_body = bool(settings.get("freeze_body", False))
        if self.freeze_body:
            network.requires_grad_(False)
            network.head.requires_grad_(True)

    def train(self, mode: bool = True) -> ERM:
        super().train(mode)
        if self.freeze_body:
            self.network.eval()
            self.network.head.train(mode)
        return self

    def update(self, batches: Batches, step: int) -> dict[str, Tensor]:
        (stream,) = self.streams
        x, y = batches[stream]
        return self.supervised_step(x, y)
