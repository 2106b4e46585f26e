"""Compute feature tables on Spark from the same SQL plan the DuckDB engine runs.

One source of truth: :func:`propensity.features.sql.build_plan` writes every feature once in a
portable subset of SQL, and only timestamps-to-seconds, literals, quoting and JSON extraction
differ per engine (:data:`~propensity.features.SPARK`). We chose that over transpiling DuckDB SQL
with sqlglot or writing Ibis expressions on evidence from a trial: sqlglot changed meanings
silently (``date_diff`` units, ordered aggregates dropped) and Ibis would have been a second
dependency stack on every worker for a handful of expressions. The parity test
(``tests/test_spark_features.py``) holds the two engines to equal values on simulated data.

Each plan step becomes a temporary view; the event scan (``ev``), read by three later steps, is
persisted (memory, then disk) so the event log is scanned and joined once, then released.
"""

from __future__ import annotations

import itertools
from typing import TYPE_CHECKING

import pandas as pd

from propensity.config import FeaturesConfig
from propensity.contract import PLAN_KEYS
from propensity.errors import DataContractError
from propensity.features import FeatureFrame, FeatureSpec, learn_spec
from propensity.features.engine import assemble_features
from propensity.features.portable import SPARK
from propensity.features.rows import require_row_keys, row_table
from propensity.features.sql import build_plan
from propensity.labels import LabelTimes

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

__all__ = [
    "SparkFeatures",
    "compute_features_spark",
    "feature_table",
    "label_rows",
    "learn_spec_spark",
]

_PERSISTED = ("rows", "ev")  # steps read more than once: computed once per call
_calls = itertools.count()


def label_rows(spark: SparkSession, label_times: LabelTimes) -> DataFrame:
    """The label rows as a Spark DataFrame with an integer ``rid`` (their position), ``uid``
    (an integer per user) and ``learn`` (1: a spec learned here learns on every row).

    Timestamps go in as ``TIMESTAMP_NTZ`` (naive UTC wall clock), as parquet gives them; the
    ``label`` comes along when the rows have one (learning the spec ranks transitions by it).
    """
    from pyspark.sql.types import (
        LongType,
        StringType,
        StructField,
        StructType,
        TimestampNTZType,
    )

    frame = label_times.frame
    require_row_keys(frame)
    keyed = row_table(frame)  # rid, uid and learn as the DuckDB engine registers them
    rows = pd.DataFrame(
        {
            "rid": keyed["rid"].to_numpy(),
            "user_id": frame["user_id"].astype(object).to_numpy(),
            "account_id": frame["account_id"].astype(object).to_numpy(),
            "signup_at": pd.to_datetime(frame["signup_at"]).astype("datetime64[us]").to_numpy(),
            "cutoff_at": pd.to_datetime(frame["cutoff_at"]).astype("datetime64[us]").to_numpy(),
            "uid": keyed["uid"].to_numpy(),
            "learn": keyed["learn"].to_numpy(),
        }
    )
    fields = [
        StructField("rid", LongType(), False),
        StructField("user_id", StringType(), True),
        StructField("account_id", StringType(), True),
        StructField("signup_at", TimestampNTZType(), True),
        StructField("cutoff_at", TimestampNTZType(), True),
        StructField("uid", LongType(), False),
        StructField("learn", LongType(), False),
    ]
    if label_times.has_label:
        rows["label"] = frame["label"].to_numpy(dtype="int64")
        fields.append(StructField("label", LongType(), False))
    return spark.createDataFrame(rows, schema=StructType(fields))


def feature_table(spark: SparkSession, rows: DataFrame, spec: FeatureSpec) -> SparkFeatures:
    """A context manager giving ``spec``'s features for ``rows`` as a Spark DataFrame.

    ``rows`` has ``rid``, ``user_id``, ``account_id``, ``signup_at``, ``cutoff_at``;
    ``.frame`` has ``rid`` then the spec's columns in order (numbers as DOUBLE, categoricals
    as STRING). Use it inside the ``with`` block (write it, or score it); views and cached
    steps are dropped on exit. The views ``events`` and ``users`` must exist (see
    :func:`propensity.engines._spark.register_tables`).

    >>> with feature_table(spark, label_rows(spark, lt), spec) as feats:  # doctest: +SKIP
    ...     feats.frame.write.parquet("features/")
    """
    return SparkFeatures(spark, rows, spec)


def compute_features_spark(
    spark: SparkSession, label_times: LabelTimes, spec: FeatureSpec
) -> FeatureFrame:
    """Spark twin of :func:`propensity.features.compute_features`: the same frame, value for value.

    The feature table comes back to the driver through Arrow, so it must fit there (one row per
    label row: users x cutoffs, not events).
    """
    with feature_table(spark, label_rows(spark, label_times), spec) as feats:
        table = feats.frame.orderBy("rid").toPandas()
        unseen = feats.unseen()
    return assemble_features(label_times, table, spec, unseen)


def learn_spec_spark(
    spark: SparkSession, label_times: LabelTimes, cfg: FeaturesConfig
) -> FeatureSpec:
    """:func:`propensity.features.learn_spec` on the Spark views ``events`` and ``users``.

    The very same queries (vocabulary, categorical levels, transitions ranked by the label) run
    through a Spark runner, so the spec equals the DuckDB one for the same tables and rows.
    """
    return learn_spec(_SparkRunner(spark), label_times, cfg)


class SparkFeatures:
    """The plan's steps registered as temp views for the duration of a ``with``.

    ``frame`` is the feature DataFrame (set on entry); :meth:`unseen` counts events before the
    cutoffs whose type is outside the spec's vocabulary.
    """

    def __init__(self, spark: SparkSession, rows: DataFrame, spec: FeatureSpec) -> None:
        self.spark, self.rows, self.spec = spark, rows, spec
        self.prefix = f"_pf{next(_calls)}_"
        self.rows_name = f"{self.prefix}input"
        self.plan = build_plan(spec, SPARK, self.rows_name, self.prefix)
        self.frame: DataFrame | None = None
        self._views: list[str] = []
        self._cached: list[DataFrame] = []

    def __enter__(self) -> SparkFeatures:
        from pyspark import StorageLevel
        from pyspark.errors import AnalysisException

        self._register(self.rows, self.rows_name)
        persisted = {f"{self.prefix}{n}" for n in _PERSISTED}
        try:
            for step in self.plan.steps:
                df = self.spark.sql(step.sql)
                if step.name in persisted:
                    df = df.persist(StorageLevel.MEMORY_AND_DISK)
                    self._cached.append(df)
                self._register(df, step.name)
            self.frame = self.spark.sql(self.plan.final)
        except AnalysisException as exc:
            self.__exit__()
            raise DataContractError(
                [
                    f"The events/users views must have the columns the feature spec needs. "
                    f"Spark said: {str(exc).splitlines()[0]}. Check the tables against the data "
                    f"contract (propensity/contract.py)."
                ]
            ) from None
        return self

    def keyed(self) -> DataFrame:
        """``user_id, account_id, cutoff_at`` then the feature columns: what scoring reads."""
        keys = self.spark.table(self.rows_name).select("rid", *PLAN_KEYS[:2], "cutoff_at")
        return keys.join(self.frame, "rid").drop("rid")

    def unseen(self) -> dict[str, int]:
        """Events of types outside the vocabulary before the cutoffs, by type (sorted)."""
        found = {str(r[0]): int(r[1]) for r in self.spark.sql(self.plan.unseen).collect()}
        return dict(sorted(found.items()))

    def __exit__(self, *exc: object) -> None:
        for df in self._cached:
            df.unpersist()
        for name in reversed(self._views):
            self.spark.catalog.dropTempView(name)
        self._cached, self._views, self.frame = [], [], None

    def _register(self, df: DataFrame, name: str) -> None:
        df.createOrReplaceTempView(name)
        self._views.append(name)


class _SparkRunner:
    """:class:`propensity.features.rows.SqlRunner` on Spark: persisted temp views."""

    dialect = SPARK
    # Spark's type names as DuckDB spells them, for the user-column checks.
    _TYPES = {"tinyint": "TINYINT", "smallint": "SMALLINT", "int": "INTEGER",
              "bigint": "BIGINT", "float": "FLOAT", "double": "DOUBLE", "boolean": "BOOLEAN",
              "string": "VARCHAR"}  # fmt: skip

    def __init__(self, spark: SparkSession) -> None:
        self.spark = spark
        self._cached: dict[str, DataFrame] = {}

    def rows(self, label_times: LabelTimes) -> _SparkRows:
        return _SparkRows(self.spark, label_times)

    def fetch(self, sql: str) -> list[tuple]:
        return [tuple(r) for r in self.spark.sql(sql).collect()]

    def materialise(self, name: str, sql: str) -> None:
        from pyspark import StorageLevel

        df = self.spark.sql(sql).persist(StorageLevel.MEMORY_AND_DISK)
        df.createOrReplaceTempView(name)
        self._cached[name] = df

    def drop(self, name: str) -> None:
        self.spark.catalog.dropTempView(name)
        df = self._cached.pop(name, None)
        if df is not None:
            df.unpersist()

    def column_types(self, table: str) -> dict[str, str]:
        types = self.spark.table(table).dtypes
        return {c: self._TYPES.get(t, t.upper()) for c, t in types}


class _SparkRows:
    """The label rows (with ``label``) as a temp view for the duration of a ``with``."""

    def __init__(self, spark: SparkSession, label_times: LabelTimes) -> None:
        self.spark, self.label_times = spark, label_times
        self.prefix = f"_pf{next(_calls)}_"
        self.name = f"{self.prefix}input"

    def __enter__(self) -> _SparkRows:
        label_rows(self.spark, self.label_times).createOrReplaceTempView(self.name)
        return self

    def __exit__(self, *exc: object) -> None:
        self.spark.catalog.dropTempView(self.name)
