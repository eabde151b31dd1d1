"""Layer transfer: how one source tensor is written into a target tensor of another shape.

Each function returns the new target tensor and a boolean mask of the target
entries whose value came from the source (for the transfer report). All of it
is vectorised: the release loops over every kernel in Python (about 6.6 s for
VGG16 -> ResNet-18 on a CPU); here that transfer takes milliseconds.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

Selection = Literal["maxVar", "minVar", "twoTailed", "interLeaved", "random"]
SELECTIONS: tuple[str, ...] = ("maxVar", "minVar", "twoTailed", "interLeaved", "random")


def rank_positions(length: int, n: int, mode: Selection) -> Tensor:
    """Which ranks (0 = lowest variance) a deterministic mode keeps: n distinct of `length`.

    twoTailed keeps floor(n/2) from the bottom and the rest from the top (the release
    keeps 2*floor(n/2), one short for odd n); interLeaved keeps every floor(length/n)-th
    rank, ending on a multiple of the step (the release starts at rank 1 and comes up
    one short when n == length).
    """
    if not 0 < n <= length:
        raise ValueError(f"cannot select {n} of {length}")
    if mode == "maxVar":
        return torch.arange(length - n, length)
    if mode == "minVar":
        return torch.arange(n)
    if mode == "twoTailed":
        low = n // 2
        return torch.cat([torch.arange(low), torch.arange(length - (n - low), length)])
    if mode == "interLeaved":
        step = length // n
        return torch.arange(1, n + 1) * step - 1
    raise ValueError(f"unknown selection mode {mode!r}; choose one of {', '.join(SELECTIONS)}")


def pick_indices(
    variances: Tensor, n: int, mode: Selection, generator: torch.Generator | None = None
) -> Tensor:
    """Indices (along the last dim, ascending) of n entries of each row chosen by `mode`.

    `random` draws without replacement over all indices (the release samples with
    replacement from all but the last index, so it may repeat a filter and never
    picks the last one).
    """
    length = variances.shape[-1]
    if mode == "random":
        if not 0 < n <= length:
            raise ValueError(f"cannot select {n} of {length}")
        noise = torch.rand(variances.shape, generator=generator).to(variances.device)
        return noise.topk(n, dim=-1).indices.sort(dim=-1).values
    order = variances.argsort(dim=-1, stable=True)
    ranks = rank_positions(length, n, mode).to(variances.device)
    return order[..., ranks].sort(dim=-1).values


def _variance(x: Tensor, dims: int) -> Tensor:
    """Population variance over the last `dims` dims, from the first two moments summed by
    matrix-vector products (ten times faster than torch's `var` on these many short rows)."""
    flat = x.reshape(-1, math.prod(x.shape[x.dim() - dims :]))
    ones = torch.full((flat.shape[1],), 1.0 / flat.shape[1], dtype=x.dtype, device=x.device)
    mean, mean_square = flat @ ones, flat.square() @ ones
    return (mean_square - mean.square()).reshape(x.shape[: x.dim() - dims])


def resize_kernel(weight: Tensor, size: tuple[int, int]) -> Tensor:
    """Zero-pad a smaller kernel centrally, average-pool (window k1-k2+1, stride 1) a larger one.

    An odd size difference puts the extra zero row/column after the kernel (the
    release pads both sides by the floor and would return the wrong size).
    """
    out_c, in_c, kh, kw = weight.shape
    pad_h, pad_w = max(size[0] - kh, 0), max(size[1] - kw, 0)
    if pad_h or pad_w:
        weight = F.pad(weight, (pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2))
    kh, kw = weight.shape[-2:]
    if (kh, kw) != tuple(size):
        window = (kh - size[0] + 1, kw - size[1] + 1)
        weight = F.avg_pool2d(weight.reshape(out_c * in_c, 1, kh, kw), window, stride=1)
        weight = weight.reshape(out_c, in_c, *size)
    return weight


def variance_transfer(
    source: Tensor,
    target: Tensor,
    keep: Selection = "interLeaved",
    overwrite: Selection = "random",
    generator: torch.Generator | None = None,
) -> tuple[Tensor, Tensor]:
    """TLVFC's conv transfer of (o1, i1, k1, k1) into (o2, i2, k2, k2).

    Shrinking a channel dim keeps `keep`-selected source filters (then, per kept
    filter, its input slices) ranked by variance; growing it overwrites
    `overwrite`-selected positions of the target's own (He-initialised) filters,
    ranked by their variance. Kept filters stay in source order (the release
    shuffles them at random afterwards, which only loses that order).
    Returns the new tensor (which may share memory with `source`: copy it into the
    target) and the (o2, i2) mask of its kernels that came from the source.
    """
    if source.dim() != 4 or target.dim() != 4:
        raise ValueError(
            f"variance transfer needs conv kernels, got {source.shape} -> {target.shape}"
        )
    out_s, in_s = source.shape[:2]
    out_t, in_t = target.shape[:2]
    src = resize_kernel(source.to(target.device, target.dtype), tuple(target.shape[2:]))
    size = target.shape[2:]
    if out_s > out_t:
        src = src[pick_indices(_variance(src, 3), out_t, keep, generator)]
    if in_s > in_t:
        cols = pick_indices(_variance(src, 2), in_t, keep, generator)
        src = src.gather(1, cols[:, :, None, None].expand(-1, -1, *size))
    if out_s >= out_t and in_s >= in_t:  # every target kernel comes from the source
        return src, torch.ones(out_t, in_t, dtype=torch.bool, device=target.device)
    new = target.clone()
    written = torch.zeros(out_t, in_t, dtype=torch.bool, device=target.device)
    rows = torch.arange(out_t, device=target.device)
    if out_s < out_t:
        rows = pick_indices(_variance(target, 3), out_s, overwrite, generator)
    if in_s >= in_t:
        new[rows] = src
        written[rows] = True
    else:
        cols = pick_indices(_variance(new[rows], 2), in_s, overwrite, generator)
        new[rows] = new[rows].scatter(1, cols[:, :, None, None].expand(-1, -1, *size), src)
        written[rows[:, None], cols] = True
    return new, written


def clip_transfer(source: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
    """DPIAT's clip: per dim, centre-crop a larger source, paste a smaller one in the centre."""
    if source.dim() != target.dim():
        raise ValueError(
            f"clip transfer needs tensors of one rank, got {source.shape} -> {target.shape}"
        )
    from_slices, to_slices = [], []
    for a, b in zip(source.shape, target.shape, strict=True):
        if a >= b:
            from_slices.append(slice((a - b) // 2, (a - b) // 2 + b))
            to_slices.append(slice(0, b))
        else:
            from_slices.append(slice(0, a))
            to_slices.append(slice((b - a) // 2, (b - a) // 2 + a))
    new = target.clone()
    new[tuple(to_slices)] = source[tuple(from_slices)].to(target.device, target.dtype)
    written = torch.zeros_like(target, dtype=torch.bool)
    written[tuple(to_slices)] = True
    return new, written
