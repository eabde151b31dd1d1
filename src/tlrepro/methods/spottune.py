"""SpotTune (Guo et al., CVPR 2019): per-image routing between frozen and fine-tuned blocks.

Every residual block of a source-pretrained ResNet-26 exists twice: a frozen copy
and a fine-tuned copy, both starting from the pretrained weights. A small policy
network (one BasicBlock per stage) looks at the same image and gives two logits
per block; block l's output is (1 - a_l) * frozen_l(x) + a_l * tuned_l(x), with
a = a hard Gumbel-softmax sample in training (straight-through, so the policy
learns from the classification loss alone) and the argmax of the logits at test
time. The release samples Gumbel noise at test time too (docs/adaptive.md): not
copied, evaluation here is deterministic.

The frozen copies stay in eval mode (their batch-norm statistics do not move),
so they are bit-identical to the pretrained blocks for the whole run; the stem,
the final batch norm and the new head are trained with the tuned blocks, as in
the release.
"""

from __future__ import annotations

import copy
from typing import Any

import torch.nn.functional as F
from torch import Tensor, nn

from tlrepro.methods.base import Batches, Method
from tlrepro.models.base import Classifier
from tlrepro.models.resnet26 import ResNet26


class SpotTuneNet(Classifier):
    """A ResNet-26 whose blocks each have a frozen twin, routed per image by a policy net."""

    def __init__(self, backbone: ResNet26, tau: float):
        super().__init__()
        if not isinstance(backbone, ResNet26):
            raise TypeError(
                f"SpotTune needs a ResNet-26 (models resnet26, resnet26_narrow), "
                f"got {type(backbone).__name__}"
            )
        self.backbone = backbone
        self.frozen = copy.deepcopy(backbone.blocks).requires_grad_(False)
        self.num_blocks = len(backbone.blocks)
        stage_widths = tuple(
            w for w, s in zip(backbone.widths, backbone.strides, strict=True) if s == 2
        )
        self.policy = ResNet26(
            2 * self.num_blocks,
            widths=stage_widths,
            stem_width=backbone.stem[0].out_channels,
            blocks_per_stage=1,
        )
        self.tau = tau
        self.feature_dim = backbone.feature_dim

    @property
    def head(self) -> nn.Linear:  # type: ignore[override]
        return self.backbone.head

    def reset_head(self, num_classes: int) -> None:
        self.backbone.reset_head(num_classes)

    def train(self, mode: bool = True) -> SpotTuneNet:
        """The frozen blocks never leave eval mode: their batch-norm statistics stay pretrained."""
        super().train(mode)
        self.frozen.eval()
        return self

    def actions(self, x: Tensor) -> Tensor:
        """(N, blocks) in {0, 1}, 1 = fine-tuned path: a straight-through hard Gumbel-softmax
        sample in training, the argmax of the policy's logits in eval mode."""
        logits = self.policy(x).view(len(x), self.num_blocks, 2)
        if self.training:
            return F.gumbel_softmax(logits.float(), tau=self.tau, hard=True)[..., 1]
        return (logits[..., 1] > logits[..., 0]).to(x.dtype)

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
    def __init__(
        self,
        network: Classifier,
        streams: tuple[str, ...],
        settings: dict[str, Any],
        *args,
        **kwargs,
    ):
        super().__init__(SpotTuneNet(network, settings["tau"]), streams, settings, *args, **kwargs)
        self.extra_stats = tuple(f"usage_block{i}" for i in range(self.network.num_blocks))

    def parameter_groups(self) -> list[dict[str, Any]]:
        """The policy has its own lr (x `policy_lr_scale`) and weight decay, as in the paper."""
        policy = list(self.network.policy.parameters())
        ids = {id(p) for p in policy}
        rest = [p for p in self.parameters() if p.requires_grad and id(p) not in ids]
        return [
            {"params": rest},
            {
                "params": policy,
                "lr_scale": self.settings["policy_lr_scale"],
                "weight_decay": self.settings["policy_weight_decay"],
            },
        ]

    def update(self, batches: Batches, step: int) -> dict[str, Tensor]:
        (stream,) = self.streams
        x, y = batches[stream]
        features, actions = self.network.route(x)
        loss, stats = self.scored(self.network.head(features), y)
        loss.backward()
        usage = actions.detach().float().mean(0)
        return {
            **stats,
            **{name: usage[i] for i, name in enumerate(self.extra_stats)},
        }
