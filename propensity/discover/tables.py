"""The DuckDB side of ranking behaviours: the feature rows and halves as relations for one call,
and the yardstick every choice and rank uses (the evidence of extra converters)."""

from __future__ import annotations

import itertools

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa

from propensity.discover.candidates import event_key
from propensity.discover.context import ContextModel
from propensity.discover.intervals import z_value

__all__ = ["SEARCH_Z", "Tables", "bucket", "evidence", "owns", "quote"]

SEARCH_Z = z_value(0.05, two_sided=False)  # choosing on the search half: one-sided 95%
_calls = itertools.count()


class Tables:
    """The feature rows and halves as DuckDB relations for one call, dropped on exit.

    Context probabilities travel as one array per row (``ps``, indexed by context id) in a temp
    table keyed by row: joining a long (row, context) table instead was ten times slower.
    """

    def __init__(
        self, con: duckdb.DuckDBPyConnection, frame: pd.DataFrame, y: np.ndarray, est: np.ndarray
    ) -> None:
        self.con = con
        self.p = f"_disc{next(_calls)}_"
        self.frame = frame.reset_index(drop=True).assign(_rid=np.arange(len(frame)))
        self.y, self.est = y, est
        self._views: list[str] = []
        self._tables: list[str] = []

    def __enter__(self) -> Tables:
        self.register("feat", self.frame)
        return self

    def __exit__(self, *exc: object) -> None:
        for name in self._views:
            self.con.unregister(name)
        for name in self._tables:
            self.con.execute(f"DROP TABLE IF EXISTS {name}")

    def name(self, short: str) -> str:
        return f"{self.p}{short}"

    def register(self, short: str, data: pd.DataFrame | pa.Table) -> str:
        name = self.name(short)
        self.con.register(name, data)
        self._views.append(name)
        return name

    def table(self, short: str, sql: str) -> str:
        """Materialise ``sql`` as a temp table (read more than once, or joined large)."""
        name = self.name(short)
        self.con.execute(f"CREATE OR REPLACE TEMP TABLE {name} AS {sql}")
        self._tables.append(name)
        return name

    def rows(self, short: str, ctx: ContextModel, keys: list[tuple[str, ...]]) -> str:
        """A temp table (rid, est, y, ps): ``ps[i + 1]`` leaves context ``keys[i]`` out."""
        n = len(self.frame)
        probs = np.column_stack([ctx.probabilities(k) for k in keys]) if keys else np.zeros((n, 1))
        arrow = pa.table(
            {
                "rid": pa.array(np.arange(n)),
                "est": pa.array(self.est),
                "y": pa.array(self.y),
                "ps": pa.FixedSizeListArray.from_arrays(pa.array(probs.ravel()), probs.shape[1]),
            }
        )
        view = self.register(f"{short}_in", arrow)
        return self.table(short, f"SELECT rid, est, y, CAST(ps AS DOUBLE[]) AS ps FROM {view}")

    def fetch(self, sql: str) -> pd.DataFrame:
        return self.con.execute(sql).df()


def quote(ident: str) -> str:
    """``ident`` as a quoted SQL identifier."""
    return '"' + ident.replace('"', '""') + '"'


def bucket(col: str) -> str:
    """``col`` rounded down to two significant digits (exact for integers below 100)."""
    scale = f"pow(10, floor(log10({col})) - 1)"
    return f"round(floor({col} / {scale} + 1e-9) * {scale}, 9)"


def evidence(o: np.ndarray, e: np.ndarray) -> np.ndarray:
    """The z-score of the extra converters, ``(O - E) / sqrt(E)`` (O is Poisson(E) if the
    behaviour adds nothing): the criterion for choosing and for ranking."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(e > 0, (o - e) / np.sqrt(e), -np.inf)


def owns(events: tuple[str, ...], before: dict[str, tuple[str, ...]]) -> tuple[str, ...]:
    """The context keys a behaviour over ``events`` leaves out: them and what leads to them."""
    return tuple(sorted({event_key(x) for e in events for x in (e, *before.get(e, ()))}))
