"""The readers of the paper profile's real formats, each on a small file in the layout it
expects: torchvision's own dataset classes (no network: the files are in place, so they
do not download) and the image-folder reader. SVHN and CIFAR check fixed md5 sums of the
published files, which a small file cannot match: those tests replace torchvision's
`check_integrity` by an existence check and test everything below it.

Each image is one flat grey level that encodes its label (LEVEL(label)), so a test can
tell that pixels and labels stayed together through torchvision, resizing and splits.
"""

from __future__ import annotations

import bz2
import json
import os
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tlrepro.data.prepare import load_prepared, prepare_dataset

SIZE = 8


def level(label: int) -> int:
    return 20 * label + 10


def flat(label: int, side: int, mode: str = "RGB") -> Image.Image:
    value = level(label)
    return Image.new(mode, (side, side), value if mode == "L" else (value,) * 3)


def existence_only(monkeypatch, *modules: str) -> None:
    """torchvision's md5 check of the published files, replaced by an existence check."""
    import importlib

    for name in modules:
        module = importlib.import_module(name)
        monkeypatch.setattr(module, "check_integrity", lambda path, md5=None: os.path.isfile(path))


def prepare(name: str, raw: Path, out: Path, **options) -> tuple[dict, dict]:
    manifest = prepare_dataset(name, {"seed": 0, **options}, SIZE, out, raw)
    return manifest, load_prepared(out).splits


def assert_pixels_follow_labels(splits: dict, label_offset: int = 0) -> None:
    for images, labels in splits.values():
        expected = np.array([level(int(y) + label_offset) for y in labels], dtype=np.uint8)
        assert (images[:, :, SIZE // 2, SIZE // 2].numpy() == expected[:, None]).all()


def write_idx(path: Path, array: np.ndarray) -> None:
    """MNIST's IDX format: magic (0, 0, dtype 0x08, ndim), big-endian sizes, the bytes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(
        f">{array.ndim}I", *array.shape
    )
    path.write_bytes(header + array.astype(np.uint8).tobytes())


def test_mnist_idx_files_and_its_digit_split(tmp_path):
    folder = tmp_path / "raw" / "mnist" / "MNIST" / "raw"
    for prefix, per_digit in (("train", 3), ("t10k", 1)):
        labels = np.repeat(np.arange(10), per_digit)
        images = np.stack([np.full((28, 28), level(y)) for y in labels])
        write_idx(folder / f"{prefix}-images-idx3-ubyte", images)
        write_idx(folder / f"{prefix}-labels-idx1-ubyte", labels)
    manifest, splits = prepare("mnist", tmp_path / "raw", tmp_path / "a", val_fraction=0.34)
    assert manifest["classes"] == [str(d) for d in range(10)]
    assert {s: e["n"] for s, e in manifest["splits"].items()} == {
        "train": 20,
        "val": 10,
        "test": 10,
    }
    assert_pixels_follow_labels(splits)
    manifest, splits = prepare("mnist_5to9", tmp_path / "raw", tmp_path / "b", val_fraction=0.34)
    assert manifest["classes"] == ["5", "6", "7", "8", "9"]
    assert_pixels_follow_labels(splits, label_offset=5)


def test_usps_libsvm_bz2_files(tmp_path):
    folder = tmp_path / "raw" / "usps"
    folder.mkdir(parents=True)
    for name, per_digit in (("usps.bz2", 2), ("usps.t.bz2", 1)):
        lines = []
        for digit in np.repeat(np.arange(10), per_digit):
            # USPS stores pixels in [-1, 1]; torchvision maps them back with a truncation
            value = (level(digit) + 0.5) / 255 * 2 - 1
            pixels = " ".join(f"{i}:{value:.6f}" for i in range(1, 257))
            lines.append(f"{digit + 1} {pixels}")  # labels 1..10
        (folder / name).write_bytes(bz2.compress(("\n".join(lines) + "\n").encode()))
    manifest, splits = prepare("usps", tmp_path / "raw", tmp_path / "out", val_fraction=0.5)
    assert manifest["splits"]["test"]["n"] == 10 and manifest["splits"]["train"]["n"] == 10
    assert_pixels_follow_labels(splits)


def test_svhn_mat_files_below_the_md5_check(tmp_path, monkeypatch):
    import scipy.io

    # SVHN's download() always calls download_url, which verifies an existing file too
    existence_only(monkeypatch, "torchvision.datasets.svhn", "torchvision.datasets.utils")
    folder = tmp_path / "raw" / "svhn"
    folder.mkdir(parents=True)
    for name, per_digit in (("train_32x32.mat", 2), ("test_32x32.mat", 1)):
        digits = np.repeat(np.arange(10), per_digit)
        images = np.stack([np.full((32, 32, 3), level(d), np.uint8) for d in digits], axis=-1)
        labels = np.where(digits == 0, 10, digits)[:, None]  # SVHN labels 0 as 10
        scipy.io.savemat(folder / name, {"X": images, "y": labels})
    manifest, splits = prepare("svhn", tmp_path / "raw", tmp_path / "out", val_fraction=0.5)
    assert manifest["splits"]["test"]["per_class"] == [1] * 10
    assert_pixels_follow_labels(splits)


def write_pickle(path: Path, payload: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pickle.dumps(payload))


def cifar_batch(labels: list[int], label_key: str) -> dict:
    data = np.stack([np.full(3 * 32 * 32, level(y), np.uint8) for y in labels])
    return {"data": data, label_key: labels}


def test_cifar10_python_batches_below_the_md5_check(tmp_path, monkeypatch):
    existence_only(monkeypatch, "torchvision.datasets.cifar")
    folder = tmp_path / "raw" / "cifar10" / "cifar-10-batches-py"
    names = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship"]
    names.append("truck")
    for index in range(1, 6):
        write_pickle(folder / f"data_batch_{index}", cifar_batch(list(range(10)), "labels"))
    write_pickle(folder / "test_batch", cifar_batch(list(range(10)), "labels"))
    write_pickle(folder / "batches.meta", {"label_names": names})
    manifest, splits = prepare("cifar10", tmp_path / "raw", tmp_path / "out", val_fraction=0.2)
    assert manifest["classes"] == names
    assert manifest["splits"]["train"]["per_class"] == [4] * 10
    assert_pixels_follow_labels(splits)


def test_cifar100_python_files_below_the_md5_check(tmp_path, monkeypatch):
    existence_only(monkeypatch, "torchvision.datasets.cifar")
    folder = tmp_path / "raw" / "cifar100" / "cifar-100-python"
    names = [f"class{i:02d}" for i in range(12)]  # CIFAR-100's reader takes any count
    write_pickle(folder / "train", cifar_batch(list(range(12)) * 3, "fine_labels"))
    write_pickle(folder / "test", cifar_batch(list(range(12)), "fine_labels"))
    write_pickle(folder / "meta", {"fine_label_names": names})
    manifest, splits = prepare("cifar100", tmp_path / "raw", tmp_path / "out", val_fraction=0.34)
    assert manifest["classes"] == names
    assert_pixels_follow_labels(splits)


def test_fgvc_aircraft_variant_annotations_and_official_splits(tmp_path):
    data = tmp_path / "raw" / "fgvcaircraft" / "fgvc-aircraft-2013b" / "data"
    (data / "images").mkdir(parents=True)
    variants = ["707-320", "A300B4", "Cessna 172"]  # names with spaces, as the real file's
    (data / "variants.txt").write_text("\n".join(variants) + "\n")
    image_id = 1000000
    for split, per_class in (("train", 2), ("val", 1), ("test", 1)):
        lines = []
        for label in np.repeat(np.arange(len(variants)), per_class):
            image_id += 1
            flat(int(label), 20).save(data / "images" / f"{image_id}.jpg")
            lines.append(f"{image_id} {variants[label]}")
        (data / f"images_variant_{split}.txt").write_text("\n".join(lines) + "\n")
    manifest, splits = prepare("fgvc_aircraft", tmp_path / "raw", tmp_path / "out")
    assert manifest["classes"] == variants
    assert {s: e["n"] for s, e in manifest["splits"].items()} == {"train": 6, "val": 3, "test": 3}
    assert_pixels_follow_labels(splits)


def test_food101_meta_json_and_image_folders(tmp_path):
    base = tmp_path / "raw" / "food101" / "food-101"
    classes = ["apple_pie", "baby_back_ribs", "baklava"]
    for split, per_class in (("train", 3), ("test", 1)):
        listing = {}
        for label, name in enumerate(classes):
            (base / "images" / name).mkdir(parents=True, exist_ok=True)
            listing[name] = []
            for index in range(per_class):
                stem = f"{split}{index}"
                flat(label, 24).save(base / "images" / name / f"{stem}.jpg")
                listing[name].append(f"{name}/{stem}")
        (base / "meta").mkdir(exist_ok=True)
        (base / "meta" / f"{split}.json").write_text(json.dumps(listing))
    manifest, splits = prepare("food101", tmp_path / "raw", tmp_path / "out", val_fraction=0.34)
    assert manifest["classes"] == classes
    assert manifest["splits"]["test"]["n"] == 3
    assert_pixels_follow_labels(splits)


def test_caltech256_category_folders_and_the_gradmf_split(tmp_path):
    """torchvision's Caltech-256 reads NNN.name/NNN_XXXX.jpg; caltech256_b keeps categories
    129-256 (relabelled from 0), not 257.clutter."""
    folder = tmp_path / "raw" / "caltech256" / "caltech256" / "256_ObjectCategories"
    for number in range(1, 258):
        category = folder / (f"{number:03d}.c{number}" if number < 257 else "257.clutter")
        category.mkdir(parents=True)
        for index in range(1, 4):
            # the label's grey level only for the categories the test reads back
            flat((number - 129) % 12, 12).save(category / f"{number:03d}_{index:04d}.jpg")
    manifest, splits = prepare(
        "caltech256_b", tmp_path / "raw", tmp_path / "out", val_fraction=0.34, test_fraction=0.34
    )
    assert len(manifest["classes"]) == 128 and manifest["classes"][0] == "129.c129"
    assert manifest["classes"][-1] == "256.c256"
    for images, labels in splits.values():
        expected = np.array([level(int(y) % 12) for y in labels], dtype=np.uint8)
        assert (images[:, 0, SIZE // 2, SIZE // 2].numpy() == expected).all()


@pytest.mark.parametrize(
    ("name", "layout"),
    [
        ("office31_webcam", "office31/webcam/images"),
        ("office_home_clipart", "office_home/Clipart"),
        ("pet_images", "PetImages"),
    ],
)
def test_image_folders_placed_by_hand(name, layout, tmp_path):
    classes = ["Cat", "Dog"] if name == "pet_images" else ["back_pack", "bike", "mug"]
    for label, class_name in enumerate(classes):
        folder = tmp_path / "placed" / layout / class_name
        folder.mkdir(parents=True)
        for index in range(3):
            flat(label, 30 + index).save(folder / f"frame_{index:04d}.jpg")
    manifest, splits = prepare(
        name,
        tmp_path / "raw",
        tmp_path / "out",
        root=str(tmp_path / "placed"),
        val_fraction=0.34,
        test_fraction=0.34,
    )
    assert manifest["classes"] == classes
    assert manifest["splits"]["test"]["per_class"] == [1] * len(classes)
    assert_pixels_follow_labels(splits)
