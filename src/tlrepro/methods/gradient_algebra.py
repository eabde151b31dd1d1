"""Combining a source and a target gradient, as flat vectors, without leaving the device.

Every function takes the whole-model gradients `g_s` (source loss) and `g_t`
(target loss) as 1-D tensors and returns the update direction `G`. Conditions
("only on conflict", "until aligned") are tensor masks, never Python branches on
values, so a training step never waits for the device.
"""

from __future__ import annotations

import torch
from torch import Tensor

EPS = 1e-5
"""The release's epsilon in GradMF's projection."""


def cosine(a: Tensor, b: Tensor) -> Tensor:
    return torch.dot(a, b) / (a.norm() * b.norm()).clamp_min(1e-12)


def gradmf_coded(g_s: Tensor, g_t: Tensor, eps: float = EPS) -> Tensor:
    """GradMF as released: keep g_s, add the part of g_t orthogonal to it (always, no test).

    G = g_s + g_t - (g_t.g_s / (||g_s|| + eps)^2) g_s
    """
    coefficient = torch.dot(g_t, g_s) / (g_s.norm() + eps) ** 2
    return g_s * (1 - coefficient) + g_t


def gradmf_drawn(
    g_s: Tensor,
    g_t: Tensor,
    tau: float,
    max_steps: int,
    project: bool,
    eps: float = EPS,
) -> tuple[Tensor, Tensor]:
    """GradMF as the paper's figure draws it: progressive altering, then optional projection.

    Starting from G = g_s, repeat G <- G + g_t - (g_t.G / (||G||^2 + eps)) G while
    cos(G, g_t) < tau, at most `max_steps` times; with `project`, finally replace G by
    its projection onto g_t. Returns G and the number of altering steps taken (a
    device tensor). All `max_steps` candidates are computed; a step that is not
    needed is masked out, which keeps the loop free of host synchronisation.
    """
    update = g_s
    steps = torch.zeros((), dtype=torch.long, device=g_s.device)
    for _ in range(max_steps):
        pending = cosine(update, g_t) < tau
        altered = update + g_t - (torch.dot(g_t, update) / (update.norm() ** 2 + eps)) * update
        update = torch.where(pending, altered, update)
        steps = steps + pending.long()
    if project:
        update = (torch.dot(update, g_t) / (g_t.norm() ** 2 + eps)) * g_t
    return update, steps


def pcgrad(g_s: Tensor, g_t: Tensor, eps: float = EPS) -> Tensor:
    """PCGrad for two tasks: when g_s.g_t < 0, each gradient loses its component along the
    other (symmetric projection, Yu et al. 2020); otherwise G = g_s + g_t."""
    dot = torch.dot(g_s, g_t)
    conflict = torch.where(dot < 0, dot, torch.zeros_like(dot))
    return g_s * (1 - conflict / (g_s.norm() ** 2 + eps)) + g_t * (
        1 - conflict / (g_t.norm() ** 2 + eps)
    )
