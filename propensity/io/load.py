"""Loading the input tables into DuckDB in canonical form, cleaned and validated.

Every cleaning step is counted and reported, never silent; every contract violation is collected
and raised together in one :class:`DataContractError`. The result stays in DuckDB: only summaries
come back to Python, so the event log never has to fit in a pandas frame.

No PII is ever stored: the first projection of the users table that DuckDB materialises (in its
work database, or in a spill file) already holds the email's domain instead of the address, and
drops ``data.pii_columns`` and any other column whose values are email addresses; addresses in
event names, other text and event properties are masked in the same pass (``io/columns.py``).
Examples in messages are redacted too.
"""

from __future__ import annotations

import contextlib
import difflib
import weakref
from dataclasses import dataclass, replace
from datetime import UTC, datetime

import duckdb

from propensity.config import MEMORY_VARIABLE, DataConfig
from propensity.contract import TABLES, TableContract, source_candidates
from propensity.errors import DataContractError, OutputError, redact, shorten
from propensity.io.checks import empty_column, validate
from propensity.io.clean import Cleaning, Drop, clean, examples
from propensity.io.columns import (
    EMAIL_SQL,
    PSEUDONYM,
    as_text,
    domain_text,
    json_text,
    key_text,
    masked,
)
from propensity.io.dedup import Dedup, choose_dedup, dedup_select, drop_exact_duplicates
from propensity.io.sources import Source, describe, ident, open_source, read_failure, sql_string
from propensity.io.summary import DataSummary, summarise
from propensity.io.timestamps import timestamp_sql
from propensity.io.window import (
    HISTORY,
    EventWindow,
    WindowMissed,
    accounts_of_events,
    history_sql,
    make_history,
    newest,
    trim_history,
    window_filter,
)
from propensity.io.workspace import remove, work_folder

__all__ = ["LoadedData", "connect", "load_data"]


@dataclass
class LoadedData:
    """A DuckDB connection holding canonical `events`, `users`, `conversions`, and the report."""

    con: duckdb.DuckDBPyConnection
    report: DataSummary


def connect(threads: int = 2, memory_limit: str = "3GB") -> duckdb.DuckDBPyConnection:
    """A DuckDB connection on a temporary database file, so that tables are stored compressed and
    a large event log spills to disk within `memory_limit` instead of filling memory.

    The folder holding the database and spill files is owned by this process: removed when the
    connection is collected or the process exits, and by the next run if this one is killed.
    """
    folder = work_folder("duckdb")
    con = duckdb.connect(str(folder / "work.duckdb"))
    weakref.finalize(con, remove, folder)
    con.execute(f"SET threads = {int(threads)}")
    con.execute(f"SET memory_limit = {sql_string(memory_limit)}")
    # as given: the feature build lowers DuckDB's share while it returns its table, then
    # restores this (features/engine.py)
    con.execute(f"SET VARIABLE {MEMORY_VARIABLE} = {sql_string(memory_limit)}")
    con.execute(f"SET temp_directory = {sql_string(str(folder))}")
    con.execute("SET preserve_insertion_order = false")
    con.execute("SET TimeZone = 'UTC'")
    with contextlib.suppress(duckdb.InvalidInputException):  # Jupyter without ipywidgets
        con.execute("SET enable_progress_bar = false")
    return con


def _map_columns(
    table: TableContract, found: dict[str, str], cfg: DataConfig, problems: list[str]
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
            hint = f" Did you mean {shorten(close[0], 60)!r}?" if close else ""
            shown = ", ".join(shorten(c, 60) for c in list(found)[:40])
            more = f" and {len(found) - 40} more" if len(found) > 40 else ""
            problems.append(
                f"{table.name}: missing column {column.name!r} (looked for "
                f"{', '.join(repr(shorten(c, 60)) for c in candidates)}; found {shown}{more})."
                f"{hint} Map it with data.columns.{table.name}.{column.name}: <source column> in "
                f"the config, or choose the matching preset (canonical, segment, amplitude, "
                f"mixpanel)."
            )
    return mapping if ok else None


def _extra_user_columns(
    con: duckdb.DuckDBPyConnection,
    scan: str,
    found: dict[str, str],
    mapping: dict[str, str],
    cfg: DataConfig,
    notes: list[str],
) -> list[str]:
    """Users columns passed through as attributes: not mapped, not PII, not holding addresses."""
    pii = {*cfg.pii_columns, "email", mapping.get("email", "email")}
    extras = [c for c in found if c not in set(mapping.values()) and c not in pii]
    texts = [c for c in extras if found[c].upper() in ("VARCHAR", "JSON")]
    if texts:
        # every row, not a sample: a column empty in its first rows may hold addresses later
        probes = ", ".join(
            f"bool_or(contains(CAST({ident(c)} AS VARCHAR), '@') AND "
            f"regexp_matches(CAST({ident(c)} AS VARCHAR), {sql_string(EMAIL_SQL)}))"
            for c in texts
        )
        hits = con.execute(f"SELECT {probes} FROM {scan}")
        flagged = [c for c, hit in zip(texts, hits.fetchone(), strict=True) if hit]
        for c in flagged:
            notes.append(
                f"users: column {shorten(c, 60)!r} holds email addresses, so it was dropped "
                f"(list it under data.pii_columns to say so)"
            )
        extras = [c for c in extras if c not in flagged]
    return [ident(c) for c in extras]


def _stage(
    con: duckdb.DuckDBPyConnection,
    source: Source,
    table: TableContract,
    cfg: DataConfig,
    run: Cleaning,
    window: EventWindow | None = None,
) -> int | None:
    """Create `stage_<table>` with canonical columns; returns rows read, or None on failure.

    With ``window`` (events only) the events staged are those in ``[start, end)``, and the
    per-user summary of the whole history (``stage_history``, see :mod:`propensity.io.window`)
    is made from one aggregate over the source instead.
    """
    found = describe(con, source)
    mapping = _map_columns(table, found, cfg, run.problems)
    if mapping is None:
        return None
    run.sources[table.name] = mapping
    # CSV ids keep their exact spelling ("007" stays "007"), and CSV times are read as text and
    # parsed below: a type the sniffer guessed from the first rows fails mid-scan on a later row.
    text = ("user_id", "account_id", *(c.name for c in table.columns if c.kind == "timestamp"))
    varchar = tuple(mapping[c] for c in text if c in mapping) if source.format == "csv" else ()
    found = {**found, **dict.fromkeys(varchar, "VARCHAR")}
    scan = source.scan_sql(varchar_columns=varchar)
    (rows,) = con.execute(f"SELECT count(*) FROM {scan}").fetchone()
    windowed = window is not None and table.name == "events"
    if rows == 0:
        run.problems.append(f"{table.name}: {source.given!r} has no rows. Export the data again.")
        return None
    select: list[str] = []
    ts_checks: list[tuple[str, str, str]] = []
    for column in table.columns:
        src = mapping.get(column.name)
        if src is not None and found[src].strip('"').upper() == "NULL":  # no value at all
            if column.required:
                run.problems.append(empty_column(table.name, column.name, src, int(rows)))
                return None
            src = None
        if table.name == "users" and column.name in ("email", "email_domain"):
            continue  # read once, below, straight into the domain
        if src is None:
            select.append(f"CAST(NULL AS VARCHAR) AS {column.name}")
            continue
        if column.kind == "timestamp":
            reading = timestamp_sql(con, scan, src, found[src], cfg.timezone, cfg.epoch_unit)
            if reading is None:
                run.problems.append(
                    f"{table.name}: column {shorten(src, 60)!r} (for {column.name!r}) has type "
                    f"{found[src]}, which cannot hold timestamps. Map {column.name!r} to a "
                    f"timestamp, an epoch number or an ISO-8601 text column."
                )
                return None
            if reading.note:
                run.notes.append(f"{table.name}: {reading.note}")
            select.append(f"{reading.expr} AS {column.name}")
            ts_checks.append((column.name, src, reading.expr))
        elif column.kind == "json":
            select.append(f"{json_text(src, found[src])} AS {column.name}")
        elif column.name in ("user_id", "account_id"):
            select.append(f"{key_text(src, found[src])} AS {column.name}")
        elif column.kind == "number":
            expr = f"TRY_CAST({as_text(src, found[src])} AS DOUBLE)"
            select.append(f"{expr} AS {column.name}")
            ts_checks.append((column.name, src, expr))
        else:  # event names and other text: an address in one is masked, never stored
            select.append(f"{masked(as_text(src, found[src]))} AS {column.name}")
    if table.name == "users":
        select.append(f"CAST({domain_text(mapping, found)} AS VARCHAR) AS email_domain")
        select += _extra_user_columns(con, scan, found, mapping, cfg, run.notes)
    keep = []
    # A windowed read does not count unparsable times over the whole history (that is a scan
    # of it); their rows are outside every window, so they are left out all the same.
    for name, src, expr in [] if windowed else ts_checks:
        bad = f"FROM {scan} WHERE {ident(src)} IS NOT NULL AND ({expr}) IS NULL"
        (n_bad,) = con.execute(f"SELECT count(*) {bad}").fetchone()
        if not n_bad:
            continue
        shown = examples(con, f"SELECT CAST({ident(src)} AS VARCHAR) {bad}")
        number = table.column(name).kind == "number"
        if n_bad == rows:
            run.problems.append(
                f"{table.name}: no value of column {shorten(src, 60)!r} could be read as a "
                + (
                    "number (e.g. {}). Map it to a numeric column.".format(", ".join(shown))
                    if number
                    else f"timestamp (e.g. {', '.join(shown)}). Use ISO-8601 text or epoch "
                    f"seconds or milliseconds, or fix the column mapping."
                )
            )
            return None
        run.drops.append(Drop(table.name, f"unparsable {name}", int(n_bad), shown))
        keep.append(f"NOT ({ident(src)} IS NOT NULL AND ({expr}) IS NULL)")
    where = f" WHERE {' AND '.join(keep)}" if keep else ""
    if table.name == "events":
        ts_expr = next(expr for name, _, expr in ts_checks if name == "timestamp")
        dedup = choose_dedup(con, scan, found, cfg, ts_expr)
        if isinstance(dedup, str):
            run.problems.append(dedup)
            return None
        if window is not None and windowed:
            raws = {c: ident(mapping[c]) for c in ("user_id", "event", "timestamp")}
            exprs = {c: _expr_of(select, c) for c in raws}
            text_times = found[mapping["timestamp"]].upper() in ("VARCHAR", "JSON")
            make_history(con, history_sql(exprs, raws, scan, cfg.end, monotone=not text_times))
            run.rows_sql = f"SELECT {', '.join(select)} FROM {scan}"
            # the newest event before cleaning: cleaning may only make it older (WindowMissed)
            run.window = window(cfg.end or newest(con))
            raw = mapping["timestamp"]
            where = window_filter(ts_expr, ident(raw), found[raw], cfg.timezone, run.window)
            (rows,) = con.execute(f"SELECT count(*) FROM {scan} WHERE {where}").fetchone()
            where = f" WHERE {where}"
        query = dedup_select(dedup, select, scan, where)
    else:
        query = f"SELECT {', '.join(select)} FROM {scan}{where}"
    # The events go to a TEMP table: it lives in memory and spills to the work folder past
    # data.memory_limit, while a table of the work database is compressed and written to its
    # file first, which made this one statement most of the load (benchmarks/io.py). What is
    # stored is the same either way: the projection above already masked every address.
    temp = "TEMP " if table.name == "events" else ""
    con.execute(f"CREATE OR REPLACE {temp}TABLE stage_{table.name} AS {query}")
    if table.name == "events":
        if dedup.mode == "exact":
            drop_exact_duplicates(con, "stage_events")
        (kept,) = con.execute("SELECT count(*) FROM stage_events").fetchone()
        n_dup = rows - sum(d.rows for d in run.drops if d.table == "events") - kept
        run.dedup = Dedup(dedup.mode, dedup.column, dedup.why, int(n_dup))
        if n_dup:
            run.drops.append(Drop("events", run.dedup.reason, int(n_dup), ()))
    return int(rows)


def _note_pseudonyms(con: duckdb.DuckDBPyConnection, run: Cleaning) -> None:
    """Say how many user ids were email addresses, and how they are keyed from now on."""
    (n,) = con.execute(
        f"SELECT count(DISTINCT user_id) FROM stage_users "
        f"WHERE starts_with(user_id, {sql_string(PSEUDONYM)})"
    ).fetchone()
    if n:
        run.notes.append(
            f"users: {n:,} user ids are email addresses; they are never stored: every table and "
            f"output keys them as '{PSEUDONYM}' + the SHA-256 of the lowercased address (hash "
            f"your CRM's email field the same way to join)"
        )


def _expr_of(select: list[str], column: str) -> str:
    """The expression of ``column`` in a projection list of ``expr AS column``."""
    return next(x.removesuffix(f" AS {column}") for x in select if x.endswith(f" AS {column}"))


_DISK_FULL = ("No space left on device", "File too large", "Disk quota exceeded")


def load_data(
    cfg: DataConfig,
    con: duckdb.DuckDBPyConnection | None = None,
    now: datetime | None = None,
    window: EventWindow | None = None,
) -> LoadedData:
    """Read, map, clean and validate the inputs named by `cfg` into canonical DuckDB tables.

    ``window`` (see :mod:`propensity.io.window`): read only the events in the ``[start, end)``
    it returns for the newest event, and keep an exact per-user summary of the whole history
    in ``event_history``. Raises :class:`DataContractError` listing every problem found.
    """
    con = con or connect(memory_limit=cfg.memory_limit)
    now = now or datetime.now(UTC).replace(tzinfo=None)
    try:
        if window is not None:
            try:
                return _load(con, cfg, now, window)
            except WindowMissed:
                for name in ("stage_history", HISTORY):
                    con.execute(f"DROP TABLE IF EXISTS {name}")
        return _load(con, cfg, now)
    except duckdb.OutOfMemoryException as exc:
        raise DataContractError(
            [
                f"DuckDB ran out of memory reading the data within data.memory_limit "
                f"({cfg.memory_limit}): {shorten(redact(str(exc).splitlines()[0]), 200)}. Raise "
                f"data.memory_limit, or free memory on this machine."
            ]
        ) from None
    except duckdb.IOException as exc:
        said = next((s for s in _DISK_FULL if s in str(exc)), None)
        if said is not None:
            raise OutputError(
                f"Cannot write DuckDB's work files in the temporary folder ({said}: "
                f"{shorten(redact(str(exc).splitlines()[0]), 200)}). Free disk space there, or "
                f"point TMPDIR at a bigger disk, and run again."
            ) from None
        raise


def _load(
    con: duckdb.DuckDBPyConnection,
    cfg: DataConfig,
    now: datetime,
    window: EventWindow | None = None,
) -> LoadedData:
    run = Cleaning()
    sources = {"events": cfg.events, "users": cfg.users, "conversions": cfg.conversions}
    if cfg.lost_users is not None:
        sources["lost_users"] = cfg.lost_users
    if cfg.payments is not None:
        sources["payments"] = cfg.payments
    rows_read: dict[str, int] = {}
    for name, given in sources.items():
        if given is None and name == "users":
            if "events" not in rows_read:
                continue
            first = "first_at" if run.window else "timestamp"  # the history's, when windowed
            con.execute(
                "CREATE OR REPLACE TABLE stage_users AS SELECT user_id, "
                f"min({first}) AS signup_at, CAST(NULL AS VARCHAR) AS account_id, "
                "CAST(NULL AS VARCHAR) AS email_domain FROM "
                f"{'stage_history' if run.window else 'stage_events'} GROUP BY user_id"
            )
            run.notes.append("users: no users table given; signup taken as each user's first event")
            rows_read[name] = 0
            continue
        if given is None:
            con.execute(
                "CREATE OR REPLACE TABLE stage_conversions "
                "(user_id VARCHAR, converted_at TIMESTAMP)"
            )
            rows_read[name] = 0
            continue
        source = None
        try:
            source = open_source(name, given, cfg.format)
            n = _stage(con, source, TABLES[name], cfg, run, window)
        except DataContractError as exc:
            run.problems.extend(exc.problems)
            n = None
        except (
            duckdb.InvalidInputException,
            duckdb.ConversionException,
            duckdb.IOException,
            duckdb.BinderException,
        ) as exc:
            if source is None or any(s in str(exc) for s in _DISK_FULL):
                raise
            # a file that breaks past the sniffer's sample: a ragged row, bad bytes, a cut gzip
            run.problems.extend(read_failure(source, exc).problems)
            n = None
        if n is not None:
            rows_read[name] = n
    if run.problems:
        raise DataContractError(run.problems)
    _note_pseudonyms(con, run)

    if run.window is not None:
        accounts_of_events(con, run.rows_sql, cfg.end)
    clean(con, cfg, run, "stage_accounts" if run.window else "stage_events")
    if window is not None and run.window is not None:
        trim_history(con, cfg.unknown_user_events == "drop")
        start, end = window(cfg.end or newest(con))
        if start < run.window[0] or end > run.window[1]:
            raise WindowMissed
    validate(con, cfg, run, rows_read, now)
    if run.problems:
        raise DataContractError(run.problems)
    for name in sources:
        con.execute(f"DROP TABLE IF EXISTS {name}")
        con.execute(f"ALTER TABLE stage_{name} RENAME TO {name}")
    con.execute("DROP TABLE IF EXISTS data_end")
    if cfg.end is not None:  # label times of every job read it from here (see propensity.labels)
        con.execute("CREATE TABLE data_end AS SELECT CAST(? AS TIMESTAMP) AS data_end", [cfg.end])
    report = summarise(con, sources, rows_read, run, cfg.end)
    if run.window is not None:
        report = _windowed_report(con, report, run.window, cfg.end)
    return LoadedData(con, report)


def _windowed_report(
    con: duckdb.DuckDBPyConnection,
    report: DataSummary,
    window: tuple[datetime, datetime],
    end: datetime | None,
) -> DataSummary:
    """The summary of a windowed read: the event range is the history's, and it says so."""
    con.execute(f"DROP TABLE IF EXISTS {HISTORY}")
    con.execute(f"ALTER TABLE stage_history RENAME TO {HISTORY}")
    first, last = con.execute(f"SELECT min(first_at), max(last_at) FROM {HISTORY}").fetchone()
    note = (
        f"events: read only {window[0]:%Y-%m-%d %H:%M} to {window[1]:%Y-%m-%d %H:%M} (what "
        f"scoring needs) and a per-user summary of the history; counts and drops are the window's"
    )
    return replace(
        report,
        first_event=first,
        last_event=last,
        data_end=end if end is not None else last,
        notes=(*report.notes, note),
    )
