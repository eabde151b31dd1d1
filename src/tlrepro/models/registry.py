"""The model registry: small CNNs for the quick profile, torchvision nets for the paper one.

Every model is a `Classifier`: `features(x) -> (N, feature_dim)` then a linear
`head`, so that methods can swap heads, read features or cross them over
without knowing the architecture.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tlrepro.registry import load_object, lookup

if TYPE_CHECKING:
    from tlrepro.models.base import Classifier

MODELS: dict[str, str] = {
    "small_vgg": "tlrepro.models.small:SmallVGG",
    "small_resnet": "tlrepro.models.small:SmallResNet",
    "resnet26": "tlrepro.models.resnet26:resnet26",
    "resnet26_narrow": "tlrepro.models.resnet26:resnet26_narrow",
    **{
        name: f"tlrepro.models.torchvision_nets:{name}"
        for name in (
            "resnet18",
            "resnet34",
            "resnet50",
            "resnet101",
            "resnet152",
            "vgg11_bn",
            "vgg16",
            "vgg16_bn",
            "vgg19",
            "vgg19_bn",
        )
    },
}


def build_model(name: str, num_classes: int, **options: Any) -> Classifier:
    return load_object(lookup(MODELS, "model", name))(num_classes=num_classes, **options)
