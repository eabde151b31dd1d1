"""The model registry: small CNNs for the quick profile, torchvision nets for the paper one.

Every model is a `Classifier`: `features(x) -> (N, feature_dim)` then a linear
`head`, so that methods can swap heads, read features or cross them over
without knowing the architecture.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tlrepro.methods.erm_settings import ERMSettings, LinearProbeSettings
from tlrepro.methods.settings import Settings
from tlrepro.registry import load_object, lookup, module_of

if TYPE_CHECKING:
    from tlrepro.models.base import Classifier


@dataclass(frozen=True)
class Pretraining:
    """How a model is trained on a source dataset: a `Method` on the source stream."""

    cls: str
    """`module:Class` of the method."""
    settings: type[Settings] = Settings
    """Its settings when the model starts from scratch."""
    from_weights: type[Settings] | None = None
    """Its settings when the model starts from given weights (None: as from scratch)."""
    zero_shot: bool = False
    """Judged, and reported, by the zero-shot accuracy of a CLIP's text-tower head."""
    costs_like: str | None = None
    """The calibrated method whose per-image cost it shares (tlrepro.plan.estimate sizes
    its request from that row); None: unmeasured, the profile's fixed request."""

    def settings_for(self, weights: str | None) -> Settings:
        if weights is not None and self.from_weights is not None:
            return self.from_weights()
        return self.settings()


SUPERVISED = Pretraining(
    "tlrepro.methods.erm:ERM", ERMSettings, LinearProbeSettings, costs_like="scratch"
)
"""Cross-entropy on the source labels, `scratch`'s step (one stream, random initialisation).
A model that starts from given weights (Rebuffi's ImageNet ResNet-26) keeps their body and
batch-norm statistics and fits only a source head: the runs then start from exactly those
weights, as in the papers."""
CONTRASTIVE = Pretraining("tlrepro.methods.clip_pretrain:ContrastivePretraining", zero_shot=True)
ZERO_SHOT = Pretraining("tlrepro.methods.cmkd:ZeroShot", zero_shot=True, costs_like="zeroshot")
"""The paper adapts OpenAI's CLIP itself: its "source pretraining" only records the weights
with the source's zero-shot head (and its zero-shot accuracy); nothing trains."""


@dataclass(frozen=True)
class ModelSpec:
    target: str
    """`module:attr` building the `Classifier`, called as `target(num_classes, **options)`."""
    pretraining: Pretraining = SUPERVISED
    """How the model is pretrained on a source dataset."""
    zoo: bool = False
    """A model-zoo entry: it brings its own weights (torchvision's weights API, which
    downloads and checks them, or a pinned package file), and with `num_classes=None` its
    own pretrained head."""
    options: tuple[str, ...] = ()
    """The construction options a profile's `model_options` may give it: `download` (False:
    random weights where published ones would be downloaded) and `image_size` (a CLIP image
    tower's input side)."""

    @property
    def module(self) -> str:
        """The module that defines it (planning needs it without importing torch)."""
        return module_of(self.target)


_TV = "tlrepro.models.torchvision_nets"
_CLIP = "tlrepro.models.clip"

MODELS: dict[str, ModelSpec] = {
    "small_vgg": ModelSpec("tlrepro.models.small:SmallVGG"),
    "small_resnet": ModelSpec("tlrepro.models.small:SmallResNet"),
    "lenet": ModelSpec("tlrepro.models.small:LeNet"),
    "small_resnet_deep": ModelSpec("tlrepro.models.small:small_resnet_deep"),
    "tiny_clip": ModelSpec(f"{_CLIP}:tiny_clip", CONTRASTIVE),
    "clip_rn50": ModelSpec(f"{_CLIP}:clip_rn50", ZERO_SHOT, options=("download", "image_size")),
    "clip_vit_b16": ModelSpec(
        f"{_CLIP}:clip_vit_b16", ZERO_SHOT, options=("download", "image_size")
    ),
    "resnet26": ModelSpec("tlrepro.models.resnet26_import:resnet26_with_weights"),
    "resnet26_narrow": ModelSpec("tlrepro.models.resnet26:resnet26_narrow"),
    **{
        name: ModelSpec(f"{_TV}:{name}")
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
    **{
        name: ModelSpec(f"{_TV}:{name}", zoo=True, options=("download",))
        for name in ("resnet50_imagenet", "vgg16_imagenet", "vgg19_imagenet")
    },
    # From a PyPI package's file, pinned by sha256: nothing to download, so no option.
    "efficientnet_lite0_imagenet": ModelSpec(
        "tlrepro.models.efficientnet:EfficientNetLite0", zoo=True
    ),
}


def model_spec(name: str) -> ModelSpec:
    return lookup(MODELS, "model", name)


def build_model(name: str, num_classes: int | None, **options: Any) -> Classifier:
    """`num_classes=None` keeps a model-zoo entry's pretrained head (as a source model)."""
    spec = model_spec(name)
    if num_classes is None and not spec.zoo:
        raise ValueError(f"model {name!r} has no pretrained head; give it a number of classes")
    return load_object(spec.target)(num_classes=num_classes, **options)
