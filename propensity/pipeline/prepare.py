"""The shared first half of training and comparing: load, label, split, learn the spec, featurise.

The feature spec (vocabulary, transitions ranked against the label, categorical levels) is learned
on the training slice only, so nothing about the validation, calibration or test labels leaks into
which features exist.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from propensity.baselines import baselines_from_config, check_baselines
from propensity.config import Config, FeaturesConfig, LabelConfig
from propensity.engines import Engine, open_engine
from propensity.errors import PropensityWarning
from propensity.features import FeatureSpec
from propensity.features.named import drop_missing_named, named_events, spec_frame, why_missing
from propensity.labels import LabelTimes
from propensity.model.split import Split, split_label_times

__all__ = [
    "Prepared",
    "check_rules",
    "labelled_features",
    "main_cutoff_rows",
    "named_events_present",
    "prepare",
]


@dataclass(frozen=True, eq=False)
class Prepared:
    """Everything up to the feature table, ready for the model."""

    engine: Engine  # the engine holding the tables (its summary: what was read and dropped)
    labels: LabelTimes
    split: Split
    spec: FeatureSpec
    frame: pd.DataFrame  # user_id, cutoff_at, features in spec order, label
    unseen_events: dict[str, int]
    main_rows: np.ndarray  # rows at the main cutoff (signup + observation window), or all

    def test_rows(self) -> pd.DataFrame:
        """The test slice's main-cutoff rows: what every reported number is measured on."""
        return self.frame.iloc[self.split.test[self.main_rows[self.split.test]]]


def labelled_features(
    engine: Engine, labels: LabelTimes, spec: FeatureSpec
) -> tuple[pd.DataFrame, dict[str, int]]:
    """The feature table for `labels` with the label carried alongside, and unseen events."""
    result = engine.features(labels, spec)
    frame = result.frame
    frame["label"] = labels.frame["label"].to_numpy(dtype=int)
    return frame, result.unseen_events


def prepare(
    cfg: Config, engine: Engine | None = None, baselines: Sequence[Any] | None = None
) -> Prepared:
    """Load the data named in `cfg` (unless an engine holding it is given), build label times,
    split, learn the spec on the training slice and featurise every row.

    ``baselines`` (default: built from ``cfg.baselines``) are checked against the learned spec.
    """
    engine = engine or open_engine(cfg)
    labels = engine.label_times(cfg.label, cfg.task)
    # too little data is said as such here, not later as a rule or a split that cannot fit
    engine.check_trainable(labels, cfg.label, cfg.model.min_positives, cfg.model.min_negatives)
    split = split_label_times(labels, cfg.split)
    train_rows = LabelTimes(
        labels.frame.iloc[split.train].reset_index(drop=True), labels.excluded, labels.settings
    )
    # only the named events are counted now; the whole vocabulary only if a rule needs a reason
    named = engine.support(train_rows, named_events(cfg.features))
    features = named_events_present(cfg.features, named)
    learn = np.zeros(len(labels.frame), dtype=bool)
    learn[split.train] = True
    spec, result = engine.learn_spec(labels, features, learn)
    # every rule problem at once, before the model
    check_rules(cfg, spec, lambda: engine.support(train_rows), features, baselines)
    frame = result.frame
    frame["label"] = labels.frame["label"].to_numpy(dtype=int)
    unseen = result.unseen_events
    main = main_cutoff_rows(labels, cfg.label)
    return Prepared(engine, labels, split, spec, frame, unseen, main)


def main_cutoff_rows(labels: LabelTimes, cfg: LabelConfig) -> np.ndarray:
    """Mask of the rows whose cutoff is signup + observation window (not an extra cutoff);
    every row at calendar anchors."""
    if labels.calendar:
        return np.ones(len(labels.frame), dtype=bool)
    window_days = cfg.observation_window.total_seconds() / 86_400
    return np.isclose(labels.frame["cutoff_age_days"].to_numpy(dtype=float), window_days)


def named_events_present(cfg: FeaturesConfig, support: Mapping[str, int]) -> FeaturesConfig:
    """``cfg`` without entries naming events absent from the training rows, with one warning.

    Milestones, properties and key events of events that never happen would only add
    features of constants (a config copied from another product names dozens).
    """
    features, dropped = drop_missing_named(cfg, support)
    if dropped:
        warnings.warn(
            f"features: ignoring {len(dropped)} config entries whose events never occur before "
            f"a training cutoff in this data ({'; '.join(dropped)}); remove them from the "
            f"config, or map the event names.",
            PropensityWarning,
            stacklevel=2,
        )
    return features


def check_rules(
    cfg: Config,
    spec: FeatureSpec,
    support: Mapping[str, int] | Callable[[], Mapping[str, int]],
    features: FeaturesConfig,
    baselines: Sequence[Any] | None = None,
) -> None:
    """Check every rules baseline against the spec's columns; one error naming every problem.

    ``support`` (users per event type on the training rows, or a function computing it) is
    read only when a rule names a feature the spec lacks, to say why.
    """
    counted: list[Mapping[str, int]] = []

    def explain(name: str) -> str | None:
        if not counted:
            counted.append(support() if callable(support) else support)
        return why_missing(name, spec, counted[0], features)

    if baselines is None:
        baselines = baselines_from_config(cfg.baselines)
    check_baselines(list(baselines), spec_frame(spec), explain=explain)
