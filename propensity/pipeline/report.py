"""The model report of a training run: built at the end of `train`, rebuilt from MLflow later.

``report_training_run`` is the hook `train` calls inside its run; it also logs a seeded sample of
the test feature rows, so ``report_job`` can redo SHAP and partial dependence from the tracking
store alone, on any machine, without the training data.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from propensity.config import Config
from propensity.contract import FEATURES
from propensity.errors import DataContractError
from propensity.io import write_table
from propensity.pipeline.outcomes import read_outcomes
from propensity.report import REPORT_PLOTS, build_report
from propensity.tracking import (
    PromotionDecision,
    TrackedRun,
    download_artifacts,
    load_model,
    log_artifacts,
    run_config,
    run_info,
)

__all__ = [
    "FEATURES_SAMPLE",
    "promotion_from_decision",
    "promotion_from_run",
    "report_job",
    "report_training_run",
]

# Test feature rows kept with the run (no user ids): what SHAP needs to be recomputed later.
FEATURES_SAMPLE = "report/test_features.parquet"
_SAMPLE_ROWS = 2000

Progress = Callable[[str], None]


def promotion_from_decision(decision: PromotionDecision) -> dict[str, Any]:
    """The report's promotion fields from the decision `run.publish` returned."""
    return {
        "decision": "promoted" if decision.promoted else "kept_champion",
        "reason": decision.reason,
        "metric": decision.metric,
        "new_value": decision.new_value,
        "champion_value": decision.champion_value,
        "champion_version": decision.champion_version,
        "version": decision.version,
    }


def promotion_from_run(tags: dict[str, str], metrics: dict[str, float]) -> dict[str, Any] | None:
    """The same fields from a logged run's ``promotion.*`` tags and metrics (None if absent)."""
    if "promotion.decision" not in tags:
        return None
    new = [k for k in metrics if k.startswith("promotion.new_")]
    metric = new[0].removeprefix("promotion.new_") if new else "metric"
    champion = tags.get("promotion.champion_version")
    return {
        "decision": tags["promotion.decision"],
        "reason": tags.get("promotion.reason", ""),
        "metric": metric,
        "new_value": metrics.get(f"promotion.new_{metric}"),
        "champion_value": metrics.get(f"promotion.champion_{metric}"),
        "champion_version": None if champion in (None, "none") else champion,
        "version": tags.get("promotion.version"),
    }


def report_training_run(
    run: TrackedRun,
    out_dir: Path,
    cfg: Config,
    test_rows: pd.DataFrame,
    decision: PromotionDecision | None,
) -> Path:
    """Build ``out_dir/report.html`` and log it, its new plots and a test feature sample."""
    sample = _feature_sample(test_rows, cfg.seed)
    sample_path = write_table(sample, out_dir / FEATURES_SAMPLE)
    promotion = promotion_from_decision(decision) if decision is not None else None
    report = build_report(
        out_dir, features=sample, promotion=promotion, run_id=run.run_id, seed=cfg.seed
    )
    run.log_file(report)
    run.log_file(sample_path, "report")
    for name in REPORT_PLOTS:
        if (out_dir / "plots" / name).is_file():
            run.log_file(out_dir / "plots" / name, "plots")
    return report


def report_job(
    run_id: str,
    cfg: Config | None = None,
    *,
    drift: pd.DataFrame | Path | str | None = None,
    scores: pd.DataFrame | Path | str | None = None,
    outcomes: Path | str | None = None,
    out_dir: Path | None = None,
    project_dir: Path | None = None,
    log: bool = True,
    progress: Progress = print,
) -> Path:
    """Rebuild a training run's report from the tracking store and (by default) log it back.

    Downloads the run's artifacts into ``out_dir`` (default ``<output_dir>/train-<run_id>``),
    the model version the run registered, and its test feature sample; ``drift`` is a drift
    table (or the ``*.drift.csv`` a scoring job wrote) of the newest cohort, ``scores`` a score
    table (or the file a scoring job wrote) whose PQLs the report lists. Without ``cfg``
    the run's own logged config is used (found in the store MLFLOW_TRACKING_URI or the local
    default names).
    """
    if cfg is None:
        cfg = run_config(run_id, None, project_dir)
    info = run_info(run_id, cfg.mlflow, project_dir)
    out_dir = Path(out_dir) if out_dir is not None else Path(cfg.output_dir) / f"train-{run_id}"
    progress(f"downloading the artifacts of run {run_id} into {out_dir}")
    download_artifacts(run_id, out_dir, cfg.mlflow, project_dir)
    registered = info.tags.get("model.registered")
    if registered and not (out_dir / "model").is_dir():
        loaded = load_model(f"models:/{registered}", cfg.mlflow, project_dir)
        loaded.pqlmodel.save(out_dir / "model")
    sample = out_dir / FEATURES_SAMPLE
    features = pd.read_parquet(sample) if sample.is_file() else None
    if isinstance(drift, str | Path):
        drift = pd.read_csv(drift)
    if isinstance(scores, str | Path):
        scores = _read_scores(Path(scores))
    report = build_report(
        out_dir,
        features=features,
        promotion=promotion_from_run(info.tags, info.metrics),
        drift=drift,
        drift_limit=cfg.scoring.drift_psi_limit,
        run_id=run_id,
        seed=cfg.seed,
        scores=scores,
        outcomes=None if outcomes is None else read_outcomes(Path(outcomes)),
    )
    if log:
        files: dict[Path | str, str | None] = {report: None}
        files.update(
            {
                out_dir / "plots" / n: "plots"
                for n in REPORT_PLOTS
                if (out_dir / "plots" / n).is_file()
            }
        )
        log_artifacts(run_id, files, cfg.mlflow, project_dir)
    return report


def _read_scores(path: Path) -> pd.DataFrame:
    if not path.is_file():
        raise DataContractError(
            [
                f"--scores {str(path)!r} does not exist. Pass the scores file a score run wrote "
                f"(its --out), or leave --scores out."
            ]
        )
    if path.suffix == ".csv":
        return pd.read_csv(path, dtype={"user_id": str, "account_id": str})
    return pd.read_parquet(path)


def _feature_sample(test_rows: pd.DataFrame, seed: int) -> pd.DataFrame:
    # keys identify people and the report does not need them; the label stays for reading
    keys = FEATURES.non_features
    rows = test_rows.drop(columns=[c for c in keys if c in test_rows and c != "label"])
    if len(rows) > _SAMPLE_ROWS:
        keep = np.random.default_rng(seed).choice(len(rows), size=_SAMPLE_ROWS, replace=False)
        rows = rows.iloc[np.sort(keep)]
    return rows.reset_index(drop=True)
