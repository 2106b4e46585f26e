"""Tests for the account plan on DuckDB (propensity.engines.account) and the users named behind
an account PQL (propensity.explain.members): hand-computed values, the point-in-time property by
hypothesis, and named users on a simulated account world."""

from __future__ import annotations

from datetime import datetime, timedelta

import duckdb
import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from propensity.account_plan import account_plan
from propensity.engines.account import account_features
from propensity.explain.members import member_contributions, name_members

MON = datetime(2025, 3, 3)
D = timedelta(days=1)
USERS = [
    ("u1", MON - 40 * D, "A", "admin"),
    ("u2", MON - 20 * D, "A", "member"),
    ("u3", MON - 3 * D, "A", "viewer"),
    ("u4", MON - 50 * D, "B", "admin"),
    ("u5", MON + 2 * D, "A", "member"),  # first seen after the first anchor
]


def _con(users, events) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    u = pd.DataFrame(users, columns=["user_id", "signup_at", "account_id", "seat_role"])
    e = pd.DataFrame(events, columns=["user_id", "event", "timestamp"])
    u["signup_at"] = pd.to_datetime(u["signup_at"]).astype("datetime64[us]")
    e["timestamp"] = pd.to_datetime(e["timestamp"]).astype("datetime64[us]")
    e["event"] = e["event"].astype("string")
    for name, df in (("users", u), ("events", e)):
        con.register(f"{name}_df", df)
        con.execute(f"CREATE TABLE {name} AS SELECT * FROM {name}_df")
    return con


EVENTS = [
    ("u1", "billing_viewed", MON - 2 * D),
    ("u1", "billing_viewed", MON - 10 * D),
    ("u1", "teammate_invited", MON - 12 * D),
    ("u1", "teammate_invited", MON - 13 * D),
    ("u2", "invite_accepted", MON - 11 * D),
    ("u2", "doc_created", MON - 1 * D),
    ("u2", "doc_shared", MON - 1 * D),
    ("u2", "login", MON - 1 * D),
    ("u3", "login", MON - 2 * D),
    ("u4", "login", MON - 40 * D),  # outside every window
    ("u1", "billing_viewed", MON),  # at the anchor: not seen
]
ROWS = pd.DataFrame({"account_id": ["A", "B"], "cutoff_at": [MON, MON]})


def test_account_values_and_shares_by_hand():
    """Check each plan column of two accounts at one anchor, and that shares add up to 1."""
    feats, shares = account_features(_con(USERS, EVENTS), ROWS, account_plan())
    a = feats.iloc[0]
    assert a["members"] == 3  # u5 is seen only after the anchor
    assert a["active_members_7d"] == 3 and a["active_members_28d"] == 3
    assert a["new_members_28d"] == 2  # u2 (20 days), u3 (3 days)
    assert a["active_admins_28d"] == 1
    assert a["roles_present"] == 3
    assert a["events_7d"] == 5 and a["events_28d"] == 9
    assert a["invites_sent_28d"] == 2 and a["invites_accepted_28d"] == 1
    assert a["invite_accept_rate_28d"] == 0.5
    assert a["admin_billing_viewed_28d"] == 2
    assert a["event_types_28d"] == 6
    assert a["members_3plus_types_28d"] == 1  # u2: doc_created, doc_shared, login, invite
    assert a["top_member_share_28d"] == pytest.approx(4 / 9)
    assert a["events_trend"] == pytest.approx(np.log1p(5) - np.log1p(4 / 3))
    b = feats.iloc[1]
    assert b["members"] == 1 and b["events_28d"] == 0 and np.isnan(b["top_member_share_28d"])
    billing = shares[(shares["row"] == 0) & (shares["feature"] == "admin_billing_viewed_28d")]
    assert list(billing["user_id"]) == ["u1"] and list(billing["share"]) == [1.0]
    sums = shares.groupby(["row", "feature"])["share"].sum()
    assert np.allclose(sums.to_numpy(), 1.0)
    assert set(shares.loc[shares["row"] == 0, "user_id"]) == {"u1", "u2", "u3"}


when = st.integers(-45 * 24, 20 * 24).map(lambda h: MON + timedelta(hours=h))
event = st.tuples(
    st.sampled_from([u for u, *_ in USERS]),
    st.sampled_from(["login", "billing_viewed", "teammate_invited", "invite_accepted"]),
    when,
)
PROPERTY = settings(
    max_examples=15, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow]
)


@PROPERTY
@given(base=st.lists(event, max_size=30), later=st.lists(event, min_size=1, max_size=10))
def test_events_at_or_after_the_anchor_change_nothing(base, later):
    """Check that events at or after each account row's anchor change neither its features nor
    its members' shares."""
    rows = pd.DataFrame({"account_id": ["A", "B", "A"], "cutoff_at": [MON, MON, MON + 7 * D]})
    cut = MON  # every added event is at or after the first anchor, so compare those rows
    shifted = [(u, e, max(t, cut + 7 * D)) for u, e, t in later]
    f1, s1 = account_features(_con(USERS, base), rows, account_plan())
    f2, s2 = account_features(_con(USERS, base + shifted), rows, account_plan())
    pd.testing.assert_frame_equal(f1, f2)
    pd.testing.assert_frame_equal(s1, s2)


@PROPERTY
@given(base=st.lists(event, max_size=30), seed=st.integers(0, 2**16))
def test_row_order_changes_nothing(base, seed):
    """Check that shuffled users, events and rows give the same features, row by row."""
    rows = pd.DataFrame({"account_id": ["A", "B", "A"], "cutoff_at": [MON, MON, MON + 9 * D]})
    f1, _ = account_features(_con(USERS, base), rows, account_plan())
    rng = np.random.default_rng(seed)
    users = [USERS[i] for i in rng.permutation(len(USERS))]
    events = [base[i] for i in rng.permutation(len(base))]
    order = rng.permutation(len(rows))
    f2, _ = account_features(_con(users, events), rows.iloc[order], account_plan())
    pd.testing.assert_frame_equal(f1.iloc[order].reset_index(drop=True), f2)


def test_named_users_are_members_with_the_largest_contributions(tmp_path):
    """Check, on a simulated account world, that every account PQL names members of that
    account who hold its largest member contributions, and that member parts plus the
    account-only part add up to the account's total contribution."""
    from propensity.config import LabelConfig, config_from_dict
    from propensity.simulate.tasks import simulate_task
    from propensity.task_labels import task_label_times

    simulate_task(tmp_path, "account", entities=400, seed=5, days=120)
    con = duckdb.connect()
    con.execute(
        f"CREATE TABLE events AS SELECT user_id, event, timezone('UTC', timestamp) AS timestamp "
        f"FROM '{tmp_path}/events/*.parquet' WHERE user_id IS NOT NULL"
    )
    con.execute(
        f"CREATE TABLE users AS SELECT user_id, timezone('UTC', signup_at) AS signup_at, "
        f"account_id, seat_role FROM '{tmp_path}/users.parquet'"
    )
    con.execute(
        f"CREATE TABLE conversions AS SELECT user_id, timezone('UTC', converted_at) AS "
        f"converted_at FROM '{tmp_path}/conversions.parquet'"
    )
    task = config_from_dict(
        {"data": {"events": "e"}, "task": {"entity": "account", "anchors": {"kind": "calendar"}}}
    ).task
    labels = task_label_times(con, LabelConfig(horizon="28d"), task).frame
    plan = account_plan()
    feats, shares = account_features(con, labels, plan)
    X = feats[[a.name for a in plan.aggregates]]
    model = lgb.LGBMClassifier(n_estimators=40, num_leaves=7, verbose=-1, random_state=0)
    model.fit(X, labels["label"])
    contrib = pd.DataFrame(model.predict(X, pred_contrib=True)[:, :-1], columns=X.columns)
    pqls = list(np.argsort(-model.predict_proba(X)[:, 1], kind="stable")[:50])
    named = name_members(contrib, shares, pqls, k=3)
    assert len(named) > 0
    members = con.execute("SELECT user_id, account_id FROM users").df()
    of = dict(zip(members["user_id"], members["account_id"], strict=True))
    parts = member_contributions(contrib, shares)
    per_member = parts.groupby(["row", "user_id"])["part"].sum()
    for row, group in named.groupby("row"):
        assert {of[u] for u in group["user_id"]} == {labels["account_id"].iloc[row]}
        mine = per_member.loc[row].sort_values(ascending=False)
        positive = mine[mine > 0]
        assert list(group["contribution"]) == pytest.approx(list(positive.iloc[: len(group)]))
    attributable = [a.name for a in plan.aggregates if a.attribution != "none"]
    for row in pqls:
        member_sum = parts.loc[parts["row"] == row, "part"].sum()
        values = X.iloc[row]
        # a feature whose value is 0 has no member to carry it: its contribution stays
        account_only = contrib.iloc[row].drop(attributable).sum() + sum(
            contrib.iloc[row][f] for f in attributable if values[f] == 0
        )
        assert member_sum + account_only == pytest.approx(contrib.iloc[row].sum())
