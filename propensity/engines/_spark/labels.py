"""Label times for the Spark engine, by the one definition in :mod:`propensity.labels` and
:mod:`propensity.task_labels`.

Label times have one row per (user, cutoff), so their inputs are per user: signup, account and
first conversion. Spark reduces the big tables to those (and to ``data_end``, the latest
timestamp), the driver hands them to an in-memory DuckDB, and the very same
:func:`~propensity.labels.build_label_times` / :func:`~propensity.labels.scoring_population`
place the cutoffs. So there is no second implementation of the label rules to drift apart; the
cost is one row per user on the driver (tens of MB for millions of users).

Calendar anchors (:func:`~propensity.task_labels.task_label_times`) read the events too, but
only through a few reductions, and Spark hands over exactly those: each user's last event of
each UTC day (activity in the lookback before a midnight anchor), each user's first event
(first seen, the first anchor), every event of ``task.target.event`` (the target's times), and
for a population each user's last event before ``as_of``. Every query of ``task_labels`` gives
the same answer on these rows as on the full log (each is a min, a max or a filter that the
kept rows decide), so the rules still have one implementation; the cost is one row per active
user-day on the driver. The ``payments`` table (one row per payment) goes over as it is.

Losses (``data.lost_users``, ``label.lost_event``) are read by those rules only through each
user's first loss, so Spark hands over that: the ``lost_users`` view reduced to each user's
earliest ``lost_at``, and each user's first ``lost_event`` as one event row (a real event, so
every other reduction above keeps its answer).

The CRM steps (:func:`~propensity.engines.entities.entity_tables`) read each entity's
conversion and its users row: Spark hands over the whole users table (its columns are the
segments), each user's first conversion and, when the conversion is the task's target, every
event of ``task.target.event`` (its first one, and the first after the first payment).
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

import duckdb
import pandas as pd

from propensity.config import LabelConfig, TaskConfig
from propensity.engines.entities import EntityTables, entity_tables, needs_target_times
from propensity.errors import DataContractError
from propensity.features.portable import SPARK
from propensity.labels import LabelTimes, build_label_times, scoring_population
from propensity.task_labels import task_label_times, task_population

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

__all__ = [
    "build_label_times_spark",
    "entity_tables_spark",
    "scoring_population_spark",
    "task_label_times_spark",
    "task_population_spark",
]

_USERS = (
    "SELECT CAST(user_id AS STRING) AS user_id, CAST(account_id AS STRING) AS account_id, "
    "CAST(signup_at AS TIMESTAMP_NTZ) AS signup_at FROM users"
)
_FIRST_CONVERSION = (
    "SELECT CAST(user_id AS STRING) AS user_id, "
    "CAST(MIN(converted_at) AS TIMESTAMP_NTZ) AS converted_at FROM conversions GROUP BY user_id"
)
_DATA_END = (
    "SELECT GREATEST((SELECT CAST(MAX(timestamp) AS TIMESTAMP_NTZ) FROM events), "
    "(SELECT CAST(MAX(converted_at) AS TIMESTAMP_NTZ) FROM conversions))"
)


def build_label_times_spark(
    spark: SparkSession, cfg: LabelConfig, data_end: datetime | None = None
) -> LabelTimes:
    """:func:`propensity.labels.build_label_times` on the Spark views ``events``, ``users``,
    ``conversions`` (see :func:`propensity.engines._spark.register_tables`)."""
    data_end = _data_end(spark, data_end)
    with _per_user(spark, lost_event=cfg.lost_event) as con:
        return build_label_times(con, cfg, data_end)


def task_label_times_spark(
    spark: SparkSession, cfg: LabelConfig, task: TaskConfig, data_end: datetime | None = None
) -> LabelTimes:
    """:func:`propensity.task_labels.task_label_times` on the Spark views (``payments`` too,
    when registered): trial anchors as :func:`build_label_times_spark`, calendar anchors on the
    event reductions described above."""
    if task.anchors.kind != "calendar":
        return build_label_times_spark(spark, cfg, data_end)
    data_end = _data_end(spark, data_end)
    with _per_user(spark, _activity_sql(task.target.event, None), cfg.lost_event) as con:
        return task_label_times(con, cfg, task, data_end)


def task_population_spark(
    spark: SparkSession, cfg: LabelConfig, task: TaskConfig, as_of: datetime
) -> LabelTimes:
    """:func:`propensity.task_labels.task_population` on the Spark views (calendar anchors)."""
    with _per_user(spark, _activity_sql(task.target.event, as_of), cfg.lost_event) as con:
        return task_population(con, cfg, task, as_of)


def _data_end(spark: SparkSession, data_end: datetime | None) -> datetime:
    if data_end is None:
        data_end = spark.sql(_DATA_END).collect()[0][0]
        if data_end is None:
            raise DataContractError(
                [
                    "Spark tables 'events' and 'conversions' must hold at least one timestamp to "
                    "place label times. Got empty tables instead; check the paths read."
                ]
            )
    return data_end


def scoring_population_spark(
    spark: SparkSession, cfg: LabelConfig, as_of: datetime, *, include_expired: bool = False
) -> LabelTimes:
    """:func:`propensity.labels.scoring_population` on the Spark views ``users`` and
    ``conversions``."""
    with _per_user(spark, lost_event=cfg.lost_event) as con:
        return scoring_population(con, cfg, as_of, include_expired=include_expired)


def entity_tables_spark(
    spark: SparkSession, cfg: LabelConfig, task: TaskConfig | None
) -> EntityTables:
    """:func:`propensity.engines.entities.entity_tables` on the Spark views (module docstring):
    each entity's conversion and its users row, the same tables as on DuckDB."""
    events = None
    if needs_target_times(task) and task.target.event is not None:  # type: ignore[union-attr]
        target = SPARK.literal(task.target.event)  # type: ignore[union-attr]
        events = f"SELECT user_id, event, ts AS timestamp FROM ({_EVENTS}) WHERE event = {target}"
    with _per_user(spark, events, whole_users=True) as con:
        return entity_tables(con, cfg, task)


_EVENTS = (
    "SELECT CAST(user_id AS STRING) AS user_id, event, "
    "CAST(timestamp AS TIMESTAMP_NTZ) AS ts FROM events WHERE user_id IS NOT NULL"
)


def _activity_sql(target_event: str | None, as_of: datetime | None) -> str:
    """The event rows ``task_labels`` needs (module docstring), as ``user_id, event, timestamp``:
    kept rows are real events (their times), with ``event`` NULL unless it is the target's."""
    parts = [
        "SELECT user_id, CAST(NULL AS STRING) AS event, max(ts) AS timestamp FROM ev "
        "GROUP BY user_id, CAST(ts AS DATE)",
        "SELECT user_id, CAST(NULL AS STRING) AS event, min(ts) AS timestamp FROM ev "
        "GROUP BY user_id",
    ]
    if target_event is not None:
        parts.append(
            f"SELECT user_id, event, ts AS timestamp FROM ev "
            f"WHERE event = {SPARK.literal(target_event)}"
        )
    if as_of is not None:
        at = pd.Timestamp(as_of).strftime("%Y-%m-%d %H:%M:%S.%f")
        parts.append(
            "SELECT user_id, CAST(NULL AS STRING) AS event, max(ts) AS timestamp FROM ev "
            f"WHERE ts < TIMESTAMP_NTZ '{at}' GROUP BY user_id"
        )
    return f"WITH ev AS ({_EVENTS}) " + " UNION ALL ".join(parts)


def _first_loss_sql(lost_event: str) -> str:
    """Each user's first ``lost_event``, as an event row (``user_id, event, timestamp``)."""
    return (
        f"SELECT user_id, event, min(ts) AS timestamp FROM ({_EVENTS}) "
        f"WHERE event = {SPARK.literal(lost_event)} GROUP BY user_id, event"
    )


_LOST_USERS = (
    "SELECT CAST(user_id AS STRING) AS user_id, CAST(min(lost_at) AS TIMESTAMP_NTZ) AS lost_at "
    "FROM lost_users GROUP BY user_id"
)
_PAYMENTS = (
    "SELECT CAST(account_id AS STRING) AS account_id, "
    "CAST(paid_at AS TIMESTAMP_NTZ) AS paid_at, CAST(seats AS DOUBLE) AS seats FROM payments"
)


class _per_user:  # noqa: N801 - used like a function in a with statement
    """An in-memory DuckDB holding the per-user reductions of the Spark tables (and, given
    ``events_sql``, those event rows; ``payments`` and ``lost_users`` when Spark has those
    views; each user's first ``lost_event`` as an event row; ``whole_users``: every column of
    ``users``, not only the keys and signup)."""

    def __init__(
        self,
        spark: SparkSession,
        events_sql: str | None = None,
        lost_event: str | None = None,
        *,
        whole_users: bool = False,
    ) -> None:
        self.spark, self.events_sql, self.lost_event = spark, events_sql, lost_event
        self.whole_users = whole_users

    def __enter__(self) -> duckdb.DuckDBPyConnection:
        self.con = duckdb.connect(config={"threads": 2})
        user = "user_id::VARCHAR AS user_id"
        keys = f"{user}, account_id::VARCHAR AS account_id, signup_at::TIMESTAMP AS signup_at"
        if self.whole_users:  # every column, in the users' own order, keys cast alike
            self._pull("users", _whole_users_sql(self.spark), "signup_at", f"* REPLACE ({keys})")
        else:
            self._pull("users", _USERS, "signup_at", keys)
        self._pull(
            "conversions", _FIRST_CONVERSION, "converted_at",
            f"{user}, converted_at::TIMESTAMP AS converted_at",
        )  # fmt: skip
        # build_label_times checks that events exist (data_end is already known): without
        # events_sql only the first losses, if any
        parts = [self.events_sql] if self.events_sql is not None else []
        if self.lost_event is not None:
            parts.append(_first_loss_sql(self.lost_event))
        self.con.execute(
            "CREATE TABLE events (user_id VARCHAR, event VARCHAR, timestamp TIMESTAMP)"
        )
        if parts:
            frames = [self.spark.sql(sql).toPandas() for sql in parts]
            events = _naive(pd.concat(frames, ignore_index=True), "timestamp")
            self.con.register("_events_df", events)
            self.con.execute(
                "INSERT INTO events SELECT user_id::VARCHAR, event::VARCHAR, "
                "timestamp::TIMESTAMP FROM _events_df"
            )
        if self.spark.catalog.tableExists("lost_users"):
            lost = f"{user}, lost_at::TIMESTAMP AS lost_at"
            self._pull("lost_users", _LOST_USERS, "lost_at", lost)
        if self.spark.catalog.tableExists("payments"):
            account = (
                "account_id::VARCHAR AS account_id, seats::DOUBLE AS seats, "
                "paid_at::TIMESTAMP AS paid_at"
            )
            self._pull("payments", _PAYMENTS, "paid_at", account)
        return self.con

    def _pull(self, table: str, sql: str, time_col: str, select: str) -> None:
        """Spark's ``sql`` as the DuckDB table ``table`` (``SELECT select``, with its casts),
        ``time_col`` made a naive timestamp on the way."""
        frame = _naive(self.spark.sql(sql).toPandas(), time_col)
        self.con.register(f"_{table}_df", frame)
        self.con.execute(f"CREATE TABLE {table} AS SELECT {select} FROM _{table}_df")

    def __exit__(self, *exc: object) -> None:
        self.con.close()


def _whole_users_sql(spark: SparkSession) -> str:
    """Every column of the ``users`` view, its keys and signup cast as in ``_USERS``."""
    cast = {
        "user_id": "CAST(user_id AS STRING) AS user_id",
        "account_id": "CAST(account_id AS STRING) AS account_id",
        "signup_at": "CAST(signup_at AS TIMESTAMP_NTZ) AS signup_at",
    }
    cols = [cast.get(c, f"`{c}`") for c in spark.table("users").columns]
    return f"SELECT {', '.join(cols)} FROM users"


def _naive(frame: pd.DataFrame, col: str) -> pd.DataFrame:
    frame[col] = pd.to_datetime(frame[col]).astype("datetime64[us]")
    return frame
