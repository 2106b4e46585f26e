"""The Spark engine (``engine: spark``): the canonical tables as Spark views, same definitions.

Label times, the feature spec and the features run on Spark (:mod:`propensity.engines._spark`);
the split and the model stay on the driver. Spark reads the canonical tables of
``propensity/contract.py`` as they are (parquet by default): raw exports are mapped, cleaned and
validated first, by the DuckDB reader (``propensity validate`` writes nothing; write the
canonical tables with :func:`propensity.io.load_data` and ``COPY``) or by an upstream lakehouse
job. So a config with a preset or a column mapping is refused here rather than read wrongly.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from propensity.config import Config, FeaturesConfig, LabelConfig, Preset, TaskConfig
from propensity.engines._spark import (
    build_label_times_spark,
    compute_features_spark,
    feature_table,
    label_rows,
    learn_spec_spark,
    register_tables,
    scoring_population_spark,
    spark_session,
    task_label_times_spark,
    task_population_spark,
)
from propensity.engines._spark.accounts import AccountViews, member_shares_spark, members_spark
from propensity.engines._spark.labels import entity_tables_spark
from propensity.engines._spark.scoring import score_spark, write_scores
from propensity.engines.account import entity_rows, is_account, members_family
from propensity.engines.entities import EntityTables
from propensity.errors import ConfigError
from propensity.features import FeatureFrame, FeatureSpec
from propensity.features.named import event_support
from propensity.features.portable import SPARK
from propensity.io.summary import DataSummary, TableSummary
from propensity.labels import ACTIVE_USERS_SQL, LabelTimes, check_trainable

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

__all__ = ["SparkEngine", "open_spark"]


class SparkEngine:
    """:class:`propensity.engines.base.Engine` on a Spark session holding the views ``events``,
    ``users``, ``conversions``. There is no DuckDB connection: the work runs on Spark."""

    name = "spark"

    def __init__(
        self, spark: SparkSession, summary: DataSummary, data_end: datetime | None = None
    ) -> None:
        self.spark, self.summary, self.data_end = spark, summary, data_end
        self._accounts = AccountViews(spark)

    def latest(self) -> datetime | None:
        return self.summary.data_end or self.summary.last_event

    def label_times(self, cfg: LabelConfig, task: TaskConfig | None = None) -> LabelTimes:
        if task is None:
            return build_label_times_spark(self.spark, cfg, self.data_end)
        labels = task_label_times_spark(self.spark, cfg, task, self.data_end)
        return _entity_rows(labels, task)

    def check_trainable(
        self, labels: LabelTimes, cfg: LabelConfig, min_positives: int, min_negatives: int
    ) -> None:
        """:func:`propensity.labels.check_trainable`, its activity count run on Spark."""
        check_trainable(
            None, labels, cfg, min_positives, min_negatives, count_active=self._active_users
        )

    def _active_users(self, main: pd.DataFrame) -> int:
        view = "_propensity_main_rows"
        rows = LabelTimes(main.reset_index(drop=True))
        label_rows(self.spark, rows).createOrReplaceTempView(view)
        try:
            [(n,)] = self.spark.sql(ACTIVE_USERS_SQL.format(rows=view)).collect()
        finally:
            self.spark.catalog.dropTempView(view)
        return int(n)

    def population(
        self, cfg: LabelConfig, as_of: datetime, task: TaskConfig | None = None
    ) -> LabelTimes:
        if task is not None and task.anchors.kind == "calendar":
            return _entity_rows(task_population_spark(self.spark, cfg, task, as_of), task)
        return scoring_population_spark(self.spark, cfg, as_of)

    def support(self, rows: LabelTimes, events: Iterable[str] | None = None) -> dict[str, int]:
        view = "_propensity_support_rows"
        label_rows(self.spark, rows).createOrReplaceTempView(view)
        try:
            fetch = lambda sql: [tuple(r) for r in self.spark.sql(sql).collect()]  # noqa: E731
            with self._accounts.swapped(is_account(rows)):
                return event_support(fetch, view, events)
        finally:
            self.spark.catalog.dropTempView(view)

    def learn_spec(
        self, labels: LabelTimes, cfg: FeaturesConfig, learn: np.ndarray
    ) -> tuple[FeatureSpec, FeatureFrame]:
        rows = LabelTimes(
            labels.frame[learn].reset_index(drop=True), labels.excluded, labels.settings
        )
        if not is_account(labels):
            spec = learn_spec_spark(self.spark, rows, cfg)
            return spec, compute_features_spark(self.spark, labels, spec)
        # an account: the user-level families over its members' events, then the members family
        with self._accounts.swapped():
            spec = learn_spec_spark(self.spark, rows, cfg)
            base = compute_features_spark(self.spark, labels, spec)
        spec = replace(spec, families=(*spec.families, "members"))
        return spec, self._with_members(labels, base, spec)

    def features(self, rows: LabelTimes, spec: FeatureSpec) -> FeatureFrame:
        if "members" not in spec.families:
            return compute_features_spark(self.spark, rows, spec)
        base = replace(spec, families=tuple(f for f in spec.families if f != "members"))
        with self._accounts.swapped():
            result = compute_features_spark(self.spark, rows, base)
        return self._with_members(rows, result, spec)

    def _with_members(
        self, rows: LabelTimes, base: FeatureFrame, spec: FeatureSpec
    ) -> FeatureFrame:
        feats, seats = members_spark(self.spark, rows)
        frame = members_family(base.frame, feats, seats, list(spec.columns))
        return FeatureFrame(frame, base.unseen_events)

    def score_in_place(
        self,
        population: LabelTimes,
        loaded: Any,
        uri: str,
        spec: FeatureSpec,
        cfg: Config,
        when: datetime,
        out: Path | str,
    ) -> dict[str, Any]:
        """Score ``population`` in Spark with the ``loaded`` model; parquet by ``as_of``.

        The features stay in Spark, probabilities come from the registered model through
        ``spark_udf``, reason codes from the same code as on one machine, and ``out`` (any path
        Spark writes) gets the partition ``as_of=...`` replaced. Returns the summary (counts).
        """
        spark = self.spark
        try:
            with feature_table(spark, label_rows(spark, population), spec) as feats:
                scores = score_spark(
                    spark, feats.keyed(), uri, cfg.scoring, when, loaded=loaded,
                    mlflow_cfg=cfg.mlflow,
                )  # fmt: skip
                write_scores(scores, str(out))
                unseen = feats.unseen()
        finally:
            spark.catalog.clearCache()  # score_spark persists the scored rows for its two passes
        return {**_written_summary(spark, str(out), when), "as_of": when.isoformat(),
                "unseen_event_types": len(unseen), "output": str(out)}  # fmt: skip

    def written_scores(self, out: Path | str, when: datetime) -> pd.DataFrame:
        """The score table :meth:`score_in_place` wrote to ``out`` at ``when`` (one row per
        user, on the driver: what the CRM step of ``score --crm`` reads)."""
        from pyspark.sql import functions as F

        part = self.spark.read.parquet(str(out)).where(F.col("as_of") == F.lit(pd.Timestamp(when)))
        frame = part.orderBy("user_id").toPandas()
        return frame.assign(as_of=pd.Timestamp(when))

    def member_shares(self, rows: LabelTimes, spec: FeatureSpec | None = None) -> pd.DataFrame:
        """Each member's share of the attributable account features of ``rows``, by the SQL
        the DuckDB engine runs (``engines.account.shares_of``)."""
        return member_shares_spark(self.spark, rows, spec)

    def entity_tables(self, cfg: LabelConfig, task: TaskConfig | None = None) -> EntityTables:
        """Each entity's conversion and its users row, by DuckDB's definition on the few
        tables Spark hands the driver (``engines/_spark/labels.py``)."""
        return entity_tables_spark(self.spark, cfg, task)

    def known_events(self, rows: pd.DataFrame, vocabulary: Iterable[str]) -> int:
        view = "_score_rows"
        self.spark.createDataFrame(rows[["user_id", "cutoff_at"]]).createOrReplaceTempView(view)
        names = ", ".join(SPARK.literal(v) for v in vocabulary) or "NULL"
        accounts = any(str(c).startswith("acct_") for c in rows.columns)  # an account's table
        try:
            with self._accounts.swapped(accounts):
                [(n,)] = self.spark.sql(
                    f"SELECT count(*) FROM events e JOIN {view} r ON e.user_id = r.user_id "
                    f"WHERE e.timestamp < r.cutoff_at AND e.event IN ({names})"
                ).collect()
        finally:
            self.spark.catalog.dropTempView(view)
        return int(n)


def open_spark(cfg: Config, spark: SparkSession | None = None) -> SparkEngine:
    """Register the canonical tables named in ``cfg.data`` on Spark and summarise them.

    Rows are read as they are (canonical form), so ``rows_read == rows_kept`` and no drops.
    """

    data = cfg.data
    problems = []
    if data.preset != Preset.canonical or data.columns:
        problems.append(
            f"data.preset must be 'canonical' without data.columns for engine: spark (Spark reads "
            f"canonical tables as they are). Got preset {data.preset.value!r} and "
            f"{len(data.columns)} column mappings; write canonical parquet with the DuckDB reader "
            f"(engine: duckdb) first and point data.* at it."
        )
    if data.format not in ("auto", "parquet"):
        problems.append(
            f"data.format must be 'parquet' (or 'auto') for engine: spark. Got {data.format!r}; "
            f"convert the tables to canonical parquet first."
        )
    if data.users is None:
        problems.append(
            "data.users must name the users table for engine: spark (signup times come from it). "
            "Got none; write the canonical users table and set data.users."
        )
    if problems:
        raise ConfigError(" ".join(problems))
    spark = spark or spark_session(cfg.spark)
    register_tables(
        spark, data.events, data.users, data.conversions, payments=data.payments,
        lost_users=data.lost_users,
    )  # fmt: skip
    optional = {"lost_users": data.lost_users, "payments": data.payments}
    sources = {"events": data.events, "users": data.users, "conversions": data.conversions}
    sources.update({name: path for name, path in optional.items() if path is not None})
    summary = _report(spark, sources, data.end)
    return SparkEngine(spark, summary, data.end)


# ---- helpers -------------------------------------------------------------------------------
def _entity_rows(labels: LabelTimes, task: TaskConfig) -> LabelTimes:
    """Account label times as the entity rows every feature plan reads (as on DuckDB)."""
    return entity_rows(labels) if task.entity == "account" else labels


def _report(
    spark: SparkSession, sources: dict[str, str | None], end: datetime | None
) -> DataSummary:
    """The data summary (:func:`propensity.io.summary.summarise`) on the Spark views, no drops:
    every table in ``sources`` (their views), in its order, as DuckDB lists them."""
    counts = ", ".join(f"(SELECT count(*) FROM {name})" for name in sources)
    row = spark.sql(
        f"SELECT {counts}, (SELECT count(DISTINCT user_id) FROM events), "
        "(SELECT count(DISTINCT user_id) FROM conversions), "
        "(SELECT CAST(min(timestamp) AS TIMESTAMP_NTZ) FROM events), "
        "(SELECT CAST(max(timestamp) AS TIMESTAMP_NTZ) FROM events)"
    ).collect()[0]
    rows = dict(zip(sources, row[: len(sources)], strict=True))
    with_events, converted, first, last = row[len(sources) :]
    types = spark.sql(
        "SELECT event, count(*) AS n FROM events GROUP BY event ORDER BY n DESC, event"
    ).collect()
    notes = ["engine: spark read the canonical tables as they are (no cleaning step)"]
    if end is not None:
        notes.append(f"data ends at {end:%Y-%m-%d %H:%M:%S} (data.end)")
    return DataSummary(
        tables=tuple(
            TableSummary(name, source, int(rows[name]), int(rows[name]))
            for name, source in sources.items()
        ),
        drops=(),
        notes=tuple(notes),
        users=int(rows["users"]),
        users_with_events=int(with_events),
        converted_users=int(converted),
        first_event=first,
        last_event=last,
        event_types=tuple((str(r[0]), int(r[1])) for r in types),
        data_end=end if end is not None else last,
        data_end_configured=end is not None,
    )


def _written_summary(spark: SparkSession, out: str, when: datetime) -> dict[str, int]:
    """Counts read back from the partition just written: what downstream readers will see."""
    from pyspark.sql import functions as F

    part = spark.read.parquet(out).where(F.col("as_of") == F.lit(pd.Timestamp(when)))
    explained = (
        F.col("reason_1_feature").isNotNull() if "reason_1_feature" in part.columns else None
    )
    aggs = [
        F.count(F.lit(1)).alias("users_scored"),
        F.sum(F.col("is_pql").cast("int")).alias("pqls"),
        F.sum(F.col("holdout").cast("int")).alias("holdout"),
    ]
    if explained is not None:
        aggs.append(F.sum(explained.cast("int")).alias("with_reasons"))
    row = part.agg(*aggs).collect()[0].asDict()
    return {k: int(v or 0) for k, v in row.items()}
