"""Tests for the frame contracts of propensity.contract (label times, features, scores)."""

from __future__ import annotations

import pandas as pd
import pytest

from propensity.contract import FEATURES, LABEL_TIMES, PLAN_KEYS, SCORES
from propensity.errors import DataContractError


def test_validate_reports_every_problem_with_the_failing_rows():
    """Check that duplicate users and email ids are reported together, with their rows."""
    frame = pd.DataFrame(
        {"user_id": ["a", "a", "b@x.com", "c"], "cutoff_at": pd.Timestamp("2025-01-01")}
    )
    with pytest.raises(DataContractError) as caught:
        FEATURES.validate(frame, one_row_per="user_id", no_email=("user_id",))
    problems = caught.value.problems
    assert len(problems) == 2
    assert "one row per user" in problems[0] and "'a' more than once" in problems[0]
    assert "user_id must not be an email address" in problems[1]
    assert caught.value.failure_cases["user_id"].tolist() == ["a", "a", "b@x.com"]


@pytest.mark.parametrize(
    ("contract", "keys", "match"),
    [
        (LABEL_TIMES, PLAN_KEYS, r"label times must have columns .*missing \['account_id'"),
        (FEATURES, None, r"feature table must have columns .*missing \['cutoff_at'\]"),
        (SCORES, None, r"score table must have columns .*build them with score_frame"),
    ],
)
def test_validate_names_missing_keys_and_the_fix(contract, keys, match):
    """Check that a frame without a contract's keys is refused, naming them and the fix."""
    with pytest.raises(DataContractError, match=match):
        contract.validate(pd.DataFrame({"user_id": ["a"]}), keys=keys)


def test_contracts_name_the_shared_key_lists():
    """Check the key lists every module reads from the contracts, in order."""
    assert PLAN_KEYS == ("user_id", "account_id", "signup_at", "cutoff_at")
    assert FEATURES.non_features == ("user_id", "cutoff_at", "label", "account_id", "signup_at")
    assert SCORES.keys[:3] == ("user_id", "account_id", "cutoff_at")


def test_training_contract_names_missing_features_and_bad_labels_with_their_rows():
    """Check that TRAINING reports a missing feature and non-0/1 labels together, with rows."""
    from propensity.contract import TRAINING

    frame = pd.DataFrame(
        {"user_id": ["a", "b", "c"], "cutoff_at": pd.Timestamp("2025-01-01"), "label": [0, 2, None]}
    )
    with pytest.raises(DataContractError) as caught:
        TRAINING.validate(frame, columns=["x1"], binary=("label",))
    assert caught.value.problems == [
        "the training table lacks column 'x1'.",
        "column 'label' must hold only 0 and 1 (no nulls); found other values.",
    ]
    assert caught.value.failure_cases["user_id"].tolist() == ["b", "c"]


def test_validate_refuses_what_is_not_a_frame():
    """Check that a numpy array is refused with the fix, not an AttributeError."""
    import numpy as np

    with pytest.raises(DataContractError, match="feature table must be a pandas DataFrame. Got"):
        FEATURES.validate(np.zeros((2, 2)), keys=())  # type: ignore[arg-type]
