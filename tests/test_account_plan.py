"""Tests for propensity.account_plan: the account features as data."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from propensity.account_plan import account_plan
from propensity.errors import ConfigError


def test_plan_covers_the_issue_aggregates():
    """Check members, new members, invites, roles, breadth and admin billing are all planned."""
    names = {a.name for a in account_plan().aggregates}
    assert {
        "active_members_7d", "new_members_28d", "invites_sent_28d", "invites_accepted_28d",
        "roles_present", "event_types_28d", "admin_billing_viewed_28d", "events_trend",
    } <= names  # fmt: skip


def test_every_aggregate_is_described_and_splits_onto_members_or_says_not():
    """Check each aggregate has a meaning and an attribution fitting its measure."""
    for a in account_plan().aggregates:
        assert a.meaning and a.name == a.name.lower()
        if a.measure in ("ratio", "trend", "top_member_share", "event_types", "roles"):
            assert a.attribution == "none"
        else:
            assert a.attribution == ("events" if a.measure == "events" else "members")


def test_windows_follow_the_config_and_round_trip():
    """Check custom windows name the columns and the plan is JSON-ready."""
    plan = account_plan((timedelta(days=3), timedelta(days=14)), billing="pricing_viewed")
    names = [a.name for a in plan.aggregates]
    assert "active_members_3d" in names and "admin_pricing_viewed_14d" in names
    data = json.loads(json.dumps(plan.to_dict()))
    assert data["role_column"] == "seat_role"
    assert {a["window"] for a in data["aggregates"]} == {None, 3 * 86_400, 14 * 86_400}


@pytest.mark.parametrize("windows", [(), (timedelta(0),)])
def test_bad_windows_are_refused(windows):
    """Check that empty or non-positive windows are refused with the parameter named."""
    with pytest.raises(ConfigError, match="'windows' parameter of account_plan"):
        account_plan(windows)
