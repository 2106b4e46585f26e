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
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import duckdb
import numpy as np
import pandas as pd

from propensity.account_plan import AccountPlan, MemberAggregate, account_plan
from propensity.errors import DataContractError
from propensity.features import FeatureInfo, FeatureSpec
from propensity.features.portable import DUCKDB, Dialect
from propensity.labels import LabelTimes

__all__ = [
    "account_entities",
    "account_features",
    "account_rows",
    "account_tables_sql",
    "account_users_sql",
    "build_account_tables",
    "entity_rows",
    "is_account",
    "member_shares",
    "members_family",
    "plan_values",
    "seat_features",
    "seats_from",
    "seats_sql",
    "shares_of",
    "with_members",
]

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
    frame = account_rows(rows)
    name = f"_acct_rows_{next(_calls)}"
    con.register(name, frame)
    try:
        return plan_values(lambda sql: con.execute(sql).df(), name, rows, plan, first_seen)
    finally:
        con.unregister(name)


def account_rows(rows: pd.DataFrame, signup: bool = False) -> pd.DataFrame:
    """``rid`` (the position), ``account_id`` and ``cutoff_at`` (and ``signup_at``) of account
    rows, as every engine registers them for :func:`plan_values`, :func:`seats_sql` and
    :func:`shares_of`."""
    missing = {"account_id", "cutoff_at"} - set(rows.columns)
    if missing:
        raise DataContractError(
            [f"Account rows need columns account_id and cutoff_at. Missing {sorted(missing)}."]
        )
    out = pd.DataFrame(
        {
            "rid": np.arange(len(rows), dtype="int64"),
            "account_id": rows["account_id"].astype(str).to_numpy(),
            "cutoff_at": pd.to_datetime(rows["cutoff_at"]).astype("datetime64[us]").to_numpy(),
        }
    )
    if signup:
        out["signup_at"] = pd.to_datetime(rows["signup_at"]).astype("datetime64[us]").to_numpy()
    return out


def plan_values(
    query: Callable[[str], pd.DataFrame],
    name: str,
    rows: pd.DataFrame,
    plan: AccountPlan,
    first_seen: str = "signup",
    dialect: Dialect = DUCKDB,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """:func:`account_features` on any engine: ``query`` runs SQL in ``dialect`` on the tables
    ``events``, ``users`` and ``name`` (:func:`account_rows` of ``rows``) and returns a frame;
    the members' parts come back per (row, member) and the account values and shares are
    computed from them here, the same for every engine."""
    long = max(int(a.window.total_seconds()) for a in plan.aggregates if a.window is not None)
    long = max(long, _TREND_BEFORE)
    members = query(_member_sql(plan, name, long, first_seen, dialect))
    breadth = query(_breadth_sql(plan, name, dialect)) if _breadth(plan) else None
    feats = _account_values(plan, members, breadth, len(rows))
    feats.insert(
        0, "cutoff_at", pd.to_datetime(rows["cutoff_at"]).astype("datetime64[us]").to_numpy()
    )
    feats.insert(0, "account_id", rows["account_id"].to_numpy())
    return feats, _shares(plan, members)


def _col(a: MemberAggregate) -> str:
    return f"m_{a.name}"


def _filters(plan: AccountPlan, a: MemberAggregate, d: Dialect) -> list[str]:
    """Conditions on one joined event row ``age`` (seconds before the anchor), ``event``."""
    out = []
    if a.window is not None:
        out.append(f"age <= {int(a.window.total_seconds())}")
    if a.event is not None:
        out.append(f"event = {d.literal(a.event)}")
    if a.members == "admins":
        out.append("is_admin")
    return out or ["true"]


def _member_sql(plan: AccountPlan, rows: str, long: int, first_seen: str, d: Dialect) -> str:
    role = d.quote(plan.role_column)
    admin = d.literal(plan.admin_role)
    seen = "u.signup_at" if first_seen == "signup" else "f.first_at"
    cols = []
    for a in plan.aggregates:
        where = " AND ".join(_filters(plan, a, d))
        if a.measure == "events":
            cols.append(f"count(e.event) FILTER (WHERE {where}) AS {_col(a)}")
        elif a.measure == "members" and a.members == "new":
            w = int(a.window.total_seconds()) if a.window is not None else None
            age = f"any_value(m.cut_s) - any_value({d.epoch_seconds('m.seen')})"
            new = "true" if w is None else f"{age} <= {w}"
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
            where = " AND ".join(_filters(plan, a, d))
            cols.append(f"count(e.event) FILTER (WHERE {where}) AS top_n")
    # ages in whole seconds (timestamps are whole seconds): the same integers on every engine
    return f"""
WITH f AS (SELECT user_id, min(timestamp) AS first_at FROM events GROUP BY user_id),
m AS (
  SELECT r.rid, r.cutoff_at AS cut, {d.epoch_seconds("r.cutoff_at")} AS cut_s, u.user_id,
         CAST(u.{role} AS STRING) AS role, coalesce(u.{role} = {admin}, false) AS is_admin,
         {seen} AS seen
  FROM {rows} r JOIN users u ON u.account_id = r.account_id LEFT JOIN f USING (user_id)
  WHERE {seen} < r.cutoff_at
),
j AS (
  SELECT m.rid, m.user_id, e.event, m.cut_s - {d.epoch_seconds("e.timestamp")} AS age
  FROM m JOIN events e ON e.user_id = m.user_id AND e.timestamp < m.cut
  WHERE {d.epoch_seconds("e.timestamp")} >= m.cut_s - {long}
)
SELECT m.rid, m.user_id, any_value(m.role) AS role, {", ".join(cols)}
FROM m LEFT JOIN j e ON e.rid = m.rid AND e.user_id = m.user_id
GROUP BY m.rid, m.user_id, m.is_admin ORDER BY m.rid, m.user_id
"""


def _breadth(plan: AccountPlan) -> list[MemberAggregate]:
    return [a for a in plan.aggregates if a.measure == "event_types"]


def _breadth_sql(plan: AccountPlan, rows: str, d: Dialect) -> str:
    cols = []
    for a in _breadth(plan):
        w = "true"
        if a.window is not None:
            span = int(a.window.total_seconds())
            w = f"{d.epoch_seconds('e.timestamp')} >= {d.epoch_seconds('r.cutoff_at')} - {span}"
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


# ---- an account entity in the jobs (docs/tasks.md, "Accounts, wired") -------------------------


def is_account(rows: LabelTimes) -> bool:
    """Whether ``rows`` are an account task's (read from the settings that made them)."""
    return (rows.settings.get("task") or {}).get("entity") == "account"


def entity_rows(labels: LabelTimes) -> LabelTimes:
    """Account label times as entity rows: ``user_id`` (the entity key every feature plan reads)
    and ``account_id`` both hold the account, ``signup_at`` is when it was first seen."""
    frame = labels.frame.rename(columns={"first_seen_at": "signup_at"})
    frame.insert(0, "user_id", frame["account_id"].to_numpy())
    keep = ["user_id", "account_id", "signup_at", "cutoff_at", "cutoff_age_days"]
    keep += ["label"] if "label" in frame.columns else []
    return LabelTimes(frame[keep].reset_index(drop=True), labels.excluded, labels.settings)


def build_account_tables(con: duckdb.DuckDBPyConnection) -> None:
    """Temp tables ``_acct_events`` and ``_acct_users`` with one "user" per account (its members'
    events together; the earliest signup, the most common email domain, the largest number or
    most common value of every other users column), so the user-level feature families run on
    an account as they run on a user (:func:`account_entities`): account momentum and fit."""
    users_sql, events_sql = account_tables_sql(_users_columns(con), DUCKDB)
    con.execute(f"CREATE OR REPLACE TEMP TABLE _acct_users AS {users_sql}")
    con.execute(f"CREATE OR REPLACE TEMP TABLE _acct_events AS {events_sql}")


def account_users_sql(con: duckdb.DuckDBPyConnection) -> str:
    """A query of one "user" per account: ``user_id`` = the account, the earliest signup, the
    most common email domain, the largest number or most common value of every other users
    column (the account's firmographics, as its fit features and the CRM's segments read them;
    :func:`account_tables_sql`)."""
    return account_tables_sql(_users_columns(con), DUCKDB)[0]


def _users_columns(con: duckdb.DuckDBPyConnection) -> list[tuple[str, bool]]:
    """``(column, is_numeric)`` of the users table."""
    numeric = ("INT", "DOUBLE", "FLOAT", "DECIMAL", "BIGINT", "SMALLINT", "TINYINT", "HUGEINT")
    return [
        (r[0], any(str(r[1]).upper().startswith(n) for n in numeric))
        for r in con.execute("DESCRIBE users").fetchall()
    ]


def account_tables_sql(columns: list[tuple[str, bool]], d: Dialect) -> tuple[str, str]:
    """The SQL of the account "users" and "events" of :func:`build_account_tables`, given the
    users table's ``(column, is_numeric)``: numbers take the largest value, other columns the
    most common one, ties to the smallest (so row order never picks it; DuckDB's ``mode``
    fed in value order and Spark's deterministic ``mode`` both do that)."""
    keys = ("user_id", "signup_at", "email_domain", "account_id")

    def mode(q: str) -> str:
        return f"mode({q} ORDER BY {q})" if d.name == "duckdb" else f"mode({q}, true)"

    cols = []
    for name, is_number in columns:
        if name in keys:
            continue
        q = d.quote(name)
        cols.append(f", {'max(' + q + ')' if is_number else mode(q)} AS {q}")
    users = (
        f"SELECT account_id AS user_id, min(signup_at) AS signup_at, "
        f"{mode('email_domain')} AS email_domain, account_id{''.join(cols)} "
        f"FROM users WHERE account_id IS NOT NULL GROUP BY account_id"
    )
    events = (
        "SELECT u.account_id AS user_id, e.event, e.timestamp, u.account_id, e.properties "
        "FROM events e JOIN users u ON u.user_id = e.user_id WHERE u.account_id IS NOT NULL"
    )
    return users, events


@contextmanager
def account_entities(con: duckdb.DuckDBPyConnection) -> Iterator[None]:
    """For the duration, ``events`` and ``users`` are the account tables of
    :func:`build_account_tables` (the members' tables wait as ``_member_*``): table names are
    swapped, not searched, because the reader keeps ``events`` as a temp table, which DuckDB
    resolves before any schema."""
    renames = [
        ("events", "_member_events"),
        ("_acct_events", "events"),
        ("users", "_member_users"),
        ("_acct_users", "users"),
    ]
    done: list[tuple[str, str]] = []
    try:
        for old, new in renames:
            con.execute(f"ALTER TABLE {old} RENAME TO {new}")
            done.append((old, new))
        yield
    finally:
        for old, new in reversed(done):
            con.execute(f"ALTER TABLE {new} RENAME TO {old}")


def seat_features(con: duckdb.DuckDBPyConnection, rows: pd.DataFrame) -> pd.DataFrame:
    """``acct_seats_paid``: seats of the latest payment strictly before the anchor (0 when none,
    NaN without a payments table), one row per input row (``account_id``, ``cutoff_at``)."""
    if not _has(con, "payments"):
        return seats_from(None, len(rows))
    name = f"_acct_seats_{next(_calls)}"
    con.register(name, account_rows(rows))
    try:
        return seats_from(con.execute(seats_sql(name)).df(), len(rows))
    finally:
        con.unregister(name)


def seats_sql(rows: str) -> str:
    """Per row of ``rows`` (:func:`account_rows`) with a payment before its anchor: the seats of
    the latest one (the most seats among payments at that same time), in portable SQL."""
    return f"""
WITH j AS (SELECT r.rid, p.paid_at, p.seats FROM {rows} r JOIN payments p
           ON p.account_id = r.account_id AND p.paid_at < r.cutoff_at),
l AS (SELECT rid, max(paid_at) AS last_at FROM j GROUP BY rid)
SELECT j.rid, max(j.seats) AS paid FROM j JOIN l ON j.rid = l.rid AND j.paid_at = l.last_at
GROUP BY j.rid"""


def seats_from(got: pd.DataFrame | None, n: int) -> pd.DataFrame:
    """``acct_seats_paid`` from :func:`seats_sql`'s rows (None: no payments table, all NaN)."""
    if got is None:
        return pd.DataFrame({"acct_seats_paid": np.full(n, np.nan)})
    paid = got.set_index("rid")["paid"].astype(float).reindex(np.arange(n), fill_value=0.0)
    return pd.DataFrame({"acct_seats_paid": paid.to_numpy(dtype=float)})


def with_members(
    con: duckdb.DuckDBPyConnection, rows: LabelTimes, base: pd.DataFrame, columns: list[str]
) -> pd.DataFrame:
    """``base`` (the user-level families over each account) with the ``members`` family
    appended, columns in ``columns`` order (the spec's)."""
    task = rows.settings.get("task") or {}
    feats, _ = account_features(
        con, rows.frame, account_plan(), first_seen=task.get("first_seen", "signup")
    )
    return members_family(base, feats, seat_features(con, rows.frame), columns)


def members_family(
    base: pd.DataFrame, feats: pd.DataFrame, seats: pd.DataFrame, columns: list[str]
) -> pd.DataFrame:
    """``base`` with the plan's columns (``feats``, :func:`plan_values`) and the seats paid
    (``seats``, :func:`seats_from`) appended as the ``members`` family, in ``columns`` order."""
    members = feats.drop(columns=["account_id", "cutoff_at"]).add_prefix("acct_")
    members["acct_seats_paid"] = seats["acct_seats_paid"].to_numpy()
    paying = members["acct_seats_paid"].to_numpy() > 0
    excess = np.maximum(members["acct_members"].to_numpy() - members["acct_seats_paid"], 0)
    members["acct_excess_seats"] = np.where(
        np.isnan(members["acct_seats_paid"]), np.nan, np.where(paying, excess, 0.0)
    )
    out = pd.concat([base.reset_index(drop=True), members.reset_index(drop=True)], axis=1)
    return out[["user_id", "cutoff_at", *columns]]


def member_shares(
    con: duckdb.DuckDBPyConnection, rows: LabelTimes, spec: FeatureSpec | None = None
) -> pd.DataFrame:
    """Each member's share of each attributable feature of ``rows``: ``row``, ``user_id``,
    ``role``, ``feature``, ``share``.

    The ``members`` family's (``acct_``-named) columns split as the plan says; with ``spec``, so
    do the count columns of the user-level families over the account's events (``n_events_*``,
    ``n_<event>_*``): by each member's share of the events counted, the same window and
    vocabulary, from the account's first seen on (a partition of the account's count).
    """
    name = f"_acct_share_rows_{next(_calls)}"
    role = account_plan().role_column
    has_role = any(r[0] == role for r in con.execute("DESCRIBE users").fetchall())
    con.register(name, account_rows(rows.frame, signup=True))
    try:
        return shares_of(lambda sql: con.execute(sql).df(), name, rows, spec, has_role)
    finally:
        con.unregister(name)


def shares_of(
    query: Callable[[str], pd.DataFrame],
    name: str,
    rows: LabelTimes,
    spec: FeatureSpec | None,
    has_role: bool,
    dialect: Dialect = DUCKDB,
) -> pd.DataFrame:
    """:func:`member_shares` on any engine: ``query`` runs SQL in ``dialect`` on ``events``,
    ``users`` and ``name`` (:func:`account_rows` of ``rows``, with ``signup=True``)."""
    plan = account_plan()
    task = rows.settings.get("task") or {}
    first_seen = task.get("first_seen", "signup")
    _, shares = plan_values(query, name, rows.frame, plan, first_seen, dialect)
    out = [shares.assign(feature="acct_" + shares["feature"].astype(str))]
    counts = [] if spec is None else [
        f for f in spec.features if f.family == "counts" and f.kind in ("events", "count")
    ]  # fmt: skip
    if counts and len(rows.frame):
        sql = _count_sql(plan, name, spec, has_role, dialect)  # type: ignore[arg-type]
        out.append(_count_shares(query(sql), counts))
    return pd.concat(out, ignore_index=True).sort_values(
        ["row", "feature", "user_id"], ignore_index=True
    )


def _count_sql(plan: AccountPlan, rows: str, spec: FeatureSpec, has_role: bool, d: Dialect) -> str:
    """Every member event of a known type between each row's first seen and anchor."""
    role_sql = (
        f"CAST(u.{d.quote(plan.role_column)} AS STRING)" if has_role else "CAST(NULL AS STRING)"
    )
    names = ", ".join(d.literal(e) for e in spec.events) or "NULL"
    return f"""
SELECT r.rid, u.user_id, {role_sql} AS role, e.event,
       {d.epoch_seconds("r.cutoff_at")} - {d.epoch_seconds("e.timestamp")} AS age
FROM {rows} r JOIN users u ON u.account_id = r.account_id
JOIN events e ON e.user_id = u.user_id AND e.timestamp < r.cutoff_at
     AND e.timestamp >= r.signup_at
WHERE e.event IN ({names})"""


def _count_shares(events: pd.DataFrame, counts: list[FeatureInfo]) -> pd.DataFrame:
    parts = []
    for info in counts:
        keep = np.ones(len(events), dtype=bool)
        if info.window_s is not None:
            keep &= events["age"].to_numpy() <= info.window_s
        if info.kind == "count":
            keep &= (events["event"] == info.event).to_numpy()
        n = (
            events[keep]
            .groupby(["rid", "user_id"], as_index=False)
            .agg(role=("role", "first"), n=("event", "size"))
        )
        if n.empty:
            continue
        total = n.groupby("rid")["n"].transform("sum")
        parts.append(
            pd.DataFrame(
                {
                    "row": n["rid"].to_numpy(),
                    "user_id": n["user_id"].to_numpy(),
                    "role": n["role"].to_numpy(),
                    "feature": info.name,
                    "share": (n["n"] / total).to_numpy(),
                }
            )
        )
    if not parts:
        return pd.DataFrame(columns=["row", "user_id", "role", "feature", "share"])
    return pd.concat(parts, ignore_index=True)


def _has(con: duckdb.DuckDBPyConnection, table: str) -> bool:
    [(n,)] = con.execute(
        "SELECT count(*) FROM duckdb_tables() WHERE table_name = ? AND schema_name = 'main'",
        [table],
    ).fetchall()
    return bool(n)
