"""Benchmark: fit_model on synthetic feature tables of 100k (and 1M) rows x 150 features.

Each measurement runs in a fresh subprocess so that peak RSS (VmHWM) belongs to it alone.
For every size it prints wall time, CPU time (all threads of the process) and peak memory of

- ``fit_model`` as ``propensity train`` runs it: the config sets only the learning rate, so
  the seeded search runs when the train slice has at most ``model.search.auto_max_rows`` rows
  (500k: at 100k and 300k rows, not at 1M; ``--search on`` forces it, ``--no-search`` turns it
  off) (16 trials + the config's at rate 0.1, each on at most 100k train and
  100k validation rows binned once for all trials, judged on validation log loss), then
  the winner's refit with early stopping, calibration (out-of-fold fits only when the
  calibration slice has fewer than ``CROSS_FIT_BELOW_POSITIVES`` positives), threshold and
  bootstrap intervals;
- the baseline, measured in the same run: bare ``lightgbm.train`` on the train slice, already
  encoded (the frame ``align_features`` writes, which LightGBM converts to a float matrix),
  with fit_model's final parameters, the same threads and exactly the trees fit_model's model
  keeps (no validation, no early stopping, no extras): what training costs if one knew the
  best settings and round in advance;
- ``baseline_matrix``: the same fit fed the float matrix fit_model itself feeds LightGBM
  (``feature_matrix``: the same numbers, the same trees, no conversion inside LightGBM),

and the ratios fit_model / baseline (wall and CPU: on a shared machine wall time mostly measures
the other workers) against both, plus the memory the fit adds over the size of the feature
table, and fit_model's stages (wall, from timers around ``fit_searched`` and ``fit_one``, and
the final fit's CPU): the search, the final fit, and the rest (encoding the frame, calibration,
test scores, threshold, bootstrap intervals).

What the ratio is: the whole of ``propensity train``'s model step against the strictest floor.
Both bin the same train matrix; only fit_model also picks its settings (the search), finds its
round (early stopping grows up to a fifth more trees, at least 20, and scores the validation
slice each round), calibrates and reports. A hand-written script would need those choices too,
so the floor flatters the baseline; it is kept because it cannot be gamed.

History (2 cores shared with other workers, OMP_WAIT_POLICY=PASSIVE; wall times swing with
the load, CPU times less; ratios are fit_model / the frame-fed baseline):

- 2026-12-02: 1M as shipped x3.57 wall / x3.25 CPU (load ~2), ``--no-search`` x2.09 / x1.57
  (load ~3.5); 100k x22.8 / x15.1 (load ~10, trials then on fresh Datasets).
- 2026-12-03, main as shipped (16 trials one after another on at most 100k + 100k rows), 1M
  rows, load 2.3: fit_model 99.5 s / 149.8 s CPU, bare 20.1 s / 30.2 s CPU, x4.95 wall, x4.96
  CPU (search 69.8 s, final fit 19.9 s, the rest 9.7 s; without the search x1.48); peak
  4.08 GB vs 3.54 GB. A variant with trials two at a time on 40k + 40k rows (not landed:
  unproven under load, other TPE proposals) ran x2.36-2.44 CPU at load 6.5-12. At 300k rows
  without the search (cProfile, load ~4) 18.5 s CPU: boosting 12.9 s, binning 7.5 s,
  bootstrap interval 3.4 s, encoding 1.5 s, calibrator 1.3 s, predictions 0.6 s.
- Branch ``train-search``, same outputs for the rest: the bootstrap ROC AUC interval counts
  one (score, label) key per draw in int64 (1.21 s -> 0.25 s CPU for 100 replicates of 150k
  scores), ``Split.summary`` counts two columns, ``align_features`` writes one block, the
  test slice is encoded once. Pruning of trials behind the median: a 30-round warm-up pruned
  the small, regularised trees that win on the 352-event world (0.934x -> 0.910x of the
  oracle's AP), so it ships with 100 rounds (the same choice there; 0.944x -> 0.940x on the
  default world). 1M as shipped x4.30-5.09 CPU at load 4-64, the final fit alone x0.99-1.42.

Branch ``train-speed`` (2026-12-03, 2 cores shared with other workers, OMP_WAIT_POLICY=PASSIVE):

- The rest, same outputs: ``align_features`` takes rows a chunk (8,192) at a time across
  every float64 column by fancy indexing. This benchmark's frame wraps a row-major matrix, so
  each column is strided, and ``np.take`` copied a strided column whole before taking
  (1M x 150, the four slices: 5.5 s -> 1.0-1.4 s CPU; contiguous columns, as the feature
  engine writes them, 1.0 -> 0.7 s). Checked identical to main (booster text, calibrator,
  threshold, metrics, metadata, test frame) at 300k rows without the search and at 60k rows
  with a 2-trial search, report rows and the cross-fitted calibrator.
- cProfile (CPU clock) of fit_model at 1M rows without the search, after that change: 33.8 s,
  of which boosting 18.5 s (97 rounds: 77 kept + 20 of patience), binning train and
  validation 8.5 s, predictions (validation, calibration, test) 1.5 s, encoding 1.6 s,
  pandas-to-numpy copies inside LightGBM 0.75 s, bootstrap ROC AUC 0.8 s, the split's
  group-by 0.5 s (``propensity train`` passes its split, so not there), evaluation each round
  0.3 s. The bare fit is ~23 s CPU; what is left over it is early stopping itself (the 20
  patience rounds ~3.8 s, the validation Dataset ~1.8 s) and ~4 s of scoring and reporting.
  Not cut further: ``first_metric_only`` (one metric), the validation set's bins (already the
  train set's), a float32 matrix (rounds values before binning; not tried).
- The search, measured on the same rows with and without it (docs/config.md, "Why the
  automatic search stops at 500k rows"): on this table test log loss 0.28257 -> 0.28056 at
  100k rows, 0.28810 -> 0.28745 at 300k, 0.28677 -> 0.28639 at 1M (AUC 0.7619 -> 0.7664,
  0.7575 -> 0.7594, 0.7625 -> 0.7636); on the default simulator world (seed 7) test AP
  0.915x -> 0.940x of the oracle's at 45k users (87k train rows), 0.952x -> 0.961x at 150k
  (292k), 0.973x -> 0.976x at 450k (871k, noise ~0.006); on the 352-event world at 150k users
  (292k) 0.935x -> 0.940x (0.922x -> 0.934x at 45k, ``benchmarks/worlds.py``). So the
  automatic search now runs only up to ``model.search.auto_max_rows`` (500k) train rows;
  worlds below that are unchanged (the same search, the same model: the worlds table of
  ``benchmarks/worlds.py`` stands). Checked with the branch on the same prepared rows: the
  45k-user default world searches as before (17 trials, 4 leaves, AP 0.9397x, as main); the
  450k-user one no longer does (1 trial, AP 0.9732x as main without the search; fit_model
  70 s CPU at load 2.7, against 265 s CPU with main's search at load 6.2).
- ``python benchmarks/train.py --rows 1000000`` (auto: 600k train rows, no search; best round
  and test AUC 0.7625 as ``--no-search``): fit_model x1.34-1.46 CPU the bare fit at load
  2.2-6.9 (19.5-98.5 s wall, 33.2-36.6 s CPU; x1.16 wall at load 2.2 only), main right after
  x1.51-1.59 CPU, main as shipped (the search) x4.37 CPU at load 5.0. Not within 1.3x: the
  patience rounds and validation set (~0.24x) are the floor of an early-stopped fit with the
  same outputs, and scoring, calibration and intervals added ~0.2x.

Branch ``train-speed2`` (2026-12-03, same machine; every change exact: booster text,
calibrator, threshold, metrics, metadata and test frame identical to main at 200k and 1M rows
without the search, at 100k rows with the automatic search (17 trials, 3 pruned) and at 60k
rows with a 2-trial search, report rows and the cross-fitted calibrator; the demo's pinned
scores and metrics unchanged):

- fit_model fed LightGBM frames, as the baseline does, and LightGBM copied each into a float
  matrix (the validation slice twice: its Dataset, then its scores). It now feeds the matrix
  ``feature_matrix`` writes (a test holds the booster text to the frame fit's); the best
  round's validation scores are LightGBM's own (``EarlyStopping.record``), not a second
  prediction; the split groups users without sorting their ids (1M ids 0.59 -> 0.11 s CPU).
  cProfile (CPU) at 1M rows without the search, main 34.8 s (load 1-2) -> branch 32.3 s (load
  4.6-5): encoding and LightGBM's copies 2.3 -> 1.6 s, predictions 1.5 -> 0.9 s, per-round
  evaluation 0.3 -> 0.7 s (the scores kept), split 0.6 -> 0.2 s; boosting 18.0-18.7 s (97
  rounds) and binning 8.4-8.6 s (train and validation) as before. Peak memory 3.61 -> 2.94 GB
  (the fit adds x1.69 -> x1.11 the table).
- ``python benchmarks/train.py --rows 1000000``, main and the branch alternating, four runs
  each (load 3.2-7.0): fit_model CPU main 33.5-35.9 s (mean 34.7), branch 32.3-34.3 s (mean
  33.4); the frame-fed baseline 22.9-26.0 s (mean 24.4), the matrix-fed one 23.1-24.3 s.
  Ratios: main x1.36-1.49 CPU, branch x1.34-1.39 against the frame-fed baseline and
  x1.38-1.45 against the matrix-fed one; the final fit alone x1.15-1.25 CPU. Not within 1.3x.
  What is left over the bare fit, at 1M rows: the patience rounds (20 past a best of 77,
  ~3.8 s), the validation Dataset (~1.3 s), evaluation each round (~0.7 s), and ~4.5 s of
  encoding (1.6 s), calibration and test scores (0.9 s), calibrator choice (0.9 s) and the
  bootstrap interval (0.8 s: 500 replicates of 150k draws, counted and summed).
- A shorter patience changes the model and is not landed. Simulated on full validation
  curves of this table (7 fits: 100k x3 seeds, 300k x2, 1M x2), a tenth of the best round
  (at least 10) kept the same best round in 6 of 7 (10 trees fewer); at 1M seed 0 its best
  was 59, not 77 (test AUC 0.76265 vs 0.76255, log loss 0.286828 vs 0.286803). On the freemium
  task (``task_oracle.py``, 20k entities, the search on) it changed the model on every seed:
  AP 0.901x/0.888x/0.880x of the oracle's (seeds 7/8/9, 391/301/178 trees) -> 0.884x/
  0.919x/0.880x (138/172/149 trees), ROC AUC 0.990x/0.986x/0.989x -> 0.989x/0.985x/0.989x;
  within the ratio's noise (sd ~0.035) but not clearly neutral. 0.15 of it (at least 15)
  kept every best round on this table, matched main on seed 7 and the tenth on seeds 8 and 9;
  at 1M rows it saves 5 of 97 rounds (~0.9 s CPU, ~x0.04). Nor does a shorter patience
  bring the ratio down by itself where it moves the best round: the bare fit then keeps
  fewer trees too (at 1M seed 0, 69 grown for 59 kept against 97 for 77).
Branch ``train-speed3`` (2026-12-03, same machine; every change exact: booster text,
calibrator, threshold, metrics with every bootstrap interval, metadata and test frame
identical to main at 200k and 1M rows without the search and at 60k rows with a 2-trial
search, report rows and the cross-fitted calibrator, and at 100k with the automatic
search (17 trials); the demo's pinned scores unchanged):

- The bootstrap ROC AUC interval counts each replicate's draws over runs of scores (distinct
  scores of one label in a row make one run), same draws and integer pair counts (150k
  scores x 500: 0.78 -> 0.49 s CPU); a slice of consecutive rows is copied by slicing, not
  indexing, a pandas categorical mapped per category (encoding at 1M 1.6 -> ~1.2 s); the
  calibrator's folds shared the logit and sort (undone: 0.04 s, 75 lines), Platt takes 3
  sums of products, not 4 dot products.
- ``python benchmarks/train.py --rows 1000000``, main and the branch alternating, four runs
  each (load 2.2-5.0): fit_model CPU main 30.2/32.2/32.3/33.1 s (mean 32.0), branch
  29.3/30.9/32.2/32.7 s (mean 31.3); the frame-fed baseline 22.0-24.5 s; ratios main
  x1.37/1.41/1.38/1.38, branch x1.32/1.34/1.36/1.33 (against the matrix-fed baseline
  x1.41-1.44 -> x1.29-1.39); the rest (fit_model CPU minus the final fit's) main 4.2-4.6 s,
  branch 3.0-3.8 s; the final fit x1.18-1.21 both. Not within 1.3x.
- Left, not exact: the calibrator's CPU is mostly OpenBLAS's second thread. Platt's
  ``np.dot`` over 16k-100k scores wakes it to spin; with ``OPENBLAS_NUM_THREADS=1`` the
  calibrator takes 0.03-0.11 s CPU, not 0.5-0.9 s, but a dot summed in one pass instead of
  two halves moves the sigmoid's ``b`` by an ulp (1M rows: 0.0702557325508292 ->
  ...82919), hence the test scores in their last bit. ``np.sum(a * b)`` or threadpoolctl
  around the fit would save ~0.5 s and free the map from the core count.

"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator

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


def run_one(
    kind: str,
    rows: int,
    features: int,
    threads: int,
    trees: int,
    params: dict | None,
    search: str = "auto",
) -> dict:
    """One measurement in this process; printed as JSON for the parent."""
    # import everything first so that the memory measured before the fit includes the libraries
    import lightgbm as lgb

    from propensity.config import config_from_dict
    from propensity.model.boost import Columns
    from propensity.model.bundle import align_features, feature_matrix
    from propensity.model.split import split_out_of_time
    from propensity.model.train import fit_model

    frame, columns = make_frame(rows, features)
    frame_mb = frame.memory_usage(deep=False).sum() / 2**20
    before_mb = _peak_mb()
    cfg = config_from_dict(
        {
            "data": {"events": "-", "users": "-"},
            "seed": SEED,
            "model": {
                "n_jobs": threads,
                "learning_rate": 0.1,
                "min_positives": 50,
                # auto: as `propensity train` (the search up to model.search.auto_max_rows)
                **({} if search == "auto" else {"search": {"trials": 16 if search == "on" else 0}}),
            },
            "threshold": {"policy": "top_fraction", "top_fraction": 0.05},
        }
    )
    started, cpu_started = time.perf_counter(), time.process_time()
    if kind == "fit_model":
        with _stage_clock() as stages:
            result = fit_model(frame, columns, ["domain_class", "user_plan"], cfg, {}, "bench")
        extra = {
            **stages,
            "best_iteration": result.best_iteration,
            "params": result.params,
            "test_auc": round(result.metrics["test_calibrated"]["roc_auc"], 4),
            "cross_fitted": result.metrics["calibration"]["cross_fitted"],
            "trials": len(result.search),
            "pruned": sum(bool(t.get("pruned")) for t in result.search),
        }
    else:
        train = split_out_of_time(frame, cfg.split).train
        levels = {c: list(frame[c].cat.categories) for c in ("domain_class", "user_plan")}
        y = frame["label"].to_numpy()[train]
        if kind == "baseline":  # the encoded frame, which LightGBM converts to a matrix
            data = lgb.Dataset(align_features(frame.iloc[train], columns, levels), y)
        else:  # "baseline_matrix": the float matrix fit_model feeds LightGBM (the same trees)
            data = Columns(columns, levels).dataset(
                feature_matrix(frame, columns, levels, rows=train), y
            )
        # the baseline is the bare booster fit only, with fit_model's final parameters
        started, cpu_started = time.perf_counter(), time.process_time()
        lgb.train(params, data, num_boost_round=trees)
        extra = {}
    return {
        "kind": kind,
        "rows": rows,
        "seconds": time.perf_counter() - started,
        "cpu_seconds": time.process_time() - cpu_started,
        "peak_mb": _peak_mb(),
        "before_fit_mb": before_mb,
        "frame_mb": frame_mb,
        "load": os.getloadavg()[0],
        **extra,
    }


@contextlib.contextmanager
def _stage_clock() -> Iterator[dict[str, float]]:
    """Wall seconds of fit_model's stages: ``train_s`` (search + final fit, ``fit_searched``) and
    ``final_fit_s`` (the final fit alone: the last ``fit_one`` without prebuilt datasets).

    Timers wrapped around the module's own functions for this measurement only; the search is
    ``train_s - final_fit_s``, everything else (encoding, calibration, metrics) the rest.
    """
    import propensity.model.search as search_module
    import propensity.model.train as train_module

    stages = {"train_s": 0.0, "final_fit_s": 0.0, "final_fit_cpu_s": 0.0}
    fit_one, train = search_module.fit_one, train_module.fit_searched

    def timed_fit_one(params, parts, cfg, columns, datasets=None, callbacks=()):  # type: ignore[no-untyped-def]
        started, cpu_started = time.perf_counter(), time.process_time()
        out = fit_one(params, parts, cfg, columns, datasets, callbacks)
        if datasets is None:
            stages["final_fit_s"] = time.perf_counter() - started
            stages["final_fit_cpu_s"] = time.process_time() - cpu_started
        return out

    def timed_train(*args, **kwargs):  # type: ignore[no-untyped-def]
        started = time.perf_counter()
        out = train(*args, **kwargs)
        stages["train_s"] = time.perf_counter() - started
        return out

    search_module.fit_one, train_module.fit_searched = timed_fit_one, timed_train
    try:
        yield stages
    finally:
        search_module.fit_one, train_module.fit_searched = fit_one, train


def _child(
    kind: str,
    rows: int,
    features: int,
    threads: int,
    trees: int = 0,
    params: dict | None = None,
    search: str = "auto",
) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, "--child", kind, "--rows", str(rows),
         "--features", str(features), "--threads", str(threads), "--trees", str(trees),
         "--params", json.dumps(params or {}), "--search", search],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[100_000])
    parser.add_argument(
        "--million", action="store_true", help="also 1,000,000 rows (~10 min on 2 idle cores)"
    )
    parser.add_argument(
        "--no-search", action="store_true", help="fit_model with the config's settings (no search)"
    )
    parser.add_argument(
        "--search",
        choices=["auto", "off", "on"],
        default="auto",
        help="auto: as shipped (up to model.search.auto_max_rows train rows); on: 16 trials always",
    )
    parser.add_argument("--features", type=int, default=150)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--trees", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--params", default="{}", help=argparse.SUPPRESS)
    parser.add_argument(
        "--child", choices=["fit_model", "baseline", "baseline_matrix"], help=argparse.SUPPRESS
    )
    args = parser.parse_args()
    search = "off" if args.no_search else args.search
    if args.child:
        result = run_one(
            args.child, args.rows[0], args.features, args.threads, args.trees,
            json.loads(args.params), search,
        )  # fmt: skip
        print(json.dumps(result))
        return
    from propensity.config import ModelConfig
    from propensity.model.boost import patience

    rows_list = [*args.rows, *([1_000_000] if args.million else [])]
    print(f"load average at start: {os.getloadavg()}")
    print(
        f"{'rows':>9} {'what':<10} {'seconds':>8} {'cpu s':>8} {'peak MB':>8} {'+fit MB':>8}  notes"
    )
    for rows in rows_list:
        fit = _child("fit_model", rows, args.features, args.threads, search=search)
        # the baseline grows exactly the trees the model keeps, with the model's parameters;
        # fit_model grows a patience past the best (propensity.model.boost.patience) and does
        # everything else besides
        best = fit["best_iteration"]
        grown = best + patience(best, ModelConfig().early_stopping_rounds)
        base = _child("baseline", rows, args.features, args.threads, best, fit["params"])
        matrix = _child("baseline_matrix", rows, args.features, args.threads, best, fit["params"])
        for r in (fit, base, matrix):
            notes = (
                f"best_iteration={best} (~{grown} trees grown) test_auc={r['test_auc']} "
                f"cross_fitted={r['cross_fitted']} trials={r['trials']} (pruned {r['pruned']})"
                if r["kind"] == "fit_model"
                else f"bare lightgbm.train, {best} trees, same parameters, fed the encoded frame"
                if r["kind"] == "baseline"
                else "the same, fed the float matrix fit_model feeds LightGBM"
            )
            print(f"{rows:>9} {r['kind'][:10]:<10} {r['seconds']:>8.1f} {r['cpu_seconds']:>8.1f} "
                  f"{r['peak_mb']:>8.0f} {r['peak_mb'] - r['before_fit_mb']:>8.0f}  {notes} "
                  f"(load {r['load']:.1f})")  # fmt: skip
        search_s = fit["train_s"] - fit["final_fit_s"]
        rest_s = fit["seconds"] - fit["train_s"]
        print(
            f"{rows:>9} stages     search {search_s:.1f} s, final fit {fit['final_fit_s']:.1f} s "
            f"(x{fit['final_fit_s'] / base['seconds']:.2f} the baseline, CPU "
            f"x{fit['final_fit_cpu_s'] / base['cpu_seconds']:.2f}: validation Dataset, "
            f"patience rounds, validation scored each round), the rest {rest_s:.1f} s "
            f"(encoding, calibration, test scores, bootstrap intervals); fit_model without the "
            f"search = x{(fit['seconds'] - search_s) / base['seconds']:.2f} the baseline"
        )
        print(
            f"{rows:>9} ratio      time x{fit['seconds'] / base['seconds']:.2f} "
            f"(cpu x{fit['cpu_seconds'] / base['cpu_seconds']:.2f}), "
            f"peak memory x{fit['peak_mb'] / base['peak_mb']:.2f} vs baseline; memory the fit "
            f"adds = x{(fit['peak_mb'] - fit['before_fit_mb']) / fit['frame_mb']:.2f} the "
            f"{fit['frame_mb']:.0f} MB feature table; load average {os.getloadavg()[0]:.2f}"
        )
        print(
            f"{rows:>9} ratio      vs the baseline fed the matrix: time "
            f"x{fit['seconds'] / matrix['seconds']:.2f} "
            f"(cpu x{fit['cpu_seconds'] / matrix['cpu_seconds']:.2f}); final fit CPU "
            f"x{fit['final_fit_cpu_s'] / matrix['cpu_seconds']:.2f}"
        )


if __name__ == "__main__":
    main()
