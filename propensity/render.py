"""Terminal rendering of results with rich: tables a person reads, never data a program parses."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from rich.console import Console
from rich.table import Table

from propensity.io.report import LoadReport

__all__ = ["data_summary", "frame_table", "metrics_table"]


def data_summary(report: LoadReport, console: Console, top_events: int = 20) -> None:
    """Print what was read, what was dropped and why, and the shape of the data."""
    tables = Table(title="Input tables", title_justify="left")
    for col in ("table", "source", "rows read", "rows kept"):
        tables.add_column(col, justify="right" if col.startswith("rows") else "left")
    for t in report.tables:
        tables.add_row(t.name, str(t.source or "-"), f"{t.rows_read:,}", f"{t.rows_kept:,}")
    console.print(tables)
    console.print(
        f"users: {report.users:,} ({report.users_with_events:,} with events), converted: "
        f"{report.converted_users:,} ({report.conversion_rate:.2%}), events from "
        f"{report.first_event} to {report.last_event}"
    )
    for note in report.notes:
        console.print(f"note: {note}")
    if report.drops:
        drops = Table(title="Dropped while cleaning", title_justify="left")
        for col in ("table", "reason", "rows", "examples"):
            drops.add_column(col, justify="right" if col == "rows" else "left")
        for d in report.drops:
            drops.add_row(d.table, d.reason, f"{d.rows:,}", ", ".join(d.examples))
        console.print(drops)
    else:
        console.print("Nothing dropped while cleaning.")
    events = Table(title=f"Event types (top {top_events})", title_justify="left")
    events.add_column("event")
    events.add_column("count", justify="right")
    for name, n in report.event_types[:top_events]:
        events.add_row(name, f"{n:,}")
    console.print(events)


def metrics_table(title: str, rows: Mapping[str, Mapping[str, Any]], console: Console) -> None:
    """Print a table of metric name -> {column: value}, numbers to four places."""
    table = Table(title=title, title_justify="left")
    columns: list[str] = []
    for values in rows.values():
        columns += [c for c in values if c not in columns]
    table.add_column("metric")
    for col in columns:
        table.add_column(col, justify="right")
    for name, values in rows.items():
        table.add_row(name, *(_fmt(values.get(c)) for c in columns))
    console.print(table)


def frame_table(title: str, records: Sequence[Mapping[str, Any]], console: Console) -> None:
    """Print a list of records (e.g. `DataFrame.to_dict('records')`) as a table."""
    table = Table(title=title, title_justify="left")
    if not records:
        console.print(f"{title}: (none)")
        return
    for col in records[0]:
        table.add_column(str(col), justify="right" if _numeric(records[0][col]) else "left")
    for rec in records:
        table.add_row(*(_fmt(v) for v in rec.values()))
    console.print(table)


def _numeric(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        if value != value:  # NaN
            return "-"
        return f"{value:,.4f}" if abs(value) < 1000 else f"{value:,.0f}"
    if isinstance(value, tuple) and len(value) == 2:
        return f"[{_fmt(value[0])}, {_fmt(value[1])}]"
    return str(value)
