"""Benchmark the simulator: users/s, events/s and peak memory per size, each in a fresh process.

    .venv/bin/python benchmarks/simulate.py                    # 20k and 1M users, parquet
    .venv/bin/python benchmarks/simulate.py --users 20000 200000 --format csv

Each size runs in its own subprocess so its peak resident memory (``VmHWM``) is its own.
Throughput is printed as a ratio to the first (baseline) size, so a size whose throughput falls
well below 1.0x does not scale linearly.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

_CHILD = """
import json, re, sys
from pathlib import Path
from propensity.simulate import simulate
out, users, fmt, preset, chunk = sys.argv[1:]
s = simulate(Path(out), users=int(users), seed=0, format=fmt, preset=preset, chunk_users=int(chunk))
size = sum(p.stat().st_size for p in Path(out).rglob("*") if p.is_file())
print(json.dumps({"users": s.users, "events": s.events, "seconds": s.seconds, "bytes": size,
    "maxrss_kb": int(re.search(r"VmHWM:\\s+(\\d+)", open("/proc/self/status").read()).group(1)),
    "roc_auc": s.oracle.roc_auc, "base_rate": s.oracle.base_rate}))
"""


def run(users: int, fmt: str, preset: str, chunk: int, out: Path) -> dict[str, float]:
    """Simulate ``users`` in a subprocess and return its measurements."""
    proc = subprocess.run(
        [sys.executable, "-c", _CHILD, str(out), str(users), fmt, preset, str(chunk)],
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, nargs="+", default=[20_000, 1_000_000])
    parser.add_argument("--format", default="parquet", choices=["parquet", "csv", "jsonl"])
    parser.add_argument("--preset", default="canonical")
    parser.add_argument("--chunk-users", type=int, default=20_000)
    args = parser.parse_args()

    header = (
        f"{'users':>10} {'events':>12} {'seconds':>8} {'users/s':>9} {'events/s':>10} "
        f"{'ev/user':>7} {'peak MB':>8} {'disk MB':>8} {'vs base':>7} {'AUC':>6} {'rate':>6}"
    )
    print(header)
    base = None
    for users in args.users:
        out = Path(tempfile.mkdtemp(prefix="propensity-bench-"))
        try:
            m = run(users, args.format, args.preset, args.chunk_users, out)
        finally:
            shutil.rmtree(out, ignore_errors=True)
        rate = m["users"] / m["seconds"]
        base = base or rate
        print(
            f"{m['users']:>10,} {m['events']:>12,} {m['seconds']:>8.1f} {rate:>9,.0f} "
            f"{m['events'] / m['seconds']:>10,.0f} {m['events'] / m['users']:>7.1f} "
            f"{m['maxrss_kb'] / 1024:>8.0f} {m['bytes'] / 2**20:>8.0f} {rate / base:>6.2f}x "
            f"{m['roc_auc']:>6.3f} {m['base_rate']:>6.3f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
