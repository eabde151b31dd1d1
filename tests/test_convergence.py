"""The convergence criterion on hand-made learning curves."""

from __future__ import annotations

import pytest

from tlrepro.training.convergence import NOT_APPLICABLE, Criterion, judge_again, not_applicable

CRITERION = Criterion(window=0.25, min_window=2, tolerance=0.01)


def test_a_rising_curve_has_not_converged():
    verdict = CRITERION.judge([0.30, 0.40, 0.50, 0.60, 0.70, 0.80, 0.85, 0.90])
    assert not verdict["converged"]
    assert verdict["window"] == 2
    assert verdict["gain"] == pytest.approx(0.05)
    assert "above the tolerance" in verdict["reason"]


def test_one_low_epoch_at_a_plateau_is_not_a_climb():
    curve = [0.2, 0.4, 0.6, 0.7, 0.72, 0.71, 0.72, 0.73, 0.72, 0.74, 0.72, 0.723, 0.717, 0.74]
    curve += [0.723, 0.743]
    verdict = CRITERION.judge(curve)
    assert verdict["window"] == 4 and verdict["converged"]
    assert verdict["gain"] == pytest.approx(0.003)


def test_a_plateau_has_converged():
    verdict = CRITERION.judge([0.30, 0.60, 0.75, 0.80, 0.81, 0.812, 0.815, 0.817])
    assert verdict["converged"]
    assert verdict["gain"] == pytest.approx(0.002)


def test_a_step_when_the_rate_anneals_is_not_a_rising_curve():
    """A plateau a few points higher once the cosine rate is low: converged."""
    curve = [0.81, 0.85, 0.86, 0.87, 0.90, 0.90, 0.88, 0.90, 0.93, 0.94, 0.91, 0.92]
    curve += [0.96, 0.956, 0.96, 0.964]
    verdict = CRITERION.judge(curve)
    assert verdict["window"] == 4 and verdict["converged"]
    assert verdict["gain"] == pytest.approx(0.004)


def test_a_curve_still_climbing_in_its_last_quarter_has_not_converged():
    curve = [0.25, 0.49, 0.57, 0.65, 0.70, 0.72, 0.73, 0.72, 0.73, 0.74, 0.75, 0.75, 0.78, 0.79]
    assert not CRITERION.judge(curve)["converged"]


def test_a_curve_that_peaked_earlier_has_converged():
    verdict = CRITERION.judge([0.5, 0.9, 0.92, 0.91, 0.90, 0.89])
    assert verdict["converged"]
    assert verdict["gain"] < 0


def test_the_tolerance_is_inclusive_and_the_window_grows_with_the_epochs():
    assert Criterion(tolerance=0.125).judge([0.5, 0.5, 0.5, 0.625])["converged"]
    assert not Criterion(tolerance=0.124).judge([0.5, 0.5, 0.5, 0.625])["converged"]
    assert CRITERION.judge([0.5] * 7 + [0.6])["gain"] == pytest.approx(0.1)
    assert CRITERION.window_epochs(20) == 5
    assert CRITERION.window_epochs(3) == 2


@pytest.mark.parametrize("epochs", [1, 2, 3])
def test_too_few_epochs_cannot_show_a_plateau(epochs):
    verdict = CRITERION.judge([0.9] * epochs)
    assert not verdict["converged"]
    assert verdict["gain"] is None
    assert "cannot show a plateau" in verdict["reason"]


def test_judging_again_follows_the_current_criterion_unless_nothing_was_trained():
    curve = [0.5, 0.7, 0.7, 0.83]
    recorded = CRITERION.judge(curve)
    assert not recorded["converged"]
    assert judge_again(recorded, curve, Criterion(tolerance=0.2))["converged"]
    untrained = not_applicable()
    assert judge_again(untrained, [0.2], CRITERION) == untrained
    assert untrained["reason"] == NOT_APPLICABLE and untrained["converged"]


def test_settings_come_from_the_config():
    assert Criterion.from_config(None) == Criterion()
    assert Criterion.from_config({"tolerance": 0.02}).tolerance == 0.02
