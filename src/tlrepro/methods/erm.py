"""Empirical risk minimisation on one labelled stream: scratch, finetune and source_only.

The three baselines differ only in their registry entry (which stream, which
initialisation, which validation split), not in their maths.
"""

from __future__ import annotations

from torch import Tensor

from tlrepro.methods.base import Batches, Method


class ERM(Method):
    def update(self, batches: Batches, step: int) -> dict[str, Tensor]:
        (stream,) = self.streams
        x, y = batches[stream]
        return self.supervised_step(x, y)
