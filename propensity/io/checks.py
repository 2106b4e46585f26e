"""The data contract's checks on the cleaned tables: every problem collected, none raised alone.

Problems name the table and column, what was expected, what was found (with examples, never an
email address) and the fix; findings that do not stop the job become notes in the summary.
"""

from __future__ import annotations

from datetime import datetime

import duckdb

from propensity.config import DataConfig
from propensity.errors import shorten
from propensity.io.clean import Cleaning, Drop, examples, has_table

__all__ = ["empty_column", "validate"]

_TIMES = (("events", "timestamp"), ("users", "signup_at"), ("conversions", "converted_at"))


def _check(con: duckdb.DuckDBPyConnection, run: Cleaning, offenders: str, message: str) -> int:
    """Add `message` (with {n} and {examples} filled in) when the `offenders` query has rows."""
    [(n,)] = con.execute(f"SELECT count(*) FROM ({offenders})").fetchall()
    if n:
        run.problems.append(message.format(n=n, examples=", ".join(examples(con, offenders))))
    return int(n)


def empty_column(table: str, column: str, src: str, rows: int) -> str:
    """The problem of a required column with no value in any row."""
    return (
        f"{table}: every row has an empty {column} (column {shorten(src, 60)!r} of the file is "
        f"null or blank in all {rows:,} rows). Map {column!r} to the right column with "
        f"data.columns.{table}.{column}, or export the data again."
    )


def _emptied(table: str, run: Cleaning, rows_read: int) -> str:
    """Why a table has no rows left: the drops that took them, naming the source columns."""
    mapping = run.sources.get(table, {})
    drops: list[Drop] = [d for d in run.drops if d.table == table]
    parts = []
    for d in drops:
        column = next((c for c in mapping if d.reason.endswith(f" {c}")), None)
        src = f" (column {mapping[column]!r})" if column else ""
        parts.append(f"{d.rows:,} {d.reason}{src}")
    emptied = next(
        (d for d in drops if d.rows == rows_read and d.reason.startswith("missing ")), None
    )
    if emptied is not None:
        column = emptied.reason.removeprefix("missing ").removesuffix(" name")
        return empty_column(table, column, mapping.get(column, column), rows_read)
    dropped = "; ".join(parts) or "nothing was read"
    return (
        f"{table}: no rows left after cleaning ({dropped}). Check the column mapping "
        f"(data.columns), data.exclude and data.end."
    )


def validate(
    con: duckdb.DuckDBPyConnection,
    cfg: DataConfig,
    run: Cleaning,
    rows_read: dict[str, int],
    now: datetime,
) -> None:
    """Check the cleaned tables against the contract, adding every problem to `run`."""
    for table in ("events", "users"):
        [(n,)] = con.execute(f"SELECT count(*) FROM stage_{table}").fetchall()
        if n == 0:
            run.problems.append(_emptied(table, run, rows_read.get(table, 0)))
    _check(
        con,
        run,
        "SELECT user_id FROM stage_users GROUP BY user_id HAVING count(*) > 1",
        "users: {n} user_id values appear more than once (e.g. {examples}). Keep one row per "
        "user (the trial start) in the users table.",
    )
    _check(
        con,
        run,
        "SELECT DISTINCT user_id FROM stage_conversions "
        "WHERE user_id NOT IN (SELECT user_id FROM stage_users)",
        "conversions: {n} users converted but are not in the users table (e.g. {examples}). "
        "Export users and conversions from the same snapshot, or add the missing users.",
    )
    if cfg.unknown_user_events == "fail":
        _check(
            con,
            run,
            "SELECT DISTINCT user_id FROM stage_events "
            "WHERE user_id NOT IN (SELECT user_id FROM stage_users)",
            "events: {n} users have events but are not in the users table (e.g. {examples}). "
            "Add them, or set data.unknown_user_events: drop.",
        )
    _converted_before_signup(con, run)
    times = _TIMES
    if has_table(con, "stage_payments"):
        times = (*_TIMES, ("payments", "paid_at"))
        _payments(con, run)
    limit = now + cfg.max_future
    if cfg.end is not None and cfg.end > limit:
        run.problems.append(
            f"data.end {cfg.end:%Y-%m-%d %H:%M} is after {limit:%Y-%m-%d %H:%M} UTC, in the "
            f"future. Set it to when the data was exported, or remove it to use the last event."
        )
    for table, ts in times:
        _check(
            con,
            run,
            f"SELECT {ts} FROM stage_{table} WHERE {ts} < TIMESTAMP '1990-01-01'",
            f"{table}: {{n}} rows have {ts} before 1990 (e.g. {{examples}}). Epoch values may be "
            f"in another unit or a default date was exported; check data.epoch_unit and the "
            f"export.",
        )
        _check(
            con,
            run,
            f"SELECT {ts} FROM stage_{table} WHERE {ts} > TIMESTAMP '{limit:%Y-%m-%d %H:%M:%S}'",
            f"{table}: {{n}} rows have {ts} after {limit:%Y-%m-%d %H:%M} UTC, in the future "
            f"(e.g. {{examples}}). Check the time zone and the epoch unit (data.timezone, "
            f"data.epoch_unit).",
        )


def _payments(con: duckdb.DuckDBPyConnection, run: Cleaning) -> None:
    """Payments name accounts the users table knows, with a positive number of seats."""
    _check(
        con,
        run,
        "SELECT DISTINCT account_id FROM stage_payments WHERE account_id NOT IN "
        "(SELECT account_id FROM stage_users WHERE account_id IS NOT NULL)",
        "payments: {n} accounts paid but no user in the users table belongs to them (e.g. "
        "{examples}). Export users (with account_id) and payments from the same snapshot.",
    )
    _check(
        con,
        run,
        "SELECT seats FROM stage_payments WHERE seats <= 0",
        "payments: {n} rows have seats of 0 or less (e.g. {examples}). Give the seats the "
        "payment bought, a positive number.",
    )


def _converted_before_signup(con: duckdb.DuckDBPyConnection, run: Cleaning) -> None:
    """Conversions before the trial began: a note when few, a problem when most are.

    A user who paid before signing up was already a customer; label times exclude them. When
    most converters did, the times are misread (a zone, a unit, a swapped mapping) instead.
    """
    before = (
        "SELECT c.user_id FROM stage_conversions c JOIN stage_users u USING (user_id) "
        "GROUP BY c.user_id, u.signup_at HAVING min(c.converted_at) < u.signup_at"
    )
    [(n, total)] = con.execute(
        f"SELECT (SELECT count(*) FROM ({before})), "
        "(SELECT count(DISTINCT user_id) FROM stage_conversions "
        " WHERE user_id IN (SELECT user_id FROM stage_users))"
    ).fetchall()
    if not n:
        return
    shown = ", ".join(examples(con, before + " ORDER BY c.user_id"))
    if 2 * n > total:
        run.problems.append(
            f"conversions: {n:,} of {total:,} converters have converted_at before their "
            f"signup_at (e.g. {shown}). Check that converted_at and signup_at are mapped to the "
            f"right columns and read in the same time zone (data.columns, data.timezone)."
        )
    else:
        run.notes.append(
            f"conversions: {n:,} users converted before their signup_at (e.g. {shown}); they "
            f"were customers already, so label times exclude them"
        )
