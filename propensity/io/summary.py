"""The data summary a user reads after loading: what came in, what was dropped and why."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import duckdb

from propensity.io.clean import Cleaning, Drop

__all__ = ["DataSummary", "TableSummary", "summarise"]


@dataclass(frozen=True)
class TableSummary:
    name: str
    source: str | None
    rows_read: int
    rows_kept: int


@dataclass(frozen=True)
class DataSummary:
    """What was read, what was dropped and why, the shape of the data (`validate` prints it)."""

    tables: tuple[TableSummary, ...]
    drops: tuple[Drop, ...]
    notes: tuple[str, ...]
    users: int
    users_with_events: int
    converted_users: int
    first_event: datetime | None
    last_event: datetime | None
    event_types: tuple[tuple[str, int], ...]
    # which dedup rule ran, why, and what it removed (see propensity.io.dedup)
    dedup: dict[str, Any] = field(default_factory=dict)
    # the end of the observed data: data.end when configured, else the last event
    data_end: datetime | None = None
    data_end_configured: bool = False
    bots: int = 0  # users the bot rules flagged (excluded unless data.bots.exclude is false)

    @property
    def conversion_rate(self) -> float:
        return self.converted_users / self.users if self.users else 0.0

    def as_dict(self) -> dict:
        """A JSON-able view, for logging with a run."""
        return {
            "tables": {
                t.name: {"rows_read": t.rows_read, "rows_kept": t.rows_kept} for t in self.tables
            },
            "drops": [{"table": d.table, "reason": d.reason, "rows": d.rows} for d in self.drops],
            "notes": list(self.notes),
            "users": self.users,
            "users_with_events": self.users_with_events,
            "converted_users": self.converted_users,
            "conversion_rate": self.conversion_rate,
            "first_event": str(self.first_event),
            "last_event": str(self.last_event),
            "data_end": str(self.data_end),
            "data_end_configured": self.data_end_configured,
            "dedup": dict(self.dedup),
            "bots": self.bots,
            "event_types": dict(self.event_types),
        }


def summarise(
    con: duckdb.DuckDBPyConnection,
    sources: dict[str, str | None],
    rows_read: dict[str, int],
    run: Cleaning,
    end: datetime | None = None,
) -> DataSummary:
    """Build the report from the canonical tables left in `con` and what cleaning did."""
    drops, notes = run.drops, list(run.notes)
    tables = []
    for name, given in sources.items():
        (kept,) = con.execute(f"SELECT count(*) FROM {name}").fetchone()
        tables.append(TableSummary(name, given, rows_read.get(name, 0), int(kept)))
    users, converted = con.execute(
        "SELECT (SELECT count(*) FROM users), (SELECT count(DISTINCT user_id) FROM conversions)"
    ).fetchone()
    with_events = run.users_with_events  # counted while cleaning, without a DISTINCT
    if with_events is None:
        (with_events,) = con.execute("SELECT count(DISTINCT user_id) FROM events").fetchone()
    first, last = con.execute("SELECT min(timestamp), max(timestamp) FROM events").fetchone()
    if run.dedup is not None:
        notes.insert(0, run.dedup.sentence())
    if end is not None:
        notes.append(f"data ends at {end:%Y-%m-%d %H:%M:%S} (data.end)")
    types = con.execute(
        "SELECT event, count(*) AS n FROM events GROUP BY event ORDER BY n DESC, event"
    ).fetchall()
    return DataSummary(
        tables=tuple(tables),
        drops=tuple(drops),
        notes=tuple(notes),
        users=int(users),
        users_with_events=int(with_events),
        converted_users=int(converted),
        first_event=first,
        last_event=last,
        event_types=tuple((str(e), int(n)) for e, n in types),
        dedup=run.dedup.as_dict() if run.dedup is not None else {},
        data_end=end if end is not None else last,
        data_end_configured=end is not None,
        bots=len(run.bots),
    )
