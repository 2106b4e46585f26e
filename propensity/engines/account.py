"""The account feature plan (``account_plan``) compiled for DuckDB: account features and how
each splits onto the members, for an account PQL that names the users behind it.

One grouped query per (row, member) gives every member's part of every aggregate (events
counted, or 1 when the member is counted); the account's value is their sum, or a function of
sums (trend, ratio, the top member's share), so the split always adds up to what the model saw.
Only events strictly before each row's anchor and inside the plan's longest window are read
(``members`` and ``roles_present`` look at first-seen times only).

>>> feats, shares = account_features(con, rows, account_plan())  # doctest: +SKIP
"""

from __future__ import annotations

import itertools

import duckdb
import numpy as np
import pandas as pd

from propensity.account_plan import AccountPlan, MemberAggregate
from propensity.errors import DataContractError

__all__ = ["account_features"]

_WEEK, _TREND_BEFORE = 7 * 86_400, 28 * 86_400
_calls = itertools.count()


def account_features(
    con: duckdb.DuckDBPyConnection,
    rows: pd.DataFrame,
    plan: AccountPlan,
    first_seen: str = "signup",
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Each row's (``account_id``, ``cutoff_at``) plan columns, and the members' shares.

    Returns the features (``account_id``, ``cutoff_at``, then the plan's columns in order, one
    row per input row, in its order) and the shares (``row``, ``user_id``, ``role``,
    ``feature``, ``share``): a member's part of a feature whose attribution is ``events`` or
    ``members``, summing to 1 over the members of a row with a non-zero value.
    A member is seen from ``signup_at`` (``first_seen='first_event'``: its first event).
    """
    missing = {"account_id", "cutoff_at"} - set(rows.columns)
    if missing:
        raise DataContractError(
            [f"Account rows need columns account_id and cutoff_at. Missing {sorted(missing)}."]
        )
    long = max(int(a.window.total_seconds()) for a in plan.aggregates if a.window is not None)
    long = max(long, _TREND_BEFORE)
    name = f"_acct_rows_{next(_calls)}"
    frame = pd.DataFrame(
        {
            "rid": np.arange(len(rows)),
            "account_id": rows["account_id"].astype(str).to_numpy(),
            "cutoff_at": pd.to_datetime(rows["cutoff_at"]).astype("datetime64[us]").to_numpy(),
        }
    )
    con.register(name, frame)
    try:
        members = con.execute(_member_sql(plan, name, long, first_seen)).df()
        breadth = con.execute(_breadth_sql(plan, name)).df() if _breadth(plan) else None
    finally:
        con.unregister(name)
    feats = _account_values(plan, members, breadth, len(rows))
    feats.insert(0, "cutoff_at", frame["cutoff_at"].to_numpy())
    feats.insert(0, "account_id", rows["account_id"].to_numpy())
    return feats, _shares(plan, members)


def _col(a: MemberAggregate) -> str:
    return f"m_{a.name}"


def _filters(plan: AccountPlan, a: MemberAggregate) -> list[str]:
    """Conditions on one joined event row ``age`` (seconds before the anchor), ``event``."""
    out = []
    if a.window is not None:
        out.append(f"age <= {int(a.window.total_seconds())}")
    if a.event is not None:
        out.append("event = '" + a.event.replace("'", "''") + "'")
    if a.members == "admins":
        out.append("is_admin")
    return out or ["true"]


def _member_sql(plan: AccountPlan, rows: str, long: int, first_seen: str) -> str:
    role = '"' + plan.role_column.replace('"', '""') + '"'
    admin = "'" + plan.admin_role.replace("'", "''") + "'"
    seen = "u.signup_at" if first_seen == "signup" else "f.first_at"
    cols = []
    for a in plan.aggregates:
        where = " AND ".join(_filters(plan, a))
        if a.measure == "events":
            cols.append(f"count(e.event) FILTER (WHERE {where}) AS {_col(a)}")
        elif a.measure == "members" and a.members == "new":
            w = int(a.window.total_seconds()) if a.window is not None else None
            new = "true" if w is None else f"epoch(any_value(m.cut) - any_value(m.seen)) <= {w}"
            cols.append(f"CASE WHEN {new} THEN 1 ELSE 0 END AS {_col(a)}")
        elif a.measure == "members" and a.window is None:
            cols.append(f"1 AS {_col(a)}")
        elif a.measure == "members":
            types = f"count(DISTINCT e.event) FILTER (WHERE {where})"
            cols.append(f"CASE WHEN {types} >= {a.min_event_types} THEN 1 ELSE 0 END AS {_col(a)}")
    cols += [
        f"count(e.event) FILTER (WHERE age <= {_WEEK}) AS t_recent",
        f"count(e.event) FILTER (WHERE age > {_WEEK} AND age <= {_TREND_BEFORE}) AS t_before",
    ]
    for a in plan.aggregates:
        if a.measure == "top_member_share":
            cols.append(f"count(e.event) FILTER (WHERE {' AND '.join(_filters(plan, a))}) AS top_n")
    return f"""
WITH f AS (SELECT user_id, min(timestamp) AS first_at FROM events GROUP BY user_id),
m AS (
  SELECT r.rid, r.cutoff_at AS cut, u.user_id, CAST(u.{role} AS VARCHAR) AS role,
         coalesce(u.{role} = {admin}, false) AS is_admin, {seen} AS seen
  FROM {rows} r JOIN users u ON u.account_id = r.account_id LEFT JOIN f USING (user_id)
  WHERE {seen} < r.cutoff_at
),
j AS (
  SELECT m.rid, m.user_id, e.event,
         epoch(m.cut) - epoch(e.timestamp) AS age
  FROM m LEFT JOIN events e ON e.user_id = m.user_id AND e.timestamp < m.cut
       AND e.timestamp >= m.cut - to_seconds({long})
)
SELECT m.rid, m.user_id, any_value(m.role) AS role, {", ".join(cols)}
FROM m LEFT JOIN j e ON e.rid = m.rid AND e.user_id = m.user_id
GROUP BY m.rid, m.user_id, m.is_admin ORDER BY m.rid, m.user_id
"""


def _breadth(plan: AccountPlan) -> list[MemberAggregate]:
    return [a for a in plan.aggregates if a.measure == "event_types"]


def _breadth_sql(plan: AccountPlan, rows: str) -> str:
    cols = []
    for a in _breadth(plan):
        w = "true"
        if a.window is not None:
            w = f"e.timestamp >= r.cutoff_at - to_seconds({int(a.window.total_seconds())})"
        cols.append(f"count(DISTINCT e.event) FILTER (WHERE {w}) AS {_col(a)}")
    return f"""
SELECT r.rid, {", ".join(cols)}
FROM {rows} r JOIN users u ON u.account_id = r.account_id
JOIN events e ON e.user_id = u.user_id AND e.timestamp < r.cutoff_at
GROUP BY r.rid
"""


def _account_values(
    plan: AccountPlan, members: pd.DataFrame, breadth: pd.DataFrame | None, n: int
) -> pd.DataFrame:
    """The account columns from the members' parts (sums, and functions of sums)."""
    summed = members.drop(columns=["user_id", "role"]).groupby("rid").sum()
    summed = summed.reindex(np.arange(n), fill_value=0)
    out: dict[str, np.ndarray] = {}
    for a in plan.aggregates:
        if a.measure in ("events", "members"):
            out[a.name] = summed[_col(a)].to_numpy(dtype=float)
        elif a.measure == "roles":
            roles = members.dropna(subset=["role"]).groupby("rid")["role"].nunique()
            out[a.name] = roles.reindex(np.arange(n), fill_value=0).to_numpy(dtype=float)
        elif a.measure == "trend":
            recent, before = summed["t_recent"].to_numpy(float), summed["t_before"].to_numpy(float)
            out[a.name] = np.log1p(recent) - np.log1p(before / 3)
        elif a.measure == "event_types":
            got = breadth.set_index("rid")[_col(a)] if breadth is not None else pd.Series()
            out[a.name] = got.reindex(np.arange(n), fill_value=0).to_numpy(dtype=float)
        elif a.measure == "top_member_share":
            top = members.groupby("rid")["top_n"].max().reindex(np.arange(n), fill_value=0)
            total = summed["top_n"].to_numpy(float)
            with np.errstate(divide="ignore", invalid="ignore"):
                out[a.name] = np.where(total > 0, top.to_numpy(float) / total, np.nan)
    for a in plan.aggregates:  # ratios read the columns above
        if a.measure == "ratio" and a.of is not None:
            num, den = out[a.of[0]], out[a.of[1]]
            with np.errstate(divide="ignore", invalid="ignore"):
                out[a.name] = np.where(den > 0, num / den, np.nan)
    return pd.DataFrame({a.name: out[a.name] for a in plan.aggregates})


def _shares(plan: AccountPlan, members: pd.DataFrame) -> pd.DataFrame:
    """Each member's share of each attributable feature of its row (0 rows when none)."""
    parts = []
    for a in plan.aggregates:
        if a.attribution == "none" or _col(a) not in members:
            continue
        value = members[_col(a)].astype(float)
        total = value.groupby(members["rid"]).transform("sum")
        keep = (value > 0) & (total > 0)
        parts.append(
            pd.DataFrame(
                {
                    "row": members.loc[keep, "rid"].to_numpy(),
                    "user_id": members.loc[keep, "user_id"].to_numpy(),
                    "role": members.loc[keep, "role"].to_numpy(),
                    "feature": a.name,
                    "share": (value[keep] / total[keep]).to_numpy(),
                }
            )
        )
    if not parts:
        return pd.DataFrame(columns=["row", "user_id", "role", "feature", "share"])
    return pd.concat(parts, ignore_index=True).sort_values(
        ["row", "feature", "user_id"], ignore_index=True
    )
