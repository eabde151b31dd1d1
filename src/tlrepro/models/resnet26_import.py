"""Rebuffi et al.'s ImageNet-pretrained ResNet-26 (GitHub srebuffi/residual_adapters), as the
source of SpotTune's and MultiTune's groups, converted to this project's layout.

The published checkpoint (`resnet26_pretrained.t7`, which SpotTune's release loads too) is a
pickled dict whose "net" is the authors' whole `models.ResNet` object: unpickling it runs
their code, so this module never does. Export its state dict once, with their code, as
docs/adaptive.md ("Pretrained weights") shows, and name that file in the config
(`pretrain.models.resnet26.weights`); it is read with `weights_only=True`. The published
parameter names (their models.py, plain mode, one task)
and ours (`tlrepro.models.resnet26`, block i = 4 * (stage - 1) + b):

    pre_layers_conv.conv.weight          stem.0.weight
    pre_layers_conv.bns.0.<bn>           stem.1.<bn>
    layer<s>.<b>.conv1.conv.weight       blocks.<i>.conv1.weight
    layer<s>.<b>.conv1.bns.0.<bn>        blocks.<i>.bn1.<bn>
    layer<s>.<b>.conv2.1.conv.weight     blocks.<i>.conv2.weight
    layer<s>.<b>.conv2.1.bns.0.<bn>      blocks.<i>.bn2.<bn>
    end_bns.0.0.<bn>                     final.0.<bn>
    linears.0.weight / .bias             head.weight / .bias (ImageNet's classes)

Both networks compute the same function: a 3x3 stem conv + BN without ReLU, BasicBlocks
conv-BN-ReLU-conv-BN added to a shortcut that average-pools by 2 and appends zero
channels where the shape changes, then ReLU; a final BN-ReLU, global pooling, a linear
head. Checkpoints of that era have no `num_batches_tracked`; those buffers start at 0.
"""

from __future__ import annotations

import pickle
import re
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import Tensor

from tlrepro.models.resnet26 import ResNet26
from tlrepro.models.resnet26 import resnet26 as build_resnet26

BLOCKS_PER_STAGE = 4
BN = r"(weight|bias|running_mean|running_var|num_batches_tracked)"
_BLOCK = re.compile(rf"layer([123])\.(\d+)\.(conv1|conv2\.1)\.(conv\.weight|bns\.0\.{BN})")
_FIXED = [
    (re.compile(r"pre_layers_conv\.conv\.weight"), "stem.0.weight"),
    (re.compile(rf"pre_layers_conv\.bns\.0\.{BN}"), r"stem.1.\1"),
    (re.compile(rf"end_bns\.0\.0\.{BN}"), r"final.0.\1"),
    (re.compile(r"linears\.0\.(weight|bias)"), r"head.\1"),
]


def our_name(published: str) -> str | None:
    """This project's name for a published parameter, or None if it is not one of them."""
    for pattern, replacement in _FIXED:
        if pattern.fullmatch(published):
            return pattern.sub(replacement, published)
    match = _BLOCK.fullmatch(published)
    if match is None or int(match[2]) >= BLOCKS_PER_STAGE:
        return None
    stage, block, conv, tensor = match[1], match[2], match[3], match[4]
    index = BLOCKS_PER_STAGE * (int(stage) - 1) + int(block)
    layer = "1" if conv == "conv1" else "2"
    suffix = f"conv{layer}.weight" if tensor == "conv.weight" else f"bn{layer}.{match[5]}"
    return f"blocks.{index}.{suffix}"


def convert_rebuffi_state(state: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """The published state dict under this project's names; unknown names are an error (the
    series-adapter network, for one, is a different architecture)."""
    converted, unknown = {}, []
    for name, tensor in state.items():
        ours = our_name(name)
        if ours is None:
            unknown.append(name)
        else:
            converted[ours] = tensor
    if unknown:
        raise ValueError(
            f"not the state dict of Rebuffi's plain ResNet-26: unexpected parameters "
            f"{unknown[:5]} (the network with series adapters is not supported)"
        )
    return converted


def load_rebuffi_state(path: str | Path) -> dict[str, Tensor]:
    """Read an exported state dict (safely: tensors only) and convert its names."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        raise ValueError(
            f"{path} holds pickled objects, not a state dict (the published .t7 pickles the "
            "whole network). Export its state dict first, with the authors' code: "
            "torch.save(<its 'net'>.state_dict(), out_file), as docs/adaptive.md "
            '("Pretrained weights") shows'
        ) from error
    if isinstance(state, Mapping) and isinstance(state.get("net"), Mapping):
        state = state["net"]
    if not isinstance(state, Mapping):
        raise ValueError(f"{path} does not hold a state dict")
    return convert_rebuffi_state(state)


def resnet26_with_weights(num_classes: int, weights: str | None = None) -> ResNet26:
    """Rebuffi's ResNet-26 with a new head; `weights`, the exported ImageNet state dict, fills
    its body (None: random initialisation, as every run builds it before loading a source)."""
    network = build_resnet26(num_classes)
    if weights is not None:
        # Everything but the head, which belongs to ImageNet's classes.
        network.load_body(load_rebuffi_state(weights), weights)
    return network
