"""The account feature plan: what an account entity's features are, as data an engine runs.

An account's features aggregate its members' events strictly before the anchor (members from
``users.account_id``; a member's role from a users column such as ``seat_role``). Each
:class:`MemberAggregate` says what is measured, over which members and events, in which window,
and how the value splits back onto members, so an account PQL can name the users behind it
(docs/tasks.md). No engine code lives here: the engine seam turns a plan into SQL (DuckDB) or
DataFrame code (Spark), and parity tests hold the two together.

>>> plan = account_plan()
>>> [a.name for a in plan.aggregates][:4]
['members', 'active_members_7d', 'active_members_28d', 'new_members_28d']
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import timedelta
from typing import Any, Literal

from propensity.errors import ConfigError

__all__ = ["AccountPlan", "MemberAggregate", "account_plan"]

Measure = Literal[
    "members",  # members with at least min_event_types distinct event types (1: any event)
    "events",  # events
    "event_types",  # distinct event names
    "roles",  # distinct values of the role column among the members counted
    "top_member_share",  # the most active member's share of the events
    "ratio",  # numerator / denominator (two other aggregates); missing when the denominator is 0
    "trend",  # log1p(events in the last 7d) - log1p(events in the 21d before / 3)
]
Attribution = Literal[
    "events",  # a member's part is its share of the events counted
    "members",  # every member counted holds an equal part
    "none",  # no member's doing alone (ratios, trends, concentration)
]


@dataclass(frozen=True)
class MemberAggregate:
    """One account feature column.

    ``window``: events in ``[anchor - window, anchor)``, None for everything before the anchor.
    ``members``: ``all``, ``admins`` (the role column equals the admin role) or ``new`` (first
    seen inside the window). ``event``: only events of that name (None: every event).
    """

    name: str
    measure: Measure
    meaning: str
    attribution: Attribution
    window: timedelta | None = None
    members: Literal["all", "admins", "new"] = "all"
    event: str | None = None
    min_event_types: int = 1
    of: tuple[str, str] | None = None  # ratio: (numerator, denominator) aggregate names


@dataclass(frozen=True)
class AccountPlan:
    """The aggregates in column order, and where members' roles are read."""

    aggregates: tuple[MemberAggregate, ...]
    role_column: str
    admin_role: str

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: durations in seconds (for a model bundle or a Spark job)."""
        rows = []
        for a in self.aggregates:
            row = asdict(a)
            row["window"] = None if a.window is None else int(a.window.total_seconds())
            rows.append(row)
        return {"aggregates": rows, "role_column": self.role_column, "admin_role": self.admin_role}


def account_plan(
    windows: tuple[timedelta, ...] = (timedelta(days=7), timedelta(days=28)),
    *,
    invite_sent: str = "teammate_invited",
    invite_accepted: str = "invite_accepted",
    billing: str = "billing_viewed",
    role_column: str = "seat_role",
    admin_role: str = "admin",
) -> AccountPlan:
    """The account features: members and their activity, invites, roles, breadth, momentum.

    Counting windows are ``windows``; invites, billing, new members, breadth and concentration
    use the longest one.
    """
    if not windows or any(w <= timedelta(0) for w in windows):
        raise ConfigError(
            f"The 'windows' parameter of account_plan must be positive durations. Got {windows!r}."
        )
    long = max(windows)
    tag = {w: _label(w) for w in windows}
    L = tag[long]
    aggs: list[MemberAggregate] = [
        MemberAggregate("members", "members", "members seen before the anchor", "members"),
    ]
    aggs += [
        MemberAggregate(
            f"active_members_{tag[w]}", "members", f"members with an event in the {tag[w]} "
            "before the anchor", "members", window=w,
        )
        for w in sorted(windows)
    ]  # fmt: skip
    aggs += [
        MemberAggregate(f"new_members_{L}", "members", f"members first seen in the {L} before "
                        "the anchor", "members", window=long, members="new"),
        MemberAggregate(f"active_admins_{L}", "members", f"admins with an event in the {L}",
                        "members", window=long, members="admins"),
        MemberAggregate("roles_present", "roles", "distinct roles among the members", "none"),
        *[
            MemberAggregate(f"events_{tag[w]}", "events", f"events of all members in the "
                            f"{tag[w]}", "events", window=w)
            for w in sorted(windows)
        ],
        MemberAggregate("events_trend", "trend", "members' events in the last 7d against the "
                        "21d before (log ratio)", "none"),
        MemberAggregate(f"invites_sent_{L}", "events", f"invites sent in the {L}", "events",
                        window=long, event=invite_sent),
        MemberAggregate(f"invites_accepted_{L}", "events", f"invites accepted in the {L}",
                        "events", window=long, event=invite_accepted),
        MemberAggregate(f"invite_accept_rate_{L}", "ratio", f"invites accepted per invite sent "
                        f"in the {L}", "none", of=(f"invites_accepted_{L}", f"invites_sent_{L}")),
        MemberAggregate(f"admin_{billing}_{L}", "events", f"times an admin opened '{billing}' "
                        f"in the {L}", "events", window=long, members="admins", event=billing),
        MemberAggregate(f"event_types_{L}", "event_types", f"distinct events used by any "
                        f"member in the {L} (breadth)", "none", window=long),
        MemberAggregate(f"members_3plus_types_{L}", "members", f"members who used 3 or more "
                        f"event types in the {L}", "members", window=long, min_event_types=3),
        MemberAggregate(f"top_member_share_{L}", "top_member_share", f"the most active member's "
                        f"share of the account's events in the {L}", "none", window=long),
    ]  # fmt: skip
    plan = AccountPlan(tuple(aggs), role_column, admin_role)
    _check(plan)
    return plan


def _check(plan: AccountPlan) -> None:
    names = [a.name for a in plan.aggregates]
    problems = [
        f"aggregate name {n!r} appears twice" for n in sorted(set(names)) if names.count(n) > 1
    ]
    for a in plan.aggregates:
        if a.measure == "ratio" and (a.of is None or not set(a.of) <= set(names)):
            problems.append(f"ratio {a.name!r} must name two other aggregates; got {a.of!r}")
    if problems:
        raise ConfigError("The account plan is inconsistent: " + "; ".join(problems) + ".")


def _label(w: timedelta) -> str:
    seconds = int(w.total_seconds())
    return f"{seconds // 86_400}d" if seconds % 86_400 == 0 else f"{seconds // 3600}h"
