"""ResNet-26 in Rebuffi et al.'s layout (residual adapters, Visual Decathlon), as SpotTune uses it.

A 3x3 stem (conv + BN), three stages of BasicBlocks that each start with
stride 2, parameter-free shortcuts where the shape changes (2x2 average pool,
then zero channels appended), a final BN-ReLU, global pooling and a linear head.

The residual branches (`blocks`) are kept apart from the shortcut-add-ReLU that
joins them (`join`), because SpotTune runs two copies of every branch on the same
input and mixes their joined outputs per image; MultiTune and plain fine-tuning use
the network as is. The width is configurable so the quick profile can run a
narrow copy on the CPU.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from tlrepro.models.base import BlockClassifier
from tlrepro.models.small import standardize_images


def conv3x3(c_in: int, c_out: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)


class Stem(nn.Sequential):
    """conv-BN; with `standardize_input`, on images standardised one by one first (the
    quick profile's rendered characters, see tlrepro.models.small). In the stem, not in
    `features`, because SpotTune runs the stem and the blocks itself."""

    def __init__(self, width: int, standardize_input: bool):
        super().__init__(conv3x3(3, width), nn.BatchNorm2d(width))
        self.standardize_input = standardize_input

    def forward(self, x: Tensor) -> Tensor:
        return super().forward(standardize_images(x) if self.standardize_input else x)


class ResidualBranch(nn.Module):
    """conv-BN-ReLU-conv-BN: what a BasicBlock adds to its shortcut."""

    def __init__(self, c_in: int, c_out: int, stride: int):
        super().__init__()
        self.conv1 = conv3x3(c_in, c_out, stride)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = conv3x3(c_out, c_out)
        self.bn2 = nn.BatchNorm2d(c_out)

    def forward(self, x: Tensor) -> Tensor:
        return self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))


def shortcut(x: Tensor, stride: int, c_out: int) -> Tensor:
    """Parameter-free: average-pool by the stride, then pad with zero channels up to `c_out`."""
    if stride != 1:
        x = F.avg_pool2d(x, stride)
    if x.shape[1] != c_out:
        x = F.pad(x, (0, 0, 0, 0, 0, c_out - x.shape[1]))
    return x


class ResNet26(BlockClassifier):
    """Stem, 3 stages of `blocks_per_stage` BasicBlocks (4 for ResNet-26), final BN-ReLU, head."""

    def __init__(
        self,
        num_classes: int,
        widths: tuple[int, ...] = (64, 128, 256),
        stem_width: int = 32,
        blocks_per_stage: int = 4,
        standardize_input: bool = False,
    ):
        super().__init__()
        self.standardize_input = standardize_input
        self.stem = Stem(stem_width, standardize_input)
        branches, self.strides, self.widths = [], [], []
        c_in = stem_width
        for width in widths:
            for index in range(blocks_per_stage):
                stride = 2 if index == 0 else 1
                branches.append(ResidualBranch(c_in, width, stride))
                self.strides.append(stride)
                self.widths.append(width)
                c_in = width
        self.blocks = nn.ModuleList(branches)
        self.final = nn.Sequential(nn.BatchNorm2d(c_in), nn.ReLU(inplace=True))
        self.feature_dim = c_in
        self.head = nn.Linear(c_in, num_classes)

    def join(self, index: int, x: Tensor, branch_out: Tensor) -> Tensor:
        """Block `index`'s output: ReLU(shortcut(x) + its residual branch's output on x)."""
        return F.relu(shortcut(x, self.strides[index], self.widths[index]) + branch_out)


def resnet26(num_classes: int) -> ResNet26:
    """Rebuffi's ResNet-26 (widths 64/128/256, stem 32), as in SpotTune and MultiTune."""
    return ResNet26(num_classes)


def resnet26_narrow(num_classes: int) -> ResNet26:
    """The same 26 layers at 1/8 of the width, for 32 px images on the CPU (quick profile),
    on inputs standardised image by image."""
    return ResNet26(num_classes, widths=(8, 16, 32), stem_width=8, standardize_input=True)
