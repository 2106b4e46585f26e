"""How close a plain model gets to the oracle on each task world (before the engine seam exists).

Simulates a world, builds label times with ``task_label_times``, then anchor-relative features in
DuckDB (counts per event in the 7d / 28d / 28-56d before the anchor, lifetime activity, recency,
tenure; members for accounts; seats for expansion), trains LightGBM on the earliest 60% of
anchors and scores the last 25%. Prints model and oracle AP / ROC AUC on that later slice and
their ratios. A yardstick for the wiring step, not the engine's features.

    .venv/bin/python benchmarks/task_learnability.py --task freemium --entities 20000
"""

from __future__ import annotations

import argparse
import tempfile
import time
from datetime import datetime
from pathlib import Path

import duckdb
import lightgbm as lgb
import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score, roc_auc_score

from propensity.config import config_from_dict
from propensity.simulate.catalog import domain_class
from propensity.simulate.hazard import HAZARD_EVENTS
from propensity.simulate.tasks import simulate_task
from propensity.task_labels import task_label_times


def _load(con: duckdb.DuckDBPyConnection, d: Path, teams: bool) -> None:
    con.execute(
        f"CREATE TABLE events AS SELECT user_id, event, timezone('UTC', timestamp) AS timestamp "
        f"FROM '{d}/events/*.parquet' WHERE user_id IS NOT NULL"
    )
    role = ", seat_role" if teams else ", 'admin' AS seat_role"
    con.execute(
        f"CREATE TABLE users AS SELECT user_id, timezone('UTC', signup_at) AS signup_at, "
        f"account_id, split_part(email, '@', 2) AS domain, company_size{role} "
        f"FROM '{d}/users.parquet'"
    )
    con.execute(
        f"CREATE TABLE conversions AS SELECT user_id, timezone('UTC', converted_at) AS "
        f"converted_at FROM '{d}/conversions.parquet'"
    )
    if teams:
        con.execute(
            f"CREATE TABLE payments AS SELECT account_id, timezone('UTC', paid_at) AS paid_at, "
            f"seats FROM '{d}/payments.parquet'"
        )


# Cumulative windows before the anchor (days): the truth reads 28-day windows up to 3 weeks old,
# so weekly steps out to 56 days let a model see what it reads.
WINDOWS = tuple((0, d, f"{d}d") for d in (7, 14, 21, 28, 35, 42, 49, 56))


def _features(con: duckdb.DuckDBPyConnection, rows: pd.DataFrame, key: str) -> pd.DataFrame:
    ent = "user_id" if key == "user_id" else "account_id"
    con.register("lt", rows[[key, "cutoff_at"]].rename(columns={key: "entity"}))
    con.execute(
        f"""CREATE OR REPLACE TABLE daily AS
        SELECT u.{ent} AS entity, e.user_id, date_trunc('day', e.timestamp) AS d, e.event,
               count(*) AS n, bool_or(u.seat_role = 'admin') AS admin
        FROM (SELECT DISTINCT * FROM events) e JOIN users u USING (user_id) GROUP BY ALL"""
    )
    per = []
    for e in HAZARD_EVENTS:
        for lo, hi, tag in WINDOWS:
            per.append(
                f"sum(n) FILTER (WHERE event = '{e}' AND d < cutoff_at - INTERVAL {lo} DAY "
                f"AND d >= cutoff_at - INTERVAL {hi} DAY) AS n_{e}_{tag}"
            )
    windowed = con.execute(
        f"""SELECT l.entity, l.cutoff_at, {", ".join(per)},
            count(DISTINCT x.user_id) FILTER (WHERE d >= cutoff_at - INTERVAL 7 DAY) AS act7,
            count(DISTINCT x.user_id) FILTER (WHERE d >= cutoff_at - INTERVAL 28 DAY) AS act28,
            count(DISTINCT x.d) FILTER (WHERE d >= cutoff_at - INTERVAL 28 DAY) AS days28,
            sum(n) FILTER (WHERE admin AND event = 'billing_viewed'
                           AND d >= cutoff_at - INTERVAL 28 DAY) AS admin_billing28
        FROM lt l JOIN daily x ON x.entity = l.entity AND x.d < l.cutoff_at
             AND x.d >= l.cutoff_at - INTERVAL 56 DAY
        GROUP BY ALL"""
    ).df()
    life = con.execute(
        """SELECT l.entity, l.cutoff_at, count(DISTINCT x.d) AS days_life, sum(n) AS n_life,
                  count(DISTINCT x.user_id) AS members_life,
                  epoch(l.cutoff_at - min(x.d)) / 86400 AS tenure,
                  epoch(l.cutoff_at - max(x.d)) / 86400 AS since_last
        FROM lt l JOIN daily x ON x.entity = l.entity AND x.d < l.cutoff_at
        GROUP BY l.entity, l.cutoff_at"""
    ).df()
    firm = con.execute(
        f"""SELECT {ent} AS entity, any_value(domain) AS domain,
                   any_value(company_size) AS company_size FROM users GROUP BY ALL"""
    ).df()
    out = rows[[key, "cutoff_at", "label"]].rename(columns={key: "entity"})
    out = out.merge(windowed, how="left").merge(life, how="left").merge(firm, how="left")
    if key == "account_id":
        seats = con.execute(
            """SELECT l.entity, l.cutoff_at, arg_min(p.seats, p.paid_at) AS seats
            FROM lt l JOIN payments p ON p.account_id = l.entity AND p.paid_at < l.cutoff_at
            GROUP BY ALL"""
        ).df()
        out = out.merge(seats, how="left")
        out["excess"] = out["members_life"] - out["seats"]
    con.unregister("lt")
    # the class of the domain (free mail, corporate, ...), as the feature engine's fit family does
    out["domain"] = out["domain"].map(domain_class).astype("category")
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--task", choices=("freemium", "account", "expansion"), required=True)
    parser.add_argument("--entities", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        began = time.perf_counter()
        summary = simulate_task(Path(tmp), args.task, entities=args.entities, seed=args.seed)
        print(f"simulated in {summary.seconds:.1f} s: {summary.events:,} event rows")
        teams = args.task != "freemium"
        con = duckdb.connect()
        con.execute("SET threads = 2")
        _load(con, Path(tmp), teams)
        task = {"entity": "account" if teams else "user", "anchors": {"kind": "calendar"},
                "horizon": "28d"}  # fmt: skip
        if args.task == "expansion":
            task["target"] = {"kind": "expansion_payment"}
        cfg = config_from_dict({"data": {"events": "x"}, "task": task})
        lt = task_label_times(con, cfg.label, cfg.task, data_end=datetime(2025, 7, 2))
        key = lt.frame.columns[0]
        x = _features(con, lt.frame, key)
        truth = pd.read_parquet(Path(tmp) / "truth.parquet")
        x = x.merge(
            truth.rename(columns={"entity_id": "entity", "anchor_at": "cutoff_at"})[
                ["entity", "cutoff_at", "p_true"]
            ],
            how="left",
        )
        print(f"features for {len(x):,} rows in {time.perf_counter() - began:.1f} s total")
    anchors = np.sort(x["cutoff_at"].unique())
    train_end, test_start = anchors[int(0.6 * len(anchors))], anchors[int(0.75 * len(anchors))]
    cols = [c for c in x.columns if c not in ("entity", "cutoff_at", "label", "p_true")]
    train, valid = x[x["cutoff_at"] < train_end], x[(x["cutoff_at"] >= train_end)
                                                    & (x["cutoff_at"] < test_start)]  # fmt: skip
    test = x[x["cutoff_at"] >= test_start]
    model = lgb.LGBMClassifier(
        n_estimators=2000, learning_rate=0.03, num_leaves=31, min_child_samples=50,
        subsample=0.8, subsample_freq=1, colsample_bytree=0.8, n_jobs=2, verbose=-1,
        random_state=args.seed,
    )  # fmt: skip
    model.fit(
        train[cols], train["label"], eval_set=[(valid[cols], valid["label"])],
        callbacks=[lgb.early_stopping(100, verbose=False)],
    )  # fmt: skip
    p = model.predict_proba(test[cols])[:, 1]
    y = test["label"].to_numpy()
    ap, auc = average_precision_score(y, p), roc_auc_score(y, p)
    oap, oauc = average_precision_score(y, test["p_true"]), roc_auc_score(y, test["p_true"])
    print(
        f"{args.task}: test {len(test):,} rows, base rate {y.mean():.2%}; model AP {ap:.4f} "
        f"vs oracle {oap:.4f} ({ap / oap:.3f}x); ROC AUC {auc:.4f} vs {oauc:.4f} "
        f"({auc / oauc:.3f}x)"
    )


if __name__ == "__main__":
    main()
