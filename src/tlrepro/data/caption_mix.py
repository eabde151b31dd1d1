"""A captioned mix of several datasets: what a tiny CLIP is pretrained on contrastively.

CLIP learns from many kinds of images and captions; a CLIP pretrained on one rendered
digit set was a poor teacher on real digits (19 % zero-shot on digits_uci). This mix
puts real and rendered sets side by side, each image captioned with its class name:
its classes are the union of the parts' class names in the order the parts are listed,
so parts whose classes share a name (MNIST's "3" and the rendered "3") share a class,
hence a caption ("a photo of a 3."), and other names ("Sneaker", "C") add classes.

The parts are named in the config entry (`parts`: dataset name -> that dataset's own
options, e.g. `train_per_class`); each is built by its registered builder
(`tlrepro.data.prepare.build_raw`), and only its training split is taken (an official
test split never enters the mix). The mix then carves its own validation and test
splits (`val_fraction`, `test_fraction`) as any dataset without official ones; its
manifest records every part's notes (a part's source file and sha256) and counts.
Which datasets a source model pretrained on the mix has seen is thus in its config:
the tables name the parts and say whether a group's target is among them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from tlrepro.data.prepare import RawSplits, build_raw, resize_uint8
from tlrepro.errors import ConfigError


def build_caption_mix(options: dict[str, Any], image_size: int, raw_root: Path) -> RawSplits:
    """The parts' training images at `image_size`, relabelled by class name into the union."""
    parts = options.get("parts")
    if not parts:
        raise ConfigError(
            "caption_mix: its config entry must name its datasets under `parts` "
            "(dataset name -> that dataset's options)"
        )
    classes: list[str] = []
    images, labels, notes = [], [], {}
    for name, part_options in parts.items():
        if name == "caption_mix":
            raise ValueError("caption_mix: `parts` cannot name caption_mix itself")
        raw = build_raw(name, part_options or {}, image_size, raw_root)
        part_images, part_labels = raw.splits["train"]
        index = []
        for class_name in raw.classes:
            if class_name not in classes:
                classes.append(class_name)
            index.append(classes.index(class_name))
        images.append(resize_uint8(part_images, image_size))
        labels.append(torch.tensor(index)[part_labels])
        notes[name] = {
            **raw.notes,
            "classes": list(raw.classes),
            "n_train": len(part_labels),
        }
    return RawSplits(tuple(classes), {"train": (torch.cat(images), torch.cat(labels))}, notes)
