"""`feature_list(cfg)`: every feature column of a project with its one-line meaning.

The spec is learned from the config's data exactly as ``train`` learns it (training slice,
config entries of absent events dropped), without computing any feature; or it is read from a
registered model (``models:/<name>@champion``, a version, or a model folder).
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from propensity.config import Config
from propensity.engines.duckdb import open_duckdb
from propensity.features import FeatureSpec, learn_spec
from propensity.features.glossary import meaning
from propensity.features.named import named_events
from propensity.labels import LabelTimes
from propensity.model.split import split_label_times
from propensity.pipeline.prepare import named_events_present

__all__ = ["FeatureList", "feature_list", "learned_spec"]


@dataclass(frozen=True, eq=False)
class FeatureList:
    """The columns (``feature``, ``family``, ``meaning``) and where the spec came from."""

    table: pd.DataFrame
    spec: FeatureSpec
    source: str


def learned_spec(cfg: Config) -> FeatureSpec:
    """The spec ``train`` would learn from ``cfg``'s data (no feature is computed)."""
    engine = open_duckdb(cfg)  # the spec alone: learn_spec's queries, no feature computed
    labels = engine.label_times(cfg.label, cfg.task)
    split = split_label_times(labels, cfg.split)
    rows = LabelTimes(
        labels.frame.iloc[split.train].reset_index(drop=True), labels.excluded, labels.settings
    )
    named = engine.support(rows, named_events(cfg.features))
    features = named_events_present(cfg.features, named)
    return learn_spec(engine.con, rows, features)


def feature_list(cfg: Config, model: str | None = None) -> FeatureList:
    """Each feature of the learned spec, or of ``model``'s spec ('champion' for the champion)."""
    if model is None:
        spec, source = learned_spec(cfg), f"learned from {cfg.data.events}"
    else:
        from propensity.tracking import load_model

        uri = f"models:/{cfg.mlflow.registered_model}@champion" if model == "champion" else model
        spec, source = load_model(uri, cfg.mlflow).pqlmodel.spec, uri
    table = pd.DataFrame(
        [(f.name, f.family, meaning(f)) for f in spec.features],
        columns=["feature", "family", "meaning"],
    )
    return FeatureList(table, spec, source)
