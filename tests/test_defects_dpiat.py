"""DPIAT against the `iatransfer` package (1.0.3, the baseline's own code) on real networks.

The package's `iatransfer.toolkit/__init__.py` imports every module of the toolkit, among
them its graph-embedding and plotting ones (karateclub, graphviz, inflection), which this
project does not install; DPIAT needs none of them. So the test loads the four pieces DPIAT
is made of (blocks standardization, DP matching, shape score, clip transfer) from the
installed package without running that file.
"""

from __future__ import annotations

import copy
import importlib
import importlib.util
import sys
import types
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn
from torchvision import models

from tlrepro.models.small import SmallVGG, small_resnet_deep
from tlrepro.transfer.match import dp_match
from tlrepro.transfer.recipes import dpiat_transfer
from tlrepro.transfer.standardize import WEIGHTED, blocks, leaves


@pytest.fixture
def iatransfer(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """iatransfer's DPIAT pieces: standardization, matching (scored), transfer."""
    spec = importlib.util.find_spec("iatransfer")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("iatransfer is not installed: pip install --no-deps iatransfer==1.0.3")
    toolkit = types.ModuleType("iatransfer.toolkit")
    toolkit.__path__ = [str(Path(next(iter(spec.submodule_search_locations))) / "toolkit")]
    monkeypatch.setitem(sys.modules, "iatransfer.toolkit", toolkit)

    def load(module: str, name: str) -> Any:
        return getattr(importlib.import_module(f"iatransfer.toolkit.{module}"), name)()

    matching = load("matching.dp_matching", "DPMatching")
    matching.set_score(load("score.shape_score", "ShapeScore"))
    return {
        "standardize": load("standardization.blocks_standardization", "BlocksStandardization"),
        "match": matching,
        "transfer": load("transfer.clip_transfer", "ClipTransfer"),
    }


def _their_match(iatransfer: dict[str, Any], source: nn.Module, target: nn.Module) -> list:
    standardize = iatransfer["standardize"]
    return iatransfer["match"](standardize(source), standardize(target))


def _their_pairs(matched: list) -> Iterator[tuple[nn.Module | None, nn.Module]]:
    """iatransfer's nested match list as (source or None, target layer), every target layer."""
    for entry in matched:
        if isinstance(entry, list):
            yield from _their_pairs(entry)
            continue
        source, target = entry
        if isinstance(target, list):
            yield from ((None, layer) for layer in leaves(target))
        elif target is not None:
            yield source, target


def _named(pairs, source: nn.Module, target: nn.Module) -> dict[str, str | None]:
    """target layer name -> source layer name (None: not fed), weighted target layers only."""
    s_names = {id(m): n for n, m in source.named_modules()}
    t_names = {id(m): n for n, m in target.named_modules()}
    return {
        t_names[id(t)]: None if s is None else s_names[id(s)]
        for s, t in pairs
        if isinstance(t, WEIGHTED)
    }


Builder = Callable[[], nn.Module]

MATCHING_PAIRS: list[tuple[str, Builder, Builder]] = [
    ("vgg16->resnet18", models.vgg16, models.resnet18),
    ("resnet50->resnet18", models.resnet50, models.resnet18),
    ("mobilenet_v2->resnet34", models.mobilenet_v2, models.resnet34),
    ("resnet18->mobilenet_v3_small", models.resnet18, models.mobilenet_v3_small),
    ("small_vgg->small_resnet_deep", lambda: SmallVGG(10), lambda: small_resnet_deep(10)),
]  # fmt: skip


@pytest.mark.parametrize(
    ("source_builder", "target_builder"),
    [pair[1:] for pair in MATCHING_PAIRS],
    ids=[pair[0] for pair in MATCHING_PAIRS],
)
def test_dpiat_pairs_layers_as_iatransfer_does(iatransfer, source_builder, target_builder):
    with torch.device("meta"):  # shapes and module structure only
        source, target = source_builder(), target_builder()
    theirs = _their_match(iatransfer, source, target)
    ours = _named(dp_match(blocks(source), blocks(target)), source, target)
    assert ours == _named(_their_pairs(theirs), source, target)
    assert any(name is not None for name in ours.values())


def test_dpiat_writes_the_weights_iatransfer_writes(iatransfer):
    torch.manual_seed(0)
    for source, target in [
        (models.resnet18(), models.mobilenet_v3_small()),
        (SmallVGG(10), small_resnet_deep(10)),
    ]:
        theirs = copy.deepcopy(target)
        iatransfer["transfer"](_their_match(iatransfer, source, theirs))
        report = dpiat_transfer(source, target)
        assert report.from_source > 0
        got, want = target.state_dict(), theirs.state_dict()
        assert got.keys() == want.keys()
        for key in got:
            assert torch.equal(got[key], want[key]), key
