"""Small CNNs at 32 px for the quick profile: a VGG-style and a ResNet-style net.

The quick profile's supervised nets (`small_vgg`, `small_resnet_deep` and
`resnet26_narrow`) standardise every input image by its own mean and std
(`standardize_images`): the rendered characters vary in colour, contrast and
brightness, and with the dataset's normalisation alone the small VGG sat at chance
for 80 steps or more on some seeds before it started to learn: its 3-epoch
pretrainings on digits_syn and letters_syn ended at 32-74% for 3 of 6 (dataset,
seed) pairs, the narrow ResNet-26's 5-epoch one at 63% for 1 of 3 seeds.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from tlrepro.models.base import Classifier


def standardize_images(x: Tensor) -> Tensor:
    """Each image minus its own mean, over its own std (all channels and pixels together,
    as TensorFlow's per_image_standardization); parameter-free, so it adds no layer that
    weight transfer or matching would see."""
    return F.group_norm(x, 1)


def conv_bn_relu(c_in: int, c_out: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
    )


class SmallVGG(Classifier):
    """Plain 3x3 conv stacks with max-pooling, as in VGG, at a width a CPU trains in seconds."""

    def __init__(
        self, num_classes: int, widths: tuple[int, ...] = (16, 32, 64), convs_per_stage: int = 2
    ):
        super().__init__()
        layers: list[nn.Module] = []
        c_in = 3
        for width in widths:
            for _ in range(convs_per_stage):
                layers.append(conv_bn_relu(c_in, width))
                c_in = width
            layers.append(nn.MaxPool2d(2))
        self.body = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.feature_dim = c_in
        self.head = nn.Linear(c_in, num_classes)

    def features(self, x: Tensor) -> Tensor:
        return self.body(standardize_images(x))


class BasicBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: int):
        super().__init__()
        self.conv1 = conv_bn_relu(c_in, c_out, stride)
        self.conv2 = nn.Sequential(
            nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False), nn.BatchNorm2d(c_out)
        )
        self.shortcut = nn.Identity()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(
                nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out)
            )
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        return self.relu(self.conv2(self.conv1(x)) + self.shortcut(x))


class SmallResNet(Classifier):
    """A CIFAR-style ResNet (3 stages of BasicBlocks), deliberately narrow for the CPU;
    `standardize_input` for the quick profile's variant (the paper's is GradMF's release)."""

    def __init__(
        self,
        num_classes: int,
        widths: tuple[int, ...] = (16, 32, 64),
        blocks_per_stage: int = 1,
        standardize_input: bool = False,
    ):
        super().__init__()
        self.standardize_input = standardize_input
        self.stem = conv_bn_relu(3, widths[0])
        stages: list[nn.Module] = []
        c_in = widths[0]
        for index, width in enumerate(widths):
            for block in range(blocks_per_stage):
                stride = 2 if index > 0 and block == 0 else 1
                stages.append(BasicBlock(c_in, width, stride))
                c_in = width
        self.stages = nn.Sequential(*stages)
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.feature_dim = c_in
        self.head = nn.Linear(c_in, num_classes)

    def features(self, x: Tensor) -> Tensor:
        if self.standardize_input:
            x = standardize_images(x)
        return self.pool(self.stages(self.stem(x)))


class LeNet(Classifier):
    """The LeNet of GradMF's MNIST split as released (`MNIST_Net`, Grad_train_Mnist.py:90-117):
    two 5x5 convolutions of 10 and 20 filters, each with ReLU and 2x2 max-pooling, on the
    grey image; 320 features at 28 px, a linear layer to 50 (the features, no activation
    after it, as there) and the head. The pipeline stores every image with three channels
    (grey ones repeated): their mean is the grey image."""

    def __init__(self, num_classes: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(1, 10, 5),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
            nn.Conv2d(10, 20, 5),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
            nn.AdaptiveMaxPool2d(4),  # 4x4 at 28 px already; other sizes still fit
            nn.Flatten(),
            nn.Linear(20 * 4 * 4, 50),
        )
        self.feature_dim = 50
        self.head = nn.Linear(self.feature_dim, num_classes)

    def features(self, x: Tensor) -> Tensor:
        return self.body(x.mean(dim=1, keepdim=True))


def small_resnet_deep(num_classes: int) -> SmallResNet:
    """Two blocks per stage at half of `small_resnet`'s width: a target that differs from
    `small_vgg` in depth (15 convs against 6), width (32 features against 64) and topology;
    its inputs standardised as `small_vgg`'s, whose weights it receives."""
    return SmallResNet(num_classes, widths=(8, 16, 32), blocks_per_stage=2, standardize_input=True)
