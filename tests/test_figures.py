"""Tests for propensity.plots: each plot returns a Figure drawing the numbers it is given."""

from __future__ import annotations

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from propensity.figures import (
    plot_feature_importance,
    plot_gains,
    plot_precision_recall,
    plot_reliability,
    plot_roc,
    plot_score_distribution,
)

Y = np.array([1, 0, 1, 0, 0, 1, 0, 0])
P = np.array([0.9, 0.8, 0.7, 0.4, 0.3, 0.6, 0.2, 0.1])


def _legend(fig: Figure, axis: int = 0) -> list[str]:
    return [t.get_text() for t in fig.axes[axis].get_legend().get_texts()]


def test_roc_compares_named_scorers():
    """Check that ROC draws one labelled curve per scorer plus the chance line."""
    fig = plot_roc(Y, {"model": P, "reverse": 1 - P})
    assert isinstance(fig, Figure)
    # positives 0.9, 0.7, 0.6 beat 13 of the 15 (positive, negative) pairs
    assert _legend(fig) == ["model (AUC 0.867)", "reverse (AUC 0.133)", "chance"]


def test_precision_recall_shows_base_rate():
    """Check that the PR plot labels average precision and the base rate line."""
    fig = plot_precision_recall(Y, P)
    # hits at ranks 1, 3, 4: (1 + 2/3 + 3/4) / 3
    assert _legend(fig) == ["model (AP 0.806)", "base rate 0.375"]


def test_reliability_before_and_after():
    """Check that the reliability plot shows raw and calibrated curves with their ECE."""
    fig = plot_reliability(Y, P, np.full(8, 0.375), bins=2)
    labels = _legend(fig)
    assert labels[1] == "calibrated (ECE 0.000)" and labels[-1] == "perfect"
    raw_line = fig.axes[0].get_lines()[0]
    # bin 0: p 0.4, 0.3, 0.2, 0.1 -> mean 0.25, no positives; bin 1: mean 0.75, 3 of 4
    assert raw_line.get_xdata().tolist() == pytest.approx([0.25, 0.75])
    assert raw_line.get_ydata().tolist() == pytest.approx([0.0, 0.75])


def test_gains_with_rule_points():
    """Check that gains starts at the origin and rules appear as labelled points on both panels."""
    fig = plot_gains(Y, P, rules=[("invited >= 3", 0.25, 0.5)])
    gains_line = fig.axes[0].get_lines()[0]
    assert gains_line.get_xdata()[:3].tolist() == [0.0, 0.125, 0.25]
    assert gains_line.get_ydata()[:3].tolist() == pytest.approx([0.0, 1 / 3, 1 / 3])
    assert "invited >= 3" in _legend(fig, 0) and "invited >= 3" in _legend(fig, 1)
    lift_point = fig.axes[1].collections[0].get_offsets()[0]
    assert lift_point.tolist() == pytest.approx([0.25, 2.0])


def test_score_distribution_counts_each_outcome():
    """Check that the histogram legend gives the number of rows of each outcome."""
    assert _legend(plot_score_distribution(Y, P)) == ["did not convert (n=5)", "converted (n=3)"]


def test_feature_importance_orders_bars(tmp_path):
    """Check that the most important feature is the top bar and the figure saves as PNG."""
    rng = np.random.default_rng(0)
    X = pd.DataFrame({"noise": rng.normal(size=500), "signal": rng.normal(size=500)})
    y = (X["signal"] + 0.1 * rng.normal(size=500) > 0).astype(int)
    params = {"objective": "binary", "verbose": -1, "seed": 0, "num_threads": 1}
    booster = lgb.train(params, lgb.Dataset(X, y), num_boost_round=5)
    fig = plot_feature_importance(booster, top=2)
    labels = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    assert labels == ["noise", "signal"]  # barh draws bottom-up: the largest bar is last
    fig.savefig(tmp_path / "importance.png")
    assert (tmp_path / "importance.png").stat().st_size > 1000
