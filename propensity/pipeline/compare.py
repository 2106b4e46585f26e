"""`compare(cfg)`: the registered model and the rules baselines on the same out-of-time slice."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from propensity.baselines import baselines_from_config
from propensity.compare import compare
from propensity.config import Config
from propensity.engines import open_engine
from propensity.io import write_table
from propensity.labels import LabelTimes
from propensity.model.split import split_label_times
from propensity.pipeline.prepare import labelled_features, main_cutoff_rows

__all__ = ["CompareOutcome", "compare_job"]


@dataclass(frozen=True, eq=False)
class CompareOutcome:
    table: pd.DataFrame
    model: str
    test_rows: int
    weeks: float
    output: Path


def compare_job(cfg: Config, model_uri: str | None = None) -> CompareOutcome:
    """Score the test slice with the model (default: the champion) and judge every baseline."""
    from propensity.tracking import load_model

    uri = model_uri or f"models:/{cfg.mlflow.registered_model}@champion"
    loaded = load_model(uri, cfg.mlflow)
    model = loaded.pqlmodel
    spec = model.spec
    engine = open_engine(cfg)
    labels = engine.label_times(cfg.label, cfg.task)
    split = split_label_times(labels, cfg.split)
    # the rows train reports on: the test slice at the main cutoff, one row per user
    rows = split.test[main_cutoff_rows(labels, cfg.label)[split.test]]
    test = LabelTimes(
        labels.frame.iloc[rows].reset_index(drop=True), labels.excluded, labels.settings
    )
    frame, _ = labelled_features(engine, test, spec)
    weeks = split.weeks("test")
    result = compare(
        frame,
        model,
        model.threshold,
        baselines_from_config(cfg.baselines),
        weeks,
        n_boot=cfg.baselines.bootstrap,
        seed=cfg.seed,
    )
    output = write_table(result.table, Path(cfg.output_dir) / "comparison.csv", "csv")
    return CompareOutcome(result.table, uri, len(frame), weeks, output)
