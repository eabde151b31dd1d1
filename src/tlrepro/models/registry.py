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
    "tiny_clip": "tlrepro.models.clip:tiny_clip",
    "clip_rn50": "tlrepro.models.clip:clip_rn50",
    "clip_vit_b16": "tlrepro.models.clip:clip_vit_b16",
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


def build_model(name: str, num_classes: int, **options: Any) -> Classifier:
    return load_object(lookup(MODELS, "model", name))(num_classes=num_classes, **options)
