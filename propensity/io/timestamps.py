"""Reading timestamps the way real exports write them, into naive UTC seconds.

Accepted: native timestamps (naive ones are in the configured zone), timestamps with a zone,
epoch seconds or milliseconds (numbers or numeric strings; the unit is detected from the magnitude
unless the config fixes it, and the detection is reported), and ISO-8601 strings with or without a
zone. Everything is truncated to whole seconds so that epoch arithmetic is exact on every engine.
"""

from __future__ import annotations

from dataclasses import dataclass

import duckdb

from propensity.io.sources import sql_string

__all__ = ["TimestampReading", "timestamp_sql"]

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
    scale = "1000000.0" if unit == "s" else "1000.0"
    return f"make_timestamp(CAST(round(CAST({expr} AS DOUBLE) * {scale}) AS BIGINT))"


def _detect_unit(con: duckdb.DuckDBPyConnection, scan: str, col: str, numeric: bool) -> str:
    value = f'"{col}"' if numeric else f'TRY_CAST("{col}" AS DOUBLE)'
    (biggest,) = con.execute(f"SELECT max(abs({value})) FROM {scan}").fetchone()
    return "ms" if biggest is not None and biggest > _MS_ABOVE else "s"


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
    quoted = f'"{col}"'
    upper = dtype.upper()
    if upper.startswith("TIMESTAMP WITH TIME ZONE") or upper == "TIMESTAMPTZ":
        expr = f"timezone('UTC', {quoted})"
        note = None
    elif upper.startswith("TIMESTAMP") or upper == "DATE":
        expr = _naive_to_utc(f"CAST({quoted} AS TIMESTAMP)", tz)
        note = None if tz.upper() == "UTC" else f"naive times in '{col}' read as {tz}"
    elif upper.startswith(_NUMERIC):
        unit = epoch_unit if epoch_unit != "auto" else _detect_unit(con, scan, col, True)
        expr = _epoch(quoted, unit)
        note = f"'{col}' read as epoch {'milliseconds' if unit == 'ms' else 'seconds'}"
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
