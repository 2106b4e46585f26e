"""Shared Spark test fixtures: import them into a Spark test module (``from spark_fixtures
import spark``). One local[2] session serves every module, since JVM start-up is ~10 s."""

from __future__ import annotations

import json

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest

from propensity.config import SparkConfig
from propensity.features import FeatureSpec
from propensity.model.bundle import PQLModel
from propensity.model.calibrate import Calibrator

__all__ = ["SPARK_MARKS", "assert_same_prepared", "small_model", "spark"]

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


def assert_same_prepared(got, duck) -> None:
    """Labels, exclusions, split, spec and every feature value of two prepared runs (exact for
    keys, labels and categories; 1e-9 for numbers)."""
    pd.testing.assert_frame_equal(got.labels.frame, duck.labels.frame)
    assert got.labels.excluded == duck.labels.excluded
    assert got.spec.hash == duck.spec.hash and got.spec.columns == duck.spec.columns
    for part in ("train", "validation", "calibration", "test"):
        np.testing.assert_array_equal(getattr(got.split, part), getattr(duck.split, part))
    np.testing.assert_array_equal(got.main_rows, duck.main_rows)
    assert got.unseen_events == duck.unseen_events
    a, b = got.frame, duck.frame
    assert list(a.columns) == list(b.columns) and (a.dtypes == b.dtypes).all()
    cats = got.spec.categorical
    for col in a.columns:
        if col in cats or col in ("user_id", "cutoff_at", "label"):
            assert a[col].equals(b[col]), col
        else:
            np.testing.assert_allclose(a[col], b[col], rtol=0, atol=1e-9, err_msg=col)


def small_model(
    frame: pd.DataFrame, y: np.ndarray, spec: FeatureSpec, flagged: float = 0.1
) -> PQLModel:
    """A 20-tree model of ``frame`` (the spec's columns), calibrated, flagging the top
    ``flagged`` of its rows: enough to compare two engines' scores, with no split to satisfy."""
    cols = list(spec.columns)
    X = frame[cols]
    params = {"objective": "binary", "num_leaves": 4, "learning_rate": 0.1,
              "min_data_in_leaf": 20, "num_threads": 1, "seed": 0, "deterministic": True,
              "verbose": -1}  # fmt: skip
    booster = lgb.train(params, lgb.Dataset(X, label=y), num_boost_round=20)
    calibrator = Calibrator(method="sigmoid").fit(booster.predict(X), y)
    return PQLModel(
        booster=booster,
        calibrator=calibrator,
        threshold=float(np.quantile(calibrator.predict(booster.predict(X)), 1 - flagged)),
        feature_columns=cols,
        categorical={c: list(levels) for c, levels in spec.categorical.items()},
        feature_spec=json.loads(spec.to_json()),
        feature_spec_hash=spec.hash,
    )
