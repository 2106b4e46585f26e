"""Tests for propensity.pipeline.promotion: a weak model is named in one line, never promoted."""

from __future__ import annotations

import re

import pandas as pd
import pytest

from propensity.pipeline.promotion import weakness


def _metrics(auc=0.8, auc_ci=(0.75, 0.85), lift=3.0, lift_ci=(2.0, 4.0)):
    return {
        "test_slice": {"rows": 900, "positives": 80},
        "test_calibrated": {"roc_auc": auc},
        "test_calibrated_ci": {"roc_auc": list(auc_ci)},
        "threshold": {"lift": lift, "ci": {"lift": list(lift_ci)}},
    }


def _table(rule_precision=0.2, model_precision=0.3, flagged=40, diff_ci=None):
    table = pd.DataFrame(
        [
            {"name": "model", "n_flagged": 50, "precision": 0.3},
            {
                "name": "power_users",
                "n_flagged": flagged,
                "precision": rule_precision,
                "model_precision_same_volume": model_precision,
                "precision_diff": model_precision - rule_precision,
            },
        ]
    )
    if diff_ci is not None:
        table["precision_diff_low"], table["precision_diff_high"] = diff_ci
    return table


@pytest.mark.parametrize(
    ("metrics", "table", "match"),
    [
        (
            _metrics(auc=0.53, auc_ci=(0.46, 0.60)),
            None,
            r"ROC AUC 0.530 \[95% 0.460, 0.600\] on "
            r"900 test users, 80 paid: the interval does not exclude chance",
        ),
        (_metrics(auc=0.05, auc_ci=(0.02, 0.08)), None, "does not exclude chance"),
        (_metrics(lift=0.98, lift_ci=(0.7, 1.3)), None, r"lift at the threshold 0.98x"),
        (
            _metrics(),
            _table(0.4, 0.3),
            r"the rule power_users beats the model at its own volume "
            r"\(40 flagged: 40.0% of them pay vs the model's 30.0%\)",
        ),
        (_metrics(), _table(0.4, 0.3, diff_ci=(-0.2, -0.01)), "the rule power_users beats"),
    ],
)
def test_weak_models_are_named_in_one_line(metrics, table, match):
    """Check that chance-level AUC, lift or losing to a rule gives a one-line reason."""
    reason = weakness(metrics, table)
    assert "\n" not in reason
    assert re.search(match, reason), reason


@pytest.mark.parametrize(
    "table",
    [
        None,
        _table(0.2, 0.3),
        _table(0.5, 0.3, flagged=4),
        _table(0.583, 0.5, flagged=12, diff_ci=(-0.33, 0.17)),  # one payer apart: noise
    ],
)
def test_a_good_model_has_no_weakness(table):
    """Check that a model clear of chance that no (big enough) rule beats has no weakness."""
    assert weakness(_metrics(), table) == ""
