"""Turn a registered dataset into train/val/test tensors plus a manifest.

Images are stored as uint8 (N, 3, H, W) and labels as int64 in safetensors files
(no pickle); the manifest, written last, records class names, counts, channel
statistics and the sha256 of every split file. A prepared folder is complete
exactly when its manifest exists.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from tlrepro import storage
from tlrepro.data.registry import builder_for, dataset_spec
from tlrepro.errors import ConfigError, DamagedFileError, MissingFileError
from tlrepro.plan.layout import MANIFEST
from tlrepro.registry import load_object

SPLITS = ("train", "val", "test")


@dataclass
class RawSplits:
    """What a builder returns: at least `train`; official `val`/`test` when the dataset has them."""

    classes: tuple[str, ...]
    splits: dict[str, tuple[Tensor, Tensor]]
    notes: dict[str, Any] = field(default_factory=dict)


RESIZE_MODES = ("squash", "shorter_side_crop")
"""Dataset option `resize`: how one decoded image reaches size x size (`resize_image`)."""


def resize_image(image: Tensor, size: int, mode: str = "squash") -> Tensor:
    """One (C, H, W) image at size x size: squashed (both sides resized, the aspect ratio
    lost), or its shorter side resized to `size` with the aspect ratio kept and the centre
    size x size kept (torchvision's Resize(size) + CenterCrop(size), the Visual Decathlon's)."""
    from torchvision.transforms.v2 import functional as F

    if mode == "squash":
        return F.resize(image, [size, size], antialias=True)
    if mode == "shorter_side_crop":
        return F.center_crop(F.resize(image, size, antialias=True), [size, size])
    raise ValueError(f"unknown resize mode {mode!r}; known: {', '.join(RESIZE_MODES)}")


def resize_uint8(images: Tensor, size: int) -> Tensor:
    """Resize a uint8 (N, C, H, W) batch to size x size and make it 3-channel."""
    from torchvision.transforms.v2 import functional as F

    if images.shape[1] == 1:
        images = images.expand(-1, 3, -1, -1)
    if images.shape[-2:] != (size, size):
        images = F.resize(images, [size, size], antialias=True)
    return images.contiguous()


def stratified_split(labels: Tensor, fraction: float, seed: int) -> tuple[Tensor, Tensor]:
    """Indices (kept, taken): `fraction` of every class taken, chosen by a seeded permutation."""
    generator = torch.Generator().manual_seed(seed)
    kept, taken = [], []
    for label in torch.unique(labels):
        members = torch.nonzero(labels == label).flatten()
        members = members[torch.randperm(len(members), generator=generator)]
        n_taken = max(1, round(fraction * len(members)))
        taken.append(members[:n_taken])
        kept.append(members[n_taken:])
    return torch.cat(kept).sort().values, torch.cat(taken).sort().values


def keep_class_range(raw: RawSplits, start: int, stop: int) -> RawSplits:
    """The classes [start, stop) of every split, relabelled 0 .. stop - start - 1."""
    if not 0 <= start < stop <= len(raw.classes):
        raise ValueError(
            f"class range [{start}, {stop}) does not fit the {len(raw.classes)} classes built"
        )
    splits = {}
    for split, (images, labels) in raw.splits.items():
        kept = (labels >= start) & (labels < stop)
        splits[split] = (images[kept], labels[kept] - start)
    notes = {**raw.notes, "class_range": [start, stop]}
    return RawSplits(tuple(raw.classes[start:stop]), splits, notes)


STATISTICS_CHUNK = 1 << 24
"""Values per channel statistics chunk (128 MB in float64)."""


def channel_statistics(images: Tensor) -> tuple[list[float], list[float]]:
    """Per-channel mean and sample std of uint8 images scaled to [0, 1], summed in float64
    chunk by chunk: a float copy of Food-101's 224 px training split would take 45 GB."""
    channels = images.shape[1]
    per_chunk = max(1, STATISTICS_CHUNK // max(1, images[0].numel()))
    total = torch.zeros(channels, dtype=torch.float64)
    squares = torch.zeros(channels, dtype=torch.float64)
    for start in range(0, len(images), per_chunk):
        chunk = images[start : start + per_chunk].to(torch.float64).div_(255)
        total += chunk.sum(dim=(0, 2, 3))
        squares += chunk.square_().sum(dim=(0, 2, 3))
    count = images.numel() // channels
    mean = total / count
    variance = (squares - count * mean.square()) / max(1, count - 1)
    return mean.tolist(), variance.clamp_min(0).sqrt().tolist()


def carve_missing_splits(
    raw: RawSplits, options: dict[str, Any]
) -> dict[str, tuple[Tensor, Tensor]]:
    """Take test then val out of train where the dataset has no official split."""
    splits = dict(raw.splits)
    seed = options.get("seed", 0)
    for offset, name in enumerate(("test", "val")):
        if name in splits:
            continue
        fraction = options.get(f"{name}_fraction")
        if fraction is None:
            raise ConfigError(
                f"dataset has no official {name} split: set `{name}_fraction` in its config entry"
            )
        images, labels = splits["train"]
        kept, taken = stratified_split(labels, fraction, seed + 1000 * (offset + 1))
        splits[name] = (images[taken], labels[taken])
        splits["train"] = (images[kept], labels[kept])
    return splits


def class_subset(
    labels: Tensor,
    per_class: int | None,
    fraction: float | None,
    seed: int,
    key: str = "per_class",
    at_most: bool = False,
) -> Tensor:
    """Indices of a seeded random subset of every class (not the first files): `per_class`
    images, or `fraction` of them (at least one); `key` names the option in errors. With
    `at_most`, a class with fewer than `per_class` images keeps them all instead."""
    generator = torch.Generator().manual_seed(seed)
    picked = []
    for label in torch.unique(labels):
        members = torch.nonzero(labels == label).flatten()
        count = per_class if per_class is not None else max(1, round(fraction * len(members)))
        if at_most:
            count = min(count, len(members))
        if len(members) < count:
            raise ConfigError(
                f"class {int(label)} has {len(members)} images, fewer than {key}={per_class}"
            )
        picked.append(members[torch.randperm(len(members), generator=generator)[:count]])
    return torch.cat(picked).sort().values


PER_CLASS_OPTIONS = {"train": "train_per_class", "test": "test_per_class"}
"""Dataset options that keep a seeded subset of a builder's split, per class (e.g. 600
Fashion-MNIST training images of each class instead of 6,000)."""


def keep_per_class(raw: RawSplits, options: dict[str, Any], name: str) -> RawSplits:
    """The builder's splits cut to the `train_per_class` / `test_per_class` options."""
    splits = dict(raw.splits)
    for split, key in PER_CLASS_OPTIONS.items():
        count = options.get(key)
        if count is None:
            continue
        if split not in splits:
            raise ConfigError(
                f"{name}: option {key} needs an official {split} split, which it has not; "
                f"use {split}_fraction"
            )
        images, labels = splits[split]
        index = class_subset(labels, count, None, options.get("seed", 0), key)
        splits[split] = (images[index], labels[index])
    return RawSplits(raw.classes, splits, raw.notes)


def build_raw(name: str, options: dict[str, Any], size: int, raw_root: Path) -> RawSplits:
    """Dataset `name` as its registered builder makes it, cut to its class range and to the
    per-class options, its classes checked against the registry's."""
    spec = dataset_spec(name)
    builder = load_object(builder_for(name, options))
    raw: RawSplits = builder(options=options, image_size=size, raw_root=raw_root, **spec.kwargs)
    if spec.class_range is not None:
        raw = keep_class_range(raw, *spec.class_range)
    if spec.classes is not None and tuple(raw.classes) != spec.classes:
        raise ValueError(
            f"{name}: builder returned classes {raw.classes}, registry says {spec.classes}"
        )
    return keep_per_class(raw, options, name)


def prepare_dataset(
    name: str, options: dict[str, Any], image_size: int, out_dir: Path, raw_root: Path
) -> dict[str, Any]:
    """Build, split, and write one dataset; return its manifest."""
    spec = dataset_spec(name)
    size = options.get("image_size", image_size)
    raw = build_raw(name, options, size, raw_root)
    splits = carve_missing_splits(raw, options)

    out_dir = Path(out_dir)
    (out_dir / MANIFEST).unlink(missing_ok=True)  # the folder is incomplete until rewritten
    manifest: dict[str, Any] = {
        "dataset": name,
        "label_space": spec.label_space,
        "classes": list(raw.classes),
        "image_size": size,
        "options": options,
        "notes": raw.notes,
        "splits": {},
    }
    for split in SPLITS:
        images, labels = splits[split]
        images = resize_uint8(images, size)
        if images.dtype != torch.uint8 or labels.dtype != torch.int64:
            raise TypeError(f"{name}/{split}: expected uint8 images and int64 labels")
        path = out_dir / f"{split}.safetensors"
        storage.save_tensors(path, {"images": images, "labels": labels})
        manifest["splits"][split] = {
            "file": path.name,
            "n": len(labels),
            "per_class": torch.bincount(labels, minlength=len(raw.classes)).tolist(),
            "sha256": storage.sha256_file(path),
        }
        if split == "train":
            manifest["mean"], manifest["std"] = channel_statistics(images)
    storage.write_json(out_dir / MANIFEST, manifest)
    return manifest


@dataclass
class PreparedDataset:
    name: str
    classes: list[str]
    label_space: str
    mean: list[float]
    std: list[float]
    splits: dict[str, tuple[Tensor, Tensor]]


def load_prepared(folder: Path, verify: bool = True) -> PreparedDataset:
    """Load a prepared folder; with `verify`, refuse files whose sha256 left the manifest's."""
    folder = Path(folder)
    manifest_path = folder / MANIFEST
    if not manifest_path.exists():
        raise MissingFileError(
            f"{folder} is not a prepared dataset (no {MANIFEST}); "
            "run `tlrepro prepare` for it first"
        )
    manifest = storage.read_json(manifest_path)
    splits = {}
    for split, entry in manifest["splits"].items():
        path = folder / entry["file"]
        if verify and storage.sha256_file(path) != entry["sha256"]:
            raise DamagedFileError(path, f"its sha256 differs from the one {manifest_path} records")
        tensors = storage.load_tensors(path)
        splits[split] = (tensors["images"], tensors["labels"])
    return PreparedDataset(
        manifest["dataset"],
        manifest["classes"],
        manifest["label_space"],
        manifest["mean"],
        manifest["std"],
        splits,
    )
