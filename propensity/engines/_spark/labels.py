"""Label times for the Spark engine, by the one definition in :mod:`propensity.labels`.

Label times have one row per (user, cutoff), so their inputs are per user: signup, account and
first conversion. Spark reduces the big tables to those (and to ``data_end``, the latest
timestamp), the driver hands them to an in-memory DuckDB, and the very same
:func:`~propensity.labels.build_label_times` / :func:`~propensity.labels.scoring_population`
place the cutoffs. So there is no second implementation of the label rules to drift apart; the
cost is one row per user on the driver (tens of MB for millions of users).
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

import duckdb
import pandas as pd

from propensity.config import LabelConfig
from propensity.errors import DataContractError
from propensity.labels import LabelTimes, build_label_times, scoring_population

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

__all__ = ["build_label_times_spark", "scoring_population_spark"]

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
    if data_end is None:
        data_end = spark.sql(_DATA_END).collect()[0][0]
        if data_end is None:
            raise DataContractError(
                [
                    "Spark tables 'events' and 'conversions' must hold at least one timestamp to "
                    "place label times. Got empty tables instead; check the paths read."
                ]
            )
    with _per_user(spark) as con:
        return build_label_times(con, cfg, data_end)


def scoring_population_spark(
    spark: SparkSession, cfg: LabelConfig, as_of: datetime, *, include_expired: bool = False
) -> LabelTimes:
    """:func:`propensity.labels.scoring_population` on the Spark views ``users`` and
    ``conversions``."""
    with _per_user(spark) as con:
        return scoring_population(con, cfg, as_of, include_expired=include_expired)


class _per_user:  # noqa: N801 - used like a function in a with statement
    """An in-memory DuckDB holding the per-user reductions of the Spark tables."""

    def __init__(self, spark: SparkSession) -> None:
        self.spark = spark

    def __enter__(self) -> duckdb.DuckDBPyConnection:
        users = _naive(self.spark.sql(_USERS).toPandas(), "signup_at")
        conversions = _naive(self.spark.sql(_FIRST_CONVERSION).toPandas(), "converted_at")
        self.con = duckdb.connect(config={"threads": 2})
        self.con.register("_users_df", users)
        self.con.register("_conv_df", conversions)
        self.con.execute(
            "CREATE TABLE users AS SELECT user_id::VARCHAR AS user_id, "
            "account_id::VARCHAR AS account_id, signup_at::TIMESTAMP AS signup_at FROM _users_df"
        )
        self.con.execute(
            "CREATE TABLE conversions AS SELECT user_id::VARCHAR AS user_id, "
            "converted_at::TIMESTAMP AS converted_at FROM _conv_df"
        )
        # build_label_times checks that events exist; data_end is already known, so empty.
        self.con.execute("CREATE TABLE events (user_id VARCHAR, timestamp TIMESTAMP)")
        return self.con

    def __exit__(self, *exc: object) -> None:
        self.con.close()


def _naive(frame: pd.DataFrame, col: str) -> pd.DataFrame:
    frame[col] = pd.to_datetime(frame[col]).astype("datetime64[us]")
    return frame
