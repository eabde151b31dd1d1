"""Model selection: the protocols and how they break ties (hand-made histories)."""

from __future__ import annotations

import pytest

from tlrepro.training.selection import PROTOCOLS, REPORTS_VALIDATION, select_epochs


def row(epoch: int, val_acc: float, val_loss: float, test_acc: float, test_loss: float) -> dict:
    return {
        "epoch": epoch,
        "val_acc": val_acc,
        "val_loss": val_loss,
        "test_acc": test_acc,
        "test_loss": test_loss,
    }


def test_best_accuracy_wins_whatever_its_loss():
    history = [row(1, 0.8, 0.1, 0.7, 0.1), row(2, 0.9, 0.9, 0.6, 0.9), row(3, 0.7, 0.5, 0.8, 0.9)]
    chosen = select_epochs(history, "target_val")
    assert chosen["best_val"] == {
        "epoch": 2,
        "val_acc": 0.9,
        "test_acc": 0.6,
        "selection_split": "target_val",
    }
    assert chosen["last"]["epoch"] == 3
    assert chosen["oracle_test"]["epoch"] == 3


def test_accuracy_ties_go_to_the_lower_loss_on_the_same_split():
    # A saturated validation split: epochs 1-3 all at 100 %; epoch 2's loss is the lowest.
    history = [
        row(1, 1.0, 0.30, 0.90, 0.2),
        row(2, 1.0, 0.05, 0.95, 0.9),
        row(3, 1.0, 0.10, 0.95, 0.1),
        row(4, 0.9, 0.01, 0.80, 0.5),
    ]
    chosen = select_epochs(history, "source_val")
    assert chosen["best_val"]["epoch"] == 2  # not the earliest tie, not the lowest loss overall
    assert chosen["oracle_test"]["epoch"] == 3  # test ties (2, 3) by test loss


def test_ties_in_accuracy_and_loss_go_to_the_later_epoch():
    history = [row(epoch, 1.0, 0.2, 1.0, 0.2) for epoch in (1, 2, 3)] + [row(4, 0.5, 0.2, 0.5, 0.2)]
    chosen = select_epochs(history, "target_val")
    assert chosen["best_val"]["epoch"] == chosen["oracle_test"]["epoch"] == 3


def test_an_empty_history_is_an_error():
    with pytest.raises(ValueError, match="no epochs"):
        select_epochs([], "target_val")


def test_max_val_is_the_highest_validation_accuracy_of_a_hand_made_curve():
    # A curve that peaks on val at epoch 2 and on test at epoch 3, ending lower on both:
    # the max-val protocol reports 0.61 (validation), not a test accuracy.
    history = [
        row(0, 0.20, 2.0, 0.18, 2.1),
        row(1, 0.55, 1.2, 0.50, 1.3),
        row(2, 0.61, 1.1, 0.52, 1.2),
        row(3, 0.58, 1.0, 0.57, 1.0),
        row(4, 0.60, 0.9, 0.55, 1.1),
    ]
    chosen = select_epochs(history, "target_val", extra=["max_val"])
    assert chosen["max_val"]["epoch"] == 2
    assert chosen["max_val"]["val_acc"] == max(row["val_acc"] for row in history) == 0.61
    assert chosen["max_val"]["test_acc"] == 0.52
    assert "max_val" in REPORTS_VALIDATION and "best_val" not in REPORTS_VALIDATION
    # not computed unless asked (the quick profile's metrics stay as they were)
    assert list(select_epochs(history, "target_val")) == list(PROTOCOLS)


def test_unknown_extra_protocols_are_refused():
    with pytest.raises(ValueError, match="unknown protocols"):
        select_epochs([row(0, 0.5, 1.0, 0.5, 1.0)], "target_val", extra=["max_test"])
