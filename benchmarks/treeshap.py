"""Benchmark TreeSHAP: LightGBM's ``pred_contrib`` against propensity's numpy TreeSHAP.

    .venv/bin/python benchmarks/treeshap.py                        # 500, 2,000, 10,000 rows
    .venv/bin/python benchmarks/treeshap.py --rows 500 2000 --repeats 1 --booster model.txt

The booster is the one ``benchmarks/score.py`` scores with (300 trees x 31 leaves on ~140
synthetic trial features, trained on ``--train-users`` users; ``--booster`` loads a saved one
instead). Rows are the top-scoring users of a fresh seeded frame. Per row count, interleaved,
medians of ``--repeats``:

- ``native``: ``booster.predict(..., pred_contrib=True)`` on 2 threads;
- ``cold``: a new ``TreeShapModel`` (parsing the trees, building the tables) and its values,
  what a process pays on its first call;
- ``warm``: the values from the booster's prepared model (``prepared(booster)``), what every
  later call in the process pays;
- ``routed``: ``shap_values(booster, X)`` in a process that has not prepared the booster (a
  daily score job's one call): the default every caller uses, which sends the call to
  whichever of the two is faster for that row count (``FAST_MIN_ROWS_COLD``).

Printed: seconds, the ratio native / ours (above 1 means ours is faster), the largest absolute
difference from native, and the load average when the row count finished.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import lightgbm as lgb
import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from score import make_features  # noqa: E402  (same synthetic features as the score bench)


def train_booster(users: int, trees: int, seed: int) -> lgb.Booster:
    """The score benchmark's booster: binary, 31 leaves, bagging, seeded."""
    frame, y = make_features(users, seed + 1)
    features = [c for c in frame.columns if c not in ("user_id", "cutoff_at")]
    params = {"objective": "binary", "num_leaves": 31, "learning_rate": 0.05, "verbose": -1}
    params.update(min_data_in_leaf=40, feature_fraction=0.8, bagging_fraction=0.8)
    params.update(bagging_freq=1, seed=seed, num_threads=2)
    return lgb.train(params, lgb.Dataset(frame[features], y), trees)


def _timed(fn):
    started = time.perf_counter()
    value = fn()
    return time.perf_counter() - started, value


def main() -> None:
    from propensity.explain import TreeShapModel, shap_values, to_matrix
    from propensity.explain._treeshap import _PREPARED, prepared

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="*", default=[500, 2000, 10_000])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--train-users", type=int, default=100_000)
    parser.add_argument("--trees", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--booster", type=Path, help="a saved LightGBM model to use instead")
    args = parser.parse_args()

    if args.booster:
        booster = lgb.Booster(model_file=str(args.booster))
    else:
        train_s, booster = _timed(lambda: train_booster(args.train_users, args.trees, args.seed))
        print(
            f"trained {booster.num_trees()} trees on {args.train_users:,} users in {train_s:.0f}s"
        )
    frame, _ = make_features(max(args.rows) * 2, args.seed + 2)
    names = booster.feature_name()
    matrix = to_matrix(frame[names])  # the category column becomes its codes, as in training
    raw = booster.predict(matrix, raw_score=True, num_threads=2)
    top = matrix[np.sort(np.argsort(-raw, kind="stable")[: max(args.rows)])]
    print(f"load average at start: {os.getloadavg()}")
    print(" rows   native    cold (ratio)    warm (ratio)  routed (ratio)  max|diff|  load")
    for n in args.rows:
        X = top[:n]
        times: dict[str, list[float]] = {k: [] for k in ("native", "cold", "warm", "routed")}
        diff = 0.0
        for _ in range(args.repeats):
            t, native = _timed(lambda X=X: booster.predict(X, pred_contrib=True, num_threads=2))
            times["native"].append(t)
            t, cold = _timed(lambda X=X: TreeShapModel(booster).shap_values(X, n_threads=1))
            times["cold"].append(t)
            prepared(booster)
            t, warm = _timed(lambda X=X: prepared(booster).shap_values(X, n_threads=1))
            times["warm"].append(t)
            _PREPARED.pop(booster, None)  # a score job's single call: nothing prepared yet
            t, routed = _timed(lambda X=X: shap_values(booster, X))
            times["routed"].append(t)
            diff = max(diff, *(float(np.abs(v - native).max()) for v in (cold, warm, routed)))
        med = {k: float(np.median(v)) for k, v in times.items()}
        cells = "".join(
            f"  {med[k]:6.2f}s ({med['native'] / med[k]:4.1f}x)" for k in ("cold", "warm", "routed")
        )
        print(f"{n:>5} {med['native']:7.2f}s{cells}  {diff:.1e}  {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
