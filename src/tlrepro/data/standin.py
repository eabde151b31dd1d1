"""Generated stand-ins for the paper profile's datasets (the rehearsal profile).

A stand-in has what the pipeline sees of the real dataset's builder output: the same
classes in the same label order, the same number of colour channels (MNIST and USPS
are grey, as the real files are; `prepare` makes them 3-channel as it does the real
ones) and the same official splits (FGVC-Aircraft's train/val/test, MNIST's
train/test, Caltech-256's and the image folders' train only, so that `prepare`
carves the missing ones as it would). Only the images differ: a few per class,
rendered from a seeded generator as a class-specific oriented grating in a
class-specific colour (a learnable signal) with per-image phase, contrast and noise.

Class names: the real builders read most of them from the downloaded files, so they
are shipped here. Where a list is long and could not be checked against a copy of
the dataset (Food-101, FGVC-Aircraft variants, Caltech-256 categories), the names are
derived placeholders of the right count in the real naming pattern (Caltech-256's
"NNN.name" with 257.clutter last); only CLIP reads names (its prompts), and CLIP is
randomly initialised in the rehearsal.
"""

from __future__ import annotations

import math
import zlib
from pathlib import Path
from typing import Any

import torch

from tlrepro.data.prepare import RawSplits
from tlrepro.data.registry import DIGITS
from tlrepro.data.torchvision_sets import SPLITS as TORCHVISION_SPLITS

CIFAR10 = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
CIFAR100 = [
    "apple",
    "aquarium_fish",
    "baby",
    "bear",
    "beaver",
    "bed",
    "bee",
    "beetle",
    "bicycle",
    "bottle",
    "bowl",
    "boy",
    "bridge",
    "bus",
    "butterfly",
    "camel",
    "can",
    "castle",
    "caterpillar",
    "cattle",
    "chair",
    "chimpanzee",
    "clock",
    "cloud",
    "cockroach",
    "couch",
    "crab",
    "crocodile",
    "cup",
    "dinosaur",
    "dolphin",
    "elephant",
    "flatfish",
    "forest",
    "fox",
    "girl",
    "hamster",
    "house",
    "kangaroo",
    "keyboard",
    "lamp",
    "lawn_mower",
    "leopard",
    "lion",
    "lizard",
    "lobster",
    "man",
    "maple_tree",
    "motorcycle",
    "mountain",
    "mouse",
    "mushroom",
    "oak_tree",
    "orange",
    "orchid",
    "otter",
    "palm_tree",
    "pear",
    "pickup_truck",
    "pine_tree",
    "plain",
    "plate",
    "poppy",
    "porcupine",
    "possum",
    "rabbit",
    "raccoon",
    "ray",
    "road",
    "rocket",
    "rose",
    "sea",
    "seal",
    "shark",
    "shrew",
    "skunk",
    "skyscraper",
    "snail",
    "snake",
    "spider",
    "squirrel",
    "streetcar",
    "sunflower",
    "sweet_pepper",
    "table",
    "tank",
    "telephone",
    "television",
    "tiger",
    "tractor",
    "train",
    "trout",
    "tulip",
    "turtle",
    "wardrobe",
    "whale",
    "willow_tree",
    "wolf",
    "woman",
    "worm",
]
OFFICE31 = [
    "back_pack",
    "bike",
    "bike_helmet",
    "bookcase",
    "bottle",
    "calculator",
    "desk_chair",
    "desk_lamp",
    "desktop_computer",
    "file_cabinet",
    "headphones",
    "keyboard",
    "laptop_computer",
    "letter_tray",
    "mobile_phone",
    "monitor",
    "mouse",
    "mug",
    "paper_notebook",
    "pen",
    "phone",
    "printer",
    "projector",
    "punchers",
    "ring_binder",
    "ruler",
    "scissors",
    "speaker",
    "stapler",
    "tape_dispenser",
    "trash_can",
]
OFFICE_HOME = [
    "Alarm_Clock",
    "Backpack",
    "Batteries",
    "Bed",
    "Bike",
    "Bottle",
    "Bucket",
    "Calculator",
    "Calendar",
    "Candles",
    "Chair",
    "Clipboards",
    "Computer",
    "Couch",
    "Curtains",
    "Desk_Lamp",
    "Drill",
    "Eraser",
    "Exit_Sign",
    "Fan",
    "File_Cabinet",
    "Flipflops",
    "Flowers",
    "Folder",
    "Fork",
    "Glasses",
    "Hammer",
    "Helmet",
    "Kettle",
    "Keyboard",
    "Knives",
    "Lamp_Shade",
    "Laptop",
    "Marker",
    "Monitor",
    "Mop",
    "Mouse",
    "Mug",
    "Notebook",
    "Oven",
    "Pan",
    "Paper_Clip",
    "Pen",
    "Pencil",
    "Postit_Notes",
    "Printer",
    "Push_Pin",
    "Radio",
    "Refrigerator",
    "Ruler",
    "Scissors",
    "Screwdriver",
    "Shelf",
    "Sink",
    "Sneakers",
    "Soda",
    "Speaker",
    "Spoon",
    "TV",
    "Table",
    "Telephone",
    "ToothBrush",
    "Toys",
    "Trash_Can",
    "Webcam",
]

CLASSES: dict[str, tuple[str, ...]] = {
    # keyed by what the real builder reads: a torchvision class or an archive layout
    "MNIST": DIGITS,
    "USPS": DIGITS,
    "SVHN": DIGITS,
    "CIFAR10": tuple(CIFAR10),
    "CIFAR100": tuple(CIFAR100),
    "FGVCAircraft": tuple(f"variant_{i:03d}" for i in range(1, 101)),
    "Food101": tuple(f"food_{i:03d}" for i in range(1, 102)),
    "Caltech256": (*(f"{i:03d}.category_{i:03d}" for i in range(1, 257)), "257.clutter"),
    # the image-folder reader sorts the class folders' names
    "office31": tuple(sorted(OFFICE31)),
    "office_home": tuple(sorted(OFFICE_HOME)),
    "pet_images": ("Cat", "Dog"),
}
GREY = {"MNIST", "USPS"}
"""Stored with one channel, as the real files are."""
NOISE = 0.15
"""Standard deviation of the per-pixel noise, in units of the [0, 1] intensity range."""


def _kind(name: str | None, archive: str | None) -> str:
    kind = name or archive
    if kind not in CLASSES:
        raise ValueError(
            f"no stand-in for {kind!r}: tlrepro.data.standin knows {', '.join(sorted(CLASSES))}"
        )
    return kind


def official_splits(kind: str) -> tuple[str, ...]:
    """The splits the real builder returns (the others are carved by `prepare`)."""
    return tuple(TORCHVISION_SPLITS[kind]) if kind in TORCHVISION_SPLITS else ("train",)


def render(
    n_classes: int, per_class: int, size: int, channels: int, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """`per_class` uint8 images of each class, labels in class order.

    Class c: a grating of its own orientation, spatial frequency and colour; each
    image draws its phase, contrast and noise."""
    class_gen = torch.Generator().manual_seed(int(torch.randint(0, 2**62, (), generator=generator)))
    angle = torch.rand(n_classes, generator=class_gen) * math.pi
    frequency = 1 + 3 * torch.rand(n_classes, generator=class_gen)  # cycles per image side
    colour = 0.3 + 0.7 * torch.rand(n_classes, channels, generator=class_gen)
    axis = torch.linspace(0, 1, size)
    y, x = torch.meshgrid(axis, axis, indexing="ij")
    images = torch.empty((n_classes * per_class, channels, size, size), dtype=torch.uint8)
    for c in range(n_classes):
        along = x * math.cos(angle[c]) + y * math.sin(angle[c])
        phase = 2 * math.pi * torch.rand(per_class, 1, 1, generator=generator)
        contrast = 0.5 + 0.5 * torch.rand(per_class, 1, 1, 1, generator=generator)
        wave = torch.sin(2 * math.pi * frequency[c] * along + phase)[:, None]
        noise = NOISE * torch.randn(per_class, channels, size, size, generator=generator)
        value = 0.5 + 0.5 * contrast * wave * colour[c].view(1, channels, 1, 1) + noise
        images[c * per_class : (c + 1) * per_class] = (value.clamp(0, 1) * 255).round().byte()
    labels = torch.arange(n_classes).repeat_interleave(per_class)
    return images, labels


def build(
    options: dict[str, Any],
    image_size: int,
    raw_root: Path,
    name: str | None = None,
    archive: str | None = None,
    domain: str | None = None,
) -> RawSplits:
    """The stand-in of the dataset the registry's kwargs name (`name`: torchvision's class;
    `archive`/`domain`: the image-folder reader's), with `options["standin"]`'s counts:
    `train_per_class` training images of every class, and `eval_images` (default: one per
    class) in each official val/test split, the classes in turn (fewer images than
    classes leave the last classes out: a stand-in's evaluation only has to run)."""
    kind = _kind(name, archive)
    counts = options["standin"]
    classes = CLASSES[kind]
    channels = 1 if kind in GREY else 3
    identity = f"{kind}/{domain}".encode()  # domains of one archive differ
    seed = options.get("seed", 0) * 1_000_003 + zlib.crc32(identity)
    generator = torch.Generator().manual_seed(seed)
    splits = {}
    for split in official_splits(kind):
        if split == "train":
            splits[split] = render(
                len(classes), counts["train_per_class"], image_size, channels, generator
            )
            continue
        n_images = counts.get("eval_images", len(classes))
        per_class = math.ceil(n_images / len(classes))
        images, labels = render(len(classes), per_class, image_size, channels, generator)
        in_turn = torch.arange(len(labels)).view(len(classes), per_class).t().flatten()
        splits[split] = (images[in_turn[:n_images]], labels[in_turn[:n_images]])
    return RawSplits(
        classes, splits, notes={"source": f"tlrepro.data.standin: {identity.decode()}"}
    )
