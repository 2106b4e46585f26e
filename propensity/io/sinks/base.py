"""What a CRM sink promises, and the column types both sinks share.

A sink holds the current table and the history. ``write`` is one transaction: the new current
table is built beside the old one and swapped in, and the run's history rows replace any rows of
the same ``(as_of, model_version)``; a job killed at any moment leaves the old tables whole, and
re-running one as-of never duplicates history rows.
"""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

import numpy as np
import pandas as pd

__all__ = ["Sink", "as_rows", "conform", "sql_type"]

_SQL = {"object": "TEXT", "float64": "DOUBLE PRECISION", "Int64": "BIGINT", "bool": "BOOLEAN"}
_SQL["datetime64[ns]"] = "TIMESTAMP"


class Sink(Protocol):
    def read_current(self) -> pd.DataFrame: ...

    def read_history(self) -> pd.DataFrame: ...

    def write(
        self, current: pd.DataFrame, history: pd.DataFrame, as_of: datetime, model_version: str
    ) -> None: ...

    def close(self) -> None: ...


def sql_type(dtype: str) -> str:
    """The SQL type of a pandas dtype of the CRM tables.

    >>> sql_type("Int64")
    'BIGINT'
    """
    return _SQL[dtype]


def conform(frame: pd.DataFrame, columns: dict[str, str]) -> pd.DataFrame:
    """``frame`` with exactly ``columns`` in order and dtype (a read-back table, an empty one)."""
    if frame.empty:
        return pd.DataFrame({c: pd.Series(dtype=t) for c, t in columns.items()})
    out = frame[list(columns)].copy()
    for col, dtype in columns.items():
        if dtype == "object":
            out[col] = out[col].astype(object).where(out[col].notna(), None)
        elif dtype == "bool":
            out[col] = out[col].astype(bool)
        elif dtype.startswith("datetime64"):
            out[col] = pd.to_datetime(out[col]).astype(dtype)
        else:
            out[col] = out[col].astype(dtype)
    return out.reset_index(drop=True)


def as_rows(frame: pd.DataFrame) -> list[tuple]:
    """Plain Python rows (None for missing, datetimes, floats) for a database driver."""
    cols = []
    for col in frame.columns:
        values = frame[col].astype(object).to_numpy()
        cols.append([None if _missing(v) else _plain(v) for v in values])
    return list(zip(*cols, strict=True)) if cols else []


def _missing(value: object) -> bool:
    return (
        value is None
        or value is pd.NaT
        or value is pd.NA
        or (isinstance(value, float) and np.isnan(value))
    )


def _plain(value: object) -> object:
    if isinstance(value, pd.Timestamp):
        return value.to_pydatetime()
    if isinstance(value, np.generic):
        return value.item()
    return value
