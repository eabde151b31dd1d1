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
    "tiny_clip": "tlrepro.models.clip:tiny_clip",
    "clip_rn50": "tlrepro.models.clip:clip_rn50",
    "clip_vit_b16": "tlrepro.models.clip:clip_vit_b16",
    "resnet26": "tlrepro.models.resnet26_import:resnet26_with_weights",
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

SUPERVISED_PRETRAINING = "tlrepro.methods.erm:ERM"
PRETRAINING: dict[str, str] = {
    "tiny_clip": "tlrepro.methods.clip_pretrain:ContrastivePretraining",
    # The paper adapts OpenAI's CLIP itself: its "source pretraining" only records the
    # weights with the source's zero-shot head (and its zero-shot accuracy).
    "clip_rn50": "tlrepro.methods.cmkd:ZeroShot",
    "clip_vit_b16": "tlrepro.methods.cmkd:ZeroShot",
}
"""How a model is pretrained on a source dataset (`module:Class` of a `Method` on the
source stream); default: supervised cross-entropy."""


def pretraining_method(name: str) -> str:
    lookup(MODELS, "model", name)
    return PRETRAINING.get(name, SUPERVISED_PRETRAINING)


# Model-zoo entries: they bring their own weights (torchvision's weights API, which
# downloads and checks them, or a pinned package file), and with `num_classes=None` their
# own pretrained head.
PRETRAINED_MODELS: dict[str, str] = {
    "resnet50_imagenet": "tlrepro.models.torchvision_nets:resnet50_imagenet",
    "vgg16_imagenet": "tlrepro.models.torchvision_nets:vgg16_imagenet",
    "vgg19_imagenet": "tlrepro.models.torchvision_nets:vgg19_imagenet",
    # From a PyPI package's file, pinned by sha256: needs no network.
    "efficientnet_lite0_imagenet": "tlrepro.models.efficientnet:EfficientNetLite0",
}
MODELS.update(PRETRAINED_MODELS)


MODEL_OPTIONS: dict[str, tuple[str, ...]] = {
    # Lite0's file comes with a package: nothing to download, so no option.
    **{name: ("download",) for name in PRETRAINED_MODELS if name != "efficientnet_lite0_imagenet"},
    "clip_rn50": ("download", "image_size"),
    "clip_vit_b16": ("download", "image_size"),
}
"""The construction options a profile's `model_options` may give each model: `download`
(False: random weights where published ones would be downloaded) and `image_size` (a CLIP
image tower's input side)."""


def model_module(name: str) -> str:
    """The module that defines model `name` (planning needs it without importing torch)."""
    return lookup(MODELS, "model", name).partition(":")[0]


def build_model(name: str, num_classes: int | None, **options: Any) -> Classifier:
    """`num_classes=None` keeps a model-zoo entry's pretrained head (as a source model)."""
    if num_classes is None and name not in PRETRAINED_MODELS:
        raise ValueError(f"model {name!r} has no pretrained head; give it a number of classes")
    return load_object(lookup(MODELS, "model", name))(num_classes=num_classes, **options)
