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

from typing import Any

PROTOCOLS: dict[str, str] = {
    "best_val": "best validation epoch (honest, the main one)",
    "last": "last epoch",
    "oracle_test": "oracle: best test epoch (as in the papers)",
}
"""Protocol key in metrics.json -> its heading, in the order `select_epochs` computes them and the
tables show them."""


def _pick(row: dict[str, float]) -> dict[str, Any]:
    return {"epoch": int(row["epoch"]), "val_acc": row["val_acc"], "test_acc": row["test_acc"]}


def _best(history: list[dict[str, float]], split: str) -> dict[str, float]:
    """The epoch with the best accuracy on `split`; ties go to the lower loss on that split,
    then to the later epoch."""
    return max(history, key=lambda row: (row[f"{split}_acc"], -row[f"{split}_loss"], row["epoch"]))


def select_epochs(
    history: list[dict[str, float]], selection_split: str
) -> dict[str, dict[str, Any]]:
    if not history:
        raise ValueError("no epochs were trained: nothing to select from")
    return {
        "best_val": {**_pick(_best(history, "val")), "selection_split": selection_split},
        "last": _pick(history[-1]),
        "oracle_test": _pick(_best(history, "test")),
    }
