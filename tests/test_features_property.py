"""Property tests: features are point-in-time correct and ignore input row order."""

from __future__ import annotations

from datetime import datetime, timedelta

import duckdb
import numpy as np
import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from propensity.config import FeaturesConfig, MilestoneOrder, PropertyAggregate
from propensity.features import compute_features, learn_spec, learn_spec_and_features
from propensity.labels import LabelTimes

T0 = datetime(2024, 1, 1)
NAMES = ("login", "doc_shared", "invite", "it's", "Help Viewed!")
USERS = pd.DataFrame(
    {
        "user_id": ["a", "b", "c"],
        "signup_at": [T0, T0 + timedelta(hours=30), T0 + timedelta(days=2)],
        "email_domain": ["gmail.com", "x.edu", None],
        "account_id": ["A", "A", None],
    }
)
# Each user is cut off at 2 and 5 days after signup: one user, several rows.
ROWS = pd.DataFrame(
    [
        (u, acc, s, s + timedelta(days=d), float(d))
        for u, acc, s in zip(USERS.user_id, USERS.account_id, USERS.signup_at, strict=True)
        for d in (2, 5)
    ],
    columns=["user_id", "account_id", "signup_at", "cutoff_at", "cutoff_age_days"],
).assign(label=[0, 1, 1, 0, 0, 1])
CFG = FeaturesConfig(
    windows=("1d", "36h"),
    session_gap="1h",
    min_event_support=1,
    top_transitions=4,
    milestones=(MilestoneOrder(first="doc_shared", then="invite", within="1d"),),
    properties=(PropertyAggregate(event="login", property="n", aggregates=("sum", "mean")),),
)

event = st.tuples(
    st.sampled_from(USERS.user_id.tolist()),
    st.sampled_from(NAMES),
    st.integers(min_value=-86400, max_value=9 * 86400),  # seconds after T0
    st.one_of(st.none(), st.integers(-5, 5)),
)
late = st.tuples(
    st.sampled_from(USERS.user_id.tolist()),
    st.sampled_from((*NAMES, "never_seen")),
    # seconds at or after the barrier; exactly at it half the time, the edge that matters
    st.one_of(st.just(0), st.integers(min_value=0, max_value=5 * 86400)),
    st.one_of(st.none(), st.integers(-5, 5)),
)


def _events(rows: list[tuple], late: list[tuple] = (), barrier: dict | None = None) -> pd.DataFrame:
    """Events at T0 + seconds, then late ones at each user's barrier + seconds."""
    out = []
    for (user, name, sec, n), is_late in [(r, False) for r in rows] + [(r, True) for r in late]:
        base = barrier[user] if is_late else T0
        props = None if n is None else f'{{"n": {n}}}'
        out.append((user, name, base + timedelta(seconds=sec), props))
    frame = pd.DataFrame(out, columns=["user_id", "event", "timestamp", "properties"])
    return frame.astype({"timestamp": "datetime64[us]"})


def _con(events: pd.DataFrame, users: pd.DataFrame = USERS) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    for name, df in (("users", users), ("events", events)):
        con.register(f"{name}_df", df)
        con.execute(f"CREATE TABLE {name} AS SELECT * FROM {name}_df")
        con.unregister(f"{name}_df")
    return con


def _barrier() -> dict[str, datetime]:
    """Per user, the latest cutoff of any row whose features could see that user's events."""
    out = {}
    for user, account in zip(USERS.user_id, USERS.account_id, strict=True):
        same = (ROWS.user_id == user) | (ROWS.account_id.notna() & (ROWS.account_id == account))
        out[user] = ROWS.loc[same, "cutoff_at"].max()
    return out


SETTINGS = settings(
    max_examples=12, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow]
)


@SETTINGS
@given(base=st.lists(event, max_size=25), extra=st.lists(late, min_size=1, max_size=10))
def test_events_at_or_after_cutoff_change_nothing(base: list[tuple], extra: list[tuple]) -> None:
    """Check that appending events at or after every cutoff that could see them changes nothing."""
    lt = LabelTimes(ROWS)
    before_con = _con(_events(base))
    spec = learn_spec(before_con, lt, CFG)
    before = compute_features(before_con, lt, spec).frame
    after_con = _con(_events(base, extra, _barrier()))
    after = compute_features(after_con, lt, spec)
    pd.testing.assert_frame_equal(before, after.frame)
    assert learn_spec(after_con, lt, CFG) == spec  # learned from before-cutoff events only


@SETTINGS
@given(base=st.lists(event, max_size=25), seed=st.integers(0, 2**16))
def test_row_order_changes_nothing(base: list[tuple], seed: int) -> None:
    """Check that shuffling events, users and label rows gives the same spec and features."""
    rng = np.random.default_rng(seed)
    events = _events(base)
    lt = LabelTimes(ROWS)
    con = _con(events)
    spec = learn_spec(con, lt, CFG)
    ref = compute_features(con, lt, spec).frame
    order = rng.permutation(len(ROWS))
    shuffled_lt = LabelTimes(ROWS.iloc[order].reset_index(drop=True))
    con2 = _con(
        events.sample(frac=1.0, random_state=seed).reset_index(drop=True),
        USERS.sample(frac=1.0, random_state=seed).reset_index(drop=True),
    )
    spec2 = learn_spec(con2, shuffled_lt, CFG)
    assert spec2.hash == spec.hash
    got = compute_features(con2, shuffled_lt, spec2).frame
    # Output rows follow the label rows' order; put them back to compare.
    got = got.iloc[np.argsort(order)].reset_index(drop=True)
    pd.testing.assert_frame_equal(ref, got, rtol=1e-12)


@SETTINGS
@given(
    base=st.lists(event, max_size=25),
    mask=st.lists(st.booleans(), min_size=len(ROWS), max_size=len(ROWS)).filter(any),
)
def test_one_pass_equals_learning_then_computing(base: list[tuple], mask: list[bool]) -> None:
    """Check that learn_spec_and_features gives learn_spec's spec (learned on the masked rows)
    and compute_features' frame and unseen counts (every row), value for value."""
    con = _con(_events(base))
    lt = LabelTimes(ROWS)
    learn = np.array(mask)
    spec = learn_spec(con, LabelTimes(ROWS[learn].reset_index(drop=True)), CFG)
    want = compute_features(con, lt, spec)
    got_spec, got = learn_spec_and_features(con, lt, CFG, learn)
    assert got_spec == spec
    pd.testing.assert_frame_equal(got.frame, want.frame, check_exact=True)
    assert got.unseen_events == want.unseen_events
