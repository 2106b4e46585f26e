"""Which repeated events are one event sent twice: the dedup rule, chosen and said.

A retrying tracker sends an event twice with the same event id and the same second; a day-only
export writes every event at midnight, so two identical rows there are two real events on one
day. ``data.dedup.mode`` picks the rule; ``auto`` (the default) uses the export's event id when
it has one, keeps every row of a day-only export, and removes exact duplicates otherwise. The
rule that ran and the rows it removed go into the data summary.
"""

from __future__ import annotations

from dataclasses import dataclass

import duckdb
import numpy as np

from propensity.config import DataConfig
from propensity.contract import EVENT_ID_COLUMNS
from propensity.io.sources import ident
from propensity.io.timestamps import local_sql

__all__ = ["ROW_HASH", "Dedup", "choose_dedup", "dedup_select", "drop_exact_duplicates"]

ROW_HASH = "_row_hash"  # staged with exact dedup, dropped by drop_exact_duplicates
_SORTED_AT_ONCE = 1 << 24  # row hashes sorted in one piece: 128 MB, twice while sorting


@dataclass(frozen=True)
class Dedup:
    """The dedup rule for the events: ``exact``, ``event_id`` (on ``column``) or ``none``."""

    mode: str
    column: str | None
    why: str
    removed: int = 0

    @property
    def reason(self) -> str:
        """The drop reason of the removed rows, as the data summary lists it."""
        if self.mode == "event_id":
            return f"duplicate events (same {self.column!r})"
        return "exact duplicate events"

    def sentence(self) -> str:
        """One line for the data summary: which rule ran, why, and what it removed."""
        if self.mode == "none":
            return f"dedup: none, {self.why}; no event removed"
        what = "exact duplicates" if self.mode == "exact" else f"by event id {self.column!r}"
        return f"dedup: {what} ({self.why}); {self.removed:,} duplicate events removed"

    def as_dict(self) -> dict:
        return {"mode": self.mode, "column": self.column, "why": self.why, "removed": self.removed}


def choose_dedup(
    con: duckdb.DuckDBPyConnection,
    scan: str,
    found: dict[str, str],
    cfg: DataConfig,
    utc_expr: str,
) -> Dedup | str:
    """The rule to apply to an events source, or a problem line when the config cannot hold."""
    mode, column = cfg.dedup.mode, cfg.dedup.column
    if mode == "none":
        return Dedup("none", None, "as data.dedup.mode says")
    if mode == "exact":
        why = "data.dedup.mode: exact"
        if _day_only(con, scan, utc_expr, cfg.timezone):
            why += "; every timestamp is at midnight, so same-day repeats were removed too"
        return Dedup("exact", None, why)
    if column is not None:
        if column not in found:
            return (
                f"events: data.dedup.column {column!r} is not a column of the events (found "
                f"{', '.join(list(found)[:20])}). Name the event id column, or set "
                f"data.dedup.mode: exact."
            )
        return Dedup("event_id", column, "the configured event id column")
    if mode == "event_id":  # the config check makes this unreachable; kept for clarity
        return "events: data.dedup.mode event_id needs data.dedup.column."
    preset_ids = [c for c in EVENT_ID_COLUMNS[cfg.preset] if c in found]
    if preset_ids:
        return Dedup("event_id", preset_ids[0], f"the export's event id column, {cfg.preset.value}")
    if _day_only(con, scan, utc_expr, cfg.timezone):
        return Dedup(
            "none",
            None,
            "every timestamp is at midnight (a day-only export): repeated events on one day are "
            "real repeats, so all are kept (set data.dedup.mode: exact to remove them)",
        )
    return Dedup("exact", None, "rows equal in every column")


def _day_only(con: duckdb.DuckDBPyConnection, scan: str, utc_expr: str, tz: str) -> bool:
    """True when no readable timestamp has a time of day (in the data's zone).

    The query stops at the first timestamp with a time of day, so on ordinary exports it
    reads a few rows; only a truly day-only export is read to the end.
    """
    local = local_sql(utc_expr, tz)
    timed = con.execute(
        f"SELECT 1 FROM {scan} WHERE ({local}) IS NOT NULL "
        f"AND ({local}) <> date_trunc('day', {local}) LIMIT 1"
    ).fetchall()
    if timed:
        return False
    readable = con.execute(f"SELECT 1 FROM {scan} WHERE ({local}) IS NOT NULL LIMIT 1").fetchall()
    return bool(readable)


def dedup_select(dedup: Dedup, select: list[str], scan: str, where: str) -> str:
    """The SELECT that stages the events under `dedup`.

    Exact duplicates are not removed here: the rows are staged with a hash of every column
    (``_row_hash``) and :func:`drop_exact_duplicates` removes them after, from the staged table
    (see there why). By event id, the earliest of the rows sharing an id is kept (ties broken
    on every column, so the same input keeps the same row); rows without an id are all kept.
    """
    columns = ", ".join(select)
    if dedup.mode == "exact":
        names = ", ".join(_name(x) for x in select)
        return f"SELECT *, hash({names}) AS {ROW_HASH} FROM (SELECT {columns} FROM {scan}{where})"
    if dedup.mode == "none":
        return f"SELECT {columns} FROM {scan}{where}"
    eid = f"NULLIF(TRIM(CAST({ident(dedup.column or '')} AS VARCHAR)), '')"
    order = "timestamp, event, user_id, account_id, properties"
    return (
        f"SELECT * EXCLUDE (_event_id) FROM (SELECT {columns}, {eid} AS _event_id "
        f"FROM {scan}{where}) QUALIFY _event_id IS NULL OR row_number() OVER "
        f"(PARTITION BY _event_id ORDER BY {order}) = 1"
    )


def drop_exact_duplicates(con: duckdb.DuckDBPyConnection, table: str) -> None:
    """Remove the exact duplicate rows of `table` (staged by :func:`dedup_select`), keeping one.

    The same rows as a ``SELECT DISTINCT`` over every column, for a fraction of its cost: a
    DISTINCT builds a hash table keyed on all the columns, one entry per event, while equal rows
    always have equal hashes, so only rows whose 64-bit hash is shared can be duplicates. Those
    few (the duplicates, and rare hash collisions between different rows) are replaced by their
    DISTINCT; every other row stays as staged. Drops the ``_row_hash`` column.
    """
    shared = _shared_hashes(con, table)
    if len(shared):
        con.register("_shared_found", {ROW_HASH: shared})
        con.execute("CREATE OR REPLACE TEMP TABLE _shared_hashes AS SELECT * FROM _shared_found")
        con.unregister("_shared_found")
        inside = f"{ROW_HASH} IN (SELECT {ROW_HASH} FROM _shared_hashes)"
        con.execute(
            f"CREATE OR REPLACE TEMP TABLE _shared_rows AS SELECT DISTINCT * FROM {table} "
            f"WHERE {inside}"
        )
        con.execute(f"DELETE FROM {table} WHERE {inside}")
        con.execute(f"INSERT INTO {table} SELECT * FROM _shared_rows")
        con.execute("DROP TABLE _shared_rows")
        con.execute("DROP TABLE _shared_hashes")
    con.execute(f"ALTER TABLE {table} DROP COLUMN {ROW_HASH}")


def _shared_hashes(con: duckdb.DuckDBPyConnection, table: str) -> np.ndarray:
    """The distinct values of `table`'s ``_row_hash`` that more than one row holds.

    Sorted, a shared hash sits next to its copy. NumPy sorts 10M hashes in about a tenth of
    the CPU time of DuckDB's sort (0.3 s with the fetch against 1.0-1.2 s at 10M events,
    benchmarks/io.py); at most about ``_SORTED_AT_ONCE`` at a time (one remainder of the hash
    per fetch, so equal hashes meet in the same one), so the memory taken outside DuckDB's
    limit stays bounded however many events there are.
    """
    (rows,) = con.execute(f"SELECT count(*) FROM {table}").fetchone()
    slices = max(1, -(-int(rows) // _SORTED_AT_ONCE))
    found = []
    for part in range(slices):
        where = f" WHERE {ROW_HASH} % {slices} = {part}" if slices > 1 else ""
        hashes = con.execute(f"SELECT {ROW_HASH} FROM {table}{where}").fetchnumpy()[ROW_HASH]
        hashes = np.asarray(hashes, dtype=np.uint64)
        hashes.sort()  # in place: the fetched array is this function's own
        found.append(np.unique(hashes[1:][hashes[1:] == hashes[:-1]]))
    return np.concatenate(found)


def _name(expr_as: str) -> str:
    """The column name of a projection item ``expr AS name``."""
    return expr_as.rsplit(" AS ", 1)[1]
