"""Tests for propensity.baselines.rules and .templates: boolean rules as estimators."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError

from propensity.baselines import (
    PointsBaseline,
    RuleBaseline,
    RuleError,
    available_templates,
    baselines_from_config,
    load_template,
)
from propensity.config import BaselinesConfig, PointsRule, config_from_dict
from propensity.config import RuleBaseline as RuleSection
from propensity.errors import ConfigError

_DOMAINS = ["free_mail", "corporate", "enterprise", "education", "unknown"]


@pytest.fixture
def X() -> pd.DataFrame:
    """Three users: a quiet one, a team builder, and one who hit the plan limit."""
    events = [
        "teammate_invited",
        "message_sent",
        "doc_shared",
        "invite_accepted",
        "plan_limit_hit",
        "pricing_viewed",
        "integration_connected",
        "export_done",
    ]
    counts = {
        "teammate_invited": [0, 4, 1],
        "message_sent": [2, 75, 30],
        "doc_shared": [0, 3, 1],
        "invite_accepted": [0, 2, 0],
        "plan_limit_hit": [0, 0, 2],
        "pricing_viewed": [0, 1, 1],
        "integration_connected": [0, 1, 0],
        "export_done": [0, 0, 1],
    }
    frame = pd.DataFrame({f"n_{e}_all": np.asarray(counts[e], dtype=float) for e in events})
    for e in events:
        hours = [np.nan if c == 0 else 24.0 for c in counts[e]]
        frame[f"hours_since_last_{e}"] = hours
    frame["active_days"] = [1.0, 5.0, 3.0]
    frame["domain_class"] = pd.Categorical(["free_mail", "corporate", "unknown"], _DOMAINS)
    frame["label"] = [0, 1, 1]
    return frame


def test_rule_scores_flags_and_threshold(X):
    """Check that a rule scores 1.0/0.0, flags score >= threshold_, and ignores y."""
    rule = RuleBaseline(expr="n_teammate_invited_all >= 3 and n_message_sent_all >= 50", name="r")
    assert rule.fit(X, X["label"]) is rule
    assert rule.threshold_ == 0.5
    assert rule.features_ == ("n_teammate_invited_all", "n_message_sent_all")
    proba = rule.predict_proba(X)
    np.testing.assert_array_equal(proba, [[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]])
    assert rule.predict(X).tolist() == [False, True, False]
    assert rule.predict(X).tolist() == (proba[:, 1] >= rule.threshold_).tolist()


def test_fit_rejects_unknown_feature_with_suggestion(X):
    """Check that fit names an unknown feature and suggests the closest one."""
    rule = RuleBaseline(expr="n_teammate_invite_all >= 3", name="invites")
    with pytest.raises(RuleError, match=r"did you mean 'n_teammate_invited_all'"):
        rule.fit(X)


def test_fit_rejects_bad_syntax(X):
    """Check that fit reports a syntax error with its position."""
    with pytest.raises(
        RuleError,
        match=r"^Rule .n_teammate_invited_all >.: Cannot parse .* position 24, expected a number",
    ):
        RuleBaseline(expr="n_teammate_invited_all >").fit(X)


def test_predict_checks_columns_again(X):
    """Check that predicting on a frame without the rule's feature is a RuleError."""
    rule = RuleBaseline(expr="active_days >= 4").fit(X)
    with pytest.raises(RuleError, match="unknown feature 'active_days'"):
        rule.predict(X.drop(columns="active_days"))
    with pytest.raises(RuleError, match="needs a pandas DataFrame"):
        rule.predict(X.to_numpy())


def test_unfitted_rule_raises_not_fitted(X):
    """Check that predicting before fit raises sklearn's NotFittedError."""
    with pytest.raises(NotFittedError):
        RuleBaseline(expr="active_days >= 4").predict(X)


def test_rule_is_a_clonable_estimator():
    """Check that __init__ only stores parameters, so get_params and clone work."""
    rule = RuleBaseline(expr="active_days >= 4", name="habit", description="d")
    assert rule.get_params() == {"expr": "active_days >= 4", "name": "habit", "description": "d"}
    copy = clone(rule)
    assert copy.get_params() == rule.get_params() and copy is not rule
    assert RuleBaseline(expr="a > 1").label == "a > 1"


def test_from_config_section(X):
    """Check that a config section builds the same rule."""
    section = RuleSection(name="limit", expr="n_plan_limit_hit_all >= 1", description="paywall")
    rule = RuleBaseline.from_config(section).fit(X)
    assert (rule.name, rule.description) == ("limit", "paywall")
    assert rule.predict(X).tolist() == [False, False, True]


def test_templates_are_the_five_documented_ones():
    """Check that the shipped templates are the ones the docs name."""
    assert available_templates() == [
        "active_first_week",
        "invite_and_message",
        "lead_score",
        "plan_limit_hit",
        "share_and_accept",
    ]


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("invite_and_message", [False, True, False]),
        ("share_and_accept", [False, True, False]),
        ("plan_limit_hit", [False, False, True]),
        ("active_first_week", [False, True, False]),
        # points (24h old, 7d half-life decays by 0.5 ** (1/7) = 0.9057):
        # user 0: -10; user 1: (25 + 15 + 15) * 0.9057 + 15 + 10 = 74.8; user 2: (25 + 20 + 5)
        # * 0.9057 + 10 = 55.3; threshold 50
        ("lead_score", [False, True, True]),
    ],
)
def test_each_template_fits_the_feature_names_and_flags(X, template, expected):
    """Check that every template uses real feature names and flags the users it should."""
    (baseline,) = baselines_from_config(BaselinesConfig(templates=(template,)))
    assert baseline.fit(X).predict(X).tolist() == expected


def test_lead_score_template_points(X):
    """Check the lead_score template's decayed totals against hand-computed values."""
    baseline = baselines_from_config(BaselinesConfig(templates=("lead_score",)))[0]
    assert isinstance(baseline, PointsBaseline)
    decay = 0.5 ** (24 / (7 * 24))
    np.testing.assert_allclose(baseline.fit(X).points(X), [-10.0, 55 * decay + 25, 50 * decay + 10])


def test_load_template_types_and_errors(tmp_path):
    """Check that templates load as config sections and bad ones raise ConfigError."""
    assert isinstance(load_template("lead_score"), PointsRule)
    assert isinstance(load_template("plan_limit_hit"), RuleSection)
    with pytest.raises(ConfigError, match=r"'plan_limit_hi' does not exist.*'plan_limit_hit'"):
        load_template("plan_limit_hi")
    (tmp_path / "bad.yaml").write_text("name: bad\nexpr: a > 1\nexpresion: oops\n")
    with pytest.raises(ConfigError, match="bad.yaml' is invalid: expresion"):
        load_template("bad", tmp_path)
    (tmp_path / "list.yaml").write_text("- a\n")
    with pytest.raises(ConfigError, match="must be a mapping"):
        load_template("list", tmp_path)


def test_baselines_from_config_orders_and_rejects_duplicates():
    """Check that templates, inline rules and points rules are built in order, names unique."""
    cfg = config_from_dict(
        {
            "data": {"events": "e.parquet", "users": "u.parquet"},
            "baselines": {
                "templates": ["plan_limit_hit"],
                "rules": [{"name": "habit", "expr": "active_days >= 3"}],
                "points": [
                    {
                        "name": "pts",
                        "threshold": 5,
                        "half_life": "3d",
                        "conditions": [{"when": "active_days >= 1", "points": 5}],
                    }
                ],
            },
        }
    )
    built = baselines_from_config(cfg.baselines)
    assert [b.name for b in built] == ["plan_limit_hit", "habit", "pts"]
    assert [type(b).__name__ for b in built] == ["RuleBaseline", "RuleBaseline", "PointsBaseline"]
    clash = BaselinesConfig(
        templates=("plan_limit_hit",),
        rules=(RuleSection(name="plan_limit_hit", expr="active_days >= 1"),),
    )
    with pytest.raises(ConfigError, match="'plan_limit_hit' appear more than once"):
        baselines_from_config(clash)
