"""The paper profile's datasets that torchvision downloads and checks (md5) itself."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from tlrepro import storage
from tlrepro.data.prepare import RawSplits, resize_image
from tlrepro.data.registry import DIGITS

# torchvision class name -> {our split: constructor keyword arguments}
SPLITS: dict[str, dict[str, dict[str, Any]]] = {
    "MNIST": {"train": {"train": True}, "test": {"train": False}},
    "USPS": {"train": {"train": True}, "test": {"train": False}},
    "SVHN": {"train": {"split": "train"}, "test": {"split": "test"}},
    "CIFAR10": {"train": {"train": True}, "test": {"train": False}},
    "CIFAR100": {"train": {"train": True}, "test": {"train": False}},
    "FGVCAircraft": {
        split: {"split": split, "annotation_level": "variant"} for split in ("train", "val", "test")
    },
    "Food101": {"train": {"split": "train"}, "test": {"split": "test"}},
    "Caltech256": {"train": {}},
}
DIGIT_SETS = {"MNIST", "USPS", "SVHN"}


def construct(name: str, root: Path, **kwargs: Any):
    """The torchvision dataset, downloaded if needed (a test replaces this function)."""
    import torchvision.datasets

    return getattr(torchvision.datasets, name)(str(root), download=True, **kwargs)


def to_tensors(
    dataset, image_size: int, resize: str = "squash"
) -> tuple[torch.Tensor, torch.Tensor]:
    """Decode every PIL image once at preparation time, resized to the working size (the
    dataset option `resize`: squashed, or shorter side then centre crop).

    The output is allocated up front: Food-101 at 224 px is 11 GB, and a list
    of per-image tensors stacked at the end would need twice that.
    """
    from torchvision.transforms.v2 import functional as F

    images = torch.empty((len(dataset), 3, image_size, image_size), dtype=torch.uint8)
    labels = torch.empty(len(dataset), dtype=torch.int64)
    for index in range(len(dataset)):
        image, label = dataset[index]
        tensor = F.pil_to_tensor(image.convert("RGB"))
        images[index] = resize_image(tensor, image_size, resize)
        labels[index] = int(label)
    return images, labels


def build(options: dict[str, Any], image_size: int, raw_root: Path, name: str) -> RawSplits:
    root = Path(raw_root) / name.lower()
    splits, classes = {}, None
    for split, kwargs in SPLITS[name].items():
        # Several registry entries may share one download (mnist_0to4, mnist_5to9).
        with storage.exclusive(root, wait=True):
            dataset = construct(name, root, **kwargs)
        splits[split] = to_tensors(dataset, image_size, options.get("resize", "squash"))
        classes = getattr(dataset, "classes", None) or getattr(dataset, "categories", None)
    if name in DIGIT_SETS:
        classes = DIGITS
    return RawSplits(tuple(classes), splits, notes={"source": f"torchvision.datasets.{name}"})


def imagenet_is_not_prepared(**_: Any) -> RawSplits:
    raise ValueError(
        "ImageNet is not prepared by this pipeline: it appears only as the source of "
        "model-zoo weights (a group with source_weights: model); no job should read it"
    )
