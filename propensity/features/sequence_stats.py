"""The per-row steps over the time-ordered sequence, on DuckDB, from its sorted numpy keys.

The portable plan's ``act`` (sessions, gaps, transition counts) and ``days`` + ``streak``
(active days, longest run of days) group the 9M-row ``seq`` table by row at 10M events; the
sorted keys of :mod:`propensity.features.sequence` already hold each row's events in order, so
segment sums over them give the same per-row values without inserting ``seq`` at all (0.3 s
CPU of SQL steps and the table's insert). Same rows (those with a vocabulary event), values
and column types as the SQL steps.
"""

from __future__ import annotations

import duckdb
import numpy as np
import pyarrow as pa

from propensity.features.sequence import Sorted

__all__ = ["materialise_row_stats"]

_SLICE = 1 << 20  # events per slice (cut at row boundaries: small numpy temporaries)
_ARROW = {"INTEGER": pa.int32(), "BIGINT": pa.int64(), "HUGEINT": pa.int64()}
_PAIR_BITS = 24  # transitions are looked up in a table of every (prev, k) up to this size
_SPAN_SLACK = 1024  # rids a slice may skip (rows without events) and still count by rid


def materialise_row_stats(
    con: duckdb.DuckDBPyConnection,
    s: Sorted,
    act: str,
    streak: str,
    session_gap_s: int,
    transitions: tuple[tuple[int, int], ...],
) -> tuple[str, ...]:
    """Create the temp tables ``act`` and ``streak`` (either may be ``""``: not made) from the
    sorted sequence ``s``; ``transitions`` are the (prev, k) codes counted as ``tr0, tr1 ...``.
    Returns the tables made."""
    rid_t, t_t = s.types["rid"], s.types["t"]
    # The SQL steps' types: COUNT is BIGINT, SUM of integers HUGEINT, MAX keeps its input's.
    act_cols = {"rid": rid_t, "sessions": "BIGINT", "gap_sum": "HUGEINT", "gap_n": "BIGINT"}
    act_cols |= {"gap_max": t_t} | {f"tr{j}": "BIGINT" for j in range(len(transitions))}
    streak_cols = {"rid": rid_t, "active_days": "HUGEINT", "longest": "BIGINT"}
    want = [(name, cols) for name, cols in ((act, act_cols), (streak, streak_cols)) if name]
    made: tuple[str, ...] = ()
    try:
        for name, cols in want:
            schema = ", ".join(f"{c} {t}" for c, t in cols.items())
            con.execute(f"CREATE OR REPLACE TEMP TABLE {name} ({schema})")
            made += (name,)
        for lo, hi in _row_slices(s):
            rid, t, k = s.fields(s.keys[lo:hi])
            parts = _stats(rid, t, k, s.kb, session_gap_s, transitions)
            for (name, cols), part in zip(want, parts if act else parts[1:], strict=False):
                table = pa.table({c: pa.array(part[c], type=_ARROW[cols[c]]) for c in cols})
                con.register(f"{name}_part", table)
                con.execute(f"INSERT INTO {name} SELECT * FROM {name}_part")
                con.unregister(f"{name}_part")
    except BaseException:
        for name in made:
            con.execute(f"DROP TABLE IF EXISTS {name}")
        raise
    return made


def _row_slices(s: Sorted) -> list[tuple[int, int]]:
    """``[lo, hi)`` ranges of about ``_SLICE`` keys, each holding whole rows."""
    n = len(s.keys)
    shift = s.tb + s.kb
    cuts = [
        np.searchsorted(s.keys, (s.keys[i] >> shift) << shift) for i in range(_SLICE, n, _SLICE)
    ]
    bounds = np.unique([0, *cuts, n])
    return [(int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:], strict=True)]


def _stats(
    rid: np.ndarray,
    t: np.ndarray,
    k: np.ndarray,
    kb: int,
    session_gap_s: int,
    transitions: tuple[tuple[int, int], ...],
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Per-row ``act`` and ``streak`` columns of whole rows' sorted events."""
    n = len(rid)
    first = np.ones(n, dtype=bool)
    first[1:] = rid[1:] != rid[:-1]
    starts = np.flatnonzero(first)  # a row's first event: indexed, not masked (few of them)
    count = np.diff(np.append(starts, n))
    gap = np.empty(n, dtype=np.int64)
    gap[0] = 0
    np.subtract(t[1:], t[:-1], out=gap[1:])
    gap[starts] = 0  # a row's first event has no gap (NULL in SQL): it adds 0 to the sum
    act = {"rid": rid[starts], "gap_n": count - 1}
    new_session = gap > session_gap_s
    new_session[starts] = True
    act["sessions"] = np.add.reduceat(new_session, starts, dtype=np.int64)
    act["gap_sum"] = np.add.reduceat(gap, starts)
    # gaps are >= 0 (sorted by t): -1 at first events never wins a MAX over real gaps
    gap[starts] = -1
    gap_max = np.maximum.reduceat(gap, starts)
    act["gap_max"] = np.ma.masked_array(gap_max, mask=act["gap_n"] == 0)
    for j, n_j in enumerate(_transition_counts(rid, k, starts, kb, transitions)):
        act[f"tr{j}"] = n_j
    # A new day starts where the previous event's day (from signup) differs.
    day = t // 86400
    new = np.empty(n, dtype=bool)
    new[0] = True
    np.not_equal(day[1:], day[:-1], out=new[1:])
    new[starts] = True
    at = np.flatnonzero(new)
    dday, drow = day[at], first[at]
    # A run of days continues where the row is the same and the day the previous one's next.
    run = drow.copy()
    run[1:] |= dday[1:] != dday[:-1] + 1
    runs = np.flatnonzero(run)
    length = np.diff(np.append(runs, len(at)))
    streak = {"rid": act["rid"], "active_days": np.add.reduceat(new, starts, dtype=np.int64)}
    streak["longest"] = np.maximum.reduceat(length, np.flatnonzero(drow[runs]))
    return act, streak


def _transition_counts(
    rid: np.ndarray,
    k: np.ndarray,
    starts: np.ndarray,
    kb: int,
    transitions: tuple[tuple[int, int], ...],
) -> list[np.ndarray]:
    """Per row, the count of each transition (prev, k) among its events (after the first)."""
    m, n_rows = len(transitions), len(starts)
    if not m or not len(k):
        return [np.zeros(n_rows, dtype=np.int64) for _ in transitions]
    if 2 * kb > _PAIR_BITS or len(set(transitions)) < m:
        first = np.zeros(len(k), dtype=bool)
        first[starts] = True
        row = np.cumsum(first) - 1
        prev = np.empty_like(k)
        prev[1:] = k[:-1]
        prev[starts] = -1
        out = []
        for a, b in transitions:
            hit = (prev == a) & (k == b)
            out.append(np.bincount(row[hit], minlength=n_rows).astype(np.int64))
        return out
    # One lookup per event of its (prev, k)'s transition index (-1: none); an event that
    # starts its row looks up the extra last slot.
    which = np.full((1 << (2 * kb)) + 1, -1, dtype=np.int8 if m < 128 else np.int64)
    for j, (a, b) in enumerate(transitions):
        if 0 <= a < 1 << kb and 0 <= b < 1 << kb:  # codes no event has (< 0) count nothing
            which[(a << kb) | b] = j
    code = k[:-1] << kb
    code |= k[1:]
    code[starts[1:] - 1] = 1 << (2 * kb)  # code[i] is event i + 1's
    j_ev = which[code]
    hit = np.flatnonzero(j_ev >= 0)
    lo, span = int(rid[0]), int(rid[-1]) - int(rid[0]) + 1
    if span <= 2 * n_rows + _SPAN_SLACK:
        # rows are nearly consecutive rids: count by rid offset, then read each row's
        counts = np.bincount((rid[hit + 1] - lo) * m + j_ev[hit], minlength=span * m)
        counts = counts.reshape(span, m)[rid[starts] - lo]
    else:
        row = np.searchsorted(starts, hit + 1, side="right") - 1
        counts = np.bincount(row * m + j_ev[hit], minlength=n_rows * m).reshape(n_rows, m)
    return [counts[:, j].astype(np.int64) for j in range(m)]
