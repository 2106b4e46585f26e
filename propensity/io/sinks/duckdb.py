"""The embedded CRM sink: both tables in one DuckDB file, swapped in one transaction."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import duckdb
import pandas as pd

from propensity.crm import CURRENT_COLUMNS, HISTORY_COLUMNS
from propensity.io.sinks.base import conform, sql_type

__all__ = ["DuckDBSink"]


class DuckDBSink:
    """``DuckDBSink(path, current="pql_current", history="pql_history")``."""

    def __init__(
        self, path: str | Path, current: str = "pql_current", history: str = "pql_history"
    ):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.current, self.history = current, history
        self._con = duckdb.connect(str(self.path))
        self._con.execute(_create(self.history, HISTORY_COLUMNS))

    def read_current(self) -> pd.DataFrame:
        if not _exists(self._con, self.current):
            return conform(pd.DataFrame(), CURRENT_COLUMNS)
        return conform(self._con.execute(f'SELECT * FROM "{self.current}"').df(), CURRENT_COLUMNS)

    def read_history(self) -> pd.DataFrame:
        frame = self._con.execute(f'SELECT * FROM "{self.history}"').df()
        return conform(frame, HISTORY_COLUMNS)

    def write(
        self, current: pd.DataFrame, history: pd.DataFrame, as_of: datetime, model_version: str
    ) -> None:
        """Swap in ``current`` and replace the run's history rows, in one transaction."""
        con = self._con
        staging = f"{self.current}__new"
        con.register("_crm_current", conform(current, CURRENT_COLUMNS))
        con.register("_crm_history", conform(history, HISTORY_COLUMNS))
        try:
            con.execute("BEGIN TRANSACTION")
            try:
                con.execute(f'DROP TABLE IF EXISTS "{staging}"')
                con.execute(_create(staging, CURRENT_COLUMNS))
                con.execute(f'INSERT INTO "{staging}" SELECT * FROM _crm_current')
                con.execute(f'DROP TABLE IF EXISTS "{self.current}"')
                con.execute(f'ALTER TABLE "{staging}" RENAME TO "{self.current}"')
                con.execute(
                    f'DELETE FROM "{self.history}" WHERE as_of = ? AND model_version = ?',
                    [pd.Timestamp(as_of).to_pydatetime(), str(model_version)],
                )
                con.execute(f'INSERT INTO "{self.history}" SELECT * FROM _crm_history')
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise
        finally:
            con.unregister("_crm_current")
            con.unregister("_crm_history")

    def close(self) -> None:
        self._con.close()


def _create(name: str, columns: dict[str, str]) -> str:
    body = ", ".join(f'"{c}" {sql_type(t)}' for c, t in columns.items())
    return f'CREATE TABLE IF NOT EXISTS "{name}" ({body})'


def _exists(con: duckdb.DuckDBPyConnection, name: str) -> bool:
    [(found,)] = con.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_name = ?", [name]
    ).fetchall()
    return bool(found)
