"""Tests for the calendar plan (features/calendar_sql.py): rows on a weekly grid read each event
once, and get exactly the portable plan's spec, features and unseen-event counts."""

from __future__ import annotations

import random
from datetime import datetime, timedelta

import duckdb
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from propensity.config import (
    FeatureFamilies,
    FeaturesConfig,
    LabelConfig,
    config_from_dict,
    load_config,
)
from propensity.engines.duckdb import open_duckdb
from propensity.features import engine, learn
from propensity.features.calendar_sql import calendar_ready
from propensity.features.rows import DuckRows
from propensity.simulate.tasks import simulate_task
from propensity.task_labels import task_label_times

MON = datetime(2025, 1, 6)  # a Monday
D = timedelta(days=1)
W = 7 * D
USERS = [
    (f"u{i}", MON - (i + 1) * D - timedelta(hours=5 * i), f"A{i % 2}", f"c{i % 2}.com")
    for i in range(5)
]
NAMES = ("login", "doc_created", "invite_sent", "rare_a", "rare_b", None)
CFG = FeaturesConfig(
    windows=("7d", "14d", "28d"),
    session_gap="1h",
    min_event_support=1,
    max_event_types=3,  # some event types stay outside the vocabulary: unseen counts
    top_transitions=0,
    families=FeatureFamilies(properties=False),
)
TASKS = {
    "weekly": {"anchors": {"kind": "calendar", "start": MON, "end": MON + 6 * W}},
    "daily": {"anchors": {"kind": "calendar", "every": "day", "start": MON, "end": MON + 2 * W}},
}


def _con(users, events) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    frames = {
        "users": pd.DataFrame(
            users, columns=["user_id", "signup_at", "account_id", "email_domain"]
        ),
        "events": pd.DataFrame(events, columns=["user_id", "event", "timestamp"]),
        "conversions": pd.DataFrame({"user_id": ["u1"], "converted_at": [MON + 20 * D]}),
    }
    for name, df in frames.items():
        for col in ("signup_at", "converted_at", "timestamp"):
            if col in df:
                df[col] = pd.to_datetime(df[col]).astype("datetime64[us]")
        for col in ("user_id", "event", "account_id", "email_domain"):
            if col in df:
                df[col] = df[col].astype("string")
        con.register(f"{name}_df", df)
        con.execute(f"CREATE TABLE {name} AS SELECT * FROM {name}_df")
        con.unregister(f"{name}_df")
    return con


def _labels(con, key):
    task = config_from_dict({"data": {"events": "e"}, "task": TASKS[key]}).task
    return task_label_times(con, LabelConfig(horizon="14d"), task, MON + 12 * W)


def _both(con, labels, cfg):
    """(calendar, portable): learn_spec_and_features and compute_features by each plan."""
    spec, ff = engine.learn_spec_and_features(con, labels, cfg)
    computed = engine.compute_features(con, labels, spec)
    with pytest.MonkeyPatch.context() as mp:
        for module in (engine, learn):  # the portable plan, for learning and for the features
            mp.setattr(module, "calendar_phase", lambda *args: None)
        spec_p, ff_p = engine.learn_spec_and_features(con, labels, cfg)
        computed_p = engine.compute_features(con, labels, spec)
    assert spec == spec_p
    return (ff, computed), (ff_p, computed_p)


def _same(a: engine.FeatureFrame, b: engine.FeatureFrame) -> None:
    assert list(a.frame.columns) == list(b.frame.columns)
    pd.testing.assert_frame_equal(a.frame, b.frame, check_exact=False, rtol=0, atol=1e-9)
    assert a.unseen_events == b.unseen_events


def _uses_calendar_plan(con, labels, spec) -> bool:
    with DuckRows(con, labels) as rows:
        plan = engine._plan(con, spec, rows, None)
    return any(s.name.endswith("uev") for s in plan.steps)


hour = st.integers(-3 * 24, 60 * 24).map(lambda h: MON + timedelta(hours=h))
event = st.tuples(st.sampled_from([u for u, *_ in USERS]), st.sampled_from(NAMES), hour)


@settings(
    max_examples=10, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow]
)
@given(events=st.lists(event, min_size=1, max_size=40), top_transitions=st.sampled_from([0, 2]))
def test_calendar_plan_equals_portable_plan(events, top_transitions):
    """Check that rows at Monday anchors get the portable plan's spec, features and unseen
    counts from the calendar plan (events before signup, on an anchor, tied in time, of a NULL
    or unseen type included; with and without ranked transitions)."""
    con = _con(USERS, events)
    labels = _labels(con, "weekly")
    if len(labels.frame) == 0:
        return
    cfg = CFG.model_copy(update={"top_transitions": top_transitions})
    (ff, computed), (ff_p, computed_p) = _both(con, labels, cfg)
    assert _uses_calendar_plan(con, labels, engine.learn_spec(con, labels, cfg))
    _same(ff, ff_p)
    _same(computed, computed_p)


def test_calendar_plan_only_on_a_weekly_grid():
    """Check that daily anchors, windows of whole days and property sums keep the portable
    plan, and that rows at Mondays with weekly windows take the calendar plan."""
    events = [(u, "login", MON - D + timedelta(hours=i)) for i, (u, *_) in enumerate(USERS)]
    con = _con(USERS, events)
    weekly, daily = _labels(con, "weekly"), _labels(con, "daily")
    spec = engine.learn_spec(con, weekly, CFG)
    assert calendar_ready(spec)
    assert _uses_calendar_plan(con, weekly, spec)
    assert not _uses_calendar_plan(con, daily, spec)
    days = engine.learn_spec(con, weekly, CFG.model_copy(update={"windows": (3 * D,)}))
    assert not calendar_ready(days)


def test_freemium_world_features_equal_the_portable_plan(tmp_path):
    """Check that a simulated freemium world featurised with configs/freemium.yaml gets the
    same spec, feature frame (to 1e-9, same columns) and unseen counts from both plans."""
    simulate_task(tmp_path, "freemium", entities=150, seed=7, days=98)
    cfg = load_config("configs/freemium.yaml")
    paths = {
        "events": str(tmp_path / "events"),
        "users": str(tmp_path / "users.parquet"),
        "conversions": str(tmp_path / "conversions.parquet"),
    }
    cfg = cfg.model_copy(update={"data": cfg.data.model_copy(update=paths)})
    eng = open_duckdb(cfg)
    labels = eng.label_times(cfg.label, cfg.task)
    assert len(labels.frame) > 200
    (ff, computed), (ff_p, computed_p) = _both(eng.con, labels, cfg.features)
    assert _uses_calendar_plan(eng.con, labels, engine.learn_spec(eng.con, labels, cfg.features))
    assert len(ff.frame.columns) > 100
    _same(ff, ff_p)
    _same(computed, computed_p)


def test_account_counts_equal_the_portable_plan_around_signups():
    """Check that account event counts (windows and since signup) and active users from the
    weekly grids equal the portable plan's, with teammates' events in each user's signup week
    just before and after her signup, before her first event, and a user's own events before
    her signup (which never count for her)."""
    rng = random.Random(3)
    events = []
    for i, (u, signup, *_) in enumerate(USERS):
        for h in (-30, -2, -1, 0, 1, 2, 30):  # around every member's signup, any member
            events.append((USERS[(i + 1) % 5][0], "login", signup + timedelta(hours=h)))
        events += [
            (u, rng.choice(NAMES[:4]), MON + timedelta(hours=rng.randrange(-5 * 24, 50 * 24)))
            for _ in range(25)
        ]
    con = _con(USERS, events)
    labels = _labels(con, "weekly")
    cfg = CFG.model_copy(update={"windows": (W, 4 * W, 8 * W)})
    (ff, computed), (ff_p, computed_p) = _both(con, labels, cfg)
    assert _uses_calendar_plan(con, labels, engine.learn_spec(con, labels, cfg))
    account = [c for c in ff.frame.columns if c.startswith("account_")]
    assert account and ff.frame[account].to_numpy().sum() > 0
    _same(ff, ff_p)
    _same(computed, computed_p)
