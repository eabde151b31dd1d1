"""The shape every model has: a feature extractor and a linear head."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
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


class BlockClassifier(Classifier):
    """A body of `stem`, a sequence of `blocks` each combined with its input by `join`, and
    `final` before global pooling: the layout SpotTune routes over (a frozen and a tuned
    copy of each block) and that ResNet-26 and EfficientNet-Lite0 share."""

    stem: nn.Module
    blocks: nn.ModuleList
    final: nn.Module
    strides: tuple[int, ...]
    """Each block's stride (2 where a stage starts)."""
    widths: tuple[int, ...]
    """Each block's output channels."""

    def join(self, index: int, x: Tensor, block_out: Tensor) -> Tensor:
        raise NotImplementedError

    def pool(self, x: Tensor) -> Tensor:
        return torch.flatten(F.adaptive_avg_pool2d(self.final(x), 1), 1)

    def features(self, x: Tensor) -> Tensor:
        x = self.stem(x)
        for index, block in enumerate(self.blocks):
            x = self.join(index, x, block(x))
        return self.pool(x)


def parameter_count(module: nn.Module) -> int:
    """How many numbers `module` stores as parameters (buffers such as BN statistics not)."""
    return sum(p.numel() for p in module.parameters())
