"""Standardization: turn a network into the ordered list of layers a matcher pairs up.

TLVFC lists the layers of the kinds it transfers depth-first, in registration
order (`flatten`); DPIAT groups them into blocks first (`blocks`), so that a
residual block of the target can be matched as a unit.
"""

from __future__ import annotations

from torch import nn

_CONVOLUTIONS = (
    nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d,
)  # fmt: skip
DIMENSIONAL = (*_CONVOLUTIONS, nn.Linear)
"""The layers that count towards making a container a block."""
WEIGHTED = (*DIMENSIONAL, nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)
"""The layers DPIAT scores and transfers (BatchNorm included), as `iatransfer` lists them."""

Item = nn.Module | list["Item"]
"""A layer, or a block: a list of items."""


def flatten(module: nn.Module, kinds: tuple[type[nn.Module], ...]) -> list[tuple[str, nn.Module]]:
    """Every sub-module of one of `kinds`, depth-first in registration order, with its name."""
    return [(name, m) for name, m in module.named_modules() if isinstance(m, kinds)]


def blocks(module: nn.Module) -> list[Item]:
    """DPIAT's block standardization (as in the `iatransfer` package).

    A container whose children are mostly single layers is a block, unless it holds
    fewer than two conv/linear layers, in which case its layers join its parent's;
    a container of blocks (a ResNet stage) is spliced into its parent; the root is
    always a list. Modules without children and without weights (activations,
    pooling, flatten) stay as items: they score 0 in the matching but count in the
    length of a run, and in whether a container is mostly single layers.
    """
    items, _, _ = _blocks(module, level=0)
    return items if isinstance(items, list) else [items]


def _blocks(module: nn.Module, level: int) -> tuple[Item, int, int]:
    """(item, depth, number of conv/linear layers); depth 2 = a list of blocks to splice."""
    if isinstance(module, WEIGHTED):
        return module, 0, int(isinstance(module, DIMENSIONAL))
    children = list(module.children())
    if not children:
        return module, 0, 0
    next_level = level if len(children) == 1 else level + 1
    layers: list[Item] = []
    dimensional = 0
    for child in children:
        item, depth, child_dimensional = _blocks(child, next_level)
        dimensional += child_dimensional
        if isinstance(item, list) and (depth > 1 or child_dimensional < 2):
            layers.extend(item)
        else:
            layers.append(item)
    n_blocks = sum(isinstance(item, list) for item in layers)
    if len(layers) - n_blocks > n_blocks and level > 0:
        layers = [x for item in layers for x in (item if isinstance(item, list) else [item])]
        depth = 1
    else:
        depth = 2
    if len(layers) == 1:
        return layers[0], 1, dimensional
    return layers, depth, dimensional


def leaves(item: Item) -> list[nn.Module]:
    """The layers of an item, in order."""
    if isinstance(item, list):
        return [layer for sub in item for layer in leaves(sub)]
    return [item]
