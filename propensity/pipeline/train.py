"""`train(cfg)`: data to a registered, calibrated, thresholded model and a reviewable run.

Steps: prepare (load, label, split, spec on the training slice, features) -> fit (LightGBM, early
stopping, calibration, threshold) -> reference statistics for reason codes and drift -> compare
with the rules baselines on the same test slice -> write everything to the run's output folder
and MLflow -> register the model and promote it if it beats the champion on the same test window.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from propensity.baselines import baselines_from_config
from propensity.compare import compare
from propensity.config import Config
from propensity.io.atomic import run_folder
from propensity.model.train import TrainingResult, fit_model
from propensity.pipeline.artifacts import write_training_artifacts
from propensity.pipeline.discover import Discovery, discover_for_training, write_discovery
from propensity.pipeline.prepare import Prepared, prepare
from propensity.pipeline.promotion import publish, weakness
from propensity.pipeline.references import attach_references
from propensity.pipeline.report import report_training_run
from propensity.tracking import PromotionDecision, connect, start_run

__all__ = ["TrainOutcome", "train"]

Progress = Callable[[str], None]


@dataclass(frozen=True, eq=False)
class TrainOutcome:
    """What a training run produced, for printing and for the next steps."""

    run_id: str
    model_version: str | None
    decision: PromotionDecision
    headline: dict[str, float]
    comparison: pd.DataFrame
    split: dict[str, dict[str, Any]]
    excluded: dict[str, int]
    output_dir: Path
    report: Path
    test_frame: pd.DataFrame
    tracking_note: str | None


def _headline(result: TrainingResult) -> dict[str, float]:
    m = result.metrics
    return {
        "test_rows": m["test_slice"]["rows"],
        "test_positives": m["test_slice"]["positives"],
        "roc_auc": m["test_calibrated"]["roc_auc"],
        "average_precision": m["test_calibrated"]["average_precision"],
        "log_loss_raw": m["test_raw"]["log_loss"],
        "log_loss": m["test_calibrated"]["log_loss"],
        "brier_raw": m["test_raw"]["brier"],
        "brier": m["test_calibrated"]["brier"],
        "ece_raw": m["test_raw"]["ece"],
        "ece": m["test_calibrated"]["ece"],
        "threshold": m["threshold"]["threshold"],
        "pqls_per_week": m["threshold"]["per_week"],
        "precision_at_threshold": m["threshold"]["precision"],
        "recall_at_threshold": m["threshold"]["recall"],
        "lift_at_threshold": m["threshold"]["lift"],
    }


def train(
    cfg: Config, *, project_dir: Path | None = None, progress: Progress = print
) -> TrainOutcome:
    """Train, evaluate out of time, compare with the baselines, track and register."""
    # Fail fast, before minutes of work: an unreachable store (exit 5, or the local fallback)...
    store = connect(cfg.mlflow, project_dir)
    baselines = baselines_from_config(cfg.baselines)  # ...an unknown template (exit 2)...
    progress(f"loading data, building label times and features ({cfg.engine})")
    prepared = prepare(cfg, baselines=baselines)
    spec = prepared.spec
    # ...and a rule that does not parse or names a feature the spec lacks (exit 2).
    for baseline in baselines:
        baseline.fit(prepared.test_rows())
    progress(
        f"{len(prepared.frame):,} labelled rows, {len(spec.columns)} features; fitting LightGBM"
    )
    result = fit_model(
        prepared.frame,
        list(spec.columns),
        {k: list(v) for k, v in spec.categorical.items()},
        cfg,
        json.loads(spec.to_json()),
        spec.hash,
        report_rows=prepared.main_rows,
        split=prepared.split,
    )
    model = result.model
    frame, split = prepared.frame, prepared.split
    train_main = frame.iloc[split.train[prepared.main_rows[split.train]]]
    attach_references(
        model, train_main, _scoring_like_rows(cfg, prepared), list(spec.columns), cfg.task
    )
    discovery = discover_for_training(cfg, prepared)  # baselines.suggested: true
    comparison = _compare(cfg, prepared, result, discovery, baselines)
    progress("logging the run and registering the model")
    with start_run(cfg, "train", project_dir=project_dir) as run:
        final = Path(cfg.output_dir) / f"train-{run.run_id}"
        with run_folder(final) as out_dir:  # whole or absent: a failed run leaves no folder
            files = write_training_artifacts(out_dir, cfg, prepared, result, comparison)
            if discovery is not None:
                weeks = result.split.weeks("test")
                files += write_discovery(
                    out_dir / "discover", discovery, comparison.table, weeks=weeks
                )
            run.log_params(cfg)
            run.log_params(
                {
                    "model.best_iteration": result.best_iteration,
                    "features.count": len(spec.columns),
                    "features.spec_hash": spec.hash,
                }
            )
            for name, path in (
                ("events", cfg.data.events),
                ("users", cfg.data.users),
                ("conversions", cfg.data.conversions),
            ):
                if path is not None:
                    table = next(t for t in prepared.engine.summary.tables if t.name == name)
                    run.log_data_fingerprint(name, [path], rows=table.rows_kept)
            run.log_metrics(_tracked_metrics(result, comparison))
            for path in files:
                run.log_file(path, _artifact_dir(path, out_dir))
            test_rows = prepared.test_rows()
            weak = weakness(result.metrics, comparison.table)
            if weak:
                progress(f"not promoting this model: {weak}")
            decision = publish(run, model, test_rows[list(spec.columns)], test_rows["label"], weak)
            report = report_training_run(run, out_dir, cfg, test_rows, decision)
            # connect() points MLFLOW_TRACKING_URI at the fallback, so only the first one knows why
            note = run.note or store.note
        report = final / report.relative_to(out_dir)
        out_dir = final
    return TrainOutcome(
        run_id=run.run_id,
        model_version=decision.version,
        decision=decision,
        headline=_headline(result),
        comparison=comparison.table,
        split=result.split.summary(prepared.frame),
        excluded=prepared.labels.excluded,
        output_dir=out_dir,
        report=report,
        test_frame=result.test_frame,
        tracking_note=note,
    )


def _scoring_like_rows(cfg: Config, prepared: Prepared) -> pd.DataFrame:
    """Features of the population the score job would have met at the end of the test period.

    Drift is judged against this, not against training rows: a score job meets users at every
    trial age, so comparing it with rows cut at fixed ages would flag age, not drift.
    """
    as_of = pd.Timestamp(prepared.test_rows()["cutoff_at"].max()).to_pydatetime()
    population = prepared.engine.population(cfg.label, as_of, cfg.task)
    return prepared.engine.features(population, prepared.spec).frame


def _compare(
    cfg: Config,
    prepared: Prepared,
    result: TrainingResult,
    discovery: Discovery | None,
    baselines: list[Any],
) -> Any:
    baselines = list(baselines)  # the job's baselines, fitted on the test rows above
    if discovery is not None:
        baselines.append(discovery.suggestion.baseline())
    test = prepared.test_rows().reset_index(drop=True)
    return compare(
        test,
        result.model,
        result.model.threshold,
        baselines,
        result.split.weeks("test"),
        n_boot=cfg.baselines.bootstrap,
        seed=cfg.seed,
    )


def _tracked_metrics(result: TrainingResult, comparison: Any) -> dict[str, float]:
    from propensity.model.train import scalar_metrics

    metrics = scalar_metrics(result.metrics)
    for row in comparison.table.to_dict("records"):
        if row["name"] == "model":
            continue
        for key in (
            "precision",
            "recall",
            "per_week",
            "lift",
            "precision_diff",
            "model_precision_same_volume",
            "conversions_diff",
        ):
            value = row.get(key)
            if isinstance(value, int | float):
                metrics[f"baseline.{row['name']}.{key}"] = float(value)
    return metrics


def _artifact_dir(path: Path, root: Path) -> str | None:
    parent = path.parent.relative_to(root)
    return None if str(parent) == "." else str(parent)
