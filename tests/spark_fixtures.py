"""Shared Spark test fixtures: import them into a Spark test module (``from spark_fixtures
import spark``). One local[2] session serves every module, since JVM start-up is ~10 s."""

from __future__ import annotations

import pytest

from propensity.config import SparkConfig

__all__ = ["SPARK_MARKS", "spark"]

# pyspark's own noise under warnings-as-errors, each one named
SPARK_MARKS = [
    pytest.mark.spark,
    pytest.mark.filterwarnings("ignore::DeprecationWarning:pyspark.*"),
    pytest.mark.filterwarnings("ignore::FutureWarning:pyspark.*"),
    pytest.mark.filterwarnings("ignore::ResourceWarning"),
    pytest.mark.filterwarnings("ignore:.*distutils.*:DeprecationWarning"),
]


@pytest.fixture(scope="session")
def spark():
    """One local[2] session (getOrCreate: the same JVM as any other Spark test module)."""
    pytest.importorskip("pyspark")
    from propensity.engines._spark import LOCAL_TEST_CONF, spark_session

    session = spark_session(SparkConfig(master="local[2]", conf=LOCAL_TEST_CONF))
    yield session
    session.stop()
