"""scikit-learn's bundled UCI handwritten digits: real data that needs no network."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from tlrepro.data.prepare import RawSplits
from tlrepro.data.registry import DIGITS


def build_digits_uci(options: dict[str, Any], image_size: int, raw_root: Path) -> RawSplits:
    """1797 8x8 images with values 0..16, scaled to uint8 (prepare resizes them)."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = torch.from_numpy(digits.images).mul(255 / 16).round().to(torch.uint8)
    labels = torch.from_numpy(digits.target).long()
    return RawSplits(DIGITS, {"train": (images.unsqueeze(1), labels)})
