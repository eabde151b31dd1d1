"""GradMF (ICASSP 2024): the source gradient steered towards the target's direction.

Two variants of one method (docs/gradmf.md): `coded` is the authors' update
(one orthogonal-complement step, always applied); `drawn` is the paper's figure
(progressive altering until cos(G, g_t) >= tau or `max_steps`, then an optional
projection onto g_t). Both take the altering step of the authors' iterated code, which
divides by (||G|| + eps)^2, so `drawn` with one untested step and no projection is
`coded` exactly. Unlike the release, whose optimiser wraps a different model
than the one the gradients are set on, and whose gradient packing stops after the
first parameter group, the update here reaches every trainable parameter.

Two schedules: `joint` combines a fresh g_s and g_t at every step; `release` follows the
released scripts' epochs (`ReleaseSchedule`).
"""

from __future__ import annotations

import copy

import torch
from torch import Tensor, nn

from tlrepro.methods import gradient_algebra
from tlrepro.methods.base import Batches, MethodContext
from tlrepro.methods.gradmf_settings import GradMFSettings
from tlrepro.methods.two_stream import (
    SeparateGradients,
    flat_gradient,
    gradient_buffer,
    running_stats_frozen,
)


class ReleaseSchedule:
    """Which epochs of the released scripts are GradMF epochs (counted from 0, as there):
    `ep % 3 != 0 or ep == 0` trains on the source (train_Mnist_SVHN.py:150,
    Grad_train_Mnist.py:144; `% 2` in Grad_train_caltech256.py:102 and Office31.py:101)."""

    def __init__(self, period: int, steps_per_epoch: int):
        self.period, self.steps_per_epoch = period, steps_per_epoch

    def epoch(self, step: int) -> tuple[int, bool]:
        """(the epoch of optimiser step `step`, whether the step is the epoch's first)."""
        epoch, offset = divmod(step, self.steps_per_epoch)
        return epoch, offset == 0

    def is_gradmf(self, epoch: int) -> bool:
        return epoch > 0 and epoch % self.period == 0


class GradMF(SeparateGradients):
    settings: GradMFSettings
    extra_stats = (*SeparateGradients.extra_stats, "altering_steps")

    def __init__(self, context: MethodContext):
        super().__init__(context)
        if self.settings.schedule == "release":
            self._init_release_schedule(context)

    def coefficients(self, gram_matrix: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        if self.settings.variant == "coded":
            coefficients = gradient_algebra.coded(gram_matrix)
            return coefficients, {"altering_steps": torch.ones_like(coefficients[0])}
        coefficients, steps = gradient_algebra.drawn(
            gram_matrix,
            tau=self.settings.tau,
            max_steps=self.settings.max_steps,
            project=self.settings.project,
        )
        return coefficients, {"altering_steps": steps.float()}

    def update(self, batches: Batches, step: int) -> dict[str, Tensor]:
        if self.settings.schedule == "joint":
            return super().update(batches, step)
        epoch, first = self.schedule.epoch(step)
        if first:
            self._begin_epoch(epoch)
        if not self.schedule.is_gradmf(epoch):
            return self._source_step(batches)
        if self._source_gradient_epoch != epoch:
            self._take_source_gradient(batches, epoch)
        return self._gradmf_step(batches)

    # The release schedule. The released scripts keep the best source model (by its accuracy
    # on held-out source images) in a file; every epoch starts by loading it; a source epoch
    # trains on the source and saves the model if it is better; a GradMF epoch computes one
    # source loss, then steps GradMF on every target batch with that same loss. Here the best
    # source state is a frozen copy inside the method (so a resumed run keeps it), judged by
    # the source epoch's accuracy on its own batches, each scored before its step: the trainer
    # gives a method no source validation split.

    def _init_release_schedule(self, context: MethodContext) -> None:
        if context.steps_per_epoch is None:
            raise ValueError("GradMF's release schedule needs the trainer's steps_per_epoch")
        self.schedule = ReleaseSchedule(self.settings.release_period, context.steps_per_epoch)
        self.extra_stats = (*type(self).extra_stats, "gradmf_epoch")
        live = {"network": self.network}
        if self.source_head is not None:
            live["source_head"] = self.source_head
        self.best_source = copy.deepcopy(nn.ModuleDict(live)).requires_grad_(False)
        self.register_buffer("best_source_accuracy", torch.tensor(-1.0))
        self.register_buffer("source_hits", torch.zeros(2))
        """The current source epoch's (correct, count)."""
        self._source_gradient_epoch: int | None = None
        self._grads: Tensor | None = None

    def _live_tensors(self) -> list[Tensor]:
        modules = [self.network] + ([self.source_head] if self.source_head is not None else [])
        return [t for m in modules for t in m.state_dict().values()]

    def _best_tensors(self) -> list[Tensor]:
        return [t for m in self.best_source.values() for t in m.state_dict().values()]

    @torch.no_grad()
    def _begin_epoch(self, epoch: int) -> None:
        """Keep the last source epoch's model if it beat the best (on the device, no sync),
        then start the epoch from the best source state."""
        live, best = self._live_tensors(), self._best_tensors()
        if epoch > 0 and not self.schedule.is_gradmf(epoch - 1):
            correct, count = self.source_hits
            accuracy = correct / count.clamp_min(1)
            better = accuracy > self.best_source_accuracy
            for saved, current in zip(best, live, strict=True):
                saved.copy_(torch.where(better, current, saved))
            self.best_source_accuracy.copy_(torch.maximum(accuracy, self.best_source_accuracy))
        for current, saved in zip(live, best, strict=True):
            current.copy_(saved)
        self.source_hits.zero_()

    def _source_step(self, batches: Batches) -> dict[str, Tensor]:
        """Cross-entropy on the source batch alone (its head: shared or the source's own)."""
        x_s, y_s = batches["source"]
        loss, stats = self.scored(self.source_logits(x_s), y_s)
        loss.backward()
        self.source_hits += torch.stack([stats["correct"], stats["count"]]).float()
        not_combined = torch.full((), float("nan"), device=loss.device)
        extra = {name: not_combined for name in type(self).extra_stats}
        return {**stats, **extra, "gradmf_epoch": torch.zeros_like(not_combined)}

    def _take_source_gradient(self, batches: Batches, epoch: int) -> None:
        """g_s of this step's source batch, at the state the GradMF epoch starts from; the
        release backpropagates its one source loss again at every step of the epoch, through
        the graph of that state, so g_s stays what it was (Grad_train_caltech256.py:160-180)."""
        params = self.trainable()
        x_s, y_s = batches["source"]
        with running_stats_frozen(self.network):
            source_loss = self.criterion(self.source_logits(x_s), y_s)
        self._grads = gradient_buffer(params)
        flat_gradient(source_loss, params, out=self._grads[0])
        self._source_gradient_epoch = epoch

    def _gradmf_step(self, batches: Batches) -> dict[str, Tensor]:
        assert self._grads is not None
        params = self.trainable()
        x_t, y_t = batches["target"]
        target_loss, stats = self.scored(self.network(x_t), y_t)
        flat_gradient(target_loss, params, out=self._grads[1])
        combined = self.set_combined_gradient(self._grads, params)
        return {**stats, **combined, "gradmf_epoch": torch.ones_like(stats["loss"].float())}
