"""Each user's (user, day) figures for the bots' rules, from one sort of packed keys in NumPy.

The figures are those of :func:`propensity.io.bots.per_user_sql`: busiest day (``day_n``
events on ``n_day``, the earliest of ties), active ``days``, ``span`` between the first and last
event, ``spread_days`` whose first and last event differ, and the sums ``within`` and
``within_sq`` of those days' spans (squared over the day's events less one). In SQL they take a
hash aggregation with one group per active user-day (about 0.8 per event) and another per user:
most of a load's CPU time (3.3 s of 8 at 10M events, benchmarks/io.py). Here each event is one
64-bit key, the user's number above its second, and one sort of the keys puts every user's days
in order, so the figures are differences and reductions over the sorted array.

The events come from DuckDB a slice of the users at a time, at most about ``_SORTED_AT_ONCE``
of them, so the memory taken outside DuckDB's limit stays bounded however many events there
are. Times with a fraction of a second (the reader truncates to whole seconds; another table
might not), missing times or times 34,000 years apart return None: the caller aggregates in SQL
instead.
"""

from __future__ import annotations

import duckdb
import numpy as np

__all__ = ["day_figures"]

_SORTED_AT_ONCE = 1 << 24  # events sorted in one piece: 128 MB of keys
_SECOND_BITS = 40  # a key's low bits: seconds after the first day (34,000 years)
_DAY_BITS = 24  # days after the first day, 2^40 seconds at most
_US = 1_000_000
_DAY_S = 86_400


def day_figures(
    con: duckdb.DuckDBPyConnection, table: str, users: str, where: str = ""
) -> dict[str, np.ndarray] | None:
    """The figures of the users of `users` (``user_id``, a dense ``_code`` from 0, ``where``
    keeping some of them) from their events in `table`, one array per column, ``_code`` first;
    None when some event time has a fraction of a second."""
    (n_users,) = con.execute(f"SELECT count(*) FROM {users}").fetchone()
    (n_events,) = con.execute(f"SELECT count(*) FROM {table}").fetchone()
    # a slice's users are numbered code // slices, so they fit above the seconds
    per_slice = 1 << (63 - _SECOND_BITS)  # users in a slice: a key stays a positive int64
    slices = max(1, -(-int(n_events) // _SORTED_AT_ONCE), -(-int(n_users) // per_slice))
    keep = f" AND {where}" if where else ""
    parts = []
    for part in range(slices):
        rows = con.execute(
            f"SELECT u._code, epoch_us(e.timestamp) AS t FROM {table} e JOIN {users} u "
            f"USING (user_id) WHERE u._code % {slices} = {part}{keep}"
        ).fetchnumpy()
        if np.ma.is_masked(rows["t"]):
            return None  # a missing time: SQL's groups say what that means
        us = np.asarray(rows["t"], dtype=np.int64)
        span = int(us.max()) - int(us.min()) if len(us) else 0
        if np.any(us % _US) or span >= (_US << _SECOND_BITS) - _US * _DAY_S:
            return None
        parts.append(_figures(np.asarray(rows["_code"], dtype=np.int64) // slices, us // _US))
        parts[-1]["_code"] = parts[-1]["_code"] * slices + part
    return {name: np.concatenate([p[name] for p in parts]) for name in parts[0]}


def _figures(code: np.ndarray, seconds: np.ndarray) -> dict[str, np.ndarray]:
    """Per user (``code``, below 2^23) the figures of the events at `seconds`, in code order."""
    if not len(code):
        empty = np.zeros(0, dtype=np.int64)
        return {
            "_code": empty,
            "day_n": empty,
            "n_day": empty.astype("datetime64[us]"),
            "days": empty,
            "span": empty,
            "spread_days": empty,
            "within": empty.astype(float),
            "within_sq": empty.astype(float),
        }
    day0 = int(seconds.min()) // _DAY_S  # floor, as date_trunc('day', ...), before 1970 too
    # the user's number above the seconds since day0's midnight: sorted, each user's events
    # are together, in time order
    key = (code << _SECOND_BITS) | (seconds - day0 * _DAY_S)
    key.sort()
    user = key >> _SECOND_BITS
    second = key & ((1 << _SECOND_BITS) - 1)
    day = second // _DAY_S  # days after day0
    # the (user, day) groups: where the user or the day changes
    group = (user << _DAY_BITS) | day
    starts = np.r_[0, np.flatnonzero(group[1:] != group[:-1]) + 1]
    n = np.diff(starts, append=len(key))
    group_user = user[starts]
    # the users: where the user changes among the groups (groups are in day order)
    firsts = np.r_[0, np.flatnonzero(group_user[1:] != group_user[:-1]) + 1]
    days = np.diff(firsts, append=len(starts))
    day_n = np.maximum.reduceat(n, firsts)
    # the earliest of the user's days with the most events
    busiest = np.flatnonzero(n == np.repeat(day_n, days))
    owner = group_user[busiest]
    earliest = busiest[np.r_[True, owner[1:] != owner[:-1]]]
    # a day's span is 0 unless it has two events: the sums read those days only
    several = np.flatnonzero(n > 1)
    first_at = second[starts[several]]
    spread = (second[starts[several] + n[several] - 1] - first_at) * _US
    # whole microseconds: exact in a double below 2^53 (285 years), as in per_user_sql
    within = spread.astype(np.float64)
    codes = group_user[firsts]
    size = int(codes[-1]) + 1

    def per_user(weights: np.ndarray | None, where: np.ndarray = several) -> np.ndarray:
        return np.bincount(group_user[where], weights, minlength=size)[codes]

    ends = np.r_[firsts[1:], len(starts)] - 1  # each user's last day
    return {
        "_code": codes,
        "day_n": day_n,
        "n_day": ((day0 + day[starts[earliest]]) * _DAY_S * _US).astype("datetime64[us]"),
        "days": days,
        "span": (second[starts[ends] + n[ends] - 1] - second[starts[firsts]]) * _US,
        "spread_days": per_user(None, several[spread > 0]),
        "within": per_user(within),
        "within_sq": per_user(within**2 / (n[several] - 1)),
    }
