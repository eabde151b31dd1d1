"""MultiTune (Wang et al., ICONIP 2020): several fine-tuned models, integrated by a learned layer.

The paper's idea (the README of YuWang24/MultiTune): fine-tune copies of the
pretrained network under *different fine-tuning settings* and integrate them
adaptively. Here every branch is a full copy of the source-pretrained network
with its own setting, named in the config:

- `lr_scale`: learning-rate multiplier of the branch's pretrained layers;
- `l2sp`: strength alpha of the L2-SP penalty alpha/2 * ||w - w_pretrained||^2 on
  those layers' convolution and linear weights (Li et al., 2018), which then get no
  plain weight decay; their batch-norm parameters and biases keep the plain weight
  decay and no anchor, as the release's intended term skips them;
- `reinit_blocks`: how many of its top residual blocks start afresh as in the release
  (`reinitialise`), trained at the full lr, with plain weight decay, no L2-SP.

The integration layer is a linear classifier over the concatenated features of
the branches, trained jointly with them from the one cross-entropy loss.

Differences from the released code (docs/adaptive.md), on purpose: the release runs
one trunk with two re-initialised last blocks, its L2-SP term is always zero and
its per-stage learning rates are overwritten, so its "branches" differ only in
their random initialisation; here the branches are separate networks whose
settings are applied and tested. That behaviour is not offered as a variant. The
release also adds 0.01 * ||w||^2 / 2 on its integration layer and has a recipe of its
own; here the integration layer gets the run's plain weight decay and the group's
recipe (docs/adaptive.md, "MultiTune").
"""

from __future__ import annotations

import copy
import dataclasses
from typing import Any, NamedTuple

import torch
from torch import Tensor, nn

from tlrepro.errors import ConfigError
from tlrepro.methods.base import Batches, Method, MethodContext
from tlrepro.methods.multitune_settings import Branch, MultiTuneSettings
from tlrepro.models.base import Classifier, he_init


def reinitialise(block: nn.Module) -> None:
    """The release's fresh start of a block: He-normal convolutions (fan-out, as its
    N(0, 2 / (k * k * out_channels))), zero conv biases, batch norm gamma = 1 and beta = 0
    with the running statistics kept (they are the pretrained network's)."""
    he_init(block)


class BranchParameters(NamedTuple):
    """A branch's parameters as its setting treats them."""

    anchored: list[nn.Parameter]
    """Pretrained conv and linear weights: L2-SP's, at the branch's lr_scale."""
    anchors: list[Tensor]
    """Their pretrained values."""
    other: list[nn.Parameter]
    """The pretrained layers' batch-norm parameters and biases: lr_scale, no anchor."""
    fresh: list[nn.Parameter]
    """The re-initialised blocks': the full lr, no anchor."""


class MultiTuneNet(Classifier):
    """Branches (copies of one pretrained net) -> concatenated features -> integration layer."""

    def __init__(self, pretrained: Classifier, branches: list[Branch]):
        super().__init__()
        blocks = getattr(pretrained, "blocks", None)
        nets = []
        for setting in branches:
            net = copy.deepcopy(pretrained)
            del net.head  # the integration layer classifies; a branch only gives features
            count = setting.reinit_blocks
            if count:
                if blocks is None or count > len(blocks):
                    raise ConfigError(
                        f"multitune: branch {setting.name!r} re-initialises {count} blocks; "
                        f"the network has {0 if blocks is None else len(blocks)}"
                    )
                for block in net.blocks[-count:]:
                    reinitialise(block)
            nets.append(net)
        self.branches = nn.ModuleList(nets)
        self.feature_dim = pretrained.feature_dim * len(nets)
        self.head = nn.Linear(self.feature_dim, pretrained.num_classes)

    def features(self, x: Tensor) -> Tensor:
        return torch.cat([branch.features(x) for branch in self.branches], 1)


class MultiTune(Method):
    settings: MultiTuneSettings

    def __init__(self, context: MethodContext):
        settings = context.settings
        assert isinstance(settings, MultiTuneSettings)
        branches = settings.branches
        super().__init__(
            dataclasses.replace(context, network=MultiTuneNet(context.network, branches))
        )
        # L2-SP's anchor: the pretrained weights, kept beside (not inside) the saved network.
        self.anchor = copy.deepcopy(context.network).requires_grad_(False)
        self.branch_settings = branches
        self.splits = [self._split(index) for index in range(len(branches))]

    def _split(self, index: int) -> BranchParameters:
        count = self.branch_settings[index].reinit_blocks
        branch = self.network.branches[index]
        anchors = dict(self.anchor.named_parameters())
        weights = {id(m.weight) for m in branch.modules() if isinstance(m, nn.Conv2d | nn.Linear)}
        total = len(getattr(branch, "blocks", ()))
        fresh_prefixes = tuple(f"blocks.{i}." for i in range(total - count, total))
        split = BranchParameters([], [], [], [])
        for name, param in branch.named_parameters():
            if name.startswith(fresh_prefixes):
                split.fresh.append(param)
            elif id(param) in weights:
                split.anchored.append(param)
                split.anchors.append(anchors[name])
            else:
                split.other.append(param)
        return split

    def parameter_groups(self) -> list[dict[str, Any]]:
        """Per branch: its pretrained layers at its lr_scale (no weight decay on the L2-SP
        weights), its re-initialised blocks at the full lr; then the integration layer."""
        groups: list[dict[str, Any]] = []
        for setting, split in zip(self.branch_settings, self.splits, strict=True):
            decay = {"weight_decay": 0.0} if setting.l2sp > 0 else {}
            groups += [
                {"params": split.anchored, "lr_scale": setting.lr_scale, **decay},
                {"params": split.other, "lr_scale": setting.lr_scale},
                {"params": split.fresh},
            ]
        groups.append({"params": list(self.network.head.parameters())})
        return [group for group in groups if group["params"]]

    @torch.no_grad()
    def add_l2sp_gradient(self) -> Tensor:
        """Add the gradient of alpha/2 * ||w - w_pretrained||^2, alpha * (w - w_pretrained), to
        each L2-SP branch's pretrained conv and linear weights (after backward: three fused ops
        per branch, not an autograd graph over every tensor); return the penalty's value."""
        total = self.network.head.weight.new_zeros(())
        for setting, split in zip(self.branch_settings, self.splits, strict=True):
            alpha = setting.l2sp
            if alpha > 0:
                kept = split.anchored
                diffs = torch._foreach_sub(kept, split.anchors)
                grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in kept]
                torch._foreach_add_(grads, diffs, alpha=alpha)
                for param, grad in zip(kept, grads, strict=True):
                    param.grad = grad
                total += 0.5 * alpha * torch.stack(torch._foreach_norm(diffs)).pow(2).sum()
        return total

    def update(self, batches: Batches, step: int) -> dict[str, Tensor]:
        (stream,) = self.streams
        x, y = batches[stream]
        loss, stats = self.scored(self.network(x), y)
        loss.backward()
        return {**stats, "l2sp": self.add_l2sp_gradient()}

    extra_stats = ("l2sp",)
