"""Combining a source and a target gradient without leaving the device, in O(1) vector passes.

Every rule here (GradMF's both variants, PCGrad) returns a G that lies in the plane
of g_s and g_t: each step only adds multiples of g_t and of the current G. So G is
kept as two coefficients, G = a g_s + b g_t, and all the dot products and norms
the rules need come from the 2x2 Gram matrix of (g_s, g_t): one pass over the
gradients for the Gram matrix and one to form G, however many altering steps
`drawn` takes. Conditions ("only on conflict", "until aligned") are tensor masks,
never Python branches on values, so a training step never waits for the device.
"""

from __future__ import annotations

import torch
from torch import Tensor

EPS = 1e-5
"""The release's epsilon in GradMF's projection."""


def gram(grads: Tensor) -> Tensor:
    """[[g_s.g_s, g_s.g_t], [g_t.g_s, g_t.g_t]] of the (2, N) stack (g_s, g_t)."""
    return grads @ grads.T


def dots(gram_matrix: Tensor, coefficients: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """(G.g_s, G.g_t, G.G) for G = a g_s + b g_t."""
    with_grads = gram_matrix @ coefficients
    return with_grads[0], with_grads[1], coefficients @ with_grads


def cosines(gram_matrix: Tensor, coefficients: Tensor) -> dict[str, Tensor]:
    """cos(g_s, g_t) before combining, cos(G, g_t) and cos(G, g_s) after."""
    source, target, update = dots(gram_matrix, coefficients)
    norm_s, norm_t = gram_matrix.diagonal().sqrt()
    norm_update = update.clamp_min(0).sqrt()
    return {
        "cos_source_target": gram_matrix[0, 1] / (norm_s * norm_t).clamp_min(1e-12),
        "cos_update_target": target / (norm_update * norm_t).clamp_min(1e-12),
        "cos_update_source": source / (norm_update * norm_s).clamp_min(1e-12),
    }


def alter(gram_matrix: Tensor, coefficients: Tensor, eps: float = EPS) -> Tensor:
    """One altering step as the authors' code takes it: G <- G + g_t - (g_t.G / (||G|| + eps)^2) G.

    The epsilon sits on the norm before squaring, as in the release; at gradient norms
    near 1e-3, ||G||^2 + eps would shrink the removed component by more than half.
    """
    _, along_target, update_sq = dots(gram_matrix, coefficients)
    scale = 1 - along_target / (update_sq.clamp_min(0).sqrt() + eps) ** 2
    return coefficients * scale + _toward_target(gram_matrix)


def _toward_target(gram_matrix: Tensor) -> Tensor:
    """The coefficients of g_t itself."""
    one = gram_matrix[1, 1]
    return torch.stack([torch.zeros_like(one), torch.ones_like(one)])


def _source(gram_matrix: Tensor) -> Tensor:
    """The coefficients of g_s itself."""
    one = gram_matrix[0, 0]
    return torch.stack([torch.ones_like(one), torch.zeros_like(one)])


def coded(gram_matrix: Tensor, eps: float = EPS) -> Tensor:
    """GradMF as released: keep g_s, add the part of g_t orthogonal to it (always, no test).

    G = g_s + g_t - (g_t.g_s / (||g_s|| + eps)^2) g_s: one altering step from g_s.
    """
    return alter(gram_matrix, _source(gram_matrix), eps)


def drawn(
    gram_matrix: Tensor, tau: float, max_steps: int, project: bool, eps: float = EPS
) -> tuple[Tensor, Tensor]:
    """GradMF as the paper's figure draws it: progressive altering, then optional projection.

    Starting from G = g_s, take the release's altering step (`alter`) while
    cos(G, g_t) < tau, at most `max_steps` times, so that one step untested is `coded`;
    with `project`, finally replace G by (G.g_t / (||g_t|| + eps)^2) g_t, the epsilon
    placed as in the release. Returns G's coefficients and the number of altering
    steps taken (a device tensor); a step that is not needed is masked out.
    """
    target_sq = gram_matrix[1, 1]
    coefficients = _source(gram_matrix)
    steps = torch.zeros((), dtype=torch.long, device=gram_matrix.device)
    for _ in range(max_steps):
        _, along_target, update_sq = dots(gram_matrix, coefficients)
        cosine = along_target / (update_sq.clamp_min(0).sqrt() * target_sq.sqrt()).clamp_min(1e-12)
        pending = cosine < tau
        coefficients = torch.where(pending, alter(gram_matrix, coefficients, eps), coefficients)
        steps = steps + pending.long()
    if project:
        _, along_target, _ = dots(gram_matrix, coefficients)
        scale = along_target / (target_sq.sqrt() + eps) ** 2
        coefficients = _toward_target(gram_matrix) * scale
    return coefficients, steps


def pcgrad(gram_matrix: Tensor, eps: float = EPS) -> Tensor:
    """PCGrad for two tasks: when g_s.g_t < 0, each gradient loses its component along the
    other (symmetric projection, Yu et al. 2020); otherwise G = g_s + g_t."""
    cross = gram_matrix[0, 1]
    conflict = torch.where(cross < 0, cross, torch.zeros_like(cross))
    return 1 - conflict / (gram_matrix.diagonal() + eps)


def combine(grads: Tensor, coefficients: Tensor) -> Tensor:
    """G = a g_s + b g_t from the (2, N) stack: the one full-length pass that forms G."""
    return coefficients @ grads
