"""The views the trainer makes of a batch of stored images: per-image augmentations,
CLIP's own preprocessing and FixMatch's strong view.

Geometric augmentations are single gathers over the whole batch (one offset and one
flip drawn per image). FixMatch's strong view runs torchvision's v2 transforms image
by image: a v2 transform draws its parameters once per call, so a call on the whole
batch would give every image the same operations. Every draw comes from the step's
generator (the strong view seeds torch's RNG from it inside `fork_rng`), so a batch
is a pure function of (seed, step) and a resumed run sees the same views.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as TF

# OpenAI CLIP's preprocessing (the CMKD recipe): its normalisation statistics; training
# views Resize(256, 256) + RandomCrop(224) + horizontal flip, evaluation Resize(224, 224).
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
CLIP_TRAIN_RESIZE = 256
CLIP_SIZE = 224

# TLVFC's release (ThuanNaN/TLVFC, dataset_loader/dataset.py lines 47-54): Resize(S + 2, S + 2)
# + RandomCrop(S, padding=4) (black fill) + horizontal flip, then ToTensor and Normalize.
TLVFC_RESIZE_MARGIN = 2
TLVFC_CROP_PADDING = 4

STRONG = v2.Compose(
    [v2.RandomHorizontalFlip(), v2.ColorJitter(0.4, 0.4, 0.4, 0.0), v2.RandAugment(2, 10)]
)
"""FixMatch's strong augmentation in the CMKD paper, for one uint8 image."""


DIGITS_VIEW = v2.RandomResizedCrop(CLIP_SIZE, scale=(0.75, 1.2), antialias=True)
"""The CMKD release's digits training view of one image (`utils/data_loader.py` lines
30-81): RandomResizedCrop((224, 224), scale=(0.75, 1.2)), no flip."""

USPS_SOURCE_VIEW = v2.Compose(
    [
        v2.Resize(28, antialias=True),
        v2.Pad(4),
        v2.RandomCrop(28),
        v2.RandomRotation(10),
        v2.Resize(CLIP_SIZE, antialias=True),
    ]
)
"""The release's view of USPS as the labelled source (`utils/data_loader.py` lines 45-56):
Resize(28) + Pad(4) + RandomCrop(28) + RandomRotation(10) + Resize(224)."""

CLIP_AUGMENTS = ("clip", "clip_digits", "clip_digits_usps")
"""Augmentations that are CLIP's preprocessing: CLIP's mean and std, evaluated at 224 px."""


def stream_augment(augment: str, stream: str, dataset: str) -> str:
    """The view a training stream gets under the recipe's `augment`: with clip_digits, a
    USPS source gets the release's USPS view (it has it for USPS->MNIST, its only task with
    USPS as the source), every other stream the digits view."""
    if augment == "clip_digits" and stream == "source" and dataset == "usps":
        return "clip_digits_usps"
    return augment


def _flip_columns(cols: Tensor, generator: torch.Generator | None) -> Tensor:
    """Reverse the column index of a random half of the images (per-image horizontal flip)."""
    flips = torch.rand(len(cols), generator=generator).to(cols.device) < 0.5
    return torch.where(flips[:, None, None, None], cols.flip(-1), cols)


def _gather(x: Tensor, rows: Tensor, cols: Tensor) -> Tensor:
    n, channels = x.shape[:2]
    batch_index = torch.arange(n, device=x.device)[:, None, None, None]
    channel_index = torch.arange(channels, device=x.device)[None, :, None, None]
    return x[batch_index, channel_index, rows, cols]


def random_shift(x: Tensor, pad: int, generator: torch.Generator | None, flip: bool) -> Tensor:
    """Per-image random translation by up to `pad` pixels (zero = mean colour), one gather."""
    n, _, height, width = x.shape
    offsets = torch.randint(0, 2 * pad + 1, (n, 2), generator=generator).to(x.device)
    padded = F.pad(x, (pad, pad, pad, pad))
    rows = (offsets[:, 0, None] + torch.arange(height, device=x.device))[:, None, :, None]
    cols = (offsets[:, 1, None] + torch.arange(width, device=x.device))[:, None, None, :]
    if flip:
        cols = _flip_columns(cols, generator)
    return _gather(padded, rows, cols)


def random_flip(x: Tensor, generator: torch.Generator | None) -> Tensor:
    """Per-image random horizontal flip and nothing else, one gather (MultiTune's training
    view: Resize(72) + CenterCrop(72) + RandomHorizontalFlip of images stored at 72 px)."""
    n, _, height, width = x.shape
    rows = torch.arange(height, device=x.device)[None, None, :, None].expand(n, 1, height, 1)
    cols = torch.arange(width, device=x.device)[None, None, None, :].expand(n, 1, 1, width)
    return _gather(x, rows, _flip_columns(cols, generator))


def random_crop(
    x: Tensor, size: int, generator: torch.Generator | None, flip: bool = False
) -> Tensor:
    """Per-image random size x size crop (and horizontal flip), one gather: the Decathlon
    recipe's RandomCrop(64) of 72 px images (evaluation sees the whole 72 px image, i.e.
    Resize(72) + CenterCrop(72)) and CLIP's RandomCrop(224) of 256 px images."""
    n, _, height, width = x.shape
    rows_free, cols_free = height - size + 1, width - size + 1
    offsets = torch.rand(n, 2, generator=generator).to(x.device)
    top = (offsets[:, 0] * rows_free).long()
    left = (offsets[:, 1] * cols_free).long()
    span = torch.arange(size, device=x.device)
    rows = (top[:, None] + span)[:, None, :, None]
    cols = (left[:, None] + span)[:, None, None, :]
    if flip:
        cols = _flip_columns(cols, generator)
    return _gather(x, rows, cols)


def resize(images: Tensor, size: int) -> Tensor:
    """Resize(size, size) of a batch (antialiased bilinear, as CLIP's PIL pipeline)."""
    if tuple(images.shape[-2:]) == (size, size):
        return images
    return TF.resize(images, [size, size], antialias=True)


def clip_train_view(images: Tensor, generator: torch.Generator | None) -> Tensor:
    """CLIP's training view of uint8 images: Resize(256, 256) + RandomCrop(224) + flip."""
    return random_crop(resize(images, CLIP_TRAIN_RESIZE), CLIP_SIZE, generator, flip=True)


def tlvfc_train_view(images: Tensor, generator: torch.Generator | None) -> Tensor:
    """TLVFC's training view of uint8 S px images: Resize(S + 2, S + 2), 4 px of black
    padding, a random S px crop and a horizontal flip, each drawn per image. The content moves
    by at most (2 + 2 * 4) / 2 = 5 px from the centred crop, at every size; the padding is
    black (0 before normalisation), as torchvision's RandomCrop(padding=4) fills a PIL image.

    Resize and pad are v2 functionals over the whole batch; the crop and flip are one gather
    (a v2 RandomCrop draws one offset per call, so on a batch every image would get the same)."""
    size = images.shape[-1]
    resized = resize(images, size + TLVFC_RESIZE_MARGIN)
    padded = TF.pad(resized, [TLVFC_CROP_PADDING], fill=0)
    return random_crop(padded, size, generator, flip=True)


def digits_train_view(images: Tensor, generator: torch.Generator) -> Tensor:
    """The release's digits training view (`DIGITS_VIEW`), drawn per image."""
    return per_image(DIGITS_VIEW, images, generator)


def usps_source_view(images: Tensor, generator: torch.Generator) -> Tensor:
    """The release's USPS-source training view (`USPS_SOURCE_VIEW`), drawn per image."""
    return per_image(USPS_SOURCE_VIEW, images, generator)


def per_image(transform: v2.Transform, images: Tensor, generator: torch.Generator) -> Tensor:
    """`transform` applied to each image on its own, so that each draws its own operations
    and magnitudes; torch's global RNG is seeded from `generator` and restored after."""
    seed = int(torch.randint(0, 2**62, (), generator=generator))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return torch.stack([transform(image) for image in images])


def strong_view(images: Tensor, generator: torch.Generator) -> Tensor:
    """FixMatch's strong view of uint8 images: flip + ColorJitter(0.4, 0.4, 0.4, 0) +
    RandAugment(2, 10), drawn per image."""
    return per_image(STRONG, images, generator)
