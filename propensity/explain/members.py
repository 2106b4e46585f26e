"""The users behind an account PQL: the account's contributions split onto its members.

An account feature whose plan entry attributes it to ``events`` or ``members`` splits its
contribution by each member's share (``engines.account.account_features``); the rest (ratios,
trend, breadth, concentration) stays with the account. A member's contribution is the sum of its
parts, and the members named are those with the largest positive contributions, each with its
own largest part as the reason (docs/tasks.md, "an account PQL names the users behind it").
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from propensity.features import FeatureInfo

__all__ = [
    "member_contributions",
    "member_lines",
    "member_phrase",
    "member_sentence",
    "name_members",
]


def member_contributions(contributions: pd.DataFrame, shares: pd.DataFrame) -> pd.DataFrame:
    """Each member's part of each feature's contribution: ``row``, ``user_id``, ``role``,
    ``feature``, ``part`` (contribution of ``feature`` in ``row`` times the member's share).

    ``contributions`` has one row per account row (position = ``row``) and a column per feature.
    """
    if shares.empty:
        return shares.assign(part=pd.Series(dtype=float))
    long = contributions.reset_index(drop=True).stack().rename("contribution")
    long.index = long.index.set_names(["row", "feature"])
    parts = shares.merge(long.reset_index(), on=["row", "feature"], how="left")
    parts["part"] = parts["share"] * parts["contribution"].fillna(0.0)
    return parts.drop(columns="contribution")


def name_members(
    contributions: pd.DataFrame, shares: pd.DataFrame, rows: list[int], k: int = 3
) -> pd.DataFrame:
    """The ``k`` members with the largest positive contributions in each of ``rows``.

    Returns ``row``, ``rank`` (1 = largest), ``user_id``, ``role``, ``contribution`` (the sum of
    the member's parts) and ``reason`` (the feature of its largest part); ties break by user id.
    """
    parts = member_contributions(contributions, shares)
    parts = parts[parts["row"].isin(rows)]
    if parts.empty:
        return pd.DataFrame(columns=["row", "rank", "user_id", "role", "contribution", "reason"])
    best = parts.sort_values(["row", "user_id", "part"], ascending=[True, True, False])
    reason = best.drop_duplicates(["row", "user_id"]).set_index(["row", "user_id"])["feature"]
    total = parts.groupby(["row", "user_id"], as_index=False).agg(
        role=("role", "first"), contribution=("part", "sum")
    )
    total = total[total["contribution"] > 0]
    total = total.sort_values(["row", "contribution", "user_id"], ascending=[True, False, True])
    top = total.groupby("row").head(k).copy()
    top["rank"] = top.groupby("row").cumcount() + 1
    top["reason"] = [reason[(r, u)] for r, u in zip(top["row"], top["user_id"], strict=True)]
    return top[["row", "rank", "user_id", "role", "contribution", "reason"]].reset_index(drop=True)


# ---- in words: "u00412 (admin): billing viewed 2 times in the last 28d; 4 teammates active ..."
def member_sentence(info: FeatureInfo, value: Any) -> str:
    """An account reason in words (the ``members`` family), e.g. '4 teammates active in the
    last 7d'."""
    v = _fmt(value)
    kind, window = info.kind, f"in the last {info.window}" if info.window else "so far"
    if kind == "members":
        return f"{v} members on the account"
    if kind.startswith("active_members"):
        return f"{v} teammates active {window}"
    if kind.startswith("new_members"):
        return f"{v} new teammates {window}"
    if kind.startswith("active_admins"):
        return f"{v} admins active {window}"
    if kind == "roles_present":
        return f"{v} different roles on the account"
    if kind == "events_trend":
        return f"Team activity trend {v} (last 7d against the 21d before)"
    if kind.startswith("invite_accept_rate"):
        return f"{v} of invites accepted {window}"
    if kind.startswith("event_types"):
        return f"{v} kinds of action used across the team {window}"
    if kind.startswith("members_3plus_types"):
        return f"{v} teammates used 3+ kinds of action {window}"
    if kind.startswith("top_member_share"):
        return f"The most active teammate made {v} of the events {window}"
    if kind == "seats_paid":
        return f"{v} seats paid"
    if kind == "excess_seats":
        return f"{v} members beyond the seats paid"
    if info.event is not None:
        return f"{info.event.replace('_', ' ').capitalize()} {v} times {window}"
    return f"{v} events by the team {window}"


def member_phrase(info: FeatureInfo, count: float) -> str:
    """What one member did for the feature ``info`` (its largest part): 'billing viewed 2
    times in the last 28d', 'active in the last 7d'."""
    window = f"in the last {info.window}" if info.window not in (None, "all") else "so far"
    kind = info.kind
    if kind.startswith("active_admins"):
        return f"active admin {window}"
    if kind.startswith("active_members"):
        return f"active {window}"
    if kind.startswith("new_members"):
        return f"joined {window}"
    if kind.startswith("members_3plus_types"):
        return f"used 3+ kinds of action {window}"
    if kind == "members":
        return "a member"
    n = int(round(count))
    times = "once" if n == 1 else "twice" if n == 2 else f"{n} times"
    if info.event is not None:
        return f"{info.event.replace('_', ' ')} {times} {window}"
    return f"{n} events {window}"


def member_lines(
    named: pd.DataFrame, shares: pd.DataFrame, values: pd.DataFrame, spec: Any
) -> dict[int, str]:
    """Each row's named members in words, then the account line: ``{row: "u00412 (admin):
    billing viewed twice in the last 28d; u00413 (member): active in the last 7d; 4 teammates
    active in the last 7d"}``.

    ``named``: :func:`name_members`' output; ``shares``: the members' shares; ``values``: the
    rows' feature values (position = ``row``); ``spec``: the feature spec (what each column is).
    """
    share = shares.set_index(["row", "user_id", "feature"])["share"]
    out: dict[int, list[str]] = {}
    for r in named.sort_values(["row", "rank"]).itertuples(index=False):
        info = spec.describe(r.reason)
        count = share.get((r.row, r.user_id, r.reason), 0.0) * float(values.iloc[r.row][r.reason])
        role = f" ({r.role})" if isinstance(r.role, str) and r.role else ""
        out.setdefault(int(r.row), []).append(f"{r.user_id}{role}: {member_phrase(info, count)}")
    active = next((c for c in values.columns if str(c).startswith("acct_active_members")), None)
    lines = {}
    for row in range(len(values)):
        parts = out.get(row, [])
        if active is not None:
            parts = [*parts, member_sentence(spec.describe(active), values.iloc[row][active])]
        lines[row] = "; ".join(parts)
    return lines


def _fmt(value: Any) -> str:
    try:
        x = float(value)
    except (TypeError, ValueError):
        return str(value)
    if math.isnan(x):
        return "none"
    return f"{int(x)}" if x == int(x) else f"{x:.2f}"
