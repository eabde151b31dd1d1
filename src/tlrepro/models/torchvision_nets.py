"""torchvision's ResNet and VGG families behind the `Classifier` interface.

`weights` takes a torchvision weights name (e.g. "IMAGENET1K_V1"); torchvision
downloads and verifies them, so the paper profile needs a network the first time.
`download=False` builds the same architecture with random weights instead (a
profile's `model_options`: the rehearsal of the paper profile, offline).
"""

from __future__ import annotations

from functools import partial

import torch
import torch.nn.functional as F
import torchvision
from torch import Tensor, nn

from tlrepro.models.base import Classifier


def _head(last: nn.Linear, num_classes: int | None) -> nn.Linear:
    """A new head, or with `num_classes=None` the pretrained one (a model-zoo source net)."""
    return last if num_classes is None else nn.Linear(last.in_features, num_classes)


def _torchvision_net(arch: str, weights: str | None, download: bool) -> nn.Module:
    return getattr(torchvision.models, arch)(weights=weights if download else None)


class TorchvisionResNet(Classifier):
    def __init__(
        self, arch: str, num_classes: int | None, weights: str | None = None, download: bool = True
    ):
        super().__init__()
        net = _torchvision_net(arch, weights, download)
        self.feature_dim = net.fc.in_features
        self.head = _head(net.fc, num_classes)
        net.fc = nn.Identity()
        self.body = net

    def features(self, x: Tensor) -> Tensor:
        return self.body(x)


class TorchvisionVGG(Classifier):
    """VGG with its two hidden fully connected layers kept in `features`."""

    def __init__(
        self, arch: str, num_classes: int | None, weights: str | None = None, download: bool = True
    ):
        super().__init__()
        net = _torchvision_net(arch, weights, download)
        last = net.classifier[-1]
        self.feature_dim = last.in_features
        self.head = _head(last, num_classes)
        net.classifier = net.classifier[:-1]
        self.body = net

    def features(self, x: Tensor) -> Tensor:
        return self.body(x)

    def pooled_features(self, x: Tensor) -> Tensor:
        """conv5 (after its max-pool) averaged over space: 512 values at any input size."""
        return torch.flatten(F.adaptive_avg_pool2d(self.body.features(x), 1), 1)


resnet18 = partial(TorchvisionResNet, "resnet18")
resnet34 = partial(TorchvisionResNet, "resnet34")
resnet50 = partial(TorchvisionResNet, "resnet50")
resnet50_imagenet = partial(TorchvisionResNet, "resnet50", weights="IMAGENET1K_V1")
resnet101 = partial(TorchvisionResNet, "resnet101")
resnet152 = partial(TorchvisionResNet, "resnet152")
vgg11_bn = partial(TorchvisionVGG, "vgg11_bn")
vgg16 = partial(TorchvisionVGG, "vgg16")
vgg16_bn = partial(TorchvisionVGG, "vgg16_bn")
vgg16_imagenet = partial(TorchvisionVGG, "vgg16", weights="IMAGENET1K_V1")
vgg19 = partial(TorchvisionVGG, "vgg19")
vgg19_imagenet = partial(TorchvisionVGG, "vgg19", weights="IMAGENET1K_V1")
vgg19_bn = partial(TorchvisionVGG, "vgg19_bn")
