"""The shape every model has: a feature extractor and a linear head."""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn


class Classifier(nn.Module):
    """`forward(x) = head(features(x))`; `head` is the only task-specific layer."""

    head: nn.Linear
    feature_dim: int

    def features(self, x: Tensor) -> Tensor:
        raise NotImplementedError

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x))

    def reset_head(self, num_classes: int) -> None:
        """A fresh head for a new label space (fine-tuning keeps everything else)."""
        self.head = nn.Linear(self.feature_dim, num_classes).to(self.head.weight.device)

    def set_class_names(self, class_names: Sequence[str]) -> None:
        """Called with the run's class names (label order) before the method is built; a
        model whose head can be made from them (CLIP's zero-shot head) does so."""


def parameter_count(module: nn.Module) -> int:
    """How many numbers `module` stores as parameters (buffers such as BN statistics not)."""
    return sum(p.numel() for p in module.parameters())
