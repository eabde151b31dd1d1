"""SpotTune (Guo et al., CVPR 2019): per-image routing between frozen and fine-tuned blocks.

Every residual block of a source-pretrained ResNet-26 exists twice: a frozen copy
and a fine-tuned copy, both starting from the pretrained weights. A small policy
network (one BasicBlock per stage) looks at the same image and gives two logits
per block; block l's output is (1 - a_l) * frozen_l(x) + a_l * tuned_l(x), with
a = a hard Gumbel-softmax sample in training (straight-through, so the policy
learns from the classification loss alone) and the argmax of the logits at test
time. The release samples Gumbel noise at test time too (docs/adaptive.md): not
copied, evaluation here is deterministic.

What "frozen" means is the setting `frozen_bn`. By default ("release") it is what the
authors' release does: the frozen copies' convolutions are frozen, their batch norm is
not (its affine parameters train with the rest, its running statistics follow the
target in training mode); a frozen copy then keeps the pretrained filters but
normalises them for the new data. With "frozen" the copies stay in eval mode without
gradient, bit-identical to the pretrained blocks for the whole run. The stem, the final
batch norm and the new head are trained with the tuned blocks, as in the release.

The policy network sees the images exactly as the network's stem does (standardised
image by image where the backbone's stem standardises them, the quick profile's narrow
ResNet-26), so both look at the same input.

SpotTune-Global (`policy: global`, the paper's compact variant; not in the release):
the policy is two learned logits per block, independent of the input, so one sample
(one argmax at test time) routes every image of a batch the same way. Its budget loss
(`budget_blocks` k, weight `budget_weight`) is the paper's L_k = (sum_l v_l - k)^2,
v_l the fraction of the batch routed through the fine-tuned block l; it works with
either policy. The paper's second term, the entropy -sum_l v_l log v_l that pushes a
per-image policy towards the same decision for every image, is zero for the global
policy (v_l is 0 or 1) and is not built.
"""

from __future__ import annotations

import copy
import dataclasses
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm

from tlrepro.errors import ConfigError
from tlrepro.methods.base import Batches, Method, MethodContext
from tlrepro.methods.spottune_settings import FrozenBN, Policy, SpotTuneSettings
from tlrepro.models.base import BlockClassifier, Classifier
from tlrepro.models.resnet26 import ResNet26


class GlobalPolicy(nn.Module):
    """SpotTune-Global's policy: two logits per block, learned, the same for every image."""

    def __init__(self, num_blocks: int):
        super().__init__()
        self.logits = nn.Parameter(torch.zeros(2 * num_blocks))

    def forward(self, x: Tensor) -> Tensor:
        """(1, 2 * blocks) whatever the images: the input is not looked at."""
        return self.logits.view(1, -1)


def budget_loss(actions: Tensor, budget: int) -> Tensor:
    """SpotTune's L_k = (sum_l v_l - k)^2 with v_l the fraction of the batch's images that
    take the fine-tuned block l (straight-through actions, so the policy gets its gradient)."""
    return (actions.float().mean(0).sum() - budget) ** 2


class SpotTuneNet(Classifier):
    """A network of blocks (ResNet-26, EfficientNet-Lite0) whose blocks each have a frozen
    twin, routed per image by a policy net (`policy` "per_image"), or for all images alike
    by learned logits ("global"): x <- (1 - a) frozen(x) + a tuned(x) holds for any blocks
    whose two copies have the same shapes."""

    def __init__(
        self,
        backbone: BlockClassifier,
        tau: float,
        policy: Policy = "per_image",
        frozen_bn: FrozenBN = "release",
    ):
        super().__init__()
        if not isinstance(backbone, BlockClassifier):
            raise TypeError(
                "SpotTune needs a network of blocks (a BlockClassifier: resnet26, "
                f"resnet26_narrow, efficientnet_lite0_imagenet), got {type(backbone).__name__}"
            )
        self.backbone = backbone
        self.frozen = copy.deepcopy(backbone.blocks).requires_grad_(False)
        self.frozen_bn = frozen_bn
        if frozen_bn == "release":
            for layer in self.frozen.modules():
                if isinstance(layer, _BatchNorm):
                    layer.requires_grad_(True)
        self.num_blocks = len(backbone.blocks)
        stage_widths = tuple(
            w for w, s in zip(backbone.widths, backbone.strides, strict=True) if s == 2
        )
        self.policy = (
            GlobalPolicy(self.num_blocks)
            if policy == "global"
            else ResNet26(
                2 * self.num_blocks,
                widths=stage_widths,
                stem_width=backbone.stem[0].out_channels,
                blocks_per_stage=1,
                standardize_input=backbone.standardize_input,
            )
        )
        self.tau = tau
        self.feature_dim = backbone.feature_dim

    @property
    def head(self) -> nn.Linear:  # type: ignore[override]
        return self.backbone.head

    def reset_head(self, num_classes: int) -> None:
        self.backbone.reset_head(num_classes)

    def train(self, mode: bool = True) -> SpotTuneNet:
        """With `frozen_bn` "frozen" the frozen blocks never leave eval mode, so their
        batch-norm statistics stay pretrained; with "release" they follow `mode`."""
        super().train(mode)
        if self.frozen_bn == "frozen":
            self.frozen.eval()
        return self

    def actions(self, x: Tensor) -> Tensor:
        """(N, blocks) in {0, 1}, 1 = fine-tuned path: a straight-through hard Gumbel-softmax
        sample in training, the argmax of the policy's logits in eval mode. The global
        policy gives one row of logits, so one sample serves every image."""
        logits = self.policy(x).view(-1, self.num_blocks, 2)
        if self.training:
            actions = F.gumbel_softmax(logits.float(), tau=self.tau, hard=True)[..., 1]
        else:
            actions = (logits[..., 1] > logits[..., 0]).to(x.dtype)
        return actions.expand(len(x), -1)

    def route(self, x: Tensor, actions: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """(pooled features, actions); `actions` given forces the routing (tests, analysis)."""
        if actions is None:
            actions = self.actions(x)
        net = self.backbone
        h = net.stem(x)
        for index, (tuned, frozen) in enumerate(zip(net.blocks, self.frozen, strict=True)):
            a = actions[:, index].view(-1, 1, 1, 1).to(h.dtype)
            h = a * net.join(index, h, tuned(h)) + (1 - a) * net.join(index, h, frozen(h))
        return net.pool(h), actions

    def features(self, x: Tensor) -> Tensor:
        return self.route(x)[0]


class SpotTune(Method):
    settings: SpotTuneSettings

    def __init__(self, context: MethodContext):
        settings = context.settings
        assert isinstance(settings, SpotTuneSettings)
        net = SpotTuneNet(context.network, settings.tau, settings.policy, settings.frozen_bn)
        super().__init__(dataclasses.replace(context, network=net))
        self.budget = settings.budget_blocks
        if self.budget is not None and self.budget > net.num_blocks:
            raise ConfigError(
                f"spottune: budget_blocks is {self.budget}, more than the network's "
                f"{net.num_blocks} blocks"
            )
        usage = tuple(f"usage_block{i}" for i in range(net.num_blocks))
        self.extra_stats = usage if self.budget is None else (*usage, "budget_loss")

    def parameter_groups(self) -> list[dict[str, Any]]:
        """The policy has its own lr (x `policy_lr_scale`) and weight decay, as in the paper."""
        policy = list(self.network.policy.parameters())
        ids = {id(p) for p in policy}
        rest = [p for p in self.parameters() if p.requires_grad and id(p) not in ids]
        return [
            {"params": rest},
            {
                "params": policy,
                "lr_scale": self.settings.policy_lr_scale,
                "weight_decay": self.settings.policy_weight_decay,
            },
        ]

    def update(self, batches: Batches, step: int) -> dict[str, Tensor]:
        (stream,) = self.streams
        x, y = batches[stream]
        features, actions = self.network.route(x)
        loss, stats = self.scored(self.network.head(features), y)
        if self.budget is not None:
            budget = budget_loss(actions, self.budget)
            loss = loss + self.settings.budget_weight * budget
            stats["budget_loss"] = budget.detach()
        loss.backward()
        usage = actions.detach().float().mean(0)
        return {**stats, **{f"usage_block{i}": value for i, value in enumerate(usage)}}
