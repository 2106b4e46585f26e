"""Benchmark the backtest: 30 daily as-of dates in one process vs 30 separate score runs.

    .venv/bin/python benchmarks/backtest.py                 # 4,000 users, 30 dates
    .venv/bin/python benchmarks/backtest.py --users 8000 --dates 30

Simulates a product, trains a champion in a private MLflow store (not timed), then times:

- ``separate``: ``propensity score --as-of D`` once per date, each in its own process (what
  scoring a log day by day costs without a backtest: start, load the model, read and clean the
  data, compute features, score, write);
- ``in-process``: the same per-date job, ``score_job``, called 30 times in one process (no
  start-up cost: the separate runs' floor);
- ``backtest``: ``propensity score --as-of D0 --to D29`` (one process, data read once, features
  of all dates in one pass).

Prints the seconds of each and the ratios of separate (and in-process) to backtest.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
CLI = [str(Path(sys.executable).parent / "propensity")]


def _run(args: list[str], env: dict[str, str]) -> float:
    began = time.perf_counter()
    subprocess.run([*CLI, *args], check=True, env=env, stdout=subprocess.DEVNULL)
    return time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=4000)
    parser.add_argument("--dates", type=int, default=30)
    parser.add_argument("--seed", type=int, default=3)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-backtest-"))
    env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true"}
    env["MLFLOW_TRACKING_URI"] = f"sqlite:///{tmp / 'mlflow.db'}"
    _run(
        [
            "simulate",
            "--out",
            str(tmp / "data"),
            "--users",
            str(args.users),
            "--seed",
            str(args.seed),
        ],
        env,
    )
    cfg = yaml.safe_load((ROOT / "configs" / "demo.yaml").read_text())
    data = tmp / "data"
    cfg["data"].update(
        events=str(data / "events"),
        users=str(data / "users.parquet"),
        conversions=str(data / "conversions.parquet"),
    )
    cfg["output_dir"] = str(tmp / "outputs")
    cfg["threshold"] = {"policy": "top_fraction", "top_fraction": 0.1, "bootstrap": 20}
    cfg["baselines"]["bootstrap"] = 20
    config = tmp / "project.yaml"
    config.write_text(yaml.safe_dump(cfg))
    _run(["train", "--config", str(config)], env)

    start = datetime(2025, 4, 1)
    dates = [start + timedelta(days=i) for i in range(args.dates)]
    separate = sum(
        _run(
            [
                "score",
                "-c",
                str(config),
                "--as-of",
                d.isoformat(),
                "--out",
                str(tmp / f"one-{d:%Y%m%d}.parquet"),
            ],
            env,
        )
        for d in dates
    )
    os.environ.update(env)
    from propensity.config import load_config
    from propensity.pipeline.score import score_job

    loaded = load_config(config)
    began = time.perf_counter()
    for d in dates:
        score_job(loaded, d, tmp / f"in-{d:%Y%m%d}.parquet")
    in_process = time.perf_counter() - began
    backtest = _run(
        [
            "score",
            "-c",
            str(config),
            "--as-of",
            dates[0].isoformat(),
            "--to",
            dates[-1].isoformat(),
            "--out",
            str(tmp / "bt.parquet"),
        ],
        env,
    )
    print(f"{args.dates} dates, {args.users:,} users simulated")
    print(f"separate runs  {separate:8.1f} s")
    print(f"in-process     {in_process:8.1f} s  (score_job per date, no start-up)")
    print(f"backtest       {backtest:8.1f} s  (one process, start-up included)")
    print(f"ratio separate/backtest   {separate / backtest:6.1f}x  (target >= 10x)")
    print(f"ratio in-process/backtest {in_process / backtest:6.1f}x")


if __name__ == "__main__":
    main()
