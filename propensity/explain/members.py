"""The users behind an account PQL: the account's contributions split onto its members.

An account feature whose plan entry attributes it to ``events`` or ``members`` splits its
contribution by each member's share (``engines.account.account_features``); the rest (ratios,
trend, breadth, concentration) stays with the account. A member's contribution is the sum of its
parts, and the members named are those with the largest positive contributions, each with its
own largest part as the reason (docs/tasks.md, "an account PQL names the users behind it").
"""

from __future__ import annotations

import pandas as pd

__all__ = ["member_contributions", "name_members"]


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
