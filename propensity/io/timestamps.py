"""Reading timestamps the way real exports write them, into naive UTC seconds.

Accepted: native timestamps (naive ones are in the configured zone), timestamps with a zone,
epoch seconds or milliseconds (numbers or numeric strings; the unit is detected from the typical
magnitude unless the config fixes it, and the detection is reported), and ISO-8601 strings with
or without a zone. Everything is truncated to whole seconds so that epoch arithmetic is exact on
every engine. A value that cannot be a time (text that parses as none, NaN, infinity, an epoch
number beyond what a timestamp holds) reads as NULL: the reader drops and counts it, with
examples.
"""

from __future__ import annotations

from dataclasses import dataclass

import duckdb

from propensity.io.sources import ident, sql_string

__all__ = ["TimestampReading", "local_sql", "timestamp_sql"]

_NUMERIC = (
    "TINYINT",
    "SMALLINT",
    "INTEGER",
    "BIGINT",
    "HUGEINT",
    "UTINYINT",
    "USMALLINT",
    "UINTEGER",
    "UBIGINT",
    "FLOAT",
    "DOUBLE",
    "DECIMAL",
)
# epoch values above this are milliseconds: 1e11 seconds is the year 5138, 1e11 ms is 1973
_MS_ABOVE = 1e11
# the largest epoch value (in seconds) read as a time (about the year 287,000, where DuckDB's
# microsecond timestamps end); a larger one is not a time. Far-future values below it are read
# and then refused by the reader's future check, which names the epoch unit.
_MAX_EPOCH_S = 9_000_000_000_000
_ZONED = r"\d{2}:\d{2}(:\d{2}(\.\d+)?)?\s*(Z|z|UTC|[+-]\d{2}(:?\d{2})?)$"
_NUMBER = r"^\s*-?\d+(\.\d+)?\s*$"


@dataclass(frozen=True)
class TimestampReading:
    """How a source column is read: the SQL expression and a note for the data summary."""

    expr: str
    note: str | None = None


def _naive_to_utc(expr: str, tz: str) -> str:
    if tz.upper() == "UTC":
        return expr
    return f"timezone('UTC', timezone({sql_string(tz)}, {expr}))"


def _epoch(expr: str, unit: str) -> str:
    """Epoch number -> TIMESTAMP; NULL for NaN, infinity and values beyond any timestamp."""
    scale, limit = ("1000000.0", _MAX_EPOCH_S) if unit == "s" else ("1000.0", _MAX_EPOCH_S * 1000)
    value = f"CAST({expr} AS DOUBLE)"
    return (
        f"CASE WHEN isfinite({value}) AND abs({value}) <= {limit} "
        f"THEN make_timestamp(CAST(round({value} * {scale}) AS BIGINT)) END"
    )


def _detect_unit(con: duckdb.DuckDBPyConnection, scan: str, col: str, numeric: bool) -> str:
    """``ms`` when the typical (median) magnitude is in milliseconds, else ``s``.

    The median, not the maximum: one absurd value among good ones must not flip the unit of
    the whole column (it is dropped and counted instead). A column mixing units still fails
    loudly: whichever unit wins, the other half lands in 1970 or far in the future.
    """
    value = f"CAST({ident(col)} AS DOUBLE)" if numeric else f"TRY_CAST({ident(col)} AS DOUBLE)"
    (typical,) = con.execute(
        f"SELECT approx_quantile(abs({value}), 0.5) FROM {scan} WHERE isfinite({value})"
    ).fetchone()
    return "ms" if typical is not None and typical > _MS_ABOVE else "s"


def local_sql(utc_expr: str, tz: str) -> str:
    """A naive UTC expression as naive wall-clock time in `tz` (for day-only detection)."""
    if tz.upper() == "UTC":
        return utc_expr
    return f"timezone({sql_string(tz)}, timezone('UTC', {utc_expr}))"


def timestamp_sql(
    con: duckdb.DuckDBPyConnection,
    scan: str,
    col: str,
    dtype: str,
    tz: str = "UTC",
    epoch_unit: str = "auto",
) -> TimestampReading | None:
    """The expression turning source column `col` of type `dtype` into naive UTC seconds.

    Returns None when the type cannot hold a timestamp (e.g. BOOLEAN), so the caller can say so.
    """
    quoted = ident(col)
    upper = dtype.upper()
    if upper.startswith("TIMESTAMP WITH TIME ZONE") or upper == "TIMESTAMPTZ":
        expr = f"timezone('UTC', {quoted})"
        note = None
    elif upper.startswith("TIMESTAMP") or upper == "DATE":
        expr = _naive_to_utc(f"CAST({quoted} AS TIMESTAMP)", tz)
        note = None if tz.upper() == "UTC" else f"naive times in {col!r} read as {tz}"
    elif upper.startswith(_NUMERIC):
        unit = epoch_unit if epoch_unit != "auto" else _detect_unit(con, scan, col, True)
        expr = _epoch(quoted, unit)
        note = f"{col!r} read as epoch {'milliseconds' if unit == 'ms' else 'seconds'}"
    elif upper == "VARCHAR" or upper == "JSON":
        text = f"CAST({quoted} AS VARCHAR)"
        unit = epoch_unit if epoch_unit != "auto" else _detect_unit(con, scan, col, False)
        naive = _naive_to_utc(f"TRY_CAST({text} AS TIMESTAMP)", tz)
        number = _epoch(f"TRY_CAST({text} AS DOUBLE)", unit)
        expr = (
            f"CASE WHEN regexp_matches({text}, '{_NUMBER}') THEN {number} "
            f"WHEN regexp_matches({text}, '{_ZONED}') "
            f"THEN timezone('UTC', TRY_CAST({text} AS TIMESTAMPTZ)) "
            f"ELSE {naive} END"
        )
        note = None
    else:
        return None
    return TimestampReading(f"date_trunc('second', {expr})", note)
