"""Loading the three input tables into DuckDB in canonical form, cleaned and validated.

Every cleaning step is counted and reported, never silent; every contract violation is collected
and raised together in one :class:`DataContractError`. The result stays in DuckDB: only summaries
come back to Python, so the event log never has to fit in a pandas frame.
"""

from __future__ import annotations

import contextlib
import difflib
import shutil
import tempfile
import weakref
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import duckdb

from propensity.config import DataConfig
from propensity.contract import TABLES, TableContract, source_candidates
from propensity.errors import DataContractError
from propensity.io.report import Drop, LoadReport, summarise
from propensity.io.sources import Source, describe, open_source, read_failure, sql_string
from propensity.io.timestamps import timestamp_sql

__all__ = ["LoadedData", "connect", "load_data"]

_EXAMPLES = 3


@dataclass
class LoadedData:
    """A DuckDB connection holding canonical `events`, `users`, `conversions`, and the report."""

    con: duckdb.DuckDBPyConnection
    report: LoadReport


def connect(threads: int = 2, memory_limit: str = "3GB") -> duckdb.DuckDBPyConnection:
    """A DuckDB connection on a temporary database file, so that tables are stored compressed and
    a large event log spills to disk within `memory_limit` instead of filling memory."""
    spill = tempfile.mkdtemp(prefix="propensity-duckdb-")
    con = duckdb.connect(str(Path(spill) / "work.duckdb"))
    weakref.finalize(con, shutil.rmtree, spill, ignore_errors=True)
    con.execute(f"SET threads = {int(threads)}")
    con.execute(f"SET memory_limit = {sql_string(memory_limit)}")
    con.execute(f"SET temp_directory = {sql_string(spill)}")
    con.execute("SET preserve_insertion_order = false")
    con.execute("SET TimeZone = 'UTC'")
    with contextlib.suppress(duckdb.InvalidInputException):  # Jupyter without ipywidgets
        con.execute("SET enable_progress_bar = false")
    return con


@dataclass
class _Problems:
    items: list[str] = field(default_factory=list)

    def add(self, text: str) -> None:
        self.items.append(text)


def _map_columns(
    table: TableContract, found: dict[str, str], cfg: DataConfig, problems: _Problems
) -> dict[str, str] | None:
    """Canonical column -> source column, or None when a required one is missing."""
    overrides = cfg.columns.get(table.name, {})  # type: ignore[call-overload]
    mapping: dict[str, str] = {}
    ok = True
    for column in table.columns:
        candidates = source_candidates(table.name, column.name, cfg.preset, overrides)
        hit = next((c for c in candidates if c in found), None)
        if hit is not None:
            mapping[column.name] = hit
        elif column.required:
            ok = False
            close = difflib.get_close_matches(candidates[0], list(found), n=1, cutoff=0.5)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            problems.add(
                f"{table.name}: missing column {column.name!r} (looked for "
                f"{', '.join(repr(c) for c in candidates)}; found {', '.join(found)}).{hint} "
                f"Map it with data.columns.{table.name}.{column.name}: <source column> in the "
                f"config, or choose the matching preset (canonical, segment, amplitude, mixpanel)."
            )
    return mapping if ok else None


def _examples(con: duckdb.DuckDBPyConnection, sql: str) -> tuple[str, ...]:
    return tuple(str(r[0]) for r in con.execute(f"{sql} LIMIT {_EXAMPLES}").fetchall())


def _stage(
    con: duckdb.DuckDBPyConnection,
    source: Source,
    table: TableContract,
    cfg: DataConfig,
    problems: _Problems,
    drops: list[Drop],
    notes: list[str],
) -> int | None:
    """Create `stage_<table>` with canonical columns; returns rows read, or None on failure."""
    found = describe(con, source)
    mapping = _map_columns(table, found, cfg, problems)
    if mapping is None:
        return None
    # CSV ids keep their exact spelling ("007" stays "007"), and CSV times are read as text and
    # parsed below: a type the sniffer guessed from the first rows fails mid-scan on a later row.
    text = ("user_id", "account_id", *(c.name for c in table.columns if c.kind == "timestamp"))
    as_text = tuple(mapping[c] for c in text if c in mapping) if source.format == "csv" else ()
    found = {**found, **dict.fromkeys(as_text, "VARCHAR")}
    scan = source.scan_sql(varchar_columns=as_text)
    (rows,) = con.execute(f"SELECT count(*) FROM {scan}").fetchone()
    if rows == 0:
        problems.add(f"{table.name}: {source.given!r} has no rows. Export the data again.")
        return None
    select: list[str] = []
    ts_checks: list[tuple[str, str, str]] = []
    for column in table.columns:
        src = mapping.get(column.name)
        if src is None:
            if column.name not in ("email", "email_domain"):
                select.append(f"CAST(NULL AS VARCHAR) AS {column.name}")
            continue
        if column.kind == "timestamp":
            reading = timestamp_sql(con, scan, src, found[src], cfg.timezone, cfg.epoch_unit)
            if reading is None:
                problems.add(
                    f"{table.name}: column {src!r} (for {column.name!r}) has type {found[src]}, "
                    f"which cannot hold timestamps. Map {column.name!r} to a timestamp, an epoch "
                    f"number or an ISO-8601 text column."
                )
                return None
            if reading.note:
                notes.append(f"{table.name}: {reading.note}")
            select.append(f"{reading.expr} AS {column.name}")
            ts_checks.append((column.name, src, reading.expr))
        elif column.kind == "json":
            text = f'"{src}"' if found[src].upper() == "VARCHAR" else f'to_json("{src}")'
            select.append(f"CAST({text} AS VARCHAR) AS {column.name}")
        else:
            select.append(f"{_as_text(src, found[src])} AS {column.name}")
    if table.name == "users":
        taken = set(mapping.values())
        pii = set(cfg.pii_columns) | {"email"}
        select += [f'"{c}"' for c in found if c not in taken and c not in pii]
    keep = []
    for name, src, expr in ts_checks:
        bad = f'FROM {scan} WHERE "{src}" IS NOT NULL AND ({expr}) IS NULL'
        (n_bad,) = con.execute(f"SELECT count(*) {bad}").fetchone()
        if not n_bad:
            continue
        examples = _examples(con, f'SELECT CAST("{src}" AS VARCHAR) {bad}')
        if n_bad == rows:
            problems.add(
                f"{table.name}: no value of column {src!r} could be read as a timestamp "
                f"(e.g. {', '.join(examples)}). Use ISO-8601 text or epoch seconds or "
                f"milliseconds, or fix the column mapping."
            )
            return None
        drops.append(Drop(table.name, f"unparsable {name}", int(n_bad), examples))
        keep.append(f'NOT ("{src}" IS NOT NULL AND ({expr}) IS NULL)')
    where = f" WHERE {' AND '.join(keep)}" if keep else ""
    # Exact duplicates go in the same pass (DISTINCT): one scan of a large export, not two.
    distinct = "DISTINCT " if table.name == "events" else ""
    con.execute(
        f"CREATE OR REPLACE TABLE stage_{table.name} AS "
        f"SELECT {distinct}{', '.join(select)} FROM {scan}{where}"
    )
    if distinct:
        (kept,) = con.execute(f"SELECT count(*) FROM stage_{table.name}").fetchone()
        n_dup = rows - sum(d.rows for d in drops if d.table == table.name) - kept
        if n_dup:
            drops.append(Drop(table.name, "exact duplicate events", int(n_dup), ()))
    return int(rows)


def _as_text(src: str, dtype: str) -> str:
    """A plain column as trimmed text, spelled the same whatever type the file gave it.

    JSON strings lose their quotes (a JSONL column mixing 7 and "7" is typed JSON) and whole
    floats lose their ".0" (pandas writes integer ids with a missing value as float64), so that
    7, 7.0 and "7" are one user in every table.
    """
    col = f'"{src}"'
    upper = dtype.upper()
    if upper == "JSON":
        col = f"json_extract_string({col}, '$')"
    elif upper in ("DOUBLE", "FLOAT") or upper.startswith("DECIMAL"):
        whole = f"isfinite({col}) AND abs({col}) < 1e18 AND {col} = trunc({col})"
        integer = f"CAST(CAST({col} AS BIGINT) AS VARCHAR)"
        col = f"CASE WHEN {whole} THEN {integer} ELSE CAST({col} AS VARCHAR) END"
    return f"NULLIF(TRIM(CAST({col} AS VARCHAR)), '')"


def _drop_where(
    con: duckdb.DuckDBPyConnection,
    table: str,
    where: str,
    reason: str,
    example: str,
    drops: list[Drop],
) -> None:
    (n,) = con.execute(f"SELECT count(*) FROM stage_{table} WHERE {where}").fetchone()
    if n:
        drops.append(
            Drop(
                table,
                reason,
                int(n),
                _examples(con, f"SELECT {example} FROM stage_{table} WHERE {where}"),
            )
        )
        con.execute(f"DELETE FROM stage_{table} WHERE {where}")


def load_data(
    cfg: DataConfig, con: duckdb.DuckDBPyConnection | None = None, now: datetime | None = None
) -> LoadedData:
    """Read, map, clean and validate the inputs named by `cfg` into canonical DuckDB tables.

    Raises :class:`DataContractError` listing every problem found.
    """
    con = con or connect(memory_limit=cfg.memory_limit)
    problems, drops, notes = _Problems(), [], []
    sources = {"events": cfg.events, "users": cfg.users, "conversions": cfg.conversions}
    rows_read: dict[str, int] = {}
    for name, given in sources.items():
        if given is None and name == "users":
            if "events" not in rows_read:
                continue
            con.execute(
                "CREATE OR REPLACE TABLE stage_users AS SELECT user_id, "
                "min(timestamp) AS signup_at, CAST(NULL AS VARCHAR) AS account_id, "
                "CAST(NULL AS VARCHAR) AS email_domain FROM stage_events GROUP BY user_id"
            )
            notes.append("users: no users table given; signup taken as each user's first event")
            rows_read[name] = 0
            continue
        if given is None:
            con.execute(
                "CREATE OR REPLACE TABLE stage_conversions "
                "(user_id VARCHAR, converted_at TIMESTAMP)"
            )
            rows_read[name] = 0
            continue
        try:
            source = open_source(name, given, cfg.format)
            n = _stage(con, source, TABLES[name], cfg, problems, drops, notes)
        except DataContractError as exc:
            problems.items.extend(exc.problems)
            n = None
        except (
            duckdb.InvalidInputException,
            duckdb.ConversionException,
            duckdb.IOException,
        ) as exc:
            # a file that breaks past the sniffer's sample: a ragged row, bad bytes, a cut gzip
            problems.items.extend(read_failure(source, exc).problems)
            n = None
        if n is not None:
            rows_read[name] = n
    if problems.items:
        raise DataContractError(problems.items)

    _clean(con, cfg, drops)
    _validate(con, cfg, problems, now or datetime.now(UTC).replace(tzinfo=None))
    if problems.items:
        raise DataContractError(problems.items)
    for name in ("events", "users", "conversions"):
        con.execute(f"DROP TABLE IF EXISTS {name}")
        con.execute(f"ALTER TABLE stage_{name} RENAME TO {name}")
    report = summarise(con, sources, rows_read, drops, notes)
    return LoadedData(con, report)


def _clean(con: duckdb.DuckDBPyConnection, cfg: DataConfig, drops: list[Drop]) -> None:
    # users: derive the email domain, then forget the address (no PII past this point)
    cols = [r[0] for r in con.execute("DESCRIBE stage_users").fetchall()]
    domain = "lower(NULLIF(TRIM(email_domain), ''))" if "email_domain" in cols else "NULL"
    if "email" in cols:
        domain = f"COALESCE({domain}, lower(NULLIF(split_part(TRIM(email), '@', 2), '')))"
    rest = [c for c in cols if c not in ("email", "email_domain")]
    con.execute(
        f"CREATE OR REPLACE TABLE stage_users AS SELECT "
        f"{', '.join(rest)}, CAST({domain} AS VARCHAR) AS email_domain FROM stage_users"
    )
    for table, key in (("events", "user_id"), ("users", "user_id"), ("conversions", "user_id")):
        _drop_where(con, table, f"{key} IS NULL", "missing user_id", "'(null)'", drops)
    _drop_where(con, "events", "event IS NULL", "missing event name", "user_id", drops)
    for table, ts in (
        ("events", "timestamp"),
        ("users", "signup_at"),
        ("conversions", "converted_at"),
    ):
        _drop_where(con, table, f"{ts} IS NULL", f"missing {ts}", "user_id", drops)

    internal_domains = ", ".join(sql_string(d.lower()) for d in cfg.exclude.email_domains)
    internal_ids = ", ".join(sql_string(u) for u in cfg.exclude.user_ids)
    conditions = []
    if internal_domains:
        conditions.append(f"email_domain IN ({internal_domains})")
    if internal_ids:
        conditions.append(f"user_id IN ({internal_ids})")
    if conditions:
        con.execute(
            "CREATE OR REPLACE TEMP TABLE internal_users AS SELECT DISTINCT user_id FROM "
            f"stage_users WHERE {' OR '.join(conditions)}"
            + (f" UNION SELECT unnest([{internal_ids}])" if internal_ids else "")
        )
        for table in ("events", "conversions", "users"):
            _drop_where(
                con,
                table,
                "user_id IN (SELECT user_id FROM internal_users)",
                "internal or test user (data.exclude)",
                "user_id",
                drops,
            )
    if cfg.unknown_user_events == "drop":
        _drop_where(
            con,
            "events",
            "user_id NOT IN (SELECT user_id FROM stage_users)",
            "events of users missing from the users table",
            "user_id",
            drops,
        )
    # users without an account take the account their events carry, so account features work
    con.execute(
        "UPDATE stage_users SET account_id = e.account_id FROM "
        "(SELECT user_id, min(account_id) AS account_id FROM stage_events "
        " WHERE account_id IS NOT NULL GROUP BY user_id) e "
        "WHERE stage_users.account_id IS NULL AND stage_users.user_id = e.user_id"
    )


def _check(
    con: duckdb.DuckDBPyConnection, problems: _Problems, offenders: str, message: str
) -> None:
    """Add `message` (with {n} and {examples} filled in) when the `offenders` query has rows."""
    [(n,)] = con.execute(f"SELECT count(*) FROM ({offenders})").fetchall()
    if n:
        problems.add(message.format(n=n, examples=", ".join(_examples(con, offenders))))


_TIMES = (("events", "timestamp"), ("users", "signup_at"), ("conversions", "converted_at"))


def _validate(
    con: duckdb.DuckDBPyConnection, cfg: DataConfig, problems: _Problems, now: datetime
) -> None:
    for table in ("events", "users"):
        [(n,)] = con.execute(f"SELECT count(*) FROM stage_{table}").fetchall()
        if n == 0:
            problems.add(
                f"{table}: no rows left after cleaning (see the drops above). Check the "
                f"column mapping and data.exclude."
            )
    _check(
        con,
        problems,
        "SELECT user_id FROM stage_users GROUP BY user_id HAVING count(*) > 1",
        "users: {n} user_id values appear more than once (e.g. {examples}). Keep one row per "
        "user (the trial start) in the users table.",
    )
    _check(
        con,
        problems,
        "SELECT DISTINCT user_id FROM stage_conversions "
        "WHERE user_id NOT IN (SELECT user_id FROM stage_users)",
        "conversions: {n} users converted but are not in the users table (e.g. {examples}). "
        "Export users and conversions from the same snapshot, or add the missing users.",
    )
    if cfg.unknown_user_events == "fail":
        _check(
            con,
            problems,
            "SELECT DISTINCT user_id FROM stage_events "
            "WHERE user_id NOT IN (SELECT user_id FROM stage_users)",
            "events: {n} users have events but are not in the users table (e.g. {examples}). "
            "Add them, or set data.unknown_user_events: drop.",
        )
    limit = now + cfg.max_future
    for table, ts in _TIMES:
        _check(
            con,
            problems,
            f"SELECT {ts} FROM stage_{table} WHERE {ts} < TIMESTAMP '1990-01-01'",
            f"{table}: {{n}} rows have {ts} before 1990 (e.g. {{examples}}). Epoch values may be "
            f"in another unit or a default date was exported; check data.epoch_unit and the "
            f"export.",
        )
        _check(
            con,
            problems,
            f"SELECT {ts} FROM stage_{table} WHERE {ts} > TIMESTAMP '{limit:%Y-%m-%d %H:%M:%S}'",
            f"{table}: {{n}} rows have {ts} after {limit:%Y-%m-%d %H:%M} UTC, in the future "
            f"(e.g. {{examples}}). Check the time zone and the epoch unit (data.timezone, "
            f"data.epoch_unit).",
        )
