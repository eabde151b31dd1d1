"""The dataset registry: every dataset the config may name.

A builder is called as `builder(options, image_size, raw_root, **spec.kwargs)`
and returns `RawSplits` (see `tlrepro.data.prepare`); `prepare` then carves the
validation (and, where the dataset has no official one, test) split, and writes
tensors plus a manifest.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tlrepro.registry import lookup

DIGITS = tuple(str(d) for d in range(10))
LETTERS_A_TO_J = tuple("ABCDEFGHIJ")


@dataclass(frozen=True)
class DatasetSpec:
    builder: str
    label_space: str
    """Datasets with the same label space share class meanings (source_only needs it)."""
    description: str
    classes: tuple[str, ...] | None = None
    """Known statically, or None when read from the data at preparation time."""
    kwargs: dict[str, Any] = field(default_factory=dict)


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
    # paper profile: downloaded (torchvision) or fetched by URL + sha256
    "mnist": DatasetSpec(_TV, "digits10", "MNIST (torchvision).", DIGITS, {"name": "MNIST"}),
    "svhn": DatasetSpec(
        _TV, "digits10", "SVHN cropped digits (torchvision).", DIGITS, {"name": "SVHN"}
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
