"""Build the SparkSession the Spark engine runs on: UTC, ANSI, Arrow, and the user's settings.

The feature SQL turns naive UTC timestamps into epoch seconds with
``unix_seconds(CAST(ts AS TIMESTAMP))``, which reads the value in the session time zone, so the
zone is pinned to UTC and a config asking for another one is refused rather than silently giving
features shifted by hours. ANSI mode makes Spark raise on overflow and division by zero the way
DuckDB does (the SQL guards every division with ``NULLIF``).
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING

from propensity.config import SparkConfig
from propensity.errors import ConfigError

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

__all__ = ["DEFAULT_CONF", "LOCAL_TEST_CONF", "spark_session"]

TIME_ZONE = "spark.sql.session.timeZone"

# Settings every propensity session gets; the user's conf wins except for the time zone.
DEFAULT_CONF: dict[str, str] = {
    TIME_ZONE: "UTC",
    "spark.sql.ansi.enabled": "true",
    # Arrow moves pandas frames (label rows in, feature tables out, spark_udf batches) in columns.
    "spark.sql.execution.arrow.pyspark.enabled": "true",
    "spark.sql.execution.arrow.pyspark.fallback.enabled": "false",
    # Naive parquet timestamps are read as TIMESTAMP_NTZ (wall clock, no zone): what we store.
    "spark.sql.parquet.inferTimestampNTZ.enabled": "true",
    # Stage progress bars would flood logs of the CLI and of scheduled jobs.
    "spark.ui.showConsoleProgress": "false",
}

# Fast start and small plans for tests and benchmarks on a 2-core machine: a parity run on
# thousands of users is dominated by JVM warm-up and per-stage overhead, not by data.
LOCAL_TEST_CONF: dict[str, str] = {
    "spark.driver.extraJavaOptions": "-XX:+UseSerialGC -XX:TieredStopAtLevel=1",
    "spark.sql.adaptive.enabled": "false",
    "spark.sql.codegen.wholeStage": "false",
    "spark.sql.shuffle.partitions": "2",
    "spark.default.parallelism": "2",
    "spark.ui.enabled": "false",
    "spark.ui.showConsoleProgress": "false",
}


def spark_session(cfg: SparkConfig | None = None) -> SparkSession:
    """Get or create the session described by ``cfg`` (``spark:`` in the config).

    Local masters run Python workers with this interpreter, so ``spark_udf`` scores with the
    same packages as the driver. On a cluster (``master`` None) spark-submit or Databricks owns
    the master and the workers' Python.

    >>> spark = spark_session(SparkConfig(master="local[2]"))  # doctest: +SKIP
    >>> spark.conf.get("spark.sql.session.timeZone")  # doctest: +SKIP
    'UTC'
    """
    from pyspark.sql import SparkSession

    cfg = cfg or SparkConfig()
    conf = {**DEFAULT_CONF, **{k: _text(v) for k, v in cfg.conf.items()}}
    if conf[TIME_ZONE] not in ("UTC", "Etc/UTC", "+00:00", "Z"):
        raise ConfigError(
            f"spark.conf.{TIME_ZONE} must be UTC: timestamps are naive UTC and the feature SQL "
            f"reads them in the session zone. Got {conf[TIME_ZONE]!r}; remove the setting."
        )
    builder = SparkSession.builder.appName(cfg.app_name)
    if cfg.master is not None:
        builder = builder.master(cfg.master)
    # A local master, or none outside spark-submit (pyspark then starts local[*] itself): Python
    # workers (mapInPandas, spark_udf) must see this venv's packages, and pyspark otherwise picks
    # "python3" from PATH. Under spark-submit (SPARK_ENV_LOADED) the cluster owns the workers.
    local = cfg.master.startswith("local") if cfg.master else "SPARK_ENV_LOADED" not in os.environ
    if local:
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
        builder = builder.config("spark.pyspark.python", os.environ["PYSPARK_PYTHON"])
    for key, value in conf.items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    # getOrCreate returns a running session as is; runtime SQL settings must still hold.
    for key, value in conf.items():
        if spark.conf.isModifiable(key) and spark.conf.get(key, None) != value:
            spark.conf.set(key, value)
    spark.sparkContext.setLogLevel("ERROR")
    return spark


def _text(value: str | int | float | bool) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
