"""Behavioural sequence features computed in SQL, strictly from events before each cutoff.

>>> spec = learn_spec(con, train_label_times, cfg.features)  # doctest: +SKIP
>>> ff = compute_features(con, label_times, spec)  # doctest: +SKIP
>>> FeatureSpec.from_json(spec.to_json()).hash == spec.hash  # doctest: +SKIP
True
"""

from propensity.features.engine import FeatureFrame, compute_features, learn_spec
from propensity.features.spec import FeatureInfo, FeatureSpec
from propensity.features.sql import DUCKDB, SPARK, Dialect

__all__ = [
    "DUCKDB",
    "SPARK",
    "Dialect",
    "FeatureFrame",
    "FeatureInfo",
    "FeatureSpec",
    "compute_features",
    "learn_spec",
]
