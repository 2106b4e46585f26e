"""Tests for propensity.task_labels: calendar anchors, user and account entities, the edges of the
lookback and horizon, every reason, agreement with a simulated world's truth, and the
point-in-time properties (later events change nothing at an anchor; row order changes nothing)."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import duckdb
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from propensity.config import CalendarAnchors, LabelConfig, config_from_dict
from propensity.errors import DataContractError
from propensity.labels import build_label_times
from propensity.task_labels import calendar_anchors, task_label_times, task_population

MON = datetime(2025, 1, 6)  # a Monday
W = timedelta(days=7)
D = timedelta(days=1)


def _task(**task):
    return config_from_dict({"data": {"events": "e"}, "task": task}).task


def _con(users, events, conversions=(), payments=None) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    frames = {
        "users": pd.DataFrame(users, columns=["user_id", "signup_at", "account_id"]),
        "events": pd.DataFrame(events, columns=["user_id", "event", "timestamp"]),
        "conversions": pd.DataFrame(list(conversions), columns=["user_id", "converted_at"]),
    }
    if payments is not None:
        frames["payments"] = pd.DataFrame(payments, columns=["account_id", "paid_at", "seats"])
    for name, df in frames.items():
        for col in ("signup_at", "converted_at", "timestamp", "paid_at"):
            if col in df:
                df[col] = pd.to_datetime(df[col]).astype("datetime64[us]")
        for col in ("user_id", "event", "account_id"):
            if col in df:
                df[col] = df[col].astype("string")  # typed even when empty
        con.register(f"{name}_df", df)
        con.execute(f"CREATE TABLE {name} AS SELECT * FROM {name}_df")
        con.unregister(f"{name}_df")
    return con


CAL = {"kind": "calendar", "start": MON, "end": MON + 3 * W}


def test_calendar_anchors_fall_on_the_cadence():
    """Check weekly anchors on the weekday, daily ones at midnight, inside start and end."""
    week = CalendarAnchors(kind="calendar", weekday="wednesday")
    got = calendar_anchors(week, datetime(2025, 1, 1), datetime(2025, 1, 22))
    assert got == [datetime(2025, 1, 8), datetime(2025, 1, 15), datetime(2025, 1, 22)]
    day = CalendarAnchors(kind="calendar", every="day", start="2025-01-01T06:00")
    got = calendar_anchors(day, datetime(2024, 1, 1), datetime(2025, 1, 3, 23))
    assert got == [datetime(2025, 1, 2), datetime(2025, 1, 3)]
    first = calendar_anchors(CalendarAnchors(kind="calendar"), MON, MON + W)
    assert first == [MON + W]  # the first anchor is after the first event


def test_user_rows_edges_and_reasons():
    """Check lookback and horizon edges and every reason on a hand-made user world."""
    a1 = MON + W  # anchors: MON, MON+1w, MON+2w, MON+3w
    users = [
        ("edge_in", MON - 30 * D, None),  # event exactly at a1 - 28d: active at a1
        ("edge_out", MON - 30 * D, None),  # event exactly at a1: not active at a1
        ("paid_at", MON - 30 * D, None),  # converts exactly at a1: eligible, label 1
        ("paid_end", MON - 30 * D, None),  # converts exactly at a1 + 28d: label 0 at a1
        ("paid_before", MON - 30 * D, None),  # converted before a1
        ("late_signup", MON + 20 * D, None),  # events before its signup date
        ("no_signup", None, None),
    ]
    events = [
        ("edge_in", "login", a1 - 28 * D),
        ("edge_out", "login", a1),
        ("paid_at", "login", a1 - D),
        ("paid_end", "login", a1 - D),
        ("paid_before", "login", a1 - D),
        ("late_signup", "login", a1 - D),
        ("no_signup", "login", a1 - D),
    ]
    conversions = [("paid_at", a1), ("paid_end", a1 + 28 * D), ("paid_before", a1 - 2 * D)]
    con = _con(users, events, conversions)
    task = _task(anchors=CAL, horizon="28d")
    lt = task_label_times(con, LabelConfig(), task, data_end=MON + 9 * W)
    at_a1 = lt.frame[lt.frame["cutoff_at"] == a1].set_index("user_id")
    assert sorted(at_a1.index) == ["edge_in", "paid_at", "paid_end"]
    assert at_a1["label"].to_dict() == {"edge_in": 0, "paid_at": 1, "paid_end": 0}
    assert at_a1.loc["edge_in", "cutoff_age_days"] == pytest.approx(37)
    assert lt.excluded == {
        "signup_missing": 3,  # no_signup at a1, a2, a3 (a 28d lookback reaches them all)
        "first_seen_after_anchor": 2,  # late_signup at a1 and a2; eligible at a3
        "converted_before_anchor": 5,  # paid_before at a1..a3; paid_at at a2 and a3
        "lost_before_anchor": 0,
        "right_censored": 0,
    }
    assert list(lt.frame.columns) == [
        "user_id", "account_id", "signup_at", "cutoff_at", "cutoff_age_days", "label",
    ]  # fmt: skip
    censored = task_label_times(con, LabelConfig(), task, data_end=a1 + 27 * D)
    assert censored.excluded["right_censored"] == len(lt) - len(censored)
    first_event = _task(anchors=CAL, horizon="28d", first_seen="first_event")
    lt2 = task_label_times(con, LabelConfig(), first_event, data_end=MON + 9 * W)
    assert {"late_signup", "no_signup"} <= set(lt2.frame["user_id"])
    assert lt2.excluded["signup_missing"] == lt2.excluded["first_seen_after_anchor"] == 0


def test_lost_users_leave_from_the_anchor_after():
    """Check a lost event strictly before the anchor excludes the user; one at it does not."""
    users = [("u", MON - W, None), ("v", MON - W, None)]
    events = [
        ("u", "login", MON + W - D),
        ("v", "login", MON + W - D),
        ("u", "account_deleted", MON + W - D),
        ("v", "account_deleted", MON + W),
    ]
    con = _con(users, events)
    lt = task_label_times(
        con, LabelConfig(lost_event="account_deleted"), _task(anchors=CAL), data_end=MON + 9 * W
    )
    at = lt.frame[lt.frame["cutoff_at"] == MON + W]
    assert list(at["user_id"]) == ["v"] and lt.excluded["lost_before_anchor"] >= 1


def test_accounts_aggregate_their_members():
    """Check an account is active through any member, first seen with its first member, and
    labelled by its earliest member's payment."""
    a1 = MON + W
    users = [
        ("admin", MON - 10 * D, "A"),
        ("mate", MON - 2 * D, "A"),
        ("solo", MON - 10 * D, "B"),
        ("lone", MON - 10 * D, None),  # no account: never an account entity
    ]
    events = [("mate", "doc_created", a1 - D), ("solo", "login", a1 - 40 * D),
              ("lone", "login", a1 - D)]  # fmt: skip
    conversions = [("mate", a1 + 3 * D), ("admin", a1 + 40 * D)]
    con = _con(users, events, conversions)
    lt = task_label_times(
        con, LabelConfig(), _task(entity="account", anchors=CAL, horizon="28d"), MON + 9 * W
    )
    assert list(lt.frame.columns) == [
        "account_id", "first_seen_at", "cutoff_at", "cutoff_age_days", "label",
    ]  # fmt: skip
    row = lt.frame[lt.frame["cutoff_at"] == a1].set_index("account_id").loc["A"]
    assert row["label"] == 1 and row["first_seen_at"] == MON - 10 * D
    assert set(lt.frame["account_id"]) == {"A"}  # B inactive in the lookback, lone has none


def test_expansion_from_payments_and_from_an_event():
    """Check expansion rows: paying accounts only, target = more seats, or the named event."""
    a1 = MON + W
    users = [("x1", MON - 60 * D, "X"), ("y1", MON - 60 * D, "Y"), ("z1", MON - 60 * D, "Z")]
    events = [(u, "login", a1 - D) for u in ("x1", "y1", "z1")]
    payments = [
        ("X", MON - 30 * D, 3), ("X", a1 + 5 * D, 3), ("X", a1 + 9 * D, 5),  # same seats first
        ("Y", a1 + D, 2),  # pays after a1: not paying at a1
        ("Z", MON - 30 * D, 4), ("Z", a1 - D, 6),  # expanded before a1
    ]  # fmt: skip
    con = _con(users, events, (), payments)
    task = _task(entity="account", anchors=CAL, horizon="28d",
                 target={"kind": "expansion_payment"})  # fmt: skip
    lt = task_label_times(con, LabelConfig(), task, data_end=MON + 9 * W)
    at = lt.frame[lt.frame["cutoff_at"] == a1].set_index("account_id")["label"].to_dict()
    assert at == {"X": 1}
    assert lt.excluded["not_paying"] >= 1 and lt.excluded["expanded_before_anchor"] >= 1
    con.execute("DROP TABLE payments")
    con.execute(f"INSERT INTO conversions VALUES ('x1', TIMESTAMP '{MON - 30 * D}')")
    con.execute(f"INSERT INTO events VALUES ('x1', 'seat_added', TIMESTAMP '{a1 + 2 * D}')")
    by_event = _task(entity="account", anchors=CAL, horizon="28d",
                     target={"kind": "expansion_payment", "event": "seat_added"})  # fmt: skip
    lt = task_label_times(con, LabelConfig(), by_event, data_end=MON + 9 * W)
    assert lt.frame[lt.frame["cutoff_at"] == a1].set_index("account_id")["label"].to_dict() == {
        "X": 1
    }
    with pytest.raises(DataContractError, match="needs a 'payments' table"):
        task_label_times(con, LabelConfig(), task, data_end=MON + 9 * W)


def test_event_target_and_population():
    """Check an event target (first occurrence) and the scoring population at as_of."""
    users = [("u", MON - W, None), ("v", MON - W, None), ("w", MON - W, None)]
    events = [("u", "login", MON + 3 * D), ("v", "login", MON + 3 * D),
              ("v", "upgraded", MON + 8 * D), ("w", "upgraded", MON + 2 * D)]  # fmt: skip
    con = _con(users, events)
    task = _task(anchors=CAL, horizon="14d", target={"kind": "event", "event": "upgraded"})
    lt = task_label_times(con, LabelConfig(), task, data_end=MON + 9 * W)
    at = lt.frame[lt.frame["cutoff_at"] == MON + W].set_index("user_id")["label"].to_dict()
    assert at == {"u": 0, "v": 1}
    assert lt.excluded["target_before_anchor"] >= 1
    pop = task_population(con, LabelConfig(), task, as_of=MON + 5 * D)
    assert list(pop.frame["user_id"]) == ["u", "v"] and "label" not in pop.frame
    assert (pop.frame["cutoff_at"] == MON + 5 * D).all()


def test_without_a_calendar_task_the_label_times_are_todays():
    """Check that no task, or trial anchors, give exactly build_label_times' rows."""
    users = [("a", MON, "A"), ("b", MON, None), ("c", MON + 2 * D, None)]
    events = [("a", "login", MON + D), ("c", "login", MON + 3 * D)]
    con = _con(users, events, [("a", MON + 10 * D), ("c", MON + 4 * D)])
    label = LabelConfig(extra_cutoffs=("3d",))
    want = build_label_times(con, label, MON + 9 * W)
    for task in (None, _task()):
        got = task_label_times(con, label, task, MON + 9 * W)
        pd.testing.assert_frame_equal(got.frame, want.frame)
        assert got.excluded == want.excluded and got.settings == want.settings


def test_label_times_agree_with_a_simulated_world(tmp_path: Path):
    """Check that rows and labels equal the simulator's truth in an account world."""
    from propensity.simulate.tasks import simulate_task

    simulate_task(tmp_path, "account", entities=300, seed=9, days=90)
    con = duckdb.connect()
    con.execute(
        f"CREATE TABLE events AS SELECT user_id, event, timezone('UTC', timestamp) AS timestamp "
        f"FROM '{tmp_path}/events/*.parquet'"
    )
    con.execute(
        f"CREATE TABLE users AS SELECT user_id, timezone('UTC', signup_at) AS signup_at, "
        f"account_id FROM '{tmp_path}/users.parquet'"
    )
    con.execute(
        f"CREATE TABLE conversions AS SELECT user_id, timezone('UTC', converted_at) AS "
        f"converted_at FROM '{tmp_path}/conversions.parquet'"
    )
    task = _task(entity="account", anchors={"kind": "calendar"}, horizon="28d")
    lt = task_label_times(con, LabelConfig(), task, data_end=datetime(2025, 4, 1))
    truth = pd.read_parquet(tmp_path / "truth.parquet")
    truth = truth[truth["reason"].isna()].sort_values(["anchor_at", "entity_id"])
    assert len(truth) > 500
    assert list(lt.frame["account_id"]) == list(truth["entity_id"])
    assert list(lt.frame["cutoff_at"]) == list(truth["anchor_at"])
    assert list(lt.frame["label"]) == list(truth["label"])


# -- point-in-time properties ------------------------------------------------------------------

NAMES = ("login", "doc_created", "upgraded")
USERS = [(f"u{i}", MON - (i + 1) * D if i % 4 else None, f"A{i % 3}") for i in range(8)]
when = st.integers(0, 70 * 24).map(lambda h: MON - 21 * D + timedelta(hours=h))
event = st.tuples(st.sampled_from([u for u, *_ in USERS]), st.sampled_from(NAMES), when)
PROPERTY = settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
TASKS = {
    "user": {"anchors": {"kind": "calendar", "every": "day", "start": MON, "end": MON + 6 * W}},
    "user_first_event": {
        "anchors": {"kind": "calendar", "start": MON, "end": MON + 6 * W},
        "first_seen": "first_event",
        "target": {"kind": "event", "event": "upgraded"},
    },
    "account": {
        "entity": "account",
        "anchors": {"kind": "calendar", "start": MON, "end": MON + 6 * W},
    },
}
END = MON + 12 * W


def _rows(events, task_key, shuffle_seed=None):
    conv = [("u1", MON + 9 * D), ("u2", MON + 20 * D), ("u5", MON + 3 * D)]
    users, ev = list(USERS), list(events)
    if shuffle_seed is not None:
        import random

        rng = random.Random(shuffle_seed)
        for rows in (users, ev, conv):
            rng.shuffle(rows)
    con = _con(users, ev, conv)
    lt = task_label_times(con, LabelConfig(horizon="14d"), _task(**TASKS[task_key]), END)
    return lt


@PROPERTY
@given(
    base=st.lists(event, min_size=1, max_size=30),
    later=st.lists(event, min_size=1, max_size=10),
    cut=st.integers(0, 42),
    task_key=st.sampled_from(list(TASKS)),
)
def test_events_at_or_after_an_anchor_change_nothing_there(base, later, cut, task_key):
    """Check that events at or after time T leave every anchor <= T as it was: its eligible
    entities and their first-seen times (and, when the target is a payment, the labels)."""
    t = MON + cut * D
    shifted = [(u, e, max(ts, t)) for u, e, ts in later]  # every added event at or after T
    before, after = _rows(base, task_key), _rows(base + shifted, task_key)
    keep = ["cutoff_at", "cutoff_age_days", before.frame.columns[0]]
    if "upgraded" not in str(TASKS[task_key]):
        keep.append("label")
    a = before.frame[before.frame["cutoff_at"] <= t][keep].reset_index(drop=True)
    b = after.frame[after.frame["cutoff_at"] <= t][keep].reset_index(drop=True)
    pd.testing.assert_frame_equal(a, b)


@PROPERTY
@given(
    base=st.lists(event, min_size=1, max_size=30),
    seed=st.integers(0, 2**16),
    task_key=st.sampled_from(list(TASKS)),
)
def test_row_order_changes_nothing(base, seed, task_key):
    """Check that shuffled users, events and conversions give identical label times."""
    a, b = _rows(base, task_key), _rows(base, task_key, shuffle_seed=seed)
    pd.testing.assert_frame_equal(a.frame, b.frame)
    assert a.excluded == b.excluded
