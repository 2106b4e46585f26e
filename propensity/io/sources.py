"""Locating input files and turning them into DuckDB table expressions.

A source is a file, a directory of files, or a glob, in parquet, CSV (optionally gzipped) or JSON
lines. DuckDB reads them lazily, so a 100M-event export never has to fit in a pandas frame.
"""

from __future__ import annotations

import csv
import errno
import glob as globlib
import gzip
import json
import os
import re
import stat
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import duckdb

from propensity.errors import DataContractError, redact, shorten

__all__ = ["Source", "ident", "open_source", "read_failure", "sql_string"]

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


def ident(name: str) -> str:
    """Quote a column name as a SQL identifier: any character is safe, quotes included.

    >>> ident('company"size')
    '"company""size"'
    """
    return '"' + str(name).replace('"', '""') + '"'


def _format_of(name: str) -> Format | None:
    lower = name.lower()
    for suffix in sorted(_SUFFIXES, key=len, reverse=True):
        if lower.endswith(suffix):
            return _SUFFIXES[suffix]
    return None


def open_source(table: str, given: str, fmt: str = "auto") -> Source:
    """Resolve a path, directory or glob into a :class:`Source`, or say why it cannot be read."""
    key = f"data.{table}"
    if any(ch in given for ch in "*?["):
        files = sorted(f for f in globlib.glob(given, recursive=True) if os.path.isfile(f))
    else:
        files = _files_at(table, given, key)
    files = [f for f in files if not Path(f).name.startswith((".", "_"))]
    if not files:
        raise DataContractError(
            [
                f"{table}: {given!r} matched no parquet, CSV or JSONL files. Point {key} "
                f"at a file, a folder of files or a glob such as 'exports/*.parquet'."
            ]
        )
    unreadable = [f for f in files if not os.access(f, os.R_OK)]
    if unreadable:
        raise DataContractError(
            [
                f"{table}: no permission to read {unreadable[0]!r}"
                + (f" and {len(unreadable) - 1} more files" if len(unreadable) > 1 else "")
                + ". Give this user read access (chmod/chown), or copy the data somewhere it can "
                "read."
            ]
        )
    if fmt != "auto":
        source = Source(table, given, tuple(files), fmt)  # type: ignore[arg-type]
        _check_content(source, forced=True)
        return source
    formats = {_format_of(f) for f in files}
    if None in formats or len(formats) > 1:
        raise DataContractError(
            [
                f"{table}: cannot tell the format of {given!r} from its file names "
                f"({', '.join(Path(f).name for f in files[:3])}). Set data.format to parquet, csv "
                f"or jsonl in the config."
            ]
        )
    source = Source(table, given, tuple(files), formats.pop())  # type: ignore[arg-type]
    _check_content(source, forced=False)
    return source


def _files_at(table: str, given: str, key: str) -> list[str]:
    """The data files at a path: the file itself, or every data file under a folder."""
    try:
        info = os.stat(given)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise DataContractError(
                [
                    f"{table}: {given!r} is a symlink loop (it points, through other links, back "
                    f"at itself). Point {key} at the real file or folder."
                ]
            ) from None
        if os.path.islink(given):
            raise DataContractError(
                [
                    f"{table}: {given!r} is a symlink to {os.readlink(given)!r}, which does not "
                    f"exist. Point {key} at the real file or folder."
                ]
            ) from None
        if exc.errno in (errno.EACCES, errno.EPERM):
            raise _no_permission(table, given) from None
        raise DataContractError(
            [f"{table}: input {given!r} does not exist. Check {key} in the config."]
        ) from None
    if not stat.S_ISDIR(info.st_mode):
        return [given]
    files: list[str] = []
    denied: list[str] = []

    def refused(exc: OSError) -> None:
        if exc.errno in (errno.EACCES, errno.EPERM):
            denied.append(exc.filename or given)

    # followlinks=False: a link back up the tree cannot send the walk round in circles
    for folder, dirs, names in os.walk(given, onerror=refused, followlinks=False):
        dirs.sort()
        for name in sorted(names):
            path = os.path.join(folder, name)
            if _format_of(name) is not None and os.path.isfile(path):
                files.append(path)
    if denied:
        raise _no_permission(table, denied[0])
    return sorted(files)


def _no_permission(table: str, path: str) -> DataContractError:
    return DataContractError(
        [
            f"{table}: no permission to read the folder {path!r}. Give this user read and "
            f"execute access to it (chmod/chown), or copy the data somewhere it can read."
        ]
    )


_MAGIC: dict[bytes, str] = {b"PAR1": "parquet", b"\x1f\x8b": "gzip", b"PK\x03\x04": "zip"}


def _check_content(source: Source, forced: bool) -> None:
    """Refuse files whose first bytes say another format than the one they will be read as
    (parquet bytes under a .csv name, or data.format forcing csv onto parquet files)."""
    for path in source.files[:20]:
        try:
            with open(path, "rb") as handle:
                head = handle.read(4)
        except OSError:
            continue
        found = next((kind for magic, kind in _MAGIC.items() if head.startswith(magic)), None)
        expected = source.format
        gz = path.lower().endswith(".gz")
        if found == "parquet" and expected != "parquet":
            wrong = found
        elif found in ("gzip", "zip") and not gz and expected != "parquet":
            wrong = f"{found}-compressed"
        elif expected == "parquet" and head and found != "parquet" and len(head) == 4:
            wrong = "not parquet (no PAR1 header)"
        else:
            continue
        why = "data.format" if forced else "its name"
        fix = (
            f"Set data.format to {found}, or leave it at auto"
            if forced and found == "parquet"
            else "Rename the file to match its content (e.g. .parquet, .csv.gz), or re-export it"
        )
        raise DataContractError(
            [
                f"{source.table}: {path!r} is read as {expected} (from {why}), but its content "
                f"is {wrong}. {fix}."
            ]
        )


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
    if len(found) > _MAX_COLUMNS:
        raise DataContractError(
            [
                f"{source.table}: {source.given!r} has {len(found):,} columns; an export of "
                f"{source.table} has a few dozen at most. Check the file and data.format."
            ]
        )
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
    first = shorten(redact(first), 300).rstrip(" .")  # a quoted value may be an address
    return DataContractError(
        [
            f"{source.table}: cannot read {source.given!r} as {source.format}: {first}. Check "
            f"that the file is complete and in the format its name says."
        ]
    )


_MAX_COLUMNS = 5000


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
