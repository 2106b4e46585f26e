"""Worlds we did not tune for: `init` + `train` with no hand edits on simulator worlds of
different shapes, then the written scores of a later cohort judged against what happened next.

For each world (the default one; 600 users; a 2% base rate; day-only timestamps; 336 extra
event names; a 30-day trial) this

1. simulates the world (signups from January, 180 days) and a later cohort of the same shape
   (another seed, signups from July);
2. runs ``propensity init`` then ``propensity train`` as a user would, through the CLI, with a
   fresh MLflow store, and keeps every ``warning:`` line;
3. judges the model on its own test slice against the oracle (the simulator's true
   probabilities on the same rows: the baseline, measured in the same run);
4. scores the later cohort with ``propensity score``'s job at three as-of dates and judges the
   written scores (and the raw model's) against who paid within the horizon after as-of.

    python benchmarks/worlds.py [--users 20000] [--only default day_only] [--work DIR]

Prints one table: test rows and positives, AP, oracle AP and the ratios, the later cohort's AP
and ECE (raw and calibrated), whether the model was promoted, and the warnings.

Measured 2026-12-03 (branch ``worlds``), 2 shared cores, load (1m) at the end of each run;
"40k" is ``main`` at 9e534df (the search samples at most 40k train rows), "100k" the search
on at most 100k train rows (every train row of these worlds). Run one world per process,
up to five processes at once::

    OMP_WAIT_POLICY=PASSIVE PYTHONPATH=$PWD python benchmarks/worlds.py --only default --users 45000

=============== ===== ===== ======== ======= ======= ============= ====== =========== ==== =====
world           users cap   test pos AP/orcl AUC/orc later ECE r/c leaves calibration prom load
=============== ===== ===== ======== ======= ======= ============= ====== =========== ==== =====
users_600         600 40k          -       -       -             -      -   refused      -   2.2
default         45000 40k        290   0.937   0.991 0.006 / 0.006      4 isotonic    yes   8.6
default         45000 100k       290   0.944   0.992 0.007 / 0.007     11 isotonic    yes  12.6
events_352      45000 40k        321   0.914   0.993 0.005 / 0.006      4 isotonic    yes   7.1
events_352      45000 100k*      321   0.910   0.994 0.007 / 0.006     13 isotonic    yes  10.1
events_352      45000 100k       321   0.934   0.997 0.007 / 0.006      7 isotonic    yes   6.3
day_only        30000 40k        167   0.939   0.991 0.006 / 0.006      5 identity    yes  16.0
day_only        30000 100k       167   0.947   0.991 0.009 / 0.009      3 identity    yes  16.4
trial_30d       30000 40k        313   0.965   0.991 0.009 / 0.008      3 sigmoid     yes   7.6
trial_30d       30000 100k       313   0.970   0.992 0.009 / 0.009      4 sigmoid     yes   8.4
base_rate_2pct  30000 40k         50   0.909       -  0.003 / 0.003     4 isotonic    -     3.4
=============== ===== ===== ======== ======= ======= ============= ====== =========== ==== =====

(base_rate_2pct is the 2026-12-02 measurement.) Rerun on ``main`` at 300a1b2 (100k cap, no
time limit on the search), one world at a time, load 2.5-3.1: events_352 (45k) the same choice
and numbers as above, 0.934x, 7 leaves, later ECE 0.007 / 0.006, 3.6 min; base_rate_2pct (30k)
50 test positives, 0.837x, ROC AUC 0.988x, later ECE 0.003 / 0.002, 6 leaves, 1.4 min (with 50
positives the AP ratio is mostly noise). users_600 is refused with one message naming
every short slice (validation 4 positives, calibration 2, test 3; at least 5 of each are
needed): 600 users at a 9.5% rate leave ~46 users per evaluation slice, so no model and no
headline, which is the honest outcome, not a crash. Later-cohort ECE is <= 0.009 everywhere.

* events_352 with the 100k cap ran twice. The first run shared the 2 cores with three other
worlds and other workers (load 10-15) and chose 13-leaf trees, 0.910x; alone at load ~6 the
same code chose 7-leaf trees, 0.934x, and ``fit_model`` on that world's prepared rows gives the
same 7-leaf choice with all 17 trials run. The 13-leaf settings are those of an early trial, so
under heavy load the search most likely hit its 300 s time budget (``model.search.time_budget_s``)
before the later trials: the choice then depended on machine speed. Since then the search has
no time limit by default (a budget, when set, warns when it cuts the search short) and
``metrics.json`` records the trials planned and run.

Why events_352 sat below the floor with the 40k cap, checked on the same prepared rows of the
45k world (``fit_model`` re-run with one change each; a paired bootstrap of the test slice puts
the ratio's standard deviation at ~0.02, so single differences of 0.01 are noise):

- the long tail's columns are not the problem: dropping every tail-event column (144 left)
  gave 0.909x, pruning columns non-zero on < 1% of rows (436 left) 0.908x;
- calibration is not: raw and calibrated scores rank the same (0.914x both);
- settings: the 31-leaf defaults without a search 0.922x, the search's choice refit at
  learning rate 0.02 0.926x, the search on every train row (87k) 0.934x, kept: the
  settings a 40k sample picks (4 leaves, 45 rows a leaf) underfit twice the rows;
- judging early stopping and the search on the validation slice's main-cutoff rows only: 0.907x;
- training on the main cutoff's rows only (no extra cutoffs at days 1, 3, 10): 0.935x, ROC AUC
  0.998x. The 40k model's logit departs from the truth's mostly along recency and activity
  (residual correlation -0.40 with ``hours_since_last_event``): rows at other trial ages, whose
  recency means something else, dilute what small trees learn for the main cutoff.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from propensity.config import load_config
from propensity.engines import ScoreScope, open_engine
from propensity.evaluate import ranking_metrics
from propensity.model import PQLModel
from propensity.pipeline.demo import oracle_on_test
from propensity.pipeline.score import score_job
from propensity.simulate import simulate

BIN = Path(sys.executable).with_name("propensity")
AS_OF_DAYS = (60, 90, 120)  # as-of dates after the later cohort's first signup


@dataclass(frozen=True)
class World:
    name: str
    shape: dict[str, Any] = field(default_factory=dict)
    users: int | None = None  # None: the --users of the run


WORLDS = (
    World("default"),
    World("users_600", users=600),
    World("base_rate_2pct", {"base_rate": 0.02}),
    World("day_only", {"day_only": True}),
    World("events_352", {"tail_events": 336}),
    World("trial_30d", {"trial_days": 30, "observation_window": timedelta(days=14)}),
)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--users", type=int, default=20_000)
    parser.add_argument("--only", nargs="*", default=None)
    parser.add_argument("--work", type=Path, default=None, help="keep the worlds here")
    args = parser.parse_args()
    worlds = [w for w in WORLDS if args.only is None or w.name in args.only]
    with tempfile.TemporaryDirectory() as tmp:
        work = args.work or Path(tmp)
        rows = [run_world(w, work / w.name, w.users or args.users) for w in worlds]
    table = pd.DataFrame(rows)
    with pd.option_context("display.width", 250, "display.max_colwidth", 120):
        print(table.drop(columns=["warnings"]).to_string(index=False, float_format=_f))
    for row in rows:
        for line in row["warnings"]:
            print(f"warning in {row['world']}: {line}")


def run_world(world: World, folder: Path, users: int) -> dict[str, Any]:
    began = time.perf_counter()
    if folder.exists():
        shutil.rmtree(folder)  # a fresh store: the first model of each world is its first
    folder.mkdir(parents=True)
    simulate(folder / "a", users=users, seed=7, **world.shape)
    simulate(folder / "b", users=users, seed=107, start=date(2025, 7, 1), **world.shape)
    env = {
        **os.environ,
        "MLFLOW_TRACKING_URI": f"sqlite:///{folder / 'mlflow.db'}",
        "MLFLOW_DISABLE_TELEMETRY": "true",
        # OpenMP threads that spin while waiting make LightGBM ~7x slower on a busy machine
        # (2 threads at load 7: 450 ms a round, 65 ms with passive waiting, same trees)
        "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY", "PASSIVE"),
    }
    a = folder / "a"
    init = _cli(
        ["init", "--events", "a/events", "--users", "a/users.parquet"]
        + ["--conversions", "a/conversions.parquet", "--out", "world.yaml", "--force"],
        folder,
        env,
    )
    train = _cli(["train", "--config", "world.yaml"], folder, env)
    warnings = _warnings(init.stderr) + _warnings(train.stderr)
    row: dict[str, Any] = {"world": world.name, "users": users}
    if train.returncode != 0:
        last = (train.stderr.strip().splitlines() or ["?"])[-1]
        return {**row, "error": last[:200], "warnings": warnings}
    run_id = re.search(r"run id: (\w+)", train.stdout).group(1)  # type: ignore[union-attr]
    cfg = load_config(folder / "world.yaml")
    run_dir = folder / cfg.output_dir / f"train-{run_id}"
    test = pd.read_parquet(run_dir / "test_scores.parquet")
    row |= {
        "test_rows": len(test),
        "test_pos": int(test["label"].sum()),
        "window": f"{cfg.label.observation_window.days}d",
    }
    try:
        oracle = oracle_on_test(test, a / "truth.parquet")
        row |= {
            "AP": oracle["model_average_precision"],
            "oracle_AP": oracle["oracle_average_precision"],
            "AP_ratio": oracle["average_precision_ratio"],
            "AUC_ratio": oracle["roc_auc_ratio"],
        }
    except ValueError:  # init chose another cutoff than the simulator's truth: no oracle
        row |= {"AP": ranking_metrics(test["label"], test["p"])["average_precision"]}
    metrics = json.loads((run_dir / "metrics.json").read_text())
    row["calibration"] = metrics["calibration"]["method"]
    row["leaves"] = PQLModel.load(run_dir / "model").metadata["params"]["num_leaves"]
    row |= _later_cohort(cfg, folder, run_dir / "model")
    row["promoted"] = "yes" if "promoted to champion" in train.stdout else "no"
    row["minutes"] = (time.perf_counter() - began) / 60
    row["load"] = "/".join(f"{v:.1f}" for v in os.getloadavg())
    row["warnings"] = warnings
    row["n_warnings"] = len(warnings)
    return row


def _later_cohort(cfg: Any, folder: Path, model_dir: Path) -> dict[str, float]:
    """The written scores (and the raw model's) of the later cohort at three as-of dates."""
    b = folder / "b"
    paths = {
        "events": str(b / "events"),
        "users": str(b / "users.parquet"),
        "conversions": str(b / "conversions.parquet"),
    }
    later = cfg.model_copy(update={"data": cfg.data.model_copy(update=paths)})
    model = PQLModel.load(model_dir)
    spec = model.spec
    paid = pd.read_parquet(b / "conversions.parquet").groupby("user_id")["converted_at"].min()
    y_all, raw_all, cal_all = [], [], []
    for days in AS_OF_DAYS:
        as_of = datetime(2025, 7, 1) + timedelta(days=days)
        out = folder / f"scores-{days}.parquet"
        # the job reads only the window its as-of needs; the raw scores are recomputed on
        # that very engine, so both cover the same users with the same features
        engine = open_engine(later, ScoreScope(spec, lambda latest, t=as_of: (t, t)))
        written = score_job(later, as_of, out, model_uri=str(model_dir), engine=engine).scores
        features = engine.features(engine.population(later.label, as_of, later.task), spec)
        frame = features.frame
        raw = pd.Series(model.predict_raw(frame), index=frame["user_id"].astype(str))
        scores = written.set_index("user_id")["score"]
        when = pd.to_datetime(scores.index.map(paid)).tz_localize(None)
        y = ((when >= as_of) & (when < as_of + later.label.horizon)).astype(int)
        y_all.append(np.asarray(y))
        cal_all.append(scores.to_numpy())
        raw_all.append(raw.loc[scores.index].to_numpy())
    y, raw, cal = (np.concatenate(v) for v in (y_all, raw_all, cal_all))
    bins = cfg.calibration.ece_bins
    m_raw, m_cal = ranking_metrics(y, raw, bins), ranking_metrics(y, cal, bins)
    return {
        "later_rows": len(y),
        "later_pos": int(y.sum()),
        "later_AP": m_cal["average_precision"],
        "later_AUC": m_cal["roc_auc"],
        "later_ECE_raw": m_raw["ece"],
        "later_ECE_cal": m_cal["ece"],
    }


def _cli(args: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BIN), *args], cwd=cwd, env=env, capture_output=True, text=True)


def _warnings(stderr: str) -> list[str]:
    return [line.removeprefix("warning: ") for line in stderr.splitlines() if "warning:" in line]


def _f(value: float) -> str:
    return f"{value:.3f}"


if __name__ == "__main__":
    main()
