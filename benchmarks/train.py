"""Benchmark: fit_model on synthetic feature tables of 100k and 1M rows x ~150 features.

Each measurement runs in a fresh subprocess so that peak RSS (VmHWM) belongs to it alone.
For every size it prints wall time and peak memory of

- ``fit_model``: split, encode, LightGBM with early stopping, calibration, threshold, bootstrap;
- the baseline, measured in the same run: bare ``lightgbm.train`` on the train slice with the
  same parameters and as many trees as fit_model's model keeps (no validation, no early
  stopping, no extras): what training costs if one knew the best round in advance,

and the ratios fit_model / baseline, plus the memory the fit adds (peak RSS minus RSS once the
table is built and the libraries imported) over the size of the feature table.

    python benchmarks/train.py [--rows 100000 1000000] [--features 150] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np
import pandas as pd
from _peak import peak_mb

SEED = 0


def make_frame(rows: int, features: int, seed: int = SEED) -> tuple[pd.DataFrame, list[str]]:
    """Count-like, rate-like and timing features (with NaNs), 2 categoricals, a logistic label."""
    rng = np.random.default_rng(seed)
    numeric = features - 2
    X = np.empty((rows, numeric), dtype=np.float64)
    for j in range(numeric):
        kind = j % 3
        if kind == 0:
            X[:, j] = rng.poisson(1 + j % 7, rows)
        elif kind == 1:
            X[:, j] = rng.gamma(2.0, 1.0, rows)
        else:
            col = rng.exponential(48.0, rows)
            col[rng.random(rows) < 0.4] = np.nan  # "never happened"
            X[:, j] = col
    names = [f"f{j:03d}" for j in range(numeric)]
    segment = rng.choice(["free_mail", "corporate", "enterprise", "education"], rows)
    plan = rng.choice([f"p{i}" for i in range(12)], rows)
    signal = (
        0.35 * (X[:, 0] - 1)
        + 0.3 * np.log1p(X[:, 1])
        - 0.01 * np.nan_to_num(X[:, 2], nan=200.0)
        + 0.2 * (X[:, 3] - 4)
        + 0.8 * (segment == "enterprise")
    )
    y = (rng.random(rows) < 1 / (1 + np.exp(-(signal - 2.0)))).astype(np.int64)
    frame = pd.DataFrame(X, columns=names, copy=False)
    frame.insert(0, "user_id", np.char.add("u", np.arange(rows).astype(str)))
    days = np.sort(rng.uniform(0, 180, rows))
    frame.insert(1, "cutoff_at", pd.Timestamp("2025-01-01") + pd.to_timedelta(days, unit="D"))
    frame["domain_class"] = pd.Categorical(segment)
    frame["user_plan"] = pd.Categorical(plan)
    frame["label"] = y
    return frame, [*names, "domain_class", "user_plan"]


def _peak_mb() -> float:
    return peak_mb()  # VmHWM: ru_maxrss would include a large parent's peak


def run_one(kind: str, rows: int, features: int, threads: int, trees: int) -> dict:
    """One measurement in this process; printed as JSON for the parent."""
    # import everything first so that the memory measured before the fit includes the libraries
    import lightgbm as lgb

    from propensity.config import config_from_dict
    from propensity.model.bundle import align_features
    from propensity.model.split import split_out_of_time
    from propensity.model.train import base_params, fit_model

    frame, columns = make_frame(rows, features)
    frame_mb = frame.memory_usage(deep=False).sum() / 2**20
    before_mb = _peak_mb()
    cfg = config_from_dict(
        {
            "data": {"events": "-", "users": "-"},
            "seed": SEED,
            "model": {"n_jobs": threads, "learning_rate": 0.1, "min_positives": 50},
            "threshold": {"policy": "top_fraction", "top_fraction": 0.05},
        }
    )
    started = time.perf_counter()
    if kind == "fit_model":
        result = fit_model(frame, columns, ["domain_class", "user_plan"], cfg, {}, "bench")
        extra = {
            "best_iteration": result.best_iteration,
            "test_auc": round(result.metrics["test_calibrated"]["roc_auc"], 4),
        }
    else:
        train = split_out_of_time(frame, cfg.split).train
        levels = {c: list(frame[c].cat.categories) for c in ("domain_class", "user_plan")}
        X = align_features(frame.iloc[train], columns, levels)
        started = time.perf_counter()  # the baseline is the bare booster fit only
        lgb.train(
            base_params(cfg.model, SEED),
            lgb.Dataset(X, frame["label"].to_numpy()[train]),
            num_boost_round=trees,
        )
        extra = {}
    return {
        "kind": kind,
        "rows": rows,
        "seconds": time.perf_counter() - started,
        "peak_mb": _peak_mb(),
        "before_fit_mb": before_mb,
        "frame_mb": frame_mb,
        **extra,
    }


def _child(kind: str, rows: int, features: int, threads: int, trees: int = 0) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, "--child", kind, "--rows", str(rows),
         "--features", str(features), "--threads", str(threads), "--trees", str(trees)],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--features", type=int, default=150)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--trees", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--child", choices=["fit_model", "baseline"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(
            json.dumps(run_one(args.child, args.rows[0], args.features, args.threads, args.trees))
        )
        return
    from propensity.config import ModelConfig
    from propensity.model.train import patience

    print(f"load average at start: {os.getloadavg()}")
    print(f"{'rows':>9} {'what':<10} {'seconds':>8} {'peak MB':>8} {'+fit MB':>8}  notes")
    for rows in args.rows:
        fit = _child("fit_model", rows, args.features, args.threads)
        # the baseline grows exactly the trees the model keeps; fit_model grows a patience
        # past the best (propensity.model.train.patience) and does everything else besides
        best = fit["best_iteration"]
        grown = best + patience(best, ModelConfig().early_stopping_rounds)
        base = _child("baseline", rows, args.features, args.threads, best)
        for r in (fit, base):
            notes = (
                f"best_iteration={best} (~{grown} trees grown) test_auc={r['test_auc']}"
                if r["kind"] == "fit_model"
                else f"bare lightgbm.train, {best} trees, same matrix and parameters"
            )
            print(f"{rows:>9} {r['kind']:<10} {r['seconds']:>8.1f} {r['peak_mb']:>8.0f} "
                  f"{r['peak_mb'] - r['before_fit_mb']:>8.0f}  {notes}")  # fmt: skip
        print(
            f"{rows:>9} ratio      time x{fit['seconds'] / base['seconds']:.2f}  "
            f"peak memory x{fit['peak_mb'] / base['peak_mb']:.2f} vs baseline; memory the fit "
            f"adds = x{(fit['peak_mb'] - fit['before_fit_mb']) / fit['frame_mb']:.2f} the "
            f"{fit['frame_mb']:.0f} MB feature table; load average {os.getloadavg()[0]:.2f}"
        )


if __name__ == "__main__":
    main()
