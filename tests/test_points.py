"""Tests for propensity.baselines.points: points-based lead scoring with decay."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone

from propensity.baselines import PointsBaseline, RuleError
from propensity.config import PointsCondition, PointsRule

_CONDITIONS = [
    {
        "when": "n_pricing_viewed_all >= 1",
        "points": 20,
        "recency": "hours_since_last_pricing_viewed",
    },
    {"when": "domain_class == 'corporate'", "points": 10},
    {"when": "domain_class == 'free_mail'", "points": -10},
]


@pytest.fixture
def X() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "n_pricing_viewed_all": [1.0, 2.0, 1.0, 0.0, 1.0, 1.0],
            "hours_since_last_pricing_viewed": [0.0, 24.0, 48.0, np.nan, 72.0, np.nan],
            "domain_class": pd.Categorical(
                ["corporate", "corporate", "free_mail", "corporate", None, None],
                categories=["free_mail", "corporate", "unknown"],
            ),
        }
    )


def test_points_decay_by_half_life_hand_computed(X):
    """Check decayed totals: 20 * 0.5 ** (age / 24h) for pricing, fit points never decay."""
    model = PointsBaseline(conditions=_CONDITIONS, threshold=10, half_life="1d").fit(X)
    # row 0: 20*1 + 10; row 1: 20*0.5 + 10; row 2: 20*0.25 - 10; row 3: pricing false, +10;
    # row 4: 20*0.125, no domain; row 5: pricing true with unknown age -> no decay, 20
    expected = [30.0, 20.0, -5.0, 10.0, 2.5, 20.0]
    np.testing.assert_allclose(model.points(X), expected)
    assert model.predict(X).tolist() == [True, True, False, True, False, True]
    assert model.half_life_hours_ == 24.0
    assert model.scale_ == 20.0
    breakdown = model.breakdown(X)
    assert list(breakdown.columns) == [c["when"] for c in _CONDITIONS]
    np.testing.assert_allclose(breakdown.iloc[:, 0], [20.0, 10.0, 5.0, 0.0, 2.5, 20.0])


def test_score_is_a_logistic_squash_centred_on_the_threshold(X):
    """Check score = 1 / (1 + exp(-(total - threshold) / scale)), 0.5 exactly at the threshold."""
    model = PointsBaseline(conditions=_CONDITIONS, threshold=10, half_life=24.0).fit(X)
    total = np.array([30.0, 20.0, -5.0, 10.0, 2.5, 20.0])
    proba = model.predict_proba(X)
    np.testing.assert_allclose(proba[:, 1], 1 / (1 + np.exp(-(total - 10) / 20)))
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    assert proba[3, 1] == 0.5 and model.threshold_ == 0.5
    # monotone: a higher total never gets a lower score
    order = np.argsort(total, kind="stable")
    assert np.all(np.diff(proba[order, 1]) >= 0)


def test_no_half_life_means_no_decay(X):
    """Check that without a half_life every condition counts in full."""
    model = PointsBaseline(conditions=_CONDITIONS, threshold=25).fit(X)
    np.testing.assert_allclose(model.points(X), [30.0, 30.0, 10.0, 10.0, 20.0, 20.0])
    assert model.predict(X).tolist() == [True, True, False, False, False, False]


def test_half_life_forms_agree(X):
    """Check that a timedelta, a duration string and a number of hours mean the same."""
    totals = [
        PointsBaseline(conditions=_CONDITIONS, threshold=0, half_life=h).fit(X).points(X)
        for h in (timedelta(hours=36), "36h", 36, 36.0)
    ]
    for other in totals[1:]:
        np.testing.assert_array_equal(totals[0], other)


def test_negative_age_counts_as_zero():
    """Check that an age below zero (clock skew) gives full points, never more."""
    X = pd.DataFrame({"a": [1.0], "age": [-48.0]})
    model = PointsBaseline(
        conditions=[{"when": "a >= 1", "points": 8, "recency": "age"}], threshold=1, half_life="1d"
    ).fit(X)
    assert model.points(X).tolist() == [8.0]


def test_flag_and_score_agree_when_rounding_lands_below_the_threshold():
    """Check that 0.3 - 0.1 < 0.2 in floats is not flagged, and its score stays below 0.5."""
    X = pd.DataFrame({"a": [1.0]})
    model = PointsBaseline(
        conditions=[{"when": "a >= 1", "points": 0.3}, {"when": "a >= 0", "points": -0.1}],
        threshold=0.2,
    ).fit(X)
    assert model.points(X)[0] < 0.2
    assert model.predict_proba(X)[0, 1] < 0.5
    assert model.predict(X).tolist() == [False]


def test_from_config_and_clone(X):
    """Check that a PointsRule section builds the estimator and that it clones."""
    section = PointsRule(
        name="score",
        threshold=10,
        half_life="1d",
        conditions=tuple(PointsCondition(**c) for c in _CONDITIONS),
    )
    model = PointsBaseline.from_config(section)
    assert model.half_life == timedelta(days=1) and model.name == "score"
    np.testing.assert_allclose(clone(model).fit(X).points(X), [30.0, 20.0, -5.0, 10.0, 2.5, 20.0])


@pytest.mark.parametrize(
    ("params", "match"),
    [
        ({"conditions": [], "threshold": 1}, "needs at least one condition"),
        ({"conditions": [{"when": "a > 1"}], "threshold": 1}, r"bad condition .*points: Field"),
        (
            {"conditions": [{"when": "a >", "points": 1}], "threshold": 1},
            "condition 1: .*position 3",
        ),
        ({"conditions": [{"when": "b > 1", "points": 1}], "threshold": 1}, "unknown feature 'b'"),
        (
            {"conditions": [{"when": "a > 1", "points": 1}], "threshold": 1, "half_life": "soon"},
            "bad half_life",
        ),
        (
            {"conditions": [{"when": "a > 1", "points": 1}], "threshold": 1, "half_life": 0},
            "positive half_life",
        ),
        (
            {
                "conditions": [{"when": "a > 1", "points": 1, "recency": "hours_since_last_a"}],
                "threshold": 1,
                "half_life": "1d",
            },
            r"recency features \['hours_since_last_a'\]",
        ),
        (
            {
                "conditions": [{"when": "a > 1", "points": 1, "recency": "kind"}],
                "threshold": 1,
                "half_life": "1d",
            },
            "'kind' is not numeric",
        ),
    ],
)
def test_bad_parameters_raise_rule_error(params, match):
    """Check that each bad parameter raises RuleError naming the problem."""
    X = pd.DataFrame({"a": [1.0, 2.0], "kind": ["x", "y"]})
    with pytest.raises(RuleError, match=match):
        PointsBaseline(**params).fit(X)
