"""Model-selection protocols, computed from the per-epoch history.

docs/README.md, "Model selection": report the honest protocol (a split the method may see)
first, then the last epoch, then the papers' own habit of picking the epoch with
the best test accuracy, labelled as an oracle.

Ties in accuracy are common on small or saturated splits (several epochs at 100 %
validation accuracy), and the earliest of them is usually the least trained. Every method
breaks them alike, on the same split: the lower loss first (the finer measure of the same
fit), then the later epoch.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

PROTOCOLS: dict[str, str] = {
    "best_val": "best validation epoch (honest, the main one)",
    "last": "last epoch",
    "oracle_test": "oracle: best test epoch (as in the papers)",
}
"""Protocol key in metrics.json -> its heading, in the order `select_epochs` computes them and the
tables show them."""

EXTRA_PROTOCOLS: dict[str, str] = {
    "max_val": "max validation accuracy over epochs (MultiTune's protocol: validation, not test)",
}
"""Protocols a group asks for (config `protocols`), after PROTOCOLS in metrics.json and in its
tables; only its runs compute them."""

REPORTS_VALIDATION = frozenset({"max_val"})
"""Protocols whose table cells are the validation accuracy of the picked epoch, not its test
accuracy: what the paper they come from reported."""


def _pick(row: dict[str, float]) -> dict[str, Any]:
    return {"epoch": int(row["epoch"]), "val_acc": row["val_acc"], "test_acc": row["test_acc"]}


def _best(history: list[dict[str, float]], split: str) -> dict[str, float]:
    """The epoch with the best accuracy on `split`; ties go to the lower loss on that split,
    then to the later epoch."""
    return max(history, key=lambda row: (row[f"{split}_acc"], -row[f"{split}_loss"], row["epoch"]))


def max_val(history: list[dict[str, float]]) -> dict[str, Any]:
    """MultiTune's number: the highest validation accuracy of any epoch (its `best_acc`, the
    maximum of the per-epoch validation accuracies). The epoch is the one that reached it
    (ties as in `_best`); its test accuracy is recorded, but the value reported is `val_acc`."""
    return _pick(_best(history, "val"))


def select_epochs(
    history: list[dict[str, float]], selection_split: str, extra: Sequence[str] = ()
) -> dict[str, dict[str, Any]]:
    """Every protocol of PROTOCOLS, and those of `extra` (keys of EXTRA_PROTOCOLS)."""
    if not history:
        raise ValueError("no epochs were trained: nothing to select from")
    unknown = [name for name in extra if name not in EXTRA_PROTOCOLS]
    if unknown:
        raise ValueError(f"unknown protocols {unknown}; known: {', '.join(EXTRA_PROTOCOLS)}")
    selected = {
        "best_val": {**_pick(_best(history, "val")), "selection_split": selection_split},
        "last": _pick(history[-1]),
        "oracle_test": _pick(_best(history, "test")),
    }
    if "max_val" in extra:
        selected["max_val"] = {**max_val(history), "selection_split": selection_split}
    return selected
