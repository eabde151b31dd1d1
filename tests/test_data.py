"""Datasets: deterministic by seed, verified on read, corrupt files rejected."""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import pytest
import torch

from tlrepro import storage
from tlrepro.data import synthetic
from tlrepro.data.prepare import load_prepared, prepare_dataset
from tlrepro.errors import ChecksumError

SYN = {"n_images": 200, "val_fraction": 0.2, "test_fraction": 0.2, "seed": 0}


def split_hashes(manifest: dict) -> dict[str, str]:
    return {split: entry["sha256"] for split, entry in manifest["splits"].items()}


def test_same_seed_same_sha256_and_another_seed_differs(tmp_path):
    first = prepare_dataset("digits_syn", SYN, 32, tmp_path / "a", tmp_path / "raw")
    again = prepare_dataset("digits_syn", SYN, 32, tmp_path / "b", tmp_path / "raw")
    other = prepare_dataset("digits_syn", {**SYN, "seed": 1}, 32, tmp_path / "c", tmp_path / "raw")
    assert split_hashes(first) == split_hashes(again)
    assert all(split_hashes(first)[s] != split_hashes(other)[s] for s in first["splits"])
    assert (
        storage.sha256_file(tmp_path / "a" / "train.safetensors")
        == first["splits"]["train"]["sha256"]
    )


def test_rendered_sets_use_many_fonts_and_balanced_labels():
    digits = synthetic.build_digits_syn({"n_images": 500, "seed": 0}, 32, Path("."))
    letters = synthetic.build_letters_syn({"n_images": 500, "seed": 0}, 32, Path("."))
    fonts = digits.notes["fonts"]
    assert len(fonts) >= 10
    assert not any(name.startswith(("cmex", "cmsy", "STIXSize")) for name in fonts)
    for raw in (digits, letters):
        images, labels = raw.splits["train"]
        assert images.dtype == torch.uint8 and images.shape == (500, 3, 32, 32)
        assert torch.bincount(labels).tolist() == [50] * 10
    assert letters.classes[:3] == ("A", "B", "C")
    assert not torch.equal(digits.splits["train"][0], letters.splits["train"][0])


def test_uci_digits_are_split_stratified_and_complete(tmp_path):
    manifest = prepare_dataset(
        "digits_uci",
        {"val_fraction": 0.2, "test_fraction": 0.3, "seed": 0},
        32,
        tmp_path,
        tmp_path / "raw",
    )
    counts = {split: entry["n"] for split, entry in manifest["splits"].items()}
    assert sum(counts.values()) == 1797
    per_class = torch.tensor(manifest["splits"]["test"]["per_class"], dtype=torch.float)
    assert per_class.min() / per_class.max() > 0.9  # every class ~30%
    data = load_prepared(tmp_path)
    assert data.splits["train"][0].shape[1:] == (3, 32, 32)
    assert data.classes == [str(d) for d in range(10)]


def test_a_split_file_that_changed_after_preparation_is_refused(tmp_path):
    prepare_dataset("digits_syn", SYN, 16, tmp_path, tmp_path / "raw")
    data = load_prepared(tmp_path)
    images, labels = data.splits["val"]
    storage.save_tensors(tmp_path / "val.safetensors", {"images": images, "labels": labels.flip(0)})
    with pytest.raises(ValueError, match="sha256 differs"):
        load_prepared(tmp_path)


def test_missing_manifest_means_not_prepared(tmp_path):
    with pytest.raises(FileNotFoundError, match="tlrepro prepare"):
        load_prepared(tmp_path)


DEBIAN = Path("/usr/share/datasets/fashion-mnist")
needs_debian = pytest.mark.skipif(
    not DEBIAN.is_dir(), reason="apt-get install dataset-fashion-mnist for this test"
)


@needs_debian
def test_fashion_mnist_reads_debian_files_with_verified_checksums(tmp_path):
    from tlrepro.data.fashion_mnist import build_fashion_mnist

    raw = build_fashion_mnist({}, 28, tmp_path)
    assert raw.splits["train"][0].shape == (60000, 1, 28, 28)
    assert raw.splits["test"][0].shape == (10000, 1, 28, 28)
    assert torch.bincount(raw.splits["test"][1]).tolist() == [1000] * 10
    assert raw.classes[0] == "T-shirt/top"


@needs_debian
@pytest.mark.parametrize("damage", ["truncate", "flip"])
def test_fashion_mnist_rejects_a_corrupt_file_naming_it(tmp_path, damage):
    from tlrepro.data.fashion_mnist import PAYLOAD_SHA256, build_fashion_mnist

    for path in DEBIAN.glob("*.gz"):
        shutil.copy(path, tmp_path / path.name)
    victim = tmp_path / "train-labels-idx1-ubyte.gz"
    if damage == "truncate":
        victim.write_bytes(victim.read_bytes()[:2000])
    else:
        payload = bytearray(gzip.decompress(victim.read_bytes()))
        payload[100] = (payload[100] + 1) % 10
        victim.write_bytes(gzip.compress(bytes(payload)))
    with pytest.raises(ChecksumError) as error:
        build_fashion_mnist({"root": str(tmp_path)}, 28, tmp_path / "raw")
    assert str(victim) in str(error.value)
    assert PAYLOAD_SHA256["train-labels-idx1-ubyte"] in str(error.value)


def test_channel_statistics_in_chunks_equal_the_whole_split_at_once(monkeypatch):
    """Chunked float64 sums (no float copy of the split, which is 45 GB for Food-101 at
    224 px) give the mean and sample std of the whole split."""
    from tlrepro.data import prepare

    images = torch.randint(0, 256, (37, 3, 11, 13), dtype=torch.uint8)
    monkeypatch.setattr(prepare, "STATISTICS_CHUNK", 3 * 11 * 13 * 4)  # 4 images a chunk
    mean, std = prepare.channel_statistics(images)
    pixels = images.double() / 255
    torch.testing.assert_close(torch.tensor(mean, dtype=torch.float64), pixels.mean(dim=(0, 2, 3)))
    torch.testing.assert_close(torch.tensor(std, dtype=torch.float64), pixels.std(dim=(0, 2, 3)))


MIX = {
    "parts": {
        "mnist_5k": {"train_per_class": 6, "seed": 0},
        "digits_syn": {"n_images": 60, "seed": 1},
        "letters_syn": {"n_images": 60, "seed": 1},
    },
    "val_fraction": 0.2,
    "test_fraction": 0.2,
    "seed": 0,
}


def test_caption_mix_unites_its_parts_by_class_name_and_records_them(tmp_path):
    """Real and rendered digits share the ten digit classes (one caption each); the letters
    add ten; every part's notes (mnist_5k's pinned sha256) are in the manifest."""
    from tlrepro.data import mnist5k

    manifest = prepare_dataset("caption_mix", MIX, 16, tmp_path / "mix", tmp_path / "raw")
    assert manifest["classes"] == [str(d) for d in range(10)] + list("ABCDEFGHIJ")
    notes = manifest["notes"]
    assert notes["mnist_5k"]["sha256"] == mnist5k.MNIST_5K.sha256
    assert [notes[part]["n_train"] for part in MIX["parts"]] == [60, 60, 60]
    counts = [manifest["splits"][s]["per_class"] for s in ("train", "val", "test")]
    assert [sum(c) for c in zip(*counts, strict=True)] == [12] * 10 + [6] * 10
    again = prepare_dataset("caption_mix", MIX, 16, tmp_path / "again", tmp_path / "raw")
    assert split_hashes(again) == split_hashes(manifest)


def test_caption_mix_without_parts_says_how_to_name_them(tmp_path):
    with pytest.raises(ValueError, match="`parts`"):
        prepare_dataset("caption_mix", {"val_fraction": 0.2}, 16, tmp_path, tmp_path / "raw")


def test_per_class_options_keep_a_seeded_subset_and_need_the_split(tmp_path):
    options = {"train_per_class": 7, "val_fraction": 0.3, "test_fraction": 0.3, "seed": 0}
    manifest = prepare_dataset("mnist_5k_0to4", options, 16, tmp_path / "a", tmp_path / "raw")
    counts = [entry["per_class"] for entry in manifest["splits"].values()]
    total = [sum(c) for c in zip(*counts, strict=True)]
    assert total == [7] * 5
    with pytest.raises(ValueError, match="test_per_class needs an official test split"):
        prepare_dataset(
            "mnist_5k", {**options, "test_per_class": 2}, 16, tmp_path / "b", tmp_path / "raw"
        )


@needs_debian
def test_fashion_mnist_subset_takes_no_official_test_image_into_training(tmp_path):
    options = {"train_per_class": 30, "test_per_class": 10, "val_fraction": 0.1, "seed": 0}
    manifest = prepare_dataset("fashion_mnist", options, 28, tmp_path / "f", tmp_path / "raw")
    assert {s: e["n"] for s, e in manifest["splits"].items()} == {
        "train": 270,
        "val": 30,
        "test": 100,
    }
    data = load_prepared(tmp_path / "f")
    train = {bytes(image.numpy()) for image in data.splits["train"][0]}
    assert not train & {bytes(image.numpy()) for image in data.splits["test"][0]}
