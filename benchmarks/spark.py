"""Benchmark the feature build on Spark (local mode) against DuckDB on the same tables.

    .venv/bin/python benchmarks/spark.py                  # ~10M events (91k simulated users)
    .venv/bin/python benchmarks/spark.py --users 18000    # ~2M events, a quick run

The simulator writes a product's events; the DuckDB reader loads them and writes the canonical
tables as parquet, which Spark reads. Both engines then compute the same spec for the same label
rows. Printed: wall times (Spark start-up apart), the Spark / DuckDB ratio, and the largest
difference between the two feature tables (0 for counts; floats within 1e-9), the point being
correctness and a measured overhead, not speed on a 2-core machine.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from propensity.config import DataConfig, FeaturesConfig, LabelConfig, SparkConfig
from propensity.engines._spark import (
    LOCAL_TEST_CONF,
    compute_features_spark,
    register_tables,
    spark_session,
)
from propensity.features import compute_features, learn_spec
from propensity.io import load_data
from propensity.labels import build_label_times
from propensity.simulate import simulate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=91_000)
    parser.add_argument("--dir", type=Path, default=Path("/tmp/propensity_bench_spark"))
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--memory", default="6g", help="spark.driver.memory")
    args = parser.parse_args()

    sim = args.dir / f"sim_{args.users}"
    if not (sim / "users.parquet").exists():
        t = time.perf_counter()
        simulate(sim, users=args.users, seed=args.seed)
        print(f"simulate {args.users} users: {time.perf_counter() - t:.1f}s")
    data = load_data(
        DataConfig(
            events=str(sim / "events"),
            users=str(sim / "users.parquet"),
            conversions=str(sim / "conversions.parquet"),
        )
    )
    con = data.con
    n_events = con.execute("SELECT COUNT(*) FROM events").fetchone()[0]
    canon = args.dir / f"canon_{args.users}"
    canon.mkdir(parents=True, exist_ok=True)
    for name in ("events", "users", "conversions"):
        con.execute(f"COPY {name} TO '{canon / name}.parquet' (FORMAT parquet)")
    lt = build_label_times(con, LabelConfig(extra_cutoffs=("1d", "3d")))
    spec = learn_spec(con, lt, FeaturesConfig())

    t = time.perf_counter()
    duck = compute_features(con, lt, spec).frame
    duck_s = time.perf_counter() - t

    t = time.perf_counter()
    # Test settings (fast JVM start, small shuffles) except whole-stage codegen, which pays
    # off at this size; local[2] is the machine.
    conf = {**LOCAL_TEST_CONF, "spark.sql.codegen.wholeStage": "true",
            "spark.driver.memory": args.memory}  # fmt: skip
    spark = spark_session(SparkConfig(master="local[2]", conf=conf))
    start_s = time.perf_counter() - t
    register_tables(
        spark, str(canon / "events.parquet"), str(canon / "users.parquet"),
        str(canon / "conversions.parquet"),
    )  # fmt: skip
    t = time.perf_counter()
    got = compute_features_spark(spark, lt, spec).frame
    spark_s = time.perf_counter() - t
    spark.stop()

    cats = spec.categorical
    worst = max(
        (
            float(np.nanmax(np.abs(got[c].to_numpy() - duck[c].to_numpy()), initial=0.0))
            for c in spec.columns
            if c not in cats
        ),
        default=0.0,
    )
    nan_same = all(
        np.array_equal(got[c].isna().to_numpy(), duck[c].isna().to_numpy()) for c in spec.columns
    )
    cats_same = all(got[c].equals(duck[c]) for c in cats)
    result = {
        "events": int(n_events),
        "label_rows": len(lt),
        "features": len(spec.columns),
        "duckdb_s": round(duck_s, 2),
        "spark_start_s": round(start_s, 2),
        "spark_s": round(spark_s, 2),
        "spark_over_duckdb": round(spark_s / duck_s, 2),
        "max_abs_diff": worst,
        "nulls_equal": nan_same,
        "categoricals_equal": cats_same,
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
