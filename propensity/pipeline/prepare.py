"""The shared first half of training and comparing: load, label, split, learn the spec, featurise.

The feature spec (vocabulary, transitions ranked against the label, categorical levels) is learned
on the training slice only, so nothing about the validation, calibration or test labels leaks into
which features exist.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from propensity.config import Config, LabelConfig
from propensity.features import FeatureSpec, compute_features, learn_spec_and_features
from propensity.io import LoadedData, load_data
from propensity.labels import LabelTimes, build_label_times
from propensity.model.split import Split, split_out_of_time

if TYPE_CHECKING:
    from propensity.pipeline.spark_jobs import SparkData

__all__ = ["Prepared", "labelled_features", "main_cutoff_rows", "prepare"]


@dataclass(frozen=True, eq=False)
class Prepared:
    """Everything up to the feature table, ready for the model."""

    data: LoadedData | SparkData  # SparkData (no DuckDB connection) with engine: spark
    labels: LabelTimes
    split: Split
    spec: FeatureSpec
    frame: pd.DataFrame  # user_id, cutoff_at, features in spec order, label
    unseen_events: dict[str, int]
    main_rows: np.ndarray  # rows at the main cutoff (signup + observation window): one per user

    def test_rows(self) -> pd.DataFrame:
        """The test slice's main-cutoff rows: what every reported number is measured on."""
        return self.frame.iloc[self.split.test[self.main_rows[self.split.test]]]


def labelled_features(
    data: LoadedData, labels: LabelTimes, spec: FeatureSpec
) -> tuple[pd.DataFrame, dict[str, int]]:
    """The feature table for `labels` with the label carried alongside, and unseen events."""
    result = compute_features(data.con, labels, spec)
    frame = result.frame
    frame["label"] = labels.frame["label"].to_numpy(dtype=int)
    return frame, result.unseen_events


def prepare(cfg: Config, data: LoadedData | None = None) -> Prepared:
    """Load the data named in `cfg` (unless given), build label times, split, featurise."""
    data = data or load_data(cfg.data)
    labels = build_label_times(data.con, cfg.label)
    split = split_out_of_time(labels.frame, cfg.split)
    learn = np.zeros(len(labels.frame), dtype=bool)
    learn[split.train] = True
    # The spec is learn_spec's on the training rows; one event scan serves it and the features.
    spec, result = learn_spec_and_features(data.con, labels, cfg.features, learn)
    frame = result.frame
    frame["label"] = labels.frame["label"].to_numpy(dtype=int)
    unseen = result.unseen_events
    return Prepared(data, labels, split, spec, frame, unseen, main_cutoff_rows(labels, cfg.label))


def main_cutoff_rows(labels: LabelTimes, cfg: LabelConfig) -> np.ndarray:
    """Mask of the rows whose cutoff is signup + observation window (not an extra cutoff)."""
    window_days = cfg.observation_window.total_seconds() / 86_400
    return np.isclose(labels.frame["cutoff_age_days"].to_numpy(dtype=float), window_days)
