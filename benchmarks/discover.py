"""Benchmark discovery (ranked behaviours + suggested rule) against the feature build it runs on.

    .venv/bin/python benchmarks/discover.py                    # 10M events, 100k users
    .venv/bin/python benchmarks/discover.py --events 1_000_000 --users 20_000

The data is the feature benchmark's (``benchmarks/features.py``: seeded numpy events written to
parquet, reused when already there). Two phases, each in its own subprocess so each peak
memory (VmHWM) is its own, measured in the same run:

- ``build``: ``learn_spec_and_features`` (the one-pass build ``train`` runs) with every family the
  synthetic data supports, for one row per user (day-7 cutoff, a seeded coin for the label);
- ``discover``: on that feature table, ``rank_behaviours`` (DuckDB SQL over the feature table,
  a few numpy fits) and ``suggest_rule`` at a 5% volume: what ``propensity discover`` adds.

Printed: both wall times, the ratio discover / build (the goal: under 2) and build + discover
over build.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
from _peak import peak_mb
from features import _already, _cfg, _label_times, generate

FAMILIES = ("counts", "recency", "activity", "timing", "transitions", "diversity", "account", "fit")


def phase_build(d: Path, args: argparse.Namespace) -> dict:
    from propensity.features import learn_spec_and_features

    con = _connect(d, args)
    lt = _label_times(con.execute("SELECT * FROM users ORDER BY user_id").df())
    t = time.perf_counter()
    spec, features = learn_spec_and_features(con, lt, _cfg(FAMILIES))
    seconds = time.perf_counter() - t
    frame = features.frame
    frame["label"] = lt.frame["label"].to_numpy()
    frame.to_parquet(d / "discover_features.parquet", index=False)
    (d / "discover_spec.json").write_text(spec.to_json())
    return {"seconds": seconds, "rows": len(frame), "columns": len(spec.columns)}


def phase_discover(d: Path, args: argparse.Namespace) -> dict:
    from propensity.discover import rank_behaviours, suggest_rule
    from propensity.features import FeatureSpec

    con = _connect(d, args)
    spec = FeatureSpec.from_json((d / "discover_spec.json").read_text())
    frame = pd.read_parquet(d / "discover_features.parquet")
    t = time.perf_counter()
    ranked = rank_behaviours(con, frame, spec, seed=7)
    rank_s = time.perf_counter() - t
    rule = suggest_rule(frame, spec, 0.05)
    seconds = time.perf_counter() - t
    return {
        "seconds": seconds,
        "rank_s": rank_s,
        "rule_s": seconds - rank_s,
        "behaviours": len(ranked.table),
        "rule": rule.expr,
    }


def _connect(d: Path, args: argparse.Namespace):  # type: ignore[no-untyped-def]
    import duckdb

    con = duckdb.connect()
    con.execute(f"SET threads = {args.threads}")
    con.execute(f"SET memory_limit = '{args.memory_limit}'")
    con.execute(f"SET temp_directory = '{d / 'spill'}'")
    con.execute(f"CREATE VIEW events AS SELECT * FROM read_parquet('{d / 'events.parquet'}')")
    con.execute(f"CREATE VIEW users AS SELECT * FROM read_parquet('{d / 'users.parquet'}')")
    return con


def _child(args: argparse.Namespace, phase: str) -> dict:
    cmd = [sys.executable, __file__, "--phase", phase, "--dir", str(args.dir),
           "--threads", str(args.threads), "--memory-limit", args.memory_limit]  # fmt: skip
    done = subprocess.run(cmd, check=True, capture_output=True, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=lambda s: int(s.replace("_", "")), default=10_000_000)
    ap.add_argument("--users", type=lambda s: int(s.replace("_", "")), default=100_000)
    ap.add_argument("--dir", type=Path, default=Path("/tmp/propensity_bench_features"))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--memory-limit", default="2GB")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--phase", default="all")
    args = ap.parse_args()
    if args.phase != "all":
        result = {"build": phase_build, "discover": phase_discover}[args.phase](args.dir, args)
        result["peak_mb"] = peak_mb()
        print(json.dumps(result))
        return
    t = time.perf_counter()
    if _already(args):
        print(f"reusing {args.events:,} events / {args.users:,} users in {args.dir}")
    else:
        generate(args.dir, args.events, args.users, args.seed)
        print(f"generated {args.events:,} events / {args.users:,} users in "
              f"{time.perf_counter() - t:.1f}s -> {args.dir}")  # fmt: skip
    res = {}
    for phase in ("build", "discover"):
        res[phase] = _child(args, phase)
        print(f"  {phase}: {json.dumps(res[phase])}", flush=True)
    build, disc = res["build"]["seconds"], res["discover"]["seconds"]
    print(f"\n{'phase':<10}{'wall s':>9}{'peak MB':>10}  note")
    print(f"{'build':<10}{build:>9.2f}{res['build']['peak_mb']:>10.0f}  "
          f"{res['build']['rows']:,} rows, {res['build']['columns']} columns")  # fmt: skip
    print(f"{'discover':<10}{disc:>9.2f}{res['discover']['peak_mb']:>10.0f}  "
          f"rank {res['discover']['rank_s']:.2f}s, rule {res['discover']['rule_s']:.2f}s, "
          f"{res['discover']['behaviours']} behaviours")  # fmt: skip
    print(f"\ndiscover / feature build:            {disc / build:.2f}x (goal: under 2x)")
    print(f"(build + discover) / feature build:  {(build + disc) / build:.2f}x")


if __name__ == "__main__":
    pd.set_option("mode.copy_on_write", True)
    main()
