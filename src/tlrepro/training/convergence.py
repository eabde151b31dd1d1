"""Did a run reach its plateau? Judged from its validation curve alone.

A number is only worth printing if its run converged. The criterion (docs/README.md,
"Convergence") looks at the selection split's accuracy per epoch: the run has converged
when its accuracy stopped rising over its last `window` of epochs (a fraction of them, at
least `min_window`): the best epoch of the window's later half is at most `tolerance`
above the best of its earlier half. A curve still rising at the end fails; a plateau, or
a curve that peaked earlier and then dipped, passes. A run that trained fewer epochs
before its window than in it cannot show a plateau: not converged.

Why within the window, not against the best epoch before it: under a cosine schedule the
rate falls to a few percent of its peak in the last quarter, and the accuracy often
settles a few points higher there than it was while the rate was high and the curve
noisy. That step is the schedule's, not a sign the run was cut short; a curve that still
climbs within the last quarter is. Best against best (not against the window's first
epoch) so that one low epoch at a plateau is not read as a climb.

Like the source models' bars, the criterion is a reporting setting (the profile's
`convergence`), not part of a run's identity: a run records its judgement in metrics.json
when it finishes, and the tables judge its log.csv again against the current settings, so
tightening the criterion never retrains a run.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from tlrepro.config.model import Convergence

NOT_APPLICABLE = "nothing is trained"
"""The `reason` of a run whose method trains nothing (zero-shot CLIP): it counts as converged."""


class Criterion(Convergence):
    """The profile's `convergence` (its keys and defaults: tlrepro.config.model) as the
    judge of a validation curve."""

    @classmethod
    def from_config(cls, settings: Mapping[str, Any] | None) -> Criterion:
        return cls.model_validate(settings or {})

    def window_epochs(self, epochs: int) -> int:
        return max(self.min_window, math.ceil(self.window * epochs))

    def judge(self, val_acc: Sequence[float]) -> dict[str, Any]:
        """The judgement metrics.json records: converged or not, and the figures behind it."""
        epochs = len(val_acc)
        window = self.window_epochs(epochs)
        record: dict[str, Any] = {
            "criterion": self.model_dump(),
            "epochs": epochs,
            "window": window,
        }
        if epochs < 2 * window:
            return {
                **record,
                "converged": False,
                "gain": None,
                "reason": f"{epochs} epochs cannot show a plateau over a {window}-epoch window",
            }
        last = val_acc[-window:]
        gain = max(last[window // 2 :]) - max(last[: window // 2])
        converged = gain <= self.tolerance + 1e-9  # float noise: 0.76 - 0.75 > 0.01
        return {
            **record,
            "converged": converged,
            "gain": gain,
            "reason": (
                f"the later half of the last {window} of {epochs} epochs changed the best "
                f"validation accuracy by {gain * 100:+.2f} points "
                f"({'within' if converged else 'above'} the tolerance of "
                f"{self.tolerance * 100:.2f})"
            ),
        }


def not_applicable() -> dict[str, Any]:
    return {"converged": True, "gain": None, "reason": NOT_APPLICABLE}


def judge_again(recorded: Mapping[str, Any], val_acc: Sequence[float], criterion: Criterion):
    """The current criterion's judgement of a finished run (its recorded one if nothing was
    trained)."""
    if recorded.get("reason") == NOT_APPLICABLE:
        return dict(recorded)
    return criterion.judge(val_acc)
