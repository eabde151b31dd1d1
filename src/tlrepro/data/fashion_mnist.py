"""Fashion-MNIST, offline from Debian's `dataset-fashion-mnist`, else torchvision's download.

Debian recompressed the upstream .gz files, so upstream's md5s of the archives
do not apply; the sha256 values below are of the decompressed IDX payloads
(identical bytes to upstream's), pinned from dataset-fashion-mnist
0.0~git20200523.55506a9-1. Torchvision's download checks its own md5s.
"""

from __future__ import annotations

import gzip
import hashlib
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tlrepro.data.prepare import RawSplits
from tlrepro.data.registry import dataset_spec
from tlrepro.errors import ChecksumError

DEBIAN_ROOT = Path("/usr/share/datasets/fashion-mnist")
PAYLOAD_SHA256 = {
    "train-images-idx3-ubyte": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
    "train-labels-idx1-ubyte": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
    "t10k-images-idx3-ubyte": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
    "t10k-labels-idx1-ubyte": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
}


def read_idx(path: Path, sha256: str) -> np.ndarray:
    """Decompress and verify one IDX file, then parse its header (magic, dims)."""
    try:
        payload = gzip.decompress(path.read_bytes())
    except (EOFError, OSError, zlib.error) as error:
        raise ChecksumError(
            f"{path}: not a complete gzip file ({error}); expected payload "
            f"sha256 {sha256}. Reinstall dataset-fashion-mnist."
        ) from error
    actual = hashlib.sha256(payload).hexdigest()
    if actual != sha256:
        raise ChecksumError(
            f"{path}: payload sha256 is {actual}, expected {sha256}. "
            "The file is corrupt: reinstall dataset-fashion-mnist."
        )
    n_dims = payload[3]
    dims = np.frombuffer(payload, dtype=">u4", count=n_dims, offset=4).astype(int)
    return np.frombuffer(payload, dtype=np.uint8, offset=4 + 4 * n_dims).reshape(dims)


def _from_idx(root: Path) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    splits = {}
    for split, prefix in (("train", "train"), ("test", "t10k")):
        images = read_idx(
            root / f"{prefix}-images-idx3-ubyte.gz", PAYLOAD_SHA256[f"{prefix}-images-idx3-ubyte"]
        )
        labels = read_idx(
            root / f"{prefix}-labels-idx1-ubyte.gz", PAYLOAD_SHA256[f"{prefix}-labels-idx1-ubyte"]
        )
        splits[split] = (
            torch.from_numpy(images.copy()).unsqueeze(1),
            torch.from_numpy(labels.astype(np.int64)),
        )
    return splits


def _from_torchvision(raw_root: Path) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    from torchvision.datasets import FashionMNIST

    splits = {}
    for split, train in (("train", True), ("test", False)):
        dataset = FashionMNIST(Path(raw_root) / "fashion_mnist", train=train, download=True)
        splits[split] = (dataset.data.unsqueeze(1).clone(), dataset.targets.long().clone())
    return splits


def build_fashion_mnist(options: dict[str, Any], image_size: int, raw_root: Path) -> RawSplits:
    root = Path(options.get("root") or DEBIAN_ROOT)
    local = all((root / f"{name}.gz").exists() for name in PAYLOAD_SHA256)
    splits = _from_idx(root) if local else _from_torchvision(raw_root)
    source = str(root) if local else "torchvision download"
    return RawSplits(dataset_spec("fashion_mnist").classes, splits, notes={"source": source})
