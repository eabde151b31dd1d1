"""GradMF (ICASSP 2024): the source gradient steered towards the target's direction.

Two variants of one method (docs/gradmf.md): `coded` is the authors' update
(one orthogonal-complement step, always applied); `drawn` is the paper's figure
(progressive altering until cos(G, g_t) >= tau or `max_steps`, then an optional
projection onto g_t). Both take the altering step of the authors' iterated code, which
divides by (||G|| + eps)^2, so `drawn` with one untested step and no projection is
`coded` exactly. Unlike the release, whose optimiser wraps a different model
than the one the gradients are set on, and whose gradient packing stops after the
first parameter group, the update here reaches every trainable parameter.
"""

from __future__ import annotations

import torch
from torch import Tensor

from tlrepro.methods import gradient_algebra
from tlrepro.methods.gradmf_settings import GradMFSettings
from tlrepro.methods.two_stream import SeparateGradients


class GradMF(SeparateGradients):
    settings: GradMFSettings
    extra_stats = (*SeparateGradients.extra_stats, "altering_steps")

    def coefficients(self, gram_matrix: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        if self.settings.variant == "coded":
            coefficients = gradient_algebra.coded(gram_matrix)
            return coefficients, {"altering_steps": torch.ones_like(coefficients[0])}
        coefficients, steps = gradient_algebra.drawn(
            gram_matrix,
            tau=self.settings.tau,
            max_steps=self.settings.max_steps,
            project=self.settings.project,
        )
        return coefficients, {"altering_steps": steps.float()}
