"""Rebuffi et al.'s ImageNet-pretrained ResNet-26 (GitHub srebuffi/residual_adapters), as the
source of SpotTune's and MultiTune's groups, converted to this project's layout.

The published checkpoint (`resnet26_pretrained.t7`, which SpotTune's release loads too) is a
pickled dict whose "net" is the authors' whole `models.ResNet` object, saved by PyTorch 0.4
under Python 2 (SpotTune's README): a Python 2 pickle, whose byte strings (and any NumPy
array's data) Python 3 reads only with `encoding="latin1"`, as MultiTune's release does
(its main.py, load_weights_to_flatresnet). `export_published` reads it that way without
the authors' code and without running any of it: every class the pickle names stands in
as an inert record of its state (`_Stub`), except a short list of tensor, container and
NumPy rebuilders, and the modules' `_parameters` and `_buffers` are collected under their
dotted names, i.e. what `checkpoint["net"].state_dict()` gives with the authors' code:

    python -m tlrepro.models.resnet26_import resnet26_pretrained.t7 resnet26_imagenet.pt

Name the exported file in the config (`pretrain.models.resnet26.weights`); it is read with
`weights_only=True`. The published
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

import collections
import copyreg
import pickle
import re
import sys
import types
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import Tensor

from tlrepro.errors import WeightsError
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
        raise WeightsError(
            f"not the state dict of Rebuffi's plain ResNet-26: unexpected parameters "
            f"{unknown[:5]} (the network with series adapters is not supported)"
        )
    return converted


def load_rebuffi_state(path: str | Path) -> dict[str, Tensor]:
    """Read an exported state dict (safely: tensors only) and convert its names."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        raise WeightsError(
            f"{path} holds pickled objects, not a state dict (the published .t7 pickles the "
            "whole network). Export its state dict first, with the authors' code: "
            "torch.save(<its 'net'>.state_dict(), out_file), as docs/adaptive.md "
            '("Pretrained weights") shows'
        ) from error
    if isinstance(state, Mapping) and isinstance(state.get("net"), Mapping):
        state = state["net"]
    if not isinstance(state, Mapping):
        raise WeightsError(f"{path} does not hold a state dict")
    return convert_rebuffi_state(state)


def resnet26_with_weights(num_classes: int, weights: str | None = None) -> ResNet26:
    """Rebuffi's ResNet-26 with a new head; `weights`, the exported ImageNet state dict, fills
    its body (None: random initialisation, as every run builds it before loading a source)."""
    network = build_resnet26(num_classes)
    if weights is not None:
        # Everything but the head, which belongs to ImageNet's classes.
        network.load_body(load_rebuffi_state(weights), weights)
    return network


PUBLISHED_ENCODING = "latin1"
"""How Python 3 must decode the Python 2 pickle's byte strings (NumPy's documented choice
for Python 2 arrays; MultiTune's release loads the checkpoint so)."""


class _Stub:
    """Stands in for a class the pickle names (the authors' modules, old torch.nn classes):
    it records the state unpickling gives it and runs no code of theirs."""

    def __new__(cls, *args: Any, **kwargs: Any) -> _Stub:
        stub = object.__new__(cls)
        stub.__dict__["_args"] = args
        return stub

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __setstate__(self, state: Any) -> None:
        if isinstance(state, tuple) and len(state) == 2 and isinstance(state[1], dict):
            state = {**(state[0] or {}), **state[1]}  # (dict, slots)
        if isinstance(state, dict):
            self.__dict__.update(state)
        else:
            self.__dict__["_state"] = state


def _allowed() -> dict[tuple[str, str], Any]:
    """The only callables the pickle may reach: rebuilders of tensors, parameters, ordered
    dicts and NumPy arrays (Python 2 and 3 module names)."""
    import numpy

    reconstruct = numpy.ndarray.__reduce__(numpy.zeros(1))[0]
    allowed: dict[tuple[str, str], Any] = {
        ("collections", "OrderedDict"): collections.OrderedDict,
        ("torch", "Size"): torch.Size,
        ("torch.nn.parameter", "Parameter"): torch.nn.Parameter,
        ("numpy", "ndarray"): numpy.ndarray,
        ("numpy", "dtype"): numpy.dtype,
        ("numpy.core.multiarray", "_reconstruct"): reconstruct,
        ("numpy._core.multiarray", "_reconstruct"): reconstruct,
        ("copy_reg", "_reconstructor"): copyreg._reconstructor,
        ("copyreg", "_reconstructor"): copyreg._reconstructor,
    }
    for name in ("_rebuild_tensor", "_rebuild_tensor_v2", "_rebuild_parameter"):
        allowed[("torch._utils", name)] = getattr(torch._utils, name)
    for name in ("set", "frozenset", "object"):
        allowed[("__builtin__", name)] = allowed[("builtins", name)] = getattr(
            __import__("builtins"), name
        )
    return allowed


class _Unpickler(pickle.Unpickler):
    allowed: ClassVar[dict[tuple[str, str], Any]] = {}
    stubs: ClassVar[dict[tuple[str, str], type]] = {}

    def find_class(self, module: str, name: str) -> Any:
        key = (module, name)
        if key in self.allowed:
            return self.allowed[key]
        if key not in self.stubs:
            self.stubs[key] = type(name, (_Stub,), {"__module__": f"stub:{module}"})
        return self.stubs[key]


def _pickle_module() -> types.ModuleType:
    """A `pickle_module` for torch.load whose Unpickler is `_Unpickler`."""
    module = types.ModuleType("tlrepro_published_pickle")
    _Unpickler.allowed = _allowed()
    module.Unpickler = _Unpickler  # type: ignore[attr-defined]
    module.load = lambda file, **kwargs: _Unpickler(file, **kwargs).load()  # type: ignore[attr-defined]
    module.__dict__["UnpicklingError"] = pickle.UnpicklingError
    return module


def _as_tensor(value: Any) -> Tensor:
    if isinstance(value, Tensor):
        return value.detach().clone()
    return torch.as_tensor(__import__("numpy").asarray(value)).clone()


def _module_state(module: Any, prefix: str = "") -> dict[str, Tensor]:
    """A recorded module's parameters and buffers under dotted names, as state_dict()."""
    fields = getattr(module, "__dict__", {})
    state = {}
    for kind in ("_parameters", "_buffers"):
        for name, value in (fields.get(kind) or {}).items():
            if value is not None:
                state[prefix + name] = _as_tensor(value)
    for name, child in (fields.get("_modules") or {}).items():
        if child is not None:
            state.update(_module_state(child, f"{prefix}{name}."))
    return state


def read_published(path: str | Path) -> dict[str, Tensor]:
    """The parameters and buffers of the published checkpoint's "net" (published names),
    read as a Python 2 pickle (`PUBLISHED_ENCODING`) without running the authors' code."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "couldn't retrieve source code for container"
        checkpoint = torch.load(
            path,
            map_location="cpu",
            pickle_module=_pickle_module(),
            # The one load that is not weights_only=True, and the exception is deliberate:
            # the published file pickles the authors' module objects, which torch's
            # weights-only unpickler refuses outright (and it accepts no pickle_module).
            # `_Unpickler` plays its part instead: an allowlist of tensor, container and
            # NumPy rebuilders, every other class an inert stub, so no code of the file's
            # runs. Run once by hand on the authors' file; the pipeline then loads the
            # exported state dict with weights_only=True like every other checkpoint.
            weights_only=False,
            encoding=PUBLISHED_ENCODING,
        )
    net = checkpoint.get("net") if isinstance(checkpoint, Mapping) else None
    if net is None:
        raise ValueError(f"{path}: no 'net' in the checkpoint (not Rebuffi's .t7 layout)")
    state = _module_state(net)
    if state and all(name.startswith("module.") for name in state):  # saved from DataParallel
        state = {name.removeprefix("module."): tensor for name, tensor in state.items()}
    convert_rebuffi_state(state)  # the names must be the plain ResNet-26's
    return state


def export_published(source: str | Path, target: str | Path) -> Path:
    """Write the published checkpoint's state dict (published names) for `weights`."""
    torch.save(read_published(source), target)
    return Path(target)


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: python -m tlrepro.models.resnet26_import PUBLISHED.t7 OUT.pt")
    print(f"wrote {export_published(sys.argv[1], sys.argv[2])}")
