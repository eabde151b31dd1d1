"""Training one shared model on a labelled source and a labelled target stream at once.

`Joint` sums the two losses; `SeparateGradients` computes the two gradients over
every trainable parameter, flattened into one vector each, and lets a subclass
combine them (GradMF, PCGrad). Both share the choices below, so that their
comparison measures the combination rule and nothing else.

- Heads: where source and target share a label space, one head serves both and
  starts from the source model's head (as the GradMF release loads the whole
  source model). Otherwise the body is shared, the source keeps its own
  pretrained head (trained on), and the target gets a new one.
- Batch-norm: each stream has its own forward, so batch statistics are per
  domain; only the target forward updates the running statistics, because the
  running statistics are what evaluation on the target uses. (Two train-mode
  forwards would otherwise mix both domains into them.)
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Iterator

import torch
from torch import Tensor, nn

from tlrepro.methods import gradient_algebra
from tlrepro.methods.base import Batches, Method, MethodContext


@contextlib.contextmanager
def running_stats_frozen(module: nn.Module) -> Iterator[None]:
    """Train-mode batch-norm that normalises with batch statistics but leaves the running ones."""
    norms = [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.momentum = 0.0
    try:
        yield
    finally:
        for m, momentum in zip(norms, momenta, strict=True):
            m.momentum = momentum


class Joint(Method):
    """Sum of the source and target cross-entropies, one backward."""

    def __init__(self, context: MethodContext):
        super().__init__(context)
        source_model = context.source_model
        if source_model is None:
            raise ValueError(f"{type(self).__name__} needs the source model (uses_source_model)")
        self.source_head: nn.Module | None = None
        if self.shared_labels:
            self.network.head.load_state_dict(source_model.head.state_dict())
        else:
            self.source_head = copy.deepcopy(source_model.head)

    def source_logits(self, x: Tensor) -> Tensor:
        if self.source_head is None:
            return self.network(x)
        return self.source_head(self.network.features(x))

    def losses(self, batches: Batches) -> tuple[Tensor, Tensor, dict[str, Tensor]]:
        """(source loss, target loss, the target stream's statistics)."""
        x_s, y_s = batches["source"]
        x_t, y_t = batches["target"]
        with running_stats_frozen(self.network):
            source_loss = self.criterion(self.source_logits(x_s), y_s)
        target_loss, stats = self.scored(self.network(x_t), y_t)
        return source_loss, target_loss, stats

    def update(self, batches: Batches, step: int) -> dict[str, Tensor]:
        source_loss, target_loss, stats = self.losses(batches)
        (source_loss + target_loss).backward()
        return stats


class SeparateGradients(Joint):
    """g_s and g_t over all trainable parameters as the two rows of one flat buffer; a
    subclass turns their 2x2 Gram matrix into the coefficients of G = a g_s + b g_t."""

    extra_stats = ("cos_source_target", "cos_update_target", "cos_update_source")

    def coefficients(self, gram_matrix: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        raise NotImplementedError

    def trainable(self) -> list[nn.Parameter]:
        """Every parameter the optimiser steps, in one fixed order, whatever its group."""
        return [p for group in self.parameter_groups() for p in group["params"]]

    def update(self, batches: Batches, step: int) -> dict[str, Tensor]:
        params = self.trainable()
        source_loss, target_loss, stats = self.losses(batches)
        grads = gradient_buffer(params)
        flat_gradient(source_loss, params, out=grads[0])
        flat_gradient(target_loss, params, out=grads[1])
        return {**stats, **self.set_combined_gradient(grads, params)}

    def set_combined_gradient(self, grads: Tensor, params: list[nn.Parameter]) -> dict[str, Tensor]:
        """G from the (2, N) stack (g_s, g_t) written into every parameter's `.grad`; returns
        the `extra_stats` of the combination."""
        # The trainer calls update under autocast (bf16 on CUDA), which would run these
        # matmuls in bf16: the Gram matrix would lose its precision and the update its dtype.
        with torch.autocast(grads.device.type, enabled=False):
            gram_matrix = gradient_algebra.gram(grads)
            coefficients, extra = self.coefficients(gram_matrix)
            update = gradient_algebra.combine(grads, coefficients)
        for param, part in zip(params, parameter_views(update, params), strict=True):
            param.grad = part
        return {**extra, **gradient_algebra.cosines(gram_matrix, coefficients)}


def gradient_buffer(params: list[nn.Parameter]) -> Tensor:
    """The (2, N) buffer for g_s and g_t, in the parameters' dtype and on their device (one
    flat vector cannot hold gradients of parameters that differ in either)."""
    kinds = {(p.dtype, p.device) for p in params}
    if len(kinds) != 1:
        found = ", ".join(sorted(f"{dtype} on {device}" for dtype, device in kinds))
        raise ValueError(
            f"combining gradients needs every trainable parameter in one dtype on one device; "
            f"found {found or 'no trainable parameters'}: move the whole model with "
            f"`.to(dtype, device)` first"
        )
    ((dtype, device),) = kinds
    return torch.empty(2, sum(p.numel() for p in params), dtype=dtype, device=device)


def parameter_views(flat: Tensor, params: list[nn.Parameter]) -> list[Tensor]:
    """One view of `flat` per parameter, laid out in memory like the parameter (channels_last
    included), so that writing gradients into them and handing them to the optimiser costs
    no layout conversion; the flat order is the parameters' memory order."""
    views, offset = [], 0
    for param in params:
        chunk = flat[offset : offset + param.numel()]
        views.append(chunk.as_strided(param.shape, param.stride()))
        offset += param.numel()
    return views


def flat_gradient(loss: Tensor, params: list[nn.Parameter], out: Tensor) -> Tensor:
    """d loss / d params written into the vector `out`; parameters the loss does not reach
    contribute zeros."""
    grads = torch.autograd.grad(loss, params, allow_unused=True)
    for grad, view in zip(grads, parameter_views(out, params), strict=True):
        if grad is None:
            view.zero_()
        else:
            view.copy_(grad)
    return out
