"""Locating input files and turning them into DuckDB table expressions.

A source is a file, a directory of files, or a glob, in parquet, CSV (optionally gzipped) or JSON
lines. DuckDB reads them lazily, so a 100M-event export never has to fit in a pandas frame.
"""

from __future__ import annotations

import csv
import glob as globlib
import gzip
import json
import os
import re
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import duckdb

from propensity.errors import DataContractError

__all__ = ["Source", "open_source", "read_failure", "sql_string"]

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
    if all(os.path.getsize(f) == 0 for f in source.files):
        raise DataContractError(
            [f"{source.table}: {source.given!r} is empty (0 bytes). Export the data again."]
        )
    try:
        rows = con.execute(f"DESCRIBE SELECT * FROM {source.scan_sql()}").fetchall()
    except duckdb.Error as exc:
        raise read_failure(source, exc) from None
    found = {name: dtype for name, dtype, *_ in rows}
    # DuckDB's sniffer falls back to one column named after the whole header line when rows
    # disagree on their number of fields (a ragged row in its sample): find and name that row.
    if source.format == "csv" and len(found) == 1 and re.search(r"[,;\t|]", next(iter(found))):
        bad = _first_bad_line(source)
        if bad is not None:
            raise DataContractError([bad])
    return found


def read_failure(source: Source, exc: Exception) -> DataContractError:
    """One problem line for a file DuckDB could not read, naming the bad line when it can."""
    bad = _first_bad_line(source)
    if bad is not None:
        return DataContractError([bad])
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    first = _EMAIL.sub("<email>", first).rstrip(" .")  # a quoted value may be an address
    return DataContractError(
        [
            f"{source.table}: cannot read {source.given!r} as {source.format}: {first}. Check "
            f"that the file is complete and in the format its name says."
        ]
    )


_EMAIL = re.compile(r"[\w.+-]+@[\w-]+\.[\w.]+")


class _BadLine(Exception):
    def __init__(self, number: int, what: str, fix: str) -> None:
        super().__init__(what)
        self.number, self.what, self.fix = number, what, fix


class _Lines:
    """Decoded lines of a (possibly gzipped) file, counting them and checking UTF-8 as it goes."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.number = 0

    def __iter__(self) -> Iterator[str]:
        opener = gzip.open if self.path.lower().endswith(".gz") else open
        with opener(self.path, "rb") as handle:
            while True:
                try:
                    raw = handle.readline()
                except (EOFError, OSError, zlib.error):
                    raise _BadLine(
                        self.number + 1,
                        "is where the compressed stream ends early (the file is cut short)",
                        "Copy or export the file again.",
                    ) from None
                if not raw:
                    return
                self.number += 1
                try:
                    yield raw.decode("utf-8")
                except UnicodeDecodeError as exc:
                    raise _BadLine(
                        self.number,
                        f"is not UTF-8 text (byte 0x{raw[exc.start]:02x})",
                        "Re-export the file as UTF-8 (e.g. iconv -f latin1 -t utf-8).",
                    ) from None


def _first_bad_line(source: Source) -> str | None:
    """Why the first unreadable line of a CSV or JSONL source is bad, found by reading it in
    Python: DuckDB's own line numbers are approximate (off by one for JSON, by its buffer for
    CSV). Only runs after a read failed, so the extra pass costs nothing on good files."""
    if source.format == "parquet":
        return None
    for path in source.files:
        lines = _Lines(path)
        try:
            if source.format == "jsonl":
                _check_json_lines(lines)
            else:
                _check_csv_rows(lines, "\t" if ".tsv" in path.lower() else ",")
        except _BadLine as bad:
            return f"{source.table}: line {bad.number} of {path!r} {bad.what}. {bad.fix}"
        except csv.Error:
            continue  # a dialect Python's reader rejects (a bare \r): DuckDB's message stands
    return None


def _check_json_lines(lines: _Lines) -> None:
    for text in lines:
        if not text.strip():
            continue
        try:
            json.loads(text)
        except ValueError as exc:
            raise _BadLine(
                lines.number,
                f"is not valid JSON ({getattr(exc, 'msg', exc)})",
                "Fix or remove that line; each line must hold one JSON object.",
            ) from None


def _check_csv_rows(lines: _Lines, delimiter: str) -> None:
    reader = csv.reader(lines, delimiter=delimiter)
    header = next(reader, None)
    if header is None or len(header) < 2:
        return  # another delimiter, or no header: leave it to DuckDB's message
    for row in reader:
        if row and len(row) != len(header):
            raise _BadLine(
                lines.number,
                f"has {len(row)} fields where the header has {len(header)}",
                "Fix or remove that row (a delimiter inside a value must be quoted).",
            )
