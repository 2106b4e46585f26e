"""Quality on a later cohort: do scores written by `propensity score` hold up out of time?

Trains on one simulated product (signups Jan-Jun 2025), then scores a later cohort (a second
simulation starting in July, another seed) at several as-of dates with the real score job, and
judges the written scores against what happened next: converted within the label horizon after
as-of. Prints ROC AUC, average precision and ECE next to the training run's test-slice values.

    python benchmarks/later_cohort.py [--users 20000] [--extra-cutoffs]
"""

from __future__ import annotations

import argparse
import os
import tempfile
from datetime import date, datetime, timedelta
from pathlib import Path

import pandas as pd

from propensity.config import load_config
from propensity.evaluate import ranking_metrics
from propensity.pipeline.score import score_job
from propensity.pipeline.train import train
from propensity.simulate import simulate


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--users", type=int, default=20_000)
    parser.add_argument("--extra-cutoffs", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{tmp / 'mlflow.db'}"
        simulate(tmp / "a", users=args.users, seed=7)
        simulate(tmp / "b", users=args.users, seed=11, start=date(2025, 7, 1))
        cfg = load_config("configs/demo.yaml")
        label = cfg.label
        if args.extra_cutoffs:
            label = label.model_copy(
                update={"extra_cutoffs": (timedelta(days=1), timedelta(days=3), timedelta(days=10))}
            )
        cfg = cfg.model_copy(update={"output_dir": str(tmp / "out"), "label": label})

        def at(folder: str):
            paths = {
                "events": str(tmp / folder / "events"),
                "users": str(tmp / folder / "users.parquet"),
                "conversions": str(tmp / folder / "conversions.parquet"),
            }
            return cfg.model_copy(update={"data": cfg.data.model_copy(update=paths)})

        outcome = train(at("a"), progress=lambda m: None)
        h = outcome.headline
        print(
            f"training test slice: ROC AUC {h['roc_auc']:.4f}  AP {h['average_precision']:.4f}"
            f"  ECE {h['ece']:.4f}  (extra cutoffs: {args.extra_cutoffs})"
        )
        conversions = pd.read_parquet(tmp / "b" / "conversions.parquet")
        first_paid = conversions.groupby("user_id")["converted_at"].min()
        rows = []
        for days in (60, 90, 120):
            as_of = datetime(2025, 7, 1) + timedelta(days=days)
            scored = score_job(at("b"), as_of, tmp / f"scores-{days}.parquet").scores
            paid = scored["user_id"].map(first_paid)
            paid = pd.to_datetime(paid).dt.tz_localize(None)
            horizon_end = as_of + cfg.label.horizon
            y = ((paid >= as_of) & (paid < horizon_end)).astype(int).to_numpy()
            m = ranking_metrics(y, scored["score"].to_numpy(), cfg.calibration.ece_bins)
            rows.append(
                {
                    "as_of": as_of.date(),
                    "users": len(scored),
                    "base_rate": y.mean(),
                    "mean_score": scored["score"].mean(),
                    **m,
                }
            )
        table = pd.DataFrame(rows)
        print("later cohort, scores written by the score job vs what happened next:")
        print(table.to_string(index=False, float_format=lambda v: f"{v:.4f}"))


if __name__ == "__main__":
    main()
