"""A windowed read of the events: only ``[start, end)``, plus an exact summary of the history.

A daily score needs the events of the users in trial (since their signup) and, for account
features, of their teammates within the longest window: a few weeks of a history that may span
years (the issue-19 world: 13% of the events). What needs the whole history is small and is kept
per (user, event type) in ``stage_history`` (``event_history`` once loaded): the first and last
time. From it come each account member's first event (active users), a ``lost_event`` before
the window, the signup of users when no users table is given, and the newest event (``--as-of
latest``). The smallest account on the events of users the users table gives none is looked up
only when there are such users (``stage_accounts``). All are read through the same projection of
the source as a full read, so the same rows are mapped and parsed.

Cleaning on the window (``io/clean.py``; docs/reliability.md, "Reading only the window"):

- rows without an id, event or time, after ``data.end``, of internal or unknown users: row or
  user rules, the same on the window and the history summary (which drops the same users);
- exact duplicates share their time, so both copies are in the window or neither is: exact;
  duplicates by event id keep the earliest copy; a copy in the window whose twin is before it
  is kept (an id resent more than the window apart); the summary's first times are unaffected;
- bots: the rules read the window's events only (a user's busiest day, hour and gaps within the
  window; the top 1% of busiest days among the window's users). A scored user's trial lies in
  the window, so they are judged on all their trial; an account member who acted like a bot
  only before the window is kept. ``data.unknown_user_events: fail`` and the pre-1990/future
  checks see the window only; unparsable times are left out without being counted.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

import duckdb

from propensity.io.clean import has_table

__all__ = [
    "HISTORY",
    "EventWindow",
    "WindowMissed",
    "accounts_of_events",
    "history_sql",
    "make_history",
    "trim_history",
    "window_filter",
]

HISTORY = "event_history"  # the loaded summary's name; the staged one is stage_history

# ``[start, end)`` of the events to read, given the newest event of the cleaned data (or
# ``data.end``): a fixed as-of ignores it, ``--as-of latest`` needs it.
EventWindow = Callable[[datetime | None], tuple[datetime, datetime]]

# a naive time zone is at most 14 hours from UTC: a raw-column filter this much wider than the
# window keeps every row the exact filter keeps, and lets DuckDB skip parquet row groups
_MARGIN = timedelta(days=1)


class WindowMissed(Exception):  # noqa: N818  (a signal, not an error a user sees)
    """The window read does not cover the one the cleaned data asks for (``--as-of latest``
    whose newest events belonged to a user cleaning removed): read everything instead."""


def _ts(value: datetime) -> str:
    return f"TIMESTAMP '{value:%Y-%m-%d %H:%M:%S.%f}'"


def history_sql(
    exprs: dict[str, str], raws: dict[str, str], scan: str, end: datetime | None, monotone: bool
) -> str:
    """Per (user, event type) of the whole source: the first and last time.

    ``exprs`` are the canonical expressions of ``user_id``, ``event`` and ``timestamp`` over the
    raw columns ``raws`` (quoted). When the time's reading is ``monotone`` (a timestamp, date or
    epoch column: never text), the raw columns are aggregated first and the expressions applied
    to the ~1 row per user and event type that remain: min and max commute with a
    non-decreasing reading, and the ids' reading (trim, text) is applied before the second
    grouping, so equal ids still meet. That halved this scan (the per-row readings were most of
    it). Text times are read row by row. Rows after ``data.end`` are left out by the aggregates,
    and groups without an id, event or time by :func:`make_history`.
    """
    u, e, t = raws["user_id"], raws["event"], raws["timestamp"]
    if monotone:
        last = exprs["timestamp"].replace(t, '"_last"')
        rows = (
            f"SELECT {exprs['user_id']} AS user_id, {exprs['event']} AS event, "
            f"{exprs['timestamp']} AS ts, {last} AS ts_last FROM (SELECT {u}, {e}, "
            f'min({t}) AS {t}, max({t}) AS "_last" FROM {scan} GROUP BY {u}, {e})'
        )
    else:
        rows = (
            f"SELECT {exprs['user_id']} AS user_id, {exprs['event']} AS event, "
            f"{exprs['timestamp']} AS ts, {exprs['timestamp']} AS ts_last FROM {scan}"
        )
    first, last = "ts", "ts_last"
    if end is not None:  # the first time is kept when it is not after the end; so the group
        first = f"CASE WHEN ts <= {_ts(end)} THEN ts END"
        last = f"CASE WHEN ts <= {_ts(end)} THEN least(ts_last, {_ts(end)}) END"
    return (
        f"SELECT user_id, event, min({first}) AS first_at, max({last}) AS last_at FROM ({rows}) "
        f"GROUP BY user_id, event"
    )


def make_history(con: duckdb.DuckDBPyConnection, sql: str) -> None:
    """``stage_history`` from :func:`history_sql`, without the groups a full read drops.

    Those go after the aggregate, not in a WHERE or HAVING: DuckDB pushes a filter on the ids
    down into the scan, where it reads every row again (12 s instead of 6 at 11.6M events).
    """
    con.execute(f"CREATE OR REPLACE TEMP TABLE stage_history AS {sql}")
    con.execute(
        "DELETE FROM stage_history WHERE user_id IS NULL OR event IS NULL OR first_at IS NULL"
    )


def accounts_of_events(con: duckdb.DuckDBPyConnection, rows_sql: str, end: datetime | None) -> None:
    """``stage_accounts``: the smallest account on the events of each user the users table
    gives none, over the whole history (one more scan, only when such users exist)."""
    con.execute("CREATE OR REPLACE TEMP TABLE stage_accounts (user_id VARCHAR, account_id VARCHAR)")
    (n,) = con.execute("SELECT count(*) FROM stage_users WHERE account_id IS NULL").fetchone()
    if not n:
        return
    kept = "" if end is None else f" AND timestamp <= {_ts(end)}"
    con.execute(
        f"INSERT INTO stage_accounts SELECT user_id, min(account_id) FROM ({rows_sql}) "
        f"WHERE account_id IS NOT NULL AND event IS NOT NULL AND timestamp IS NOT NULL{kept} "
        f"AND user_id IN (SELECT user_id FROM stage_users WHERE account_id IS NULL) "
        f"GROUP BY user_id"
    )


def window_filter(
    ts_expr: str, raw: str, dtype: str, tz: str, window: tuple[datetime, datetime]
) -> str:
    """The exact filter ``start <= timestamp < end`` on the parsed time, and before it a wider
    filter on the raw column where its type allows, which DuckDB pushes into the parquet scan."""
    start, end = window
    exact = f"({ts_expr}) >= {_ts(start)} AND ({ts_expr}) < {_ts(end)}"
    upper = dtype.upper()
    lo, hi = start - _MARGIN, end + _MARGIN
    if upper.startswith("TIMESTAMP WITH TIME ZONE") or upper == "TIMESTAMPTZ":
        raw_filter = (
            f"{raw} >= CAST({_ts(lo)} AS TIMESTAMPTZ) AND {raw} < CAST({_ts(hi)} AS TIMESTAMPTZ)"
        )
    elif upper.startswith("TIMESTAMP"):
        raw_filter = f"{raw} >= {_ts(lo)} AND {raw} < {_ts(hi)}"
    else:  # epoch numbers and text: no cheap bound on the raw value; the scan filters early
        return exact
    return f"{raw_filter} AND {exact}"


def trim_history(con: duckdb.DuckDBPyConnection, drop_unknown: bool) -> None:
    """Drop from ``stage_history`` the users cleaning removed (internal, bots, unknown)."""
    removed = [
        f"SELECT user_id FROM {t}" for t in ("internal_users", "_bot_users") if has_table(con, t)
    ]
    if drop_unknown:
        con.execute(
            "DELETE FROM stage_history WHERE user_id NOT IN (SELECT user_id FROM stage_users)"
        )
    elif removed:
        con.execute(f"DELETE FROM stage_history WHERE user_id IN ({' UNION ALL '.join(removed)})")


def newest(con: duckdb.DuckDBPyConnection, table: str = "stage_history") -> datetime | None:
    """The newest event time in the summary."""
    (last,) = con.execute(f"SELECT max(last_at) FROM {table}").fetchone()
    return last
