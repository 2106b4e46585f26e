"""Benchmark scoring: probabilities, reason codes on the top 10%, and SHAP speed two ways.

    .venv/bin/python benchmarks/score.py                     # 100k and 1M users
    .venv/bin/python benchmarks/score.py --users 100_000 --trees 300

A LightGBM model (``--trees`` trees, 31 leaves) is trained on synthetic trial users with ~150
feature columns that follow the project's naming conventions, wrapped in a PQLModel (isotonic
calibration, threshold at the top 5%) and saved. Each measurement then runs in its own
subprocess so its peak memory (VmHWM) is its own; the subprocess builds its feature frame
(seeded) and calls ``propensity.scoring.score_frame``. Printed per size:

- ``proba``: the score table without reason codes (``explain="none"``): users/s, peak RSS;
- ``reasons``: the score table with 3 reason codes for the PQLs plus the top 10%;
- ``shap``: seconds on the same top-scoring rows (500, 2,000 and ``--shap-rows``) for
  LightGBM's native ``pred_contrib`` (2 threads) and propensity's TreeSHAP (a fresh explainer
  per call, tree parsing included, 1 thread), interleaved, medians of ``--shap-repeats``; the
  ratio of native to ours and the largest absolute difference from native. ``shap.TreeExplainer``
  is not a third baseline: for a LightGBM booster it calls ``pred_contrib`` itself.

Peak RSS includes the synthetic feature frame itself (~1.2 GB per million users).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import lightgbm as lgb
import numpy as np
import pandas as pd
from _peak import peak_mb

EVENTS = [
    "page_view", "login", "doc_created", "doc_shared", "comment_added", "message_sent",
    "teammate_invited", "invite_accepted", "integration_connected", "plan_limit_hit",
    "pricing_viewed", "export_done", "help_viewed",
]  # fmt: skip
RATES = np.array([20, 8, 6, 3, 5, 40, 1.0, 0.6, 0.3, 0.4, 1.0, 1.0, 0.8])
WINDOWS = [("1d", 0.15), ("3d", 0.45), ("7d", 1.0), ("all", 1.1)]
DOMAINS = ["free_mail", "corporate", "enterprise", "education", "unknown"]


# ---- data ----------------------------------------------------------------------------------
def make_features(n: int, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    """Seeded synthetic feature frame (``user_id``, ``cutoff_at``, ~150 features) and labels."""
    rng = np.random.default_rng(seed)
    activity = rng.gamma(0.8, 1.0, n)
    cols: dict[str, np.ndarray] = {}
    for w, share in WINDOWS:
        cols[f"n_events_{w}"] = np.zeros(n)
        for e, rate in zip(EVENTS, RATES, strict=True):
            counts = rng.poisson(rate * share * activity).astype(float)
            cols[f"n_{e}_{w}"] = counts
            cols[f"n_events_{w}"] += counts
    active_days = np.minimum(7, rng.poisson(2 + 3 * activity)).astype(float)
    for e in EVENTS:
        cols[f"rate_{e}_per_active_day"] = cols[f"n_{e}_all"] / np.maximum(active_days, 1)
    never = {e: cols[f"n_{e}_all"] == 0 for e in EVENTS}
    cols["hours_since_last_event"] = rng.exponential(20 / (1 + activity))
    for e in EVENTS:
        cols[f"hours_since_last_{e}"] = np.where(never[e], np.nan, rng.exponential(40, n))
    cols["tenure_days"] = np.full(n, 7.0)
    cols["cutoff_age_days"] = rng.uniform(0, 3, n).round(2)
    cols["active_days"] = active_days
    cols["sessions"] = active_days + rng.poisson(activity * 3)
    cols["events_per_session"] = cols["n_events_all"] / np.maximum(cols["sessions"], 1)
    cols["longest_streak_days"] = np.minimum(active_days, rng.poisson(1 + activity))
    for w in ("1d", "3d", "7d"):
        cols[f"trend_events_{w}"] = rng.lognormal(0, 0.5, n).round(3)
    cols["gap_mean_hours"] = rng.exponential(10, n)
    cols["gap_max_hours"] = cols["gap_mean_hours"] * rng.uniform(1, 5, n)
    for e in EVENTS:
        cols[f"hours_to_first_{e}"] = np.where(never[e], np.nan, rng.exponential(30, n))
    cols["order_doc_shared_before_teammate_invited"] = rng.integers(0, 2, n).astype(float)
    cols["within_doc_shared_then_invite_accepted_48h"] = rng.integers(0, 2, n).astype(float)
    for a, b in zip(EVENTS[:10], EVENTS[1:11], strict=True):
        cols[f"tr_{a}__{b}"] = rng.poisson(activity).astype(float)
        cols[f"tr_{b}__{a}"] = rng.poisson(activity * 0.5).astype(float)
    cols["distinct_events"] = sum((cols[f"n_{e}_all"] > 0).astype(float) for e in EVENTS)
    cols["event_entropy"] = rng.uniform(0, 3, n)
    cols["account_active_users"] = rng.integers(1, 9, n).astype(float)
    for w, share in WINDOWS:
        cols[f"account_events_{w}"] = rng.poisson(40 * share * activity).astype(float)
    cols["user_company_size"] = rng.choice([1.0, 10, 50, 200, 1000, np.nan], n)
    frame = pd.DataFrame(cols)
    frame["domain_class"] = pd.Categorical(
        rng.choice(DOMAINS, n, p=[0.5, 0.3, 0.08, 0.07, 0.05]), categories=DOMAINS
    )
    logit = (
        -4.0
        + 0.9 * np.log1p(cols["n_teammate_invited_all"])
        + 0.5 * np.log1p(cols["n_doc_shared_7d"])
        + 0.6 * np.log1p(cols["n_pricing_viewed_all"])
        + 1.0 * (frame["domain_class"] == "corporate").to_numpy()
        + 0.4 * cols["within_doc_shared_then_invite_accepted_48h"]
        + rng.normal(0, 0.8, n)
    )
    y = (rng.uniform(size=n) < 1 / (1 + np.exp(-logit))).astype(int)
    keys = pd.DataFrame(
        {"user_id": [f"user{i:07d}" for i in range(n)], "cutoff_at": pd.Timestamp("2026-01-14")}
    )
    return pd.concat([keys, frame], axis=1), y


def build_model(folder: Path, trees: int, seed: int) -> dict:
    """Train, calibrate and save a PQLModel on 100k synthetic users; return its facts."""
    from propensity.explain import fit_reference
    from propensity.model import Calibrator, PQLModel

    frame, y = make_features(120_000, seed + 1)
    features = [c for c in frame.columns if c not in ("user_id", "cutoff_at")]
    train, cal = frame.iloc[:100_000], frame.iloc[100_000:]
    params = {"objective": "binary", "num_leaves": 31, "learning_rate": 0.05, "verbose": -1}
    params.update(min_data_in_leaf=40, feature_fraction=0.8, bagging_fraction=0.8)
    params.update(bagging_freq=1, seed=seed, num_threads=2)
    started = time.perf_counter()
    booster = lgb.train(params, lgb.Dataset(train[features], y[:100_000]), trees)
    seconds = time.perf_counter() - started
    calibrator = Calibrator(method="isotonic").fit(booster.predict(cal[features]), y[100_000:])
    p = calibrator.predict(booster.predict(train[features]))
    model = PQLModel(
        booster=booster,
        calibrator=calibrator,
        threshold=float(np.quantile(p, 0.95)),
        feature_columns=features,
        categorical={"domain_class": DOMAINS},
        feature_spec={},
        feature_spec_hash="synthetic",
        metadata={"reason_reference": fit_reference(train, features)},
    )
    model.save(folder)
    return {"features": len(features), "trees": booster.num_trees(), "train_s": seconds}


# ---- measurements (each in its own process) ------------------------------------------------
def _peak_mb() -> float:
    return peak_mb()  # VmHWM: ru_maxrss would include a large parent's peak


def measure(mode: str, folder: Path, users: int, seed: int, shap_rows: int) -> dict:
    from propensity.config import ScoringConfig
    from propensity.model import PQLModel
    from propensity.scoring import score_frame

    model = PQLModel.load(folder)
    frame, _ = make_features(users, seed + 2)
    data_mb = _peak_mb()
    info = {"name": "bench", "version": "1", "run_id": "none"}
    now = pd.Timestamp("2026-01-15")
    if mode in ("proba", "reasons"):
        cfg = ScoringConfig(explain="none") if mode == "proba" else ScoringConfig()
        started = time.perf_counter()
        result = score_frame(model, frame, None, cfg, info, now, now)
        seconds = time.perf_counter() - started
        return {
            "seconds": seconds,
            "users_per_s": users / seconds,
            "explained": result.summary["explained_rows"],
            "pqls": result.summary["pqls"],
            "data_mb": data_mb,
            "peak_mb": _peak_mb(),
        }
    return measure_shap(model, frame, shap_rows)


def measure_shap(model, frame: pd.DataFrame, rows: int, repeats: int = 3) -> dict:
    """Seconds for native pred_contrib and ours on the same top-scoring rows, interleaved."""
    import os

    from propensity.explain import TreeShapModel, shap_values, to_matrix

    X = model.prepare(frame)
    matrix = to_matrix(X)
    raw = model.booster.predict(matrix, num_threads=2)
    top = np.sort(np.argsort(-raw, kind="stable")[:rows])
    out: dict = {"sizes": {}}
    for n in sorted({500, 2000, rows}):
        sample = matrix[top[:n]]
        native_s, fast_s = [], []
        for _ in range(repeats):
            started = time.perf_counter()
            native = shap_values(model.booster, sample, "native", n_threads=2)
            native_s.append(time.perf_counter() - started)
            started = time.perf_counter()
            fast = TreeShapModel(model.booster).shap_values(sample, n_threads=1)  # cold
            fast_s.append(time.perf_counter() - started)
        out["sizes"][n] = {
            "native_s": float(np.median(native_s)),
            "fast_s": float(np.median(fast_s)),
            "max_abs_diff": float(np.abs(fast - native).max()),
            "load": os.getloadavg()[0],
        }
    return out


# ---- driver --------------------------------------------------------------------------------
def _run(mode: str, folder: Path, users: int, seed: int, shap_rows: int) -> dict:
    cmd = [sys.executable, __file__, "--child", mode, "--model", str(folder)]
    cmd += ["--users", str(users), "--seed", str(seed), "--shap-rows", str(shap_rows)]
    done = subprocess.run(cmd, check=True, capture_output=True, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, nargs="*", default=[100_000, 1_000_000])
    parser.add_argument("--trees", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--shap-rows", type=int, default=10_000)
    parser.add_argument("--child", choices=["proba", "reasons", "shap"])
    parser.add_argument("--model", type=Path)
    args = parser.parse_args()
    if args.child:
        result = measure(args.child, args.model, args.users[0], args.seed, args.shap_rows)
        print(json.dumps(result))
        return
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "model"
        facts = build_model(folder, args.trees, args.seed)
        print(
            f"model: {facts['trees']} trees x 31 leaves on {facts['features']} features, "
            f"trained on 100k users in {facts['train_s']:.1f}s"
        )
        shap = _run("shap", folder, 100_000, args.seed, args.shap_rows)
        print("SHAP on the top-scoring rows (medians; native pred_contrib 2 threads, ours 1 "
              "thread with a fresh explainer each call):")  # fmt: skip
        for n, r in shap["sizes"].items():
            print(f"  {int(n):>6} rows: native {r['native_s']:.2f}s, propensity {r['fast_s']:.2f}s "
                  f"= {r['native_s'] / r['fast_s']:.2f}x native; max |diff| "
                  f"{r['max_abs_diff']:.1e}; load average {r['load']:.2f}")  # fmt: skip
        for users in args.users:
            for mode in ("proba", "reasons"):
                r = _run(mode, folder, users, args.seed, args.shap_rows)
                print(
                    f"{users:>9,} users {mode:<8} {r['seconds']:7.1f}s "
                    f"{r['users_per_s']:>10,.0f} users/s  explained {r['explained']:>7,}  "
                    f"PQLs {r['pqls']:>7,}  peak RSS {r['peak_mb']:,.0f} MB "
                    f"(features alone {r['data_mb']:,.0f} MB)"
                )


if __name__ == "__main__":
    main()
