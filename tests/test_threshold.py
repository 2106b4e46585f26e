"""Tests for propensity.model.threshold: each policy on a ten-row example worked by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from propensity.config import ThresholdConfig
from propensity.model.threshold import choose_threshold, threshold_report

# scores 1.0, 0.9, ..., 0.1; precision among the top k: 1, 1, .67, .75, .6, .5, .57, .5, .44, .4
P = np.round(np.linspace(1.0, 0.1, 10), 10)
Y = np.array([1, 1, 0, 1, 0, 0, 1, 0, 0, 0])


def _choose(y=Y, p=P, weeks=2.0, **cfg):
    return choose_threshold(y, p, weeks, ThresholdConfig(**cfg))


def test_capacity_matches_weekly_volume():
    """Check that 2 PQLs/week over 2 weeks flags the top 4 (threshold 0.7)."""
    choice = _choose(policy="capacity", capacity_per_week=2)
    assert choice.threshold == pytest.approx(0.7)
    assert choice.reachable
    assert "flags 4 (2.0/week)" in choice.note


def test_capacity_with_ties_picks_the_closest_volume():
    """Check that tied scores make volumes jump and the closest volume (smaller on a tie) wins."""
    p = np.array([0.9, 0.8, 0.8, 0.8, 0.5, 0.5])
    # volumes reachable: 0, 1, 4, 6; target 2 -> 1 is closer than 4
    assert _choose(Y[:6], p, weeks=1.0, policy="capacity", capacity_per_week=2).threshold == 0.9
    # target 3 -> 4 is closer than 1
    assert _choose(Y[:6], p, weeks=1.0, policy="capacity", capacity_per_week=3).threshold == 0.8


def test_capacity_above_the_population_flags_everyone_and_says_so():
    """Check that asking for more PQLs than rows flags all and marks the goal unreachable."""
    choice = _choose(policy="capacity", capacity_per_week=100)
    assert choice.threshold == pytest.approx(0.1) and not choice.reachable


def test_tiny_capacity_flags_nobody():
    """Check that far below one PQL in the period gives a threshold above every score."""
    choice = _choose(policy="capacity", capacity_per_week=0.1)
    assert choice.threshold > P.max()


def test_top_fraction():
    """Check that the top 30% of 10 rows is a threshold of 0.8."""
    assert _choose(policy="top_fraction", top_fraction=0.3).threshold == pytest.approx(0.8)


@pytest.mark.parametrize(("target", "threshold"), [(0.6, 0.6), (0.7, 0.7), (0.95, 0.9), (0.4, 0.1)])
def test_precision_takes_the_lowest_threshold_reaching_the_target(target, threshold):
    """Check that the chosen threshold is the lowest whose precision is at least the target."""
    choice = _choose(policy="precision", target_precision=target)
    assert choice.threshold == pytest.approx(threshold)
    assert choice.reachable


def test_unreachable_precision_says_so_and_uses_the_best():
    """Check that an unreachable target is reported and the most precise threshold is used."""
    y = np.array([0, 1, 1, 0, 1, 0, 0, 0, 0, 0])  # best precision 2/3 at top 3
    choice = _choose(y=y, policy="precision", target_precision=0.9)
    assert not choice.reachable
    assert choice.threshold == pytest.approx(0.8)
    assert "unreachable" in choice.note and "66.7%" in choice.note


def test_expected_value_is_cost_over_value():
    """Check that contacting pays above p = cost / value, and never when cost > value."""
    choice = _choose(policy="expected_value", value_of_conversion=500, cost_of_contact=40)
    assert choice.threshold == pytest.approx(0.08) and choice.reachable
    never = _choose(policy="expected_value", value_of_conversion=10, cost_of_contact=40)
    assert never.threshold == pytest.approx(4.0) and not never.reachable


def test_report_at_threshold():
    """Check that the report gives volume, precision, recall and lift with seeded intervals."""
    report = threshold_report(Y, P, 0.7, weeks=2.0, bootstrap=200, seed=1)
    assert report["n_flagged"] == 4 and report["per_week"] == 2.0
    assert report["precision"] == pytest.approx(0.75)
    assert report["recall"] == pytest.approx(0.75)
    assert report["lift"] == pytest.approx(0.75 / 0.4)
    low, high = report["ci"]["precision"]
    assert 0 <= low <= 0.75 <= high <= 1
    assert report == threshold_report(Y, P, 0.7, weeks=2.0, bootstrap=200, seed=1)
    empty = threshold_report(Y, P, 2.0, weeks=2.0, bootstrap=0)
    assert empty["n_flagged"] == 0 and math.isnan(empty["precision"])
