"""Which prepared splits a transfer run trains, selects and tests on (a group's `protocol`).

- `held_out` (the default): the source's and target's `train` splits are the training
  streams; the epoch is chosen on the selection dataset's `val` split (source-val for the
  UDA methods, target-val otherwise) and the run is tested on the target's `test` split,
  which training never sees.
- `transductive`: the standard UDA protocol of the CMKD release (`Wenlve-Zhou/VLP-UDA`,
  `main.py` lines 101-106): the labelled source stream is the whole source domain except
  its `val` carve-out (`train` + `test`), kept for the honest source-validation
  selection; the whole target domain (`train` + `val` + `test`, labels unread) is both the
  unlabelled training stream and the test set. Only for methods that select on the source
  validation split and read every target image (no `target_train_per_class`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # torch-free at import: the planner checks protocols
    from torch import Tensor

    from tlrepro.data.prepare import PreparedDataset

    Split = tuple[Tensor, Tensor]

PROTOCOLS: tuple[str, ...] = ("held_out", "transductive")
DEFAULT_PROTOCOL = "held_out"


def _joined(data: PreparedDataset, names: tuple[str, ...]) -> Split:
    import torch

    parts = [data.splits[name] for name in names]
    if len(parts) == 1:
        return parts[0]
    return torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])


def check_protocol(protocol: str, selection: str, subset: bool) -> None:
    """Refuse a protocol the run cannot follow (raises ValueError)."""
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown protocol {protocol!r}; one of {', '.join(PROTOCOLS)}")
    if protocol == "transductive":
        if selection != "source_val":
            raise ValueError(
                "the transductive protocol tests on every target image: only methods that "
                f"select on the source validation split may use it (this one: {selection})"
            )
        if subset:
            raise ValueError(
                "the transductive protocol trains on the whole target domain; it does not "
                "take target_train_per_class or target_train_fraction"
            )


def run_splits(
    source: PreparedDataset | None,
    target: PreparedDataset,
    protocol: str,
    selection: str,
    target_index: Tensor | None = None,
) -> dict[str, Split]:
    """(images, labels) of the run's "target" and "source" training streams (the source only
    when given), its selection split "val" and its "test" split, under `protocol`.
    `target_index` keeps a subset of the target's train split (held_out only)."""
    check_protocol(protocol, selection, target_index is not None)
    selection_data = source if selection == "source_val" else target
    if selection_data is None:
        raise ValueError("selection on the source validation split needs the source dataset")
    if protocol == "transductive":
        whole_target = _joined(target, ("train", "val", "test"))
        splits = {"target": whole_target, "val": selection_data.splits["val"]}
        splits["test"] = whole_target
        if source is not None:
            splits["source"] = _joined(source, ("train", "test"))
        return splits
    images, labels = target.splits["train"]
    if target_index is not None:
        images, labels = images[target_index], labels[target_index]
    splits = {
        "target": (images, labels),
        "val": selection_data.splits["val"],
        "test": target.splits["test"],
    }
    if source is not None:
        splits["source"] = source.splits["train"]
    return splits
