"""Empirical risk minimisation on one labelled stream: scratch, finetune, linear_probe, source_only.

The baselines differ only in their registry entry (which stream, which
initialisation, which validation split, whether the body is frozen), not in their maths.
"""

from __future__ import annotations

from torch import Tensor

from tlrepro.methods.base import Batches, Method, MethodContext
from tlrepro.methods.erm_settings import ERMSettings


class ERM(Method):
    settings: ERMSettings

    def __init__(self, context: MethodContext):
        """`freeze_body` (linear_probe's `LinearProbeSettings`) trains the head alone on fixed
        features (feature extraction): the body gets no gradient and its batch-norm
        statistics stay as pretrained."""
        super().__init__(context)
        self.freeze_body = self.settings.freeze_body
        if self.freeze_body:
            self.network.requires_grad_(False)
            self.network.head.requires_grad_(True)

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
