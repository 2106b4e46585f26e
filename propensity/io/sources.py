"""Locating input files and turning them into DuckDB table expressions.

A source is a file, a directory of files, or a glob, in parquet, CSV (optionally gzipped) or JSON
lines. DuckDB reads them lazily, so a 100M-event export never has to fit in a pandas frame.
"""

from __future__ import annotations

import glob as globlib
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import duckdb

from propensity.errors import DataContractError

__all__ = ["Source", "open_source", "sql_string"]

Format = Literal["parquet", "csv", "jsonl"]

_SUFFIXES: dict[str, Format] = {
    ".parquet": "parquet",
    ".pq": "parquet",
    ".csv": "csv",
    ".tsv": "csv",
    ".csv.gz": "csv",
    ".tsv.gz": "csv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "jsonl",
    ".jsonl.gz": "jsonl",
    ".ndjson.gz": "jsonl",
    ".json.gz": "jsonl",
}


@dataclass(frozen=True)
class Source:
    """A readable input: what the user gave, the files it matched, and their format."""

    table: str
    given: str
    files: tuple[str, ...]
    format: Format

    def scan_sql(self, varchar_columns: tuple[str, ...] = ()) -> str:
        """A DuckDB table expression reading every file of this source."""
        files = "[" + ", ".join(sql_string(f) for f in self.files) + "]"
        if self.format == "parquet":
            return f"read_parquet({files}, union_by_name = true)"
        if self.format == "csv":
            # Ids keep their exact spelling ("007" stays "007"): read them as text.
            types = ""
            if varchar_columns:
                pairs = ", ".join(f"{sql_string(c)}: 'VARCHAR'" for c in varchar_columns)
                types = f", types = {{{pairs}}}"
            return f"read_csv({files}, header = true, union_by_name = true{types})"
        return f"read_json({files}, format = 'newline_delimited', union_by_name = true)"


def sql_string(value: str) -> str:
    """Quote a value as a SQL string literal (single quotes doubled).

    >>> sql_string("o'brien")
    "'o''brien'"
    """
    return "'" + str(value).replace("'", "''") + "'"


def _format_of(name: str) -> Format | None:
    lower = name.lower()
    for suffix in sorted(_SUFFIXES, key=len, reverse=True):
        if lower.endswith(suffix):
            return _SUFFIXES[suffix]
    return None


def open_source(table: str, given: str, fmt: str = "auto") -> Source:
    """Resolve a path, directory or glob into a :class:`Source`, or say why it cannot be read."""
    path = Path(given)
    if any(ch in given for ch in "*?["):
        files = sorted(globlib.glob(given, recursive=True))
    elif path.is_dir():
        files = sorted(
            str(p) for p in path.rglob("*") if p.is_file() and _format_of(p.name) is not None
        )
    elif path.is_file():
        files = [str(path)]
    else:
        raise DataContractError(
            [f"{table}: input {given!r} does not exist. Check data.{table} in the config."]
        )
    files = [f for f in files if not Path(f).name.startswith((".", "_"))]
    if not files:
        raise DataContractError(
            [
                f"{table}: {given!r} matched no parquet, CSV or JSONL files. Point data.{table} "
                f"at a file, a folder of files or a glob such as 'exports/*.parquet'."
            ]
        )
    if fmt != "auto":
        return Source(table, given, tuple(files), fmt)  # type: ignore[arg-type]
    formats = {_format_of(f) for f in files}
    if None in formats or len(formats) > 1:
        raise DataContractError(
            [
                f"{table}: cannot tell the format of {given!r} from its file names "
                f"({', '.join(Path(f).name for f in files[:3])}). Set data.format to parquet, csv "
                f"or jsonl in the config."
            ]
        )
    return Source(table, given, tuple(files), formats.pop())  # type: ignore[arg-type]


def describe(con: duckdb.DuckDBPyConnection, source: Source) -> dict[str, str]:
    """Column name -> DuckDB type of a source, read from its schema (no full scan)."""
    try:
        rows = con.execute(f"DESCRIBE SELECT * FROM {source.scan_sql()}").fetchall()
    except duckdb.Error as exc:
        first = str(exc).strip().splitlines()[0]
        raise DataContractError(
            [
                f"{source.table}: cannot read {source.given!r} as {source.format}: {first}. Check "
                f"that the file is complete and in the format its name says."
            ]
        ) from None
    return {name: dtype for name, dtype, *_ in rows}
