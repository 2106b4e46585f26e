"""Label rows on an engine: the row table every plan reads, and the runner that learning uses.

``SqlRunner`` is what :func:`propensity.features.learn_spec` needs from an engine (a few queries
over ``events``/``users``); DuckDB's is :class:`DuckRunner`, Spark passes its own.
"""

from __future__ import annotations

import itertools
from contextlib import AbstractContextManager
from typing import Any, Protocol

import duckdb
import numpy as np
import pandas as pd

from propensity.contract import LABEL_TIMES, PLAN_KEYS
from propensity.features.portable import DUCKDB, Dialect
from propensity.labels import LabelTimes

__all__ = [
    "DuckRows",
    "DuckRunner",
    "RowsRelation",
    "SqlRunner",
    "fits_int32",
    "require_row_keys",
    "row_table",
]

_calls = itertools.count()


class RowsRelation(Protocol):
    """Label rows registered as relation ``name`` (with ``rid`` and, if known, ``label``)."""

    name: str
    prefix: str


class SqlRunner(Protocol):
    """What :func:`learn_spec` needs from an engine: a few queries over ``events``/``users``.

    DuckDB connections are wrapped automatically; the Spark engine passes its own
    (:func:`propensity.engines._spark.learn_spec_spark`), so one definition learns the spec on both.
    """

    dialect: Dialect

    def rows(self, label_times: LabelTimes) -> AbstractContextManager[RowsRelation]: ...
    def fetch(self, sql: str) -> list[tuple[Any, ...]]: ...
    def materialise(self, name: str, sql: str) -> None: ...
    def drop(self, name: str) -> None: ...
    def column_types(self, table: str) -> dict[str, str]: ...  # DuckDB type names


def require_row_keys(frame: pd.DataFrame) -> None:
    """Raise a contract error unless label rows carry the keys every engine's plan needs."""
    LABEL_TIMES.validate(frame, keys=PLAN_KEYS)


def row_table(frame: pd.DataFrame, learn: np.ndarray | None = None) -> pd.DataFrame:
    """The label rows as every engine registers them: the keys, ``rid`` (the position),
    ``uid`` (an integer per user, for counting distinct users cheaply), ``learn`` (1 for the
    rows a spec is learned on) and ``label`` when the rows have one."""
    rows = frame[list(PLAN_KEYS)].reset_index(drop=True)
    n = len(rows)
    learn_flag = np.ones(n, dtype="int64") if learn is None else np.asarray(learn, dtype="int64")
    if learn_flag.shape != (n,):
        raise ValueError(f"learn must mask the {n} label rows; got shape {learn_flag.shape}")
    rows = rows.assign(
        rid=np.arange(n, dtype="int64"),
        uid=pd.factorize(rows["user_id"])[0].astype("int64"),
        learn=learn_flag,
    )
    if "label" in frame.columns:
        rows["label"] = frame["label"].to_numpy()
    return rows


def fits_int32(rows: pd.DataFrame) -> bool:
    """Whether a plan of these rows may hold its row-event join in 32-bit integers: fewer than
    2^31 rows and every cutoff under 2^31 s after its signup (then ``t`` and ``age`` fit)."""
    if len(rows) >= 2**31 - 1:
        return False
    try:
        span = (pd.to_datetime(rows["cutoff_at"]) - pd.to_datetime(rows["signup_at"])).max()
    except (TypeError, ValueError):  # e.g. one column zoned and the other naive: stay 64-bit
        return False
    # Epoch seconds are floored, so a difference may exceed the span by a second.
    return bool(pd.isna(span) or span.total_seconds() < 2**31 - 4)


class DuckRows:
    """Registers the label rows (with an integer ``rid``) for the duration of a ``with``."""

    def __init__(
        self,
        con: duckdb.DuckDBPyConnection,
        label_times: LabelTimes,
        learn: np.ndarray | None = None,
    ) -> None:
        frame = label_times.frame
        require_row_keys(frame)
        self.con = con
        self.prefix = f"_pf{next(_calls)}_"
        self.name = f"{self.prefix}input"
        self.frame = row_table(frame, learn)
        self.narrow = fits_int32(self.frame)
        # Every row a learn row of its own user (learn_spec, one cutoff per user): the event
        # join needs no user or learn column.
        f = self.frame
        self.lean = (
            bool(f["learn"].all()) and int(f["uid"].to_numpy().max(initial=-1)) == len(f) - 1
        )

    def __enter__(self) -> DuckRows:
        self.con.register(f"{self.name}_df", self.frame)
        # A real temp table (not a view of the pandas frame) so joins see proper statistics.
        self.con.execute(
            f"CREATE OR REPLACE TEMP TABLE {self.name} AS SELECT * FROM {self.name}_df"
        )
        self.con.unregister(f"{self.name}_df")
        return self

    def __exit__(self, *exc: object) -> None:
        self.con.execute(f"DROP TABLE IF EXISTS {self.name}")


class DuckRunner:
    """:class:`SqlRunner` on a DuckDB connection (temp tables)."""

    dialect = DUCKDB

    def __init__(self, con: duckdb.DuckDBPyConnection) -> None:
        self.con = con

    def rows(self, label_times: LabelTimes) -> DuckRows:
        return DuckRows(self.con, label_times)

    def fetch(self, sql: str) -> list[tuple[Any, ...]]:
        return self.con.execute(sql).fetchall()

    def materialise(self, name: str, sql: str) -> None:
        self.con.execute(f"CREATE OR REPLACE TEMP TABLE {name} AS {sql}")

    def drop(self, name: str) -> None:
        self.con.execute(f"DROP TABLE IF EXISTS {name}")

    def column_types(self, table: str) -> dict[str, str]:
        return {r[0]: r[1] for r in self.con.execute(f"DESCRIBE {table}").fetchall()}
