"""Cleaning the staged tables: each rule removes what it must, counts it and names examples.

Rules, in order: rows without an id, an event name or a time; rows after ``data.end``;
internal and test users (``data.exclude``); events of users missing from the users table
(``data.unknown_user_events``); bots and scripted accounts (``data.bots``). Event properties that
are not JSON lose their properties (the event is kept), and users without an account take the
account their events carry. Examples never show an email address.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

import duckdb

from propensity.config import DataConfig
from propensity.errors import redact, shorten
from propensity.io.bots import bot_rule, find_bots, per_user_table
from propensity.io.dedup import Dedup
from propensity.io.sources import sql_string
from propensity.io.timestamps import local_sql

__all__ = ["Cleaning", "Drop", "clean", "drop_where", "examples", "has_table"]

_EXAMPLES = 3
_TIMES = {
    "events": "timestamp",
    "users": "signup_at",
    "conversions": "converted_at",
    "lost_users": "lost_at",
}
BOT_REASON = "bot or scripted account (data.bots)"
PER_USER = "_user_events"  # each user's events and busiest day, while cleaning


@dataclass(frozen=True)
class Drop:
    """Rows removed by one cleaning rule, with a few examples (never email addresses)."""

    table: str
    reason: str
    rows: int
    examples: tuple[str, ...]


@dataclass
class Cleaning:
    """What loading found so far: problems, drops, notes, and how each table was read."""

    problems: list[str] = field(default_factory=list)
    drops: list[Drop] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    sources: dict[str, dict[str, str]] = field(default_factory=dict)  # canonical -> source
    dedup: Dedup | None = None
    day_only: bool = False
    bots: list[tuple[str, str]] = field(default_factory=list)
    window: tuple[datetime, datetime] | None = None  # the events read, when not all of them
    rows_sql: str = ""  # the events' canonical projection of the whole source, when windowed
    users_with_events: int | None = None  # counted while cleaning, for the summary


def examples(con: duckdb.DuckDBPyConnection, sql: str) -> tuple[str, ...]:
    """The first few values of the first column of `sql` in sorted order, redacted and cut short
    for a message: sorted, so that the same input gives the same message (a LIMIT alone returns
    whichever rows DuckDB's threads reach first)."""
    rows = con.execute(f"SELECT * FROM ({sql}) ORDER BY 1 LIMIT {_EXAMPLES}").fetchall()
    return tuple(shorten(redact(str(r[0])), 60) for r in rows)


def has_table(con: duckdb.DuckDBPyConnection, name: str) -> bool:
    (n,) = con.execute(
        "SELECT count(*) FROM duckdb_tables() WHERE table_name = ?", [name]
    ).fetchone()
    return bool(n)


def drop_where(
    con: duckdb.DuckDBPyConnection,
    table: str,
    where: str,
    reason: str,
    example: str,
    drops: list[Drop],
) -> int:
    """Delete the rows of `stage_<table>` matching `where`, recording the drop; returns rows."""
    (n,) = con.execute(f"SELECT count(*) FROM stage_{table} WHERE {where}").fetchone()
    if n:
        shown = examples(con, f"SELECT DISTINCT {example} FROM stage_{table} WHERE {where}")
        drops.append(Drop(table, reason, int(n), shown))
        con.execute(f"DELETE FROM stage_{table} WHERE {where}")
    return int(n)


def clean(
    con: duckdb.DuckDBPyConnection, cfg: DataConfig, run: Cleaning, accounts: str = "stage_events"
) -> None:
    """Apply every cleaning rule to the staged tables, in order, recording what each removed.

    ``accounts``: the table users without an account take theirs from (``stage_accounts`` on a
    windowed read: the smallest account of their whole history, as on a full read).
    """
    tables = [t for t in _TIMES if has_table(con, f"stage_{t}")]
    for table in tables:
        drop_where(con, table, "user_id IS NULL", "missing user_id", "'(null)'", run.drops)
    drop_where(con, "events", "event IS NULL", "missing event name", "user_id", run.drops)
    for table in tables:
        ts = _TIMES[table]
        drop_where(con, table, f"{ts} IS NULL", f"missing {ts}", "user_id", run.drops)
    if cfg.end is not None:
        end = f"TIMESTAMP '{cfg.end:%Y-%m-%d %H:%M:%S}'"
        for table in tables:
            ts = _TIMES[table]
            reason = f"after data.end ({cfg.end:%Y-%m-%d %H:%M})"
            drop_where(con, table, f"{ts} > {end}", reason, f"CAST({ts} AS VARCHAR)", run.drops)
    _internal(con, cfg, tables, run)
    # From here on rules remove whole users only, so one per-user table gives the figures the
    # rest needs: the events of unknown users, what the bots' rules read (a scan of the events
    # each before) and, when some user has no account now, each user's smallest account (a
    # pass of its own before; a windowed read takes accounts from the whole history instead)
    fill = accounts == "stage_events" and _missing_accounts(con) > 0
    per_user_table(con, cfg.bots, "stage_events", PER_USER, account=fill)
    if cfg.unknown_user_events == "drop":
        unknown = "user_id NOT IN (SELECT user_id FROM stage_users)"
        (n,) = con.execute(f"SELECT count(*) FROM {PER_USER} WHERE {unknown}").fetchone()
        if n:
            drop_where(
                con,
                "events",
                unknown,
                "events of users missing from the users table",
                "user_id",
                run.drops,
            )
            con.execute(f"DELETE FROM {PER_USER} WHERE {unknown}")
    run.day_only = _day_only(con, cfg.timezone)
    _bots(con, cfg, tables, run)
    # no rule after this one removes events, so the users with events are the per-user
    # table's less the excluded bots (each has events): no DISTINCT over the events for it
    (users,) = con.execute(f"SELECT count(*) FROM {PER_USER}").fetchone()
    run.users_with_events = int(users) - (len(run.bots) if cfg.bots.exclude else 0)
    _properties(con, run)
    # users without an account take the smallest account their events carry, so account
    # features work; rules removed whole users only, so each remaining user's account is the
    # one their events carried before
    if fill:
        _fill_accounts(con, PER_USER)
    elif accounts != "stage_events" and _missing_accounts(con):
        con.execute(
            "CREATE OR REPLACE TEMP TABLE _user_accounts AS SELECT user_id, min(account_id) AS "
            f"account_id FROM {accounts} WHERE account_id IS NOT NULL GROUP BY user_id"
        )
        _fill_accounts(con, "_user_accounts")
        con.execute("DROP TABLE _user_accounts")
    con.execute(f"DROP TABLE {PER_USER}")
    if has_table(con, "stage_payments"):
        _payments(con, cfg, run)


def _payments(con: duckdb.DuckDBPyConnection, cfg: DataConfig, run: Cleaning) -> None:
    """Payments are keyed by account: rows without one, a time or seats say nothing."""
    for column in ("account_id", "paid_at", "seats"):
        example = "'(null)'" if column == "account_id" else "account_id"
        drop_where(con, "payments", f"{column} IS NULL", f"missing {column}", example, run.drops)
    if cfg.end is not None:
        end = f"TIMESTAMP '{cfg.end:%Y-%m-%d %H:%M:%S}'"
        reason = f"after data.end ({cfg.end:%Y-%m-%d %H:%M})"
        drop_where(con, "payments", f"paid_at > {end}", reason, "account_id", run.drops)


def _internal(con: duckdb.DuckDBPyConnection, cfg: DataConfig, tables: list[str], run: Cleaning):
    internal_domains = ", ".join(sql_string(d.lower()) for d in cfg.exclude.email_domains)
    internal_ids = ", ".join(sql_string(u) for u in cfg.exclude.user_ids)
    conditions = []
    if internal_domains:
        conditions.append(f"email_domain IN ({internal_domains})")
    if internal_ids:
        conditions.append(f"user_id IN ({internal_ids})")
    if not conditions:
        return
    con.execute(
        "CREATE OR REPLACE TEMP TABLE internal_users AS SELECT DISTINCT user_id FROM "
        f"stage_users WHERE {' OR '.join(conditions)}"
        + (f" UNION SELECT unnest([{internal_ids}])" if internal_ids else "")
    )
    for table in ("events", "conversions", *(t for t in tables if t == "lost_users"), "users"):
        drop_where(
            con,
            table,
            "user_id IN (SELECT user_id FROM internal_users)",
            "internal or test user (data.exclude)",
            "user_id",
            run.drops,
        )


def _fill_accounts(con: duckdb.DuckDBPyConnection, accounts: str) -> None:
    """Give users without an account the one `accounts` (one row per user) holds for them.

    The users table is written anew, in its order, instead of updated in place: an UPDATE of
    a million users' accounts took most of a load (54 s of CPU for 1M users, 10M events).
    """
    con.execute(
        "CREATE OR REPLACE TABLE _users_filled AS SELECT u.* REPLACE "
        "(coalesce(u.account_id, e.account_id) AS account_id) FROM stage_users u "
        f"LEFT JOIN {accounts} e ON u.user_id = e.user_id ORDER BY u.rowid"
    )
    con.execute("DROP TABLE stage_users")
    con.execute("ALTER TABLE _users_filled RENAME TO stage_users")


def _missing_accounts(con: duckdb.DuckDBPyConnection) -> int:
    """How many users have no account."""
    (n,) = con.execute("SELECT count(*) FROM stage_users WHERE account_id IS NULL").fetchone()
    return int(n)


def _day_only(con: duckdb.DuckDBPyConnection, tz: str) -> bool:
    """Whether every event time is at midnight in the data's zone (a day-only export)."""
    local = local_sql("timestamp", tz)
    (day_only,) = con.execute(
        f"SELECT bool_and({local} = date_trunc('day', {local})) FROM stage_events"
    ).fetchone()
    return bool(day_only)


def _bots(con: duckdb.DuckDBPyConnection, cfg: DataConfig, tables: list[str], run: Cleaning):
    rule = bot_rule(cfg.bots, run.day_only)
    run.bots = find_bots(con, cfg.bots, run.day_only, per_user=PER_USER)
    shown = "; ".join(f"{shorten(redact(u), 40)}: {why}" for u, why in run.bots[:3])
    more = f"; ... ({len(run.bots) - 3} more)" if len(run.bots) > 3 else ""
    if not cfg.bots.exclude:
        if run.bots:
            run.notes.append(
                f"bots: {len(run.bots):,} user(s) look scripted ({shown}{more}) but are kept "
                f"(data.bots.exclude: false). Rule: {rule}"
            )
        return
    run.notes.append(f"bots: a user is excluded as a bot for {rule} (data.bots)")
    if not run.bots:
        return
    users = "1 user" if len(run.bots) == 1 else f"{len(run.bots):,} users"
    run.notes.append(f"bots: {users} excluded ({shown}{more})")
    con.execute("CREATE OR REPLACE TEMP TABLE _bot_users (user_id VARCHAR)")
    con.executemany("INSERT INTO _bot_users VALUES (?)", [[u] for u, _ in run.bots])
    for table in ("events", "conversions", *(t for t in tables if t == "lost_users"), "users"):
        drop_where(
            con,
            table,
            "user_id IN (SELECT user_id FROM _bot_users)",
            BOT_REASON,
            "user_id",
            run.drops,
        )


def _properties(con: duckdb.DuckDBPyConnection, run: Cleaning) -> None:
    """Properties that are not valid JSON are cleared: one bad row must not stop a job."""
    bad = "properties IS NOT NULL AND NOT coalesce(json_valid(properties), false)"
    (n,) = con.execute(f"SELECT count(*) FROM stage_events WHERE {bad}").fetchone()
    if not n:
        return
    shown = examples(con, f"SELECT properties FROM stage_events WHERE {bad}")
    run.notes.append(
        f"events: {n:,} rows have properties that are not valid JSON (e.g. {', '.join(shown)}); "
        f"those events are kept without their properties"
    )
    con.execute(f"UPDATE stage_events SET properties = NULL WHERE {bad}")
