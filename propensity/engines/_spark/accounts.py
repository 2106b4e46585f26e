"""Account entities on Spark: the account plan (``account_plan``) run by the very SQL the DuckDB
engine runs (:mod:`propensity.engines.account` writes it in either dialect).

- :class:`AccountViews` swaps the views ``events`` and ``users`` for one "user" per account
  (its members' events together; firmographics aggregated) for the duration of a ``with``, so
  the user-level feature families run on accounts, as ``engines.account.account_entities``
  does on DuckDB.
- :func:`members_spark` gives the ``members`` family's inputs (the plan's per-member parts, the
  account values and shares computed from them on the driver, and the seats paid); only one
  row per (label row, member) comes back to the driver, never events.

>>> with AccountViews(spark):  # doctest: +SKIP
...     ff = compute_features_spark(spark, rows, spec)
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import pandas as pd

from propensity.account_plan import account_plan
from propensity.engines.account import (
    account_rows,
    account_tables_sql,
    plan_values,
    seats_from,
    seats_sql,
    shares_of,
)
from propensity.features import FeatureSpec
from propensity.features.portable import SPARK
from propensity.labels import LabelTimes

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

__all__ = ["AccountViews", "member_shares_spark", "members_spark"]

_NUMERIC = ("tinyint", "smallint", "int", "bigint", "float", "double", "decimal")
_calls = itertools.count()


class AccountViews:
    """The account "users" and "events" of the member views, built once per session's tables;
    :meth:`swapped` makes them the ``events`` and ``users`` views for the duration."""

    def __init__(self, spark: SparkSession) -> None:
        self.spark = spark
        self._tables: tuple[DataFrame, DataFrame] | None = None

    @contextmanager
    def swapped(self, on: bool = True) -> Iterator[None]:
        """``events`` and ``users`` are the account tables inside (unchanged when not ``on``)."""
        if not on:
            yield
            return
        spark = self.spark
        members = (spark.table("events"), spark.table("users"))  # analysed now: the member data
        if self._tables is None:
            columns = [(c, t.split("(")[0] in _NUMERIC) for c, t in spark.table("users").dtypes]
            users_sql, events_sql = account_tables_sql(columns, SPARK)
            self._tables = (spark.sql(events_sql), spark.sql(users_sql))
        try:
            self._tables[0].createOrReplaceTempView("events")
            self._tables[1].createOrReplaceTempView("users")
            yield
        finally:
            members[0].createOrReplaceTempView("events")
            members[1].createOrReplaceTempView("users")


def members_spark(spark: SparkSession, rows: LabelTimes) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The plan's account columns (:func:`~propensity.engines.account.plan_values`) and the
    seats paid (:func:`~propensity.engines.account.seats_from`) of account ``rows``, on the
    member views ``events``, ``users`` (and ``payments`` when registered)."""
    name = _register(spark, rows, signup=False)
    task = rows.settings.get("task") or {}
    try:
        feats, _ = plan_values(
            lambda sql: spark.sql(sql).toPandas(),
            name,
            rows.frame,
            account_plan(),
            task.get("first_seen", "signup"),
            SPARK,
        )
        paid = None
        if spark.catalog.tableExists("payments"):
            paid = spark.sql(seats_sql(name)).toPandas()
        return feats, seats_from(paid, len(rows.frame))
    finally:
        spark.catalog.dropTempView(name)


def member_shares_spark(
    spark: SparkSession, rows: LabelTimes, spec: FeatureSpec | None = None
) -> pd.DataFrame:
    """:func:`propensity.engines.account.member_shares` on the Spark member views."""
    name = _register(spark, rows, signup=True)
    has_role = account_plan().role_column in spark.table("users").columns
    try:
        query = lambda sql: spark.sql(sql).toPandas()  # noqa: E731
        return shares_of(query, name, rows, spec, has_role, SPARK)
    finally:
        spark.catalog.dropTempView(name)


def _register(spark: SparkSession, rows: LabelTimes, signup: bool) -> str:
    """:func:`~propensity.engines.account.account_rows` of ``rows`` as a new temp view."""
    from pyspark.sql.types import LongType, StringType, StructField, StructType, TimestampNTZType

    fields = [
        StructField("rid", LongType(), False),
        StructField("account_id", StringType(), True),
        StructField("cutoff_at", TimestampNTZType(), True),
    ]
    if signup:
        fields.append(StructField("signup_at", TimestampNTZType(), True))
    name = f"_acct_rows_{next(_calls)}"
    frame = account_rows(rows.frame, signup=signup)
    spark.createDataFrame(frame, schema=StructType(fields)).createOrReplaceTempView(name)
    return name
