"""Tests for propensity.model.split: out-of-time slices that respect dates and users."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from propensity.config import SplitConfig
from propensity.errors import DataContractError, InsufficientDataError
from propensity.model.split import SLICES, split_out_of_time

CFG = SplitConfig(train=0.5, validation=0.2, calibration=0.1, test=0.2)


def _frame():
    """Ten users with first cutoffs on days 0..9 (of a 0..10 range); user u8 also at day 10."""
    days = [*range(10), 10]
    users = [f"u{i}" for i in range(10)] + ["u8"]
    return pd.DataFrame(
        {"user_id": users, "cutoff_at": pd.Timestamp("2024-01-01") + pd.to_timedelta(days, "D")}
    )


def test_slices_follow_the_cut_points():
    """Check that a 10-day range cut at 50/70/80% puts days 0-4, 5-6, 7, 8-10 in order."""
    split = split_out_of_time(_frame(), CFG)
    assert split.boundaries == (
        pd.Timestamp("2024-01-06"),
        pd.Timestamp("2024-01-08"),
        pd.Timestamp("2024-01-09"),
    )
    assert split.train.tolist() == [0, 1, 2, 3, 4]
    assert split.validation.tolist() == [5, 6]
    assert split.calibration.tolist() == [7]
    assert split.test.tolist() == [8, 9, 10]
    assert split.ranges["test"] == (pd.Timestamp("2024-01-09"), pd.Timestamp("2024-01-11"))
    assert split.weeks("test") == pytest.approx(2 / 7)


def test_slices_partition_rows_and_users_never_straddle():
    """Check that every row is in one slice, slices are time-ordered and no user crosses."""
    rng = np.random.default_rng(1)
    first = rng.uniform(0, 60, 300)
    rows = [(f"u{i}", d + extra) for i, d in enumerate(first) for extra in (0, 1, 3)]
    frame = pd.DataFrame(rows, columns=["user_id", "day"]).sample(frac=1, random_state=0)
    frame["cutoff_at"] = pd.Timestamp("2024-01-01") + pd.to_timedelta(frame["day"], "D")
    split = split_out_of_time(frame, CFG)
    every = np.concatenate([split.positions(s) for s in SLICES])
    assert sorted(every.tolist()) == list(range(len(frame)))
    users = [set(frame["user_id"].iloc[split.positions(s)]) for s in SLICES]
    for i in range(4):
        for j in range(i + 1, 4):
            assert not users[i] & users[j]
    # users are placed by their first cutoff, which is what must be time-ordered
    firsts = frame.groupby("user_id")["cutoff_at"].min()
    for earlier, later in zip(users, users[1:], strict=False):
        assert firsts[list(earlier)].max() < firsts[list(later)].min()


def test_summary_reports_counts_and_dates():
    """Check that the summary gives rows, users, positives and ISO dates per slice."""
    frame = _frame().assign(label=[0, 1, 0, 0, 1, 0, 1, 0, 1, 0, 1])
    summary = split_out_of_time(frame, CFG).summary(frame)
    assert summary["test"] == {
        "rows": 3,
        "start": "2024-01-09T00:00:00",
        "end": "2024-01-11T00:00:00",
        "weeks": pytest.approx(2 / 7),
        "users": 2,
        "positives": 2,
    }


def test_empty_slice_has_no_range_and_a_one_day_week_guard():
    """Check that an empty slice reports no dates and weeks never reach zero."""
    frame = pd.DataFrame(
        {"user_id": ["a", "b"], "cutoff_at": pd.to_datetime(["2024-01-01", "2024-01-11"])}
    )
    split = split_out_of_time(frame, CFG)
    assert split.validation.size == 0 and split.ranges["validation"] == (None, None)
    assert split.weeks("test") == pytest.approx(1 / 7)  # one row: zero-length range, 1 day


def test_single_cutoff_time_is_refused():
    """Check that cutoffs all at one instant raise InsufficientDataError naming the time."""
    frame = pd.DataFrame({"user_id": ["a", "b"], "cutoff_at": pd.to_datetime(["2024-01-01"] * 2)})
    with pytest.raises(InsufficientDataError, match="Every cutoff falls at 2024-01-01"):
        split_out_of_time(frame, CFG)


def test_missing_columns_are_named():
    """Check that a frame without cutoff_at raises a DataContractError naming it."""
    with pytest.raises(DataContractError, match="'cutoff_at'"):
        split_out_of_time(pd.DataFrame({"user_id": ["a"]}), CFG)
