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
    "lenet": "tlrepro.models.small:LeNet",
    "small_resnet_deep": "tlrepro.models.small:small_resnet_deep",
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


# Model-zoo entries: they bring their own weights (torchvision's weights API, which
# downloads and checks them), and with `num_classes=None` their own pretrained head.
PRETRAINED_MODELS: dict[str, str] = {
    "resnet50_imagenet": "tlrepro.models.torchvision_nets:resnet50_imagenet",
    "vgg16_imagenet": "tlrepro.models.torchvision_nets:vgg16_imagenet",
}
MODELS.update(PRETRAINED_MODELS)


def build_model(name: str, num_classes: int | None, **options: Any) -> Classifier:
    """`num_classes=None` keeps a model-zoo entry's pretrained head (as a source model)."""
    if num_classes is None and name not in PRETRAINED_MODELS:
        raise ValueError(f"model {name!r} has no pretrained head; give it a number of classes")
    return load_object(lookup(MODELS, "model", name))(num_classes=num_classes, **options)
