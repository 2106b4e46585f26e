"""Streaming the tables to disk chunk by chunk, with fixed settings so files are reproducible.

Events go to a directory of part files, one per chunk (``events/part-00000.parquet`` ...);
users and conversions to one file each, appended per chunk; the truth always to parquet.
Nothing time- or machine-dependent is written, so the same seed gives byte-identical files.
"""

from __future__ import annotations

from pathlib import Path
from typing import IO, Literal

import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

__all__ = ["Format", "TableWriter", "write_part"]

Format = Literal["parquet", "csv", "jsonl"]
_PARQUET = {"compression": "zstd", "compression_level": 3, "use_dictionary": True}
_ROW_GROUP = 1 << 20


def write_part(table: pa.Table, path: Path, fmt: Format) -> None:
    """Write one whole table to ``path`` in ``fmt``."""
    with TableWriter(path, fmt) as writer:
        writer.write(table)


class TableWriter:
    """Append tables of one schema to a single file; use as a context manager."""

    def __init__(self, path: Path, fmt: Format) -> None:
        self.path = path
        self.fmt = fmt
        self.rows = 0
        self._parquet: pq.ParquetWriter | None = None
        self._csv: pacsv.CSVWriter | None = None
        self._file: IO[bytes] | None = None

    def write(self, table: pa.Table) -> None:
        """Append ``table`` (same schema every call)."""
        self.rows += table.num_rows
        if self.fmt == "parquet":
            if self._parquet is None:
                self._parquet = pq.ParquetWriter(self.path, table.schema, **_PARQUET)
            self._parquet.write_table(table, row_group_size=_ROW_GROUP)
            return
        if self._file is None:
            self._file = open(self.path, "wb")  # closed in close()
        if self.fmt == "csv":
            if self._csv is None:
                self._csv = pacsv.CSVWriter(self._file, table.schema)
            self._csv.write_table(table)
        else:
            self._file.write(_jsonl(table))

    def close(self) -> None:
        """Finish the file (an empty table still gets its schema for parquet and csv)."""
        if self._parquet is not None:
            self._parquet.close()
        if self._csv is not None:
            self._csv.close()
        if self._file is not None:
            self._file.close()

    def __enter__(self) -> TableWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _jsonl(table: pa.Table) -> bytes:
    """One JSON object per line; nulls stay null, integers stay integers."""
    if table.num_rows == 0:
        return b""
    frame = table.to_pandas(types_mapper={pa.int64(): pd.Int64Dtype()}.get)
    text = frame.to_json(orient="records", lines=True, force_ascii=True)
    return (text if text.endswith("\n") else text + "\n").encode("utf-8")
