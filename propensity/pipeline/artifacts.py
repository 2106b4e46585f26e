"""Writing a training run's outputs to its folder: model, metrics, tables and plots.

Every file is written atomically; the folder is what gets logged to MLflow, so an analyst finds
the same files locally and in the run's artifact view.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from propensity.config import Config
from propensity.figures import (
    figure_png,
    plot_comparison,
    plot_feature_importance,
    plot_precision_recall,
    plot_reliability,
    plot_roc,
    plot_score_distribution,
)
from propensity.io import atomic_path, write_table
from propensity.model.train import TrainingResult
from propensity.pipeline.prepare import Prepared

__all__ = ["write_json", "write_training_artifacts"]


def write_json(data: Any, target: Path) -> Path:
    """Write `data` as indented JSON, atomically."""
    with atomic_path(target) as tmp:
        tmp.write_text(json.dumps(data, indent=2, default=str, sort_keys=True), encoding="utf-8")
    return target


def _figure(fig: Any, target: Path) -> Path:
    with atomic_path(target) as tmp:
        tmp.write_bytes(figure_png(fig, dpi=110))
    return target


def write_training_artifacts(
    out_dir: Path, cfg: Config, prepared: Prepared, result: TrainingResult, comparison: Any
) -> list[Path]:
    """Write the run's files under `out_dir`; returns them (the model folder excluded)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    result.model.save(out_dir / "model")
    test = result.test_frame
    y, p_raw, p = test["label"].to_numpy(), test["p_raw"].to_numpy(), test["p"].to_numpy()
    files = [
        write_json(result.metrics, out_dir / "metrics.json"),
        write_json(
            {
                "data": prepared.engine.summary.as_dict(),
                "labels": {
                    "excluded": prepared.labels.excluded,
                    "settings": prepared.labels.settings,
                    "rows": len(prepared.labels),
                },
                "unseen_events": prepared.unseen_events,
            },
            out_dir / "data_summary.json",
        ),
        write_json(json.loads(prepared.spec.to_json()), out_dir / "feature_spec.json"),
        write_json(
            {c: str(t) for c, t in prepared.frame.dtypes.items()}, out_dir / "feature_schema.json"
        ),
        write_table(comparison.table, out_dir / "comparison.csv", "csv"),
        # keys and scores only: no attribute that could identify a person
        write_table(_keyed(test, cfg), out_dir / "test_scores.parquet"),
    ]
    bins = cfg.calibration.ece_bins
    plots = {
        "roc.png": plot_roc(y, {"model": p}),
        "precision_recall.png": plot_precision_recall(y, {"model": p}),
        "calibration.png": plot_reliability(y, p_raw, p, bins),
        "gains.png": plot_comparison(comparison, y, p),
        "score_distribution.png": plot_score_distribution(y, p),
        "feature_importance.png": plot_feature_importance(result.model.booster),
    }
    files += [_figure(fig, out_dir / "plots" / name) for name, fig in plots.items()]
    return files


def _keyed(test: pd.DataFrame, cfg: Config) -> pd.DataFrame:
    """The test rows' keys and scores, keyed on the task's entity (``account_id`` for accounts:
    the rows' entity key holds the account)."""
    rows = test[["user_id", "cutoff_at", "label", "p_raw", "p"]]
    if cfg.task is not None and cfg.task.entity == "account":
        rows = rows.rename(columns={"user_id": "account_id"})
    return rows
