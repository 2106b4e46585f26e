"""The issue-14 acceptance numbers: each task's model against the simulator's oracle.

Simulates a task world (``propensity simulate --task T``), trains it with its shipped config
(``configs/T.yaml``, data paths pointed at the world, MLflow in a temporary store) exactly as
``propensity demo --task T`` does, and prints on the test slice (the latest anchors, out of
time) the model's and the oracle's (``p_true`` on the same rows) AP and ROC AUC, their ratios,
the calibrated ECE and the test rows and positives. The bars: AP >= 0.93x, ROC AUC >= 0.98x,
ECE <= 0.015.

    .venv/bin/python benchmarks/task_oracle.py --task freemium --entities 20000 --seed 7
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from propensity.pipeline.demo import _demo_config, oracle_on_test
from propensity.pipeline.train import train
from propensity.simulate.tasks import TASKS, simulate_task


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", choices=TASKS, required=True)
    parser.add_argument("--entities", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--config", type=Path, help="default: configs/TASK.yaml")
    args = parser.parse_args()
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{tmp / 'mlflow.db'}"
        began = time.perf_counter()
        simulate_task(tmp / "world", args.task, entities=args.entities, seed=args.seed)
        cfg = _demo_config(args.config or Path(f"configs/{args.task}.yaml"), tmp / "world")
        cfg = cfg.model_copy(update={"output_dir": str(tmp / "out")})
        outcome = train(cfg, progress=lambda m: None)
        o = oracle_on_test(outcome.test_frame, tmp / "world" / "truth.parquet")
        test = outcome.test_frame
    print(
        f"{args.task} seed {args.seed}, {args.entities:,} entities: test {len(test):,} rows, "
        f"{int(test['label'].sum()):,} positives; AP {o['model_average_precision']:.4f} / "
        f"{o['oracle_average_precision']:.4f} = {o['average_precision_ratio']:.3f}x; ROC AUC "
        f"{o['model_roc_auc']:.4f} / {o['oracle_roc_auc']:.4f} = {o['roc_auc_ratio']:.3f}x; "
        f"ECE {outcome.headline['ece']:.4f}; {time.perf_counter() - began:.0f} s, load "
        f"{os.getloadavg()[0]:.1f}"
    )


if __name__ == "__main__":
    main()
