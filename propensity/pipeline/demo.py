"""`demo`: simulate a product, train, compare with the rules, score the newest cohort.

The demo is the only job that reads the simulator's truth: to print how close the model gets to
the best possible ranking (the oracle) on exactly the rows of its own test slice.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import pandas as pd
from sklearn.metrics import average_precision_score, roc_auc_score

from propensity.config import Config, load_config
from propensity.pipeline.report import report_job
from propensity.pipeline.score import ScoreOutcome, score_job
from propensity.pipeline.train import TrainOutcome, train
from propensity.simulate import SimulationSummary, simulate
from propensity.simulate.tasks import simulate_task

__all__ = ["DemoOutcome", "demo", "oracle_on_test"]


@dataclass(frozen=True, eq=False)
class DemoOutcome:
    simulation: SimulationSummary
    training: TrainOutcome
    oracle: dict[str, float]
    scoring: ScoreOutcome
    report: Path


def oracle_on_test(test_frame: pd.DataFrame, truth_path: Path) -> dict[str, float]:
    """Model and oracle (the simulator's true probability) metrics on the same test rows.

    A task world's truth is keyed by ``entity_id`` and ``anchor_at`` (a user task's user and
    cutoff)."""
    truth = pd.read_parquet(truth_path)
    # an account task's rows carry the account as their entity key too (``user_id``)
    truth = truth.rename(columns={"entity_id": "user_id", "anchor_at": "cutoff_at"})
    truth = truth[["user_id", "cutoff_at", "p_true"]]
    truth["cutoff_at"] = pd.to_datetime(truth["cutoff_at"]).dt.tz_localize(None)
    rows = test_frame.assign(cutoff_at=pd.to_datetime(test_frame["cutoff_at"]))
    rows = rows.merge(truth, on=["user_id", "cutoff_at"], how="left", validate="one_to_one")
    if rows["p_true"].isna().any():
        raise ValueError("some test rows have no truth; the data is not from this simulation")
    y = rows["label"].to_numpy()
    out = {
        "model_roc_auc": roc_auc_score(y, rows["p"]),
        "oracle_roc_auc": roc_auc_score(y, rows["p_true"]),
        "model_average_precision": average_precision_score(y, rows["p"]),
        "oracle_average_precision": average_precision_score(y, rows["p_true"]),
    }
    out["roc_auc_ratio"] = out["model_roc_auc"] / out["oracle_roc_auc"]
    out["average_precision_ratio"] = (
        out["model_average_precision"] / out["oracle_average_precision"]
    )
    return {k: float(v) for k, v in out.items()}


def _demo_config(config: Path, data_dir: Path) -> Config:
    """The demo config with its data paths pointed at `data_dir`."""
    cfg = load_config(config)
    paths = {
        "events": str(data_dir / "events"),
        "users": str(data_dir / "users.parquet"),
        "conversions": str(data_dir / "conversions.parquet"),
    }
    if cfg.data.payments is not None:  # a team world's every payment (account, expansion)
        paths["payments"] = str(data_dir / "payments.parquet")
    return cfg.model_copy(update={"data": cfg.data.model_copy(update=paths)})


def demo(
    data_dir: Path,
    users: int = 20_000,
    seed: int = 7,
    config: Path = Path("configs/demo.yaml"),
    progress: Callable[[str], None] = print,
    task: Literal["freemium", "account", "expansion"] | None = None,
) -> DemoOutcome:
    """Run the whole product on simulated data; returns every step's outcome.

    ``task`` simulates that task's world instead of trial users (``config`` must hold the task,
    e.g. ``configs/freemium.yaml``)."""
    if task is None:
        progress(f"simulating {users:,} trial users into {data_dir}")
        simulation = simulate(data_dir, users=users, seed=seed)
    else:
        progress(f"simulating a {task} world of {users:,} users into {data_dir}")
        simulation = simulate_task(data_dir, task, entities=users, seed=seed)
    cfg = _demo_config(config, data_dir)
    training = train(cfg, progress=progress)
    oracle = oracle_on_test(training.test_frame, data_dir / "truth.parquet")
    progress("scoring the users eligible at the end of the data")
    # a model too weak to promote is still shown scoring (score warns loudly about it)
    uri = None
    if not training.decision.promoted:
        uri = f"models:/{cfg.mlflow.registered_model}/{training.model_version}"
    scoring = score_job(
        cfg,
        as_of="latest",
        out=Path(cfg.output_dir) / "scores.parquet",
        progress=progress,
        model_uri=uri,
    )
    progress("rebuilding the model report with the newest cohort's PQLs and drift")
    report = report_job(
        training.run_id,
        cfg,
        drift=scoring.drift,
        scores=scoring.scores,
        out_dir=training.output_dir,
        progress=progress,
    )
    return DemoOutcome(simulation, training, oracle, scoring, report)
