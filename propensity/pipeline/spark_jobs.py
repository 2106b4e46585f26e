"""The training preparation and the score job on Spark (``engine: spark``).

Same steps and same definitions as :mod:`propensity.pipeline.prepare` and
:mod:`propensity.pipeline.score`, only the engine differs: label times, the feature spec and the
features run on Spark (:mod:`propensity.spark`), the split and the model stay on the driver.
Spark reads the canonical tables of ``propensity/contract.py`` as they are (parquet by default):
raw exports are mapped, cleaned and validated first, by the DuckDB reader (``propensity
validate`` writes nothing; write the canonical tables with :func:`propensity.io.load_data` and
``COPY``) or by an upstream lakehouse job. So a config with a preset or a column mapping is
refused here rather than read wrongly.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from propensity.config import Config, Preset
from propensity.errors import ConfigError, DataContractError
from propensity.features.named import event_support
from propensity.io.summary import DataSummary, TableSummary
from propensity.labels import LabelTimes
from propensity.model.split import split_out_of_time
from propensity.pipeline.modelspec import model_spec
from propensity.pipeline.prepare import (
    Prepared,
    check_rules,
    main_cutoff_rows,
    named_events_present,
)
from propensity.pipeline.score import resolve_as_of

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

__all__ = ["SparkData", "load_spark", "prepare_spark", "score_spark_job", "scoring_like_rows_spark"]


@dataclass(frozen=True, eq=False)
class SparkData:
    """The Spark engine's :class:`propensity.io.LoadedData`: a session with the views
    ``events``, ``users``, ``conversions`` registered, and the same :class:`DataSummary`.

    There is no DuckDB connection (``.con``): code that needs the tables asks Spark.
    """

    spark: SparkSession
    report: DataSummary


def load_spark(cfg: Config, spark: SparkSession | None = None) -> SparkData:
    """Register the canonical tables named in ``cfg.data`` on Spark and summarise them.

    Rows are read as they are (canonical form), so ``rows_read == rows_kept`` and no drops.
    """
    from propensity.spark import register_tables, spark_session

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
    if data.lost_users is not None or cfg.label.lost_event is not None:
        problems.append(
            "data.lost_users and label.lost_event are not supported with engine: spark yet. "
            "Remove them, or train with engine: duckdb."
        )
    if data.users is None:
        problems.append(
            "data.users must name the users table for engine: spark (signup times come from it). "
            "Got none; write the canonical users table and set data.users."
        )
    if problems:
        raise ConfigError(" ".join(problems))
    spark = spark or spark_session(cfg.spark)
    register_tables(spark, data.events, data.users, data.conversions)
    return SparkData(spark, _report(spark, data.events, data.users, data.conversions))


def prepare_spark(cfg: Config, data: SparkData | None = None) -> Prepared:
    """:func:`propensity.pipeline.prepare.prepare` on Spark: the same Prepared, value for value.

    Label times, the spec (learned on the training slice only) and the features run on Spark;
    the feature table comes back to the driver for LightGBM. ``Prepared.data`` is a
    :class:`SparkData`.
    """
    from propensity.spark import (
        build_label_times_spark,
        compute_features_spark,
        label_rows,
        learn_spec_spark,
    )

    data = data or load_spark(cfg)
    spark = data.spark
    labels = build_label_times_spark(spark, cfg.label, cfg.data.end)
    split = split_out_of_time(labels.frame, cfg.split)
    train_rows = LabelTimes(
        labels.frame.iloc[split.train].reset_index(drop=True), labels.excluded, labels.settings
    )
    view = "_propensity_support_rows"
    label_rows(spark, train_rows).createOrReplaceTempView(view)
    try:
        support = event_support(lambda sql: [tuple(r) for r in spark.sql(sql).collect()], view)
    finally:
        spark.catalog.dropTempView(view)
    features = named_events_present(cfg.features, support)
    spec = learn_spec_spark(spark, train_rows, features)
    check_rules(cfg, spec, support, features)
    result = compute_features_spark(spark, labels, spec)
    frame = result.frame
    frame["label"] = labels.frame["label"].to_numpy(dtype=int)
    main = main_cutoff_rows(labels, cfg.label)
    return Prepared(data, labels, split, spec, frame, result.unseen_events, main)  # type: ignore[arg-type]


def scoring_like_rows_spark(cfg: Config, prepared: Prepared) -> pd.DataFrame:
    """Spark twin of ``train._scoring_like_rows``: features of the population the score job
    would have met at the end of the test period (the drift reference)."""
    from propensity.spark import compute_features_spark, scoring_population_spark

    spark = prepared.data.spark  # type: ignore[attr-defined]
    as_of = pd.Timestamp(prepared.test_rows()["cutoff_at"].max()).to_pydatetime()
    population = scoring_population_spark(spark, cfg.label, as_of)
    return compute_features_spark(spark, population, prepared.spec).frame


def score_spark_job(
    cfg: Config,
    as_of: str | datetime,
    out: Path | str,
    model_uri: str | None = None,
    *,
    data: SparkData | None = None,
) -> dict[str, Any]:
    """Score every user in trial and unconverted at ``as_of`` on Spark; parquet by ``as_of``.

    The population and the features stay in Spark, probabilities come from the registered
    model through ``spark_udf``, reason codes from the same code as on one machine, and
    ``out`` (any path Spark writes) gets the partition ``as_of=...`` replaced. Returns the
    summary (counts and seconds). No drift check, previous-run comparison or account roll-up
    here: see docs/spark.md, "Known limits".
    """
    from propensity.spark import feature_table, label_rows, scoring_population_spark
    from propensity.spark.scoring import score_spark, write_scores
    from propensity.tracking import load_model

    began = time.perf_counter()
    uri = model_uri or f"models:/{cfg.mlflow.registered_model}@champion"
    spec = model_spec(load_model(uri, cfg.mlflow).pqlmodel)  # exit 3 before any Spark work
    data = data or load_spark(cfg)
    spark = data.spark
    when = resolve_as_of(as_of, data.report.last_event)
    population = scoring_population_spark(spark, cfg.label, when)
    if len(population) == 0:
        raise DataContractError(
            [
                f"No user is in trial and unconverted at {when:%Y-%m-%d %H:%M} UTC, so there is "
                f"nobody to score. Check --as-of against the data range "
                f"({data.report.first_event} to {data.report.last_event}) and label.trial_length."
            ]
        )
    try:
        with feature_table(spark, label_rows(spark, population), spec) as feats:
            scores = score_spark(
                spark, feats.keyed(), uri, cfg.scoring, when, mlflow_cfg=cfg.mlflow
            )
            write_scores(scores, str(out))
            unseen = feats.unseen()
    finally:
        spark.catalog.clearCache()  # score_spark persists the scored rows for its two passes
    return {**_written_summary(spark, str(out), when), "as_of": when.isoformat(),
            "unseen_event_types": len(unseen), "output": str(out),
            "seconds": round(time.perf_counter() - began, 2)}  # fmt: skip


# ---- helpers -------------------------------------------------------------------------------
def _report(spark: SparkSession, events: str, users: str, conversions: str | None) -> DataSummary:
    """:func:`propensity.io.summary.summarise` computed on the Spark views (no drops)."""
    row = spark.sql(
        "SELECT (SELECT count(*) FROM events), (SELECT count(*) FROM users), "
        "(SELECT count(*) FROM conversions), (SELECT count(DISTINCT user_id) FROM events), "
        "(SELECT count(DISTINCT user_id) FROM conversions), "
        "(SELECT CAST(min(timestamp) AS TIMESTAMP_NTZ) FROM events), "
        "(SELECT CAST(max(timestamp) AS TIMESTAMP_NTZ) FROM events)"
    ).collect()[0]
    n_events, n_users, n_conv, with_events, converted, first, last = row
    types = spark.sql(
        "SELECT event, count(*) AS n FROM events GROUP BY event ORDER BY n DESC, event"
    ).collect()
    counts = {"events": n_events, "users": n_users, "conversions": n_conv}
    sources = {"events": events, "users": users, "conversions": conversions}
    return DataSummary(
        tables=tuple(
            TableSummary(name, sources[name], int(counts[name]), int(counts[name]))
            for name in ("events", "users", "conversions")
        ),
        drops=(),
        notes=("engine: spark read the canonical tables as they are (no cleaning step)",),
        users=int(n_users),
        users_with_events=int(with_events),
        converted_users=int(converted),
        first_event=first,
        last_event=last,
        event_types=tuple((str(r[0]), int(r[1])) for r in types),
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
