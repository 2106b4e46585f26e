"""Tests for features at a task's calendar anchors: many anchors per user, windows relative to
each anchor, and the point-in-time properties by hypothesis (events at or after an anchor never
change its features; row order changes nothing)."""

from __future__ import annotations

import json
import random
from datetime import datetime, timedelta

import duckdb
import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from propensity.config import (
    FeatureFamilies,
    FeaturesConfig,
    LabelConfig,
    LaggedWindows,
    config_from_dict,
)
from propensity.features import FeatureSpec, compute_features, learn_spec
from propensity.labels import LabelTimes
from propensity.model.split import split_label_times
from propensity.task_labels import task_label_times

MON = datetime(2025, 1, 6)  # a Monday
D = timedelta(days=1)
W = 7 * D
END = MON + 12 * W
NAMES = ("login", "doc_created", "invite_sent")
USERS = [(f"u{i}", MON - (i + 1) * D, f"A{i % 3}") for i in range(6)]
CFG = FeaturesConfig(
    windows=("7d", "28d"),
    session_gap="1h",
    min_event_support=1,
    top_transitions=3,
    families=FeatureFamilies(fit=False, properties=False),
)
TASKS = {
    "signup": {"anchors": {"kind": "calendar", "start": MON, "end": MON + 6 * W}},
    "first_event_daily": {
        "anchors": {"kind": "calendar", "every": "day", "start": MON, "end": MON + 3 * W},
        "first_seen": "first_event",
    },
}


def _task(**task):
    return config_from_dict({"data": {"events": "e"}, "task": task}).task


def _con(users, events, conversions=()) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    frames = {
        "users": pd.DataFrame(users, columns=["user_id", "signup_at", "account_id"]),
        "events": pd.DataFrame(events, columns=["user_id", "event", "timestamp"]),
        "conversions": pd.DataFrame(list(conversions), columns=["user_id", "converted_at"]),
    }
    for name, df in frames.items():
        for col in ("signup_at", "converted_at", "timestamp"):
            if col in df:
                df[col] = pd.to_datetime(df[col]).astype("datetime64[us]")
        for col in ("user_id", "event", "account_id"):
            if col in df:
                df[col] = df[col].astype("string")
        con.register(f"{name}_df", df)
        con.execute(f"CREATE TABLE {name} AS SELECT * FROM {name}_df")
        con.unregister(f"{name}_df")
    return con


CONVERSIONS = [("u1", MON + 9 * D), ("u4", MON + 20 * D)]


def _labels(con, task_key) -> LabelTimes:
    return task_label_times(con, LabelConfig(horizon="14d"), _task(**TASKS[task_key]), END)


def test_windows_count_back_from_each_anchor():
    """Check that one user at several Monday anchors gets each anchor's own 7d/28d counts."""
    events = [("u0", "login", MON - 10 * D), ("u0", "login", MON - 2 * D)]
    events += [("u0", "login", MON + 3 * D), ("u0", "doc_created", MON + 8 * D)]
    con = _con([("u0", MON - 20 * D, "A0")], events)
    lt = _labels(con, "signup")
    spec = learn_spec(con, lt, CFG)
    got = compute_features(con, lt, spec).frame.set_index("cutoff_at")
    mondays = [MON + k * W for k in range(6)]  # an event in the 28 days before each
    want_7d = dict(zip(mondays, [1, 1, 1, 0, 0, 0], strict=True))
    want_28d = dict(zip(mondays, [2, 3, 4, 3, 2, 1], strict=True))
    want_all = dict(zip(mondays, [2, 3, 4, 4, 4, 4], strict=True))
    assert list(got.index) == mondays
    for at in want_7d:
        assert got.loc[at, "n_events_7d"] == want_7d[at]
        assert got.loc[at, "n_events_28d"] == want_28d[at]
        assert got.loc[at, "n_events_all"] == want_all[at]


@pytest.mark.parametrize("ordered", [True, False])
def test_lagged_windows_by_hand(ordered):
    """Check every lagged column at one anchor against values computed by hand, with the
    time-ordered sequence (activity on) and without it (days and weeks by DISTINCT)."""
    a = MON + 5 * W
    events = [
        ("u0", "login", a - timedelta(hours=1)),  # day 0 before the anchor
        ("u0", "login", a - 3 * D),  # day 2
        ("u0", "doc_created", a - 3 * D + timedelta(hours=1)),  # day 2
        ("u0", "login", a - 9 * D),  # day 8
        ("u0", "doc_created", a - 16 * D),  # day 15
        ("u0", "login", a - 30 * D),  # day 29: in no window, but an active week
        ("u0", "login", a + D),  # after the anchor: never read
    ]
    con = _con([("u0", MON - 20 * D, "A0")], events)
    cfg = CFG.model_copy(update={"lagged": LaggedWindows(window="14d", lags=("7d", "0d"))})
    if not ordered:
        off = FeatureFamilies(activity=False, transitions=False, fit=False, properties=False)
        cfg = cfg.model_copy(update={"families": off})
    lt = _labels(con, "signup")
    spec = learn_spec(con, lt, cfg)
    assert (spec.lag_window_s, spec.lags_s, spec.lag_recent_s) == (14 * 86400, (0, 604800), 604800)
    got = compute_features(con, lt, spec).frame.set_index("cutoff_at").loc[a]
    # lag 0: [a - 14d, a); the last 7 days hold 3 events, the 7 before 1
    want = {
        "lag0d_events_14d": 4,
        "lag0d_login_14d": 3,
        "lag0d_doc_created_14d": 1,
        "lag0d_active_days_14d": 3,  # days 0, 2, 8
        "lag0d_trend_7d_14d": np.log(4) - np.log(2),
        "lag0d_days_since_last_event": 1 / 24,
        "lag0d_active_weeks": 4,  # days 0, 2 | 8 | 15 | 29
        # lag 7: [a - 21d, a - 7d); its last 7 days hold 1 event (day 8), the 7 before 1
        "lag7d_events_14d": 2,
        "lag7d_login_14d": 1,
        "lag7d_doc_created_14d": 1,
        "lag7d_active_days_14d": 2,  # days 8, 15
        "lag7d_trend_7d_14d": 0.0,
        "lag7d_days_since_last_event": 2.0,  # day 8 is 2 days before a - 7d
        "lag7d_active_weeks": 3,  # from a - 7d back: days 1 | 8 | 22
    }
    names = [c for c in spec.columns if c.startswith("lag")]
    assert sorted(names) == sorted(want)
    for name, value in want.items():
        assert got[name] == pytest.approx(value, abs=1e-12), name


def test_lagged_windows_off_for_trial_rows_unless_asked():
    """Check that trial-age rows get no lagged columns by default (the trial spec and its hash
    are as before the family existed) and get them when features.families.lagged is on."""
    events = [("u0", "login", MON + k * D) for k in range(-3, 9)]
    con = _con([("u0", MON - 5 * D, "A0")], events)
    trial = task_label_times(con, LabelConfig(horizon="14d", observation_window="7d"), None, END)
    spec = learn_spec(con, trial, CFG)
    assert "lagged" not in spec.families and "lags_s" not in spec.to_dict()
    on = CFG.model_copy(update={"families": FeatureFamilies(fit=False, lagged=True)})
    spec_on = learn_spec(con, trial, on)
    got = compute_features(con, trial, spec_on).frame.iloc[0]
    assert got["lag7d_events_28d"] == 0  # it ends 7d before the cutoff: MON - 5d, no events yet
    assert got["n_events_28d"] == 5  # lag 0's count: MON - 3d .. MON + 1d
    assert FeatureSpec.from_json(spec_on.to_json()) == spec_on


def test_lag_zero_counts_are_not_repeated_where_a_count_window_has_their_length():
    """Check that lag 0's event counts, equal to the counts family's window of the same length,
    are left out of a learned spec, and that a spec saved before (no ``lag_dedup``) keeps them
    with the same values, columns and hash."""
    events = [("u0", e, MON + k * D) for k in range(-40, 9) for e in ("login", "doc_created")]
    con = _con([("u0", MON - 45 * D, "A0")], events)
    lt = _labels(con, "signup")
    spec = learn_spec(con, lt, CFG)
    assert spec.lag_dedup and 28 * 86400 in spec.windows_s
    lag0 = ["lag0d_events_28d", "lag0d_login_28d", "lag0d_doc_created_28d"]
    assert not set(lag0) & set(spec.columns)
    assert {"lag0d_active_days_28d", "lag7d_events_28d", "lag7d_login_28d"} <= set(spec.columns)
    doc = json.loads(spec.to_json())
    del doc["spec"]["lag_dedup"], doc["hash"]
    old = FeatureSpec.from_json(json.dumps(doc))
    assert not old.lag_dedup and set(lag0) <= set(old.columns)
    assert set(old.columns) - set(spec.columns) == set(lag0)
    assert "lag_dedup" not in old.to_dict()  # the hash a model saved then recorded
    got = compute_features(con, lt, old).frame
    for name, same in zip(lag0, ["n_events_28d", "n_login_28d", "n_doc_created_28d"], strict=True):
        assert (got[name] == got[same]).all() and got[name].max() > 0, name


def test_time_to_first_is_a_trial_clock_feature_off_at_calendar_anchors_unless_asked():
    """Check that the timing family (hours from signup to a first event) is on for trial-age
    rows and off for calendar-anchor rows by default, and on at calendar anchors when asked."""
    events = [("u0", "login", MON + k * D) for k in range(-3, 9)]
    con = _con([("u0", MON - 5 * D, "A0")], events)
    trial = task_label_times(con, LabelConfig(horizon="14d", observation_window="7d"), None, END)
    calendar = _labels(con, "signup")
    assert "timing" in learn_spec(con, trial, CFG).families
    spec = learn_spec(con, calendar, CFG)
    assert "timing" not in spec.families
    assert not [c for c in spec.columns if c.startswith("hours_to_first")]
    on = CFG.model_copy(update={"families": FeatureFamilies(fit=False, timing=True)})
    spec_on = learn_spec(con, calendar, on)
    got = compute_features(con, calendar, spec_on).frame.set_index("cutoff_at")
    assert got.loc[MON + W, "hours_to_first_login"] == pytest.approx(2 * 24)  # signup + 2d
    off = CFG.model_copy(update={"families": FeatureFamilies(fit=False, timing=False)})
    assert "timing" not in learn_spec(con, trial, off).families


def test_calendar_rows_split_by_anchor_not_by_user():
    """Check that a user's rows at calendar anchors fall into the slice of each anchor."""
    events = [(u, "login", MON + k * D) for u, *_ in USERS for k in range(-3, 40, 2)]
    lt = _labels(_con(USERS, events), "signup")
    assert lt.calendar
    split = split_label_times(lt, config_from_dict({"data": {"events": "e"}}).split)
    cut = lt.frame["cutoff_at"]
    assert cut.iloc[split.train].max() < cut.iloc[split.test].min()
    assert set(lt.frame["user_id"].iloc[split.train]) & set(lt.frame["user_id"].iloc[split.test])


# -- point-in-time properties ------------------------------------------------------------------

when = st.integers(0, 60 * 24).map(lambda h: MON - 14 * D + timedelta(hours=h))
event = st.tuples(st.sampled_from([u for u, *_ in USERS]), st.sampled_from(NAMES), when)
PROPERTY = settings(
    max_examples=10, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow]
)


@PROPERTY
@given(
    base=st.lists(event, min_size=1, max_size=30),
    later=st.lists(event, min_size=1, max_size=10),
    cut=st.integers(0, 42),
    task_key=st.sampled_from(list(TASKS)),
)
def test_events_at_or_after_an_anchor_never_change_its_features(base, later, cut, task_key):
    """Check that events at or after time T leave the rows and features of every anchor <= T
    as they were (labels may change: the target lies after the anchor)."""
    t = MON + cut * D
    shifted = [(u, e, max(ts, t)) for u, e, ts in later]
    before_con = _con(USERS, base, CONVERSIONS)
    after_con = _con(USERS, base + shifted, CONVERSIONS)
    before, after = _labels(before_con, task_key), _labels(after_con, task_key)
    keep = ["user_id", "account_id", "signup_at", "cutoff_at", "cutoff_age_days"]

    def upto(lt: LabelTimes) -> LabelTimes:
        frame = lt.frame[lt.frame["cutoff_at"] <= t][keep].reset_index(drop=True)
        return LabelTimes(frame, settings=lt.settings)

    a, b = upto(before), upto(after)
    pd.testing.assert_frame_equal(a.frame, b.frame)
    if len(a.frame) == 0:
        return
    spec = learn_spec(before_con, a, CFG)
    assert "lagged" in spec.families  # on by default at calendar anchors
    assert learn_spec(after_con, b, CFG) == spec  # learned from before-anchor events only
    pd.testing.assert_frame_equal(
        compute_features(before_con, a, spec).frame, compute_features(after_con, b, spec).frame
    )


@PROPERTY
@given(
    base=st.lists(event, min_size=1, max_size=30),
    seed=st.integers(0, 2**16),
    task_key=st.sampled_from(list(TASKS)),
)
def test_row_order_changes_nothing(base, seed, task_key):
    """Check that shuffled users, events, conversions and label rows give the same features."""
    con = _con(USERS, base, CONVERSIONS)
    lt = _labels(con, task_key)
    if len(lt.frame) == 0:
        return
    spec = learn_spec(con, lt, CFG)
    assert "lagged" in spec.families
    ref = compute_features(con, lt, spec).frame
    rng = random.Random(seed)
    users, events, conv = list(USERS), list(base), list(CONVERSIONS)
    for rows in (users, events, conv):
        rng.shuffle(rows)
    con2 = _con(users, events, conv)
    lt2 = _labels(con2, task_key)
    pd.testing.assert_frame_equal(lt.frame, lt2.frame)
    order = np.random.default_rng(seed).permutation(len(lt2.frame))
    shuffled = LabelTimes(lt2.frame.iloc[order].reset_index(drop=True), settings=lt2.settings)
    spec2 = learn_spec(con2, shuffled, CFG)
    assert spec2.hash == spec.hash
    got = compute_features(con2, shuffled, spec2).frame
    got = got.iloc[np.argsort(order)].reset_index(drop=True)
    pd.testing.assert_frame_equal(ref, got, rtol=1e-12)
