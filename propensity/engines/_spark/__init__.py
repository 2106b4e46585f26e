"""Run propensity on Apache Spark: the same labels, features and scores as on DuckDB.

pyspark is an optional dependency (``pip install propensity[spark]``); importing this package
needs it only when a function runs. See docs/spark.md for cluster runs.

>>> spark = spark_session(cfg.spark)  # doctest: +SKIP
>>> register_tables(spark, "lake/events/", "lake/users/", "lake/conversions/")  # doctest: +SKIP
>>> lt = build_label_times_spark(spark, cfg.label)  # doctest: +SKIP
>>> ff = compute_features_spark(spark, lt, spec)  # same FeatureFrame as DuckDB  # doctest: +SKIP
"""

from propensity.engines._spark.features import (
    SparkFeatures,
    compute_features_spark,
    feature_table,
    label_rows,
    learn_spec_spark,
)
from propensity.engines._spark.labels import (
    build_label_times_spark,
    scoring_population_spark,
    task_label_times_spark,
    task_population_spark,
)
from propensity.engines._spark.session import DEFAULT_CONF, LOCAL_TEST_CONF, spark_session
from propensity.engines._spark.tables import register_tables

__all__ = [
    "DEFAULT_CONF",
    "LOCAL_TEST_CONF",
    "SparkFeatures",
    "build_label_times_spark",
    "compute_features_spark",
    "feature_table",
    "label_rows",
    "learn_spec_spark",
    "register_tables",
    "scoring_population_spark",
    "spark_session",
    "task_label_times_spark",
    "task_population_spark",
]
