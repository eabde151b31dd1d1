"""The interface every method implements, in the spirit of DomainBed's algorithms.

The trainer owns the optimiser, the schedule, evaluation, checkpoints and logs;
a method owns its maths: `update` turns a step's batches into gradients (it may
call `backward` more than once, or combine gradients itself) and returns detached
statistics; `predict` gives logits for evaluation.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from tlrepro.methods.settings import Settings
from tlrepro.models.base import Classifier

Batches = dict[str, tuple[Tensor, Tensor]]


@dataclass(frozen=True)
class MethodContext:
    """Everything a method is built from: one object, so that a transfer run, a source
    pretraining and the registry-wide test build every method alike (`build_method`)."""

    network: Classifier
    """The network to train (initialised from the source checkpoint where the registry
    entry's `init` is "source"); a method may wrap it (`dataclasses.replace`)."""
    streams: tuple[str, ...]
    """The labelled streams `update` receives (the registry entry's `streams`)."""
    settings: Settings = field(default_factory=Settings)
    """The method's typed settings (the registry entry's `settings` class)."""
    label_smoothing: float = 0.0
    source_model: Classifier | None = None
    """The source-pretrained net, head included: given to methods whose registry entry
    sets `uses_source_model`."""
    shared_labels: bool = False
    """Whether the source model's head speaks the target's label space."""
    steps_per_epoch: int | None = None
    """The trainer's optimiser steps per epoch (`Training.epoch_steps`), for a method whose
    schedule changes by epoch: `update`'s `step` counts from 0 over the whole run."""


class Method(nn.Module):
    settings: Settings

    def __init__(self, context: MethodContext):
        super().__init__()
        self.network = context.network
        self.streams = context.streams
        self.settings = context.settings
        self.shared_labels = context.shared_labels
        self.criterion = nn.CrossEntropyLoss(label_smoothing=context.label_smoothing)

    extra_stats: tuple[str, ...] = ()
    """Per-step scalars `update` also returns; the trainer logs their epoch means in log.csv."""

    trains: bool = True
    """False for a method whose optimiser steps change nothing (zero-shot CLIP): its run has
    no learning curve to converge (`tlrepro.training.convergence`)."""

    strong_streams: tuple[str, ...] = ()
    """Streams of which `update` also receives FixMatch's strong view of the same images, as
    `batches[f"{name}_strong"]` (labels included; a UDA method must not read them)."""

    def parameter_groups(self) -> list[dict[str, Any]]:
        """Optimiser groups; an optional `lr_scale` multiplies the configured lr."""
        return [{"params": [p for p in self.parameters() if p.requires_grad]}]

    def update(self, batches: Batches, step: int) -> dict[str, Tensor]:
        """Fill `.grad`; return detached `loss` (mean), `correct` and `count` of the step,
        and the `extra_stats`."""
        raise NotImplementedError

    def after_step(self) -> None:
        """Called after every optimiser step (e.g. to project weights)."""

    def saved_state(self) -> dict[str, Tensor]:
        """What the run's model.safetensors holds: the whole network unless a method
        trains only part of a large one."""
        return self.network.state_dict()

    def export(self, folder: Path) -> dict[str, Any]:
        """Called once after training, beside the saved network: write any method-specific
        files into `folder` (a transfer report, a sparse checkpoint) and return extra fields
        for metrics.json (none by default). The only place a method touches files."""
        return {}

    @torch.no_grad()
    def predict(self, x: Tensor) -> Tensor:
        return self.network(x)

    def scored(self, logits: Tensor, y: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        """The cross-entropy of one labelled batch and the step statistics the trainer logs."""
        loss = self.criterion(logits, y)
        return loss, step_statistics(loss, logits, y)

    def supervised_step(self, x: Tensor, y: Tensor) -> dict[str, Tensor]:
        """Cross-entropy on one labelled batch, backward included: the building block of ERM."""
        loss, stats = self.scored(self.network(x), y)
        loss.backward()
        return stats


def step_statistics(loss: Tensor, logits: Tensor, y: Tensor) -> dict[str, Tensor]:
    """What the trainer sums over an epoch: the mean loss, the hits and the batch size."""
    return {
        "loss": loss.detach(),
        "correct": (logits.argmax(1) == y).sum(),
        "count": torch.tensor(len(y), device=y.device),
    }
