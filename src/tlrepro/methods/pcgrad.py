"""PCGrad (Yu et al., NeurIPS 2020) for the two losses of transfer: GradMF's closest peer."""

from __future__ import annotations

from torch import Tensor

from tlrepro.methods import gradient_algebra
from tlrepro.methods.two_stream import SeparateGradients


class PCGrad(SeparateGradients):
    def coefficients(self, gram_matrix: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        return gradient_algebra.pcgrad(gram_matrix), {}
