"""Benchmark: read and validate a 10M-row events parquet; peak memory vs the same data in pandas.

Each measurement runs in a fresh subprocess so that peak RSS (ru_maxrss) belongs to it alone.
Prints wall time, peak memory and the ratio against (a) a bare DuckDB scan of the file and
(b) pandas.read_parquet of the same file, measured in the same run.

    python benchmarks/io.py [--rows 10000000]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from propensity.simulate.catalog import TRIAL_EVENTS

EVENTS = np.array(TRIAL_EVENTS)


def make_data(folder: Path, rows: int, users: int, seed: int = 0) -> tuple[Path, Path]:
    rng = np.random.default_rng(seed)
    start = np.datetime64("2025-01-01T00:00:00", "s").astype("int64")
    user = rng.integers(0, users, rows)
    ts = start + rng.integers(0, 180 * 86400, rows)
    table = pa.table(
        {
            "user_id": pa.array(np.char.add("u", user.astype(str))),
            "event": pa.array(EVENTS[rng.integers(0, len(EVENTS), rows)]),
            "timestamp": pa.array(ts.astype("datetime64[s]")),
            "account_id": pa.array(np.char.add("a", (user // 3).astype(str))),
            "properties": pa.array(np.full(rows, "{}")),
        }
    )
    events = folder / "events.parquet"
    pq.write_table(table, events, row_group_size=1_000_000)
    ids = np.arange(users)
    pq.write_table(
        pa.table(
            {
                "user_id": pa.array(np.char.add("u", ids.astype(str))),
                "signup_at": pa.array(np.full(users, start).astype("datetime64[s]")),
                "email": pa.array(np.char.add(np.char.add("x", ids.astype(str)), "@acme.com")),
            }
        ),
        folder / "users.parquet",
    )
    return events, folder / "users.parquet"


_CHILD = {
    "propensity": """
from propensity.config import DataConfig
from propensity.io import load_data
r = load_data(DataConfig(events=EVENTS, users=USERS, memory_limit=LIMIT)).report
print(r.tables[0].rows_kept)
""",
    "duckdb_scan": """
import duckdb
q = f"SELECT count(*), count(DISTINCT user_id) FROM read_parquet('{EVENTS}')"
print(duckdb.connect().execute(q).fetchall())
""",
    "pandas": """
import pandas as pd
df = pd.read_parquet(EVENTS)
print(len(df), int(df.memory_usage(deep=True).sum()))
""",
}


def measure(name: str, events: Path, users: Path, limit: str = "3GB") -> dict:
    code = (
        f"EVENTS, USERS, LIMIT = {str(events)!r}, {str(users)!r}, {limit!r}\n"
        + _CHILD[name]
        # VmHWM resets at exec, unlike ru_maxrss, which a child inherits from its parent
        + "\nimport re, sys\nprint(re.search(r'VmHWM:\\s+(\\d+)', "
        "open('/proc/self/status').read()).group(1), file=sys.stderr)"
    )
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    if proc.returncode:
        raise SystemExit(f"{name} failed:\n{proc.stderr}")
    seconds = time.perf_counter() - t0
    peak_mb = int(proc.stderr.strip().splitlines()[-1]) / 1024
    return {"name": name, "seconds": seconds, "peak_mb": peak_mb, "out": proc.stdout.strip()}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--memory-limit", default="1GB", help="DuckDB cap for propensity")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        events, users = make_data(Path(tmp), args.rows, args.users)
        size_mb = events.stat().st_size / 2**20
        results = [
            measure(n, events, users, args.memory_limit)
            for n in ("duckdb_scan", "pandas", "propensity")
        ]
    pandas_frame_mb = int(results[1]["out"].split()[1]) / 2**20
    print(
        f"events: {args.rows:,} rows, parquet {size_mb:,.0f} MB, "
        f"as a pandas frame {pandas_frame_mb:,.0f} MB"
    )
    base = results[0]
    for r in results:
        print(
            f"{r['name']:<12} {r['seconds']:7.2f} s  peak {r['peak_mb']:7,.0f} MB  "
            f"time x{r['seconds'] / base['seconds']:.1f} vs bare DuckDB scan"
        )
    print(f"propensity ran with data.memory_limit = {args.memory_limit} (spilling beyond it)")
    prop = results[2]
    print(
        f"propensity read+clean+validate peak memory = {prop['peak_mb'] / pandas_frame_mb:.2f} x "
        f"the pandas frame size; {prop['peak_mb'] / results[1]['peak_mb']:.2f} x "
        f"pandas.read_parquet peak"
    )
    print(
        json.dumps(
            {
                r["name"]: {"seconds": round(r["seconds"], 2), "peak_mb": round(r["peak_mb"])}
                for r in results
            }
        )
    )


if __name__ == "__main__":
    main()
