"""Model-selection protocols, computed from the per-epoch history.

docs/README.md, "Model selection": report the honest protocol (a split the method may see)
first, then the last epoch, then the papers' own habit of picking the epoch with
the best test accuracy, labelled as an oracle.
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


def select_epochs(
    history: list[dict[str, float]], selection_split: str
) -> dict[str, dict[str, Any]]:
    """Ties go to the earliest epoch, so the choice does not depend on float noise ordering."""
    if not history:
        raise ValueError("no epochs were trained: nothing to select from")
    best_val = max(history, key=lambda row: (row["val_acc"], -row["epoch"]))
    oracle = max(history, key=lambda row: (row["test_acc"], -row["epoch"]))
    return {
        "best_val": {**_pick(best_val), "selection_split": selection_split},
        "last": _pick(history[-1]),
        "oracle_test": _pick(oracle),
    }
