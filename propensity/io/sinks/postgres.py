"""The PostgreSQL CRM sink (psycopg 3, extra ``postgres``): the warehouse stand-in.

``write`` copies the new current table into a staging table and, in the same transaction,
drops the old table, renames the staging one and replaces the run's history rows. PostgreSQL's
DDL is transactional, so a reader sees the old tables or the new ones, never a mix, and a killed
job's transaction is rolled back by the server.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pandas as pd

from propensity.crm import CURRENT_COLUMNS, HISTORY_COLUMNS
from propensity.errors import OutputError
from propensity.io.sinks.base import as_rows, conform, sql_type

__all__ = ["PostgresSink"]


def _psycopg() -> Any:
    try:
        import psycopg
    except ImportError:
        raise OutputError(
            "crm.sink.kind postgres needs psycopg 3. Got no psycopg module; install the "
            "extra: pip install 'propensity[postgres]'."
        ) from None
    return psycopg


class PostgresSink:
    """``PostgresSink(dsn, schema="public", current="pql_current", history="pql_history")``."""

    def __init__(
        self,
        dsn: str,
        schema: str = "public",
        current: str = "pql_current",
        history: str = "pql_history",
    ):
        psycopg = _psycopg()
        try:
            self._con = psycopg.connect(dsn, connect_timeout=10)
        except psycopg.OperationalError as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise OutputError(
                f"Could not connect to the PostgreSQL sink ({first[:200]}). Check "
                f"crm.sink.dsn or PROPENSITY_CRM_DSN and that the server is up."
            ) from None
        self.schema, self.current, self.history = schema, current, history
        with self._con.transaction():
            self._con.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
            self._con.execute(_create(self._name(history), HISTORY_COLUMNS))

    def _name(self, table: str) -> str:
        return f'"{self.schema}"."{table}"'

    def _read(self, table: str, columns: dict[str, str]) -> pd.DataFrame:
        with self._con.transaction(), self._con.cursor() as cur:
            found = cur.execute("SELECT to_regclass(%s)", [f"{self.schema}.{table}"]).fetchone()
            if not found or found[0] is None:
                return conform(pd.DataFrame(), columns)
            cur.execute(f"SELECT {', '.join(_q(c) for c in columns)} FROM {self._name(table)}")
            frame = pd.DataFrame(cur.fetchall(), columns=list(columns))
        return conform(frame, columns)

    def read_current(self) -> pd.DataFrame:
        return self._read(self.current, CURRENT_COLUMNS)

    def read_history(self) -> pd.DataFrame:
        return self._read(self.history, HISTORY_COLUMNS)

    def write(
        self, current: pd.DataFrame, history: pd.DataFrame, as_of: datetime, model_version: str
    ) -> None:
        """Swap in ``current`` and replace the run's history rows, in one transaction."""
        staging = f"{self.current}__new"
        with self._con.transaction(), self._con.cursor() as cur:
            # one writer at a time: a second job waits instead of interleaving its swap
            cur.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", [self._name(self.current)])
            cur.execute(f"DROP TABLE IF EXISTS {self._name(staging)}")
            cur.execute(_create(self._name(staging), CURRENT_COLUMNS))
            _copy(cur, self._name(staging), conform(current, CURRENT_COLUMNS))
            cur.execute(f"DROP TABLE IF EXISTS {self._name(self.current)}")
            cur.execute(f"ALTER TABLE {self._name(staging)} RENAME TO {_q(self.current)}")
            cur.execute(
                f"DELETE FROM {self._name(self.history)} WHERE as_of = %s AND model_version = %s",
                [pd.Timestamp(as_of).to_pydatetime(), str(model_version)],
            )
            _copy(cur, self._name(self.history), conform(history, HISTORY_COLUMNS))

    def close(self) -> None:
        self._con.close()


def _q(name: str) -> str:
    return f'"{name}"'


def _create(name: str, columns: dict[str, str]) -> str:
    body = ", ".join(f"{_q(c)} {sql_type(t)}" for c, t in columns.items())
    return f"CREATE TABLE IF NOT EXISTS {name} ({body})"


def _copy(cur: Any, name: str, frame: pd.DataFrame) -> None:
    cols = ", ".join(_q(c) for c in frame.columns)
    with cur.copy(f"COPY {name} ({cols}) FROM STDIN") as copy:
        for row in as_rows(frame):
            copy.write_row(row)
