"""Each user's (user, day) figures for the bots' rules, from one sort of packed keys in NumPy.

The figures are those of :func:`propensity.io.bots.per_user_sql`: busiest day (``day_n``
events on ``n_day``, the earliest of ties), active ``days``, ``span`` between the first and last
event, ``spread_days`` whose first and last event differ, and the sums ``within`` and
``within_sq`` of those days' spans (squared over the day's events less one). In SQL they take a
hash aggregation with one group per active user-day (about 0.8 per event) and another per user:
most of a load's CPU time (3.3 s of 8 at 10M events, benchmarks/io.py). Here each event is one
64-bit key, the user's number times a stride plus its second, and one sort of the keys puts
every user's days in order, so the figures are differences and reductions over the sorted array.

The events come from DuckDB a slice of the users at a time, at most about ``_SORTED_AT_ONCE``
of them, so the memory taken outside DuckDB's limit stays bounded however many events there
are. Times with a fraction of a second (the reader truncates to whole seconds; another table
might not), missing times or times 46,000 years apart return None: the caller aggregates in SQL
instead.
"""

from __future__ import annotations

import duckdb
import numpy as np

__all__ = ["day_figures"]

_SORTED_AT_ONCE = 1 << 24  # events sorted in one piece: 128 MB of keys
_US = 1_000_000
_DAY_S = 86_400
_DAYS = 1 << 24  # days after the first day that a key holds (46,000 years)
_USER = _DAYS * _DAY_S  # a key: the user's number times this, plus seconds after day 0


def day_figures(
    con: duckdb.DuckDBPyConnection, table: str, users: str, where: str = ""
) -> dict[str, np.ndarray] | None:
    """The figures of the users of `users` (``user_id``, a dense ``_code`` from 0, ``where``
    keeping some of them) from their events in `table`, one array per column, ``_code`` first;
    None for times it does not take (see the module)."""
    (n_users,) = con.execute(f"SELECT count(*) FROM {users}").fetchone()
    # one pass over the times alone (no strings): their range, and any the keys cannot hold
    # (fetched to the end: the caller registers arrays on this connection next)
    [(n_events, first, last, odd)] = con.execute(
        f"SELECT count(*), min(epoch_us(timestamp)), max(epoch_us(timestamp)), count(*) FILTER "
        f"(timestamp IS NULL OR epoch_us(timestamp) % {_US} <> 0) FROM {table}"
    ).fetchall()
    if odd:
        return None  # a missing time or a fraction of a second: SQL's groups say what it means
    if first is None or not n_users:
        return {name: np.zeros(0, dtype=dtype) for name, dtype in _EMPTY.items()}
    if last - first >= (_DAYS - 1) * _DAY_S * _US:
        return None
    day0 = first // _US // _DAY_S  # floor, as date_trunc('day', ...), before 1970 too
    # a slice's users are numbered code // slices, so that every key stays below 2^63
    slices = max(1, -(-int(n_events) // _SORTED_AT_ONCE), -(-int(n_users) // (2**63 // _USER)))
    keep = f" AND {where}" if where else ""
    # the keys are built by DuckDB: one array comes back, half what the codes and times took,
    # and NumPy only sorts it (whole seconds, so // is exact for times before 1970 too)
    key_sql = (
        f"u._code // {slices} * {_USER} + (epoch_us(e.timestamp) // {_US} - ({day0 * _DAY_S}))"
    )
    parts = []
    for part in range(slices):
        rows = con.execute(
            f"SELECT {key_sql} AS key FROM {table} e JOIN {users} u "
            f"USING (user_id) WHERE u._code % {slices} = {part}{keep}"
        ).fetchnumpy()
        key = np.asarray(rows.pop("key"), dtype=np.int64)
        del rows
        if not len(key):
            continue
        found = _figures(key, day0)
        found["_code"] = found["_code"] * slices + part
        parts.append(found)
    if not parts:
        return {name: np.zeros(0, dtype=dtype) for name, dtype in _EMPTY.items()}
    return {name: np.concatenate([p[name] for p in parts]) for name in parts[0]}


_EMPTY = {
    "_code": np.int64,
    "day_n": np.int64,
    "n_day": "datetime64[us]",
    "days": np.int64,
    "span": np.int64,
    "spread_days": np.int64,
    "within": np.float64,
    "within_sq": np.float64,
}


def _figures(key: np.ndarray, day0: int) -> dict[str, np.ndarray]:
    """Per user the figures of the events of `key` (user * _USER + seconds after day0's
    midnight), users in code order. Sorts `key` in place."""
    # sorted, each user's events are together, in time order, and key // _DAY_S numbers the
    # (user, day): a group starts where it changes
    key.sort()
    group = key // _DAY_S
    starts = np.r_[0, np.flatnonzero(group[1:] != group[:-1]) + 1]
    del group
    n = np.diff(starts, append=len(key))
    first_key = key[starts]
    group_user = first_key // _USER
    # the users: where the user changes among the groups (groups are in day order)
    firsts = np.r_[0, np.flatnonzero(group_user[1:] != group_user[:-1]) + 1]
    days = np.diff(firsts, append=len(starts))
    day_n = np.maximum.reduceat(n, firsts)
    # the earliest of the user's days with the most events
    busiest = np.flatnonzero(n == np.repeat(day_n, days))
    owner = group_user[busiest]
    earliest = busiest[np.r_[True, owner[1:] != owner[:-1]]]
    # a day's span is 0 unless it has two events: the sums read those days only (a user's
    # keys differ by their seconds)
    several = np.flatnonzero(n > 1)
    spread = (key[starts[several] + n[several] - 1] - first_key[several]) * _US
    # whole microseconds: exact in a double below 2^53 (285 years), as in per_user_sql
    within = spread.astype(np.float64)
    codes = group_user[firsts]
    size = int(codes[-1]) + 1

    def per_user(weights: np.ndarray | None, where: np.ndarray = several) -> np.ndarray:
        return np.bincount(group_user[where], weights, minlength=size)[codes]

    user_starts = starts[firsts]
    user_ends = np.r_[user_starts[1:], len(key)] - 1
    day = (first_key[earliest] % _USER) // _DAY_S + day0
    return {
        "_code": codes,
        "day_n": day_n,
        "n_day": (day * _DAY_S * _US).astype("datetime64[us]"),
        "days": days,
        "span": (key[user_ends] - key[user_starts]) * _US,
        "spread_days": per_user(None, several[spread > 0]),
        "within": per_user(within),
        "within_sq": per_user(within**2 / (n[several] - 1)),
    }
