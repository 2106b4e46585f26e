"""Benchmark the feature build (learning the spec included) against Polars and a bare scan.

    .venv/bin/python benchmarks/features.py                       # 10M events, 100k users
    .venv/bin/python benchmarks/features.py --events 30_000_000 --users 300_000
    .venv/bin/python benchmarks/features.py --events 100_000_000 --users 1_000_000 --repeats 1

Synthetic events are generated with numpy (seeded) into parquet under ``--dir``. Each
measurement runs in its own subprocess (same thread count for every engine) so its peak memory
(VmHWM) and CPU time are its own; the phases are interleaved round by round and the medians of
``--repeats`` rounds are compared, with the load average printed per round (the machine is
shared). Phases:

- ``duckdb``: ``learn_spec_and_features`` (vocabulary, transitions, then every feature) for the
  families Polars also implements (counts, recency, activity, timing, transitions, diversity);
- ``duckdb-all``: the same with every family the synthetic data supports (+ account, fit);
- ``scan``: a bare DuckDB scan + group-by (user, event) of all columns of the same file, the floor;
- ``polars``: the same features, learning included, hand-written in lazy Polars
  (``benchmarks/features_polars.py``), reading the same file;
- ``pandas`` (``--pandas``): the features alone (spec from DuckDB) in pandas + numpy.

Printed: wall and CPU seconds, events/s, peak RSS, the ratios the issue sets targets for
(Polars / ours >= 1.5, ours / scan <= 4, peak <= DuckDB memory limit + 20%), and the largest
difference between our values and Polars' (and the spec they learned) as a cross-check.

Measured 2026-12-03, 2 shared cores, ``--repeats 1 --no-all`` alternately on main and on a
branch, three runs each (per run, main -> branch), 10M events / 100k users (one row per user):

- ``feature-speed`` (a 32-bit row-event join), load 0.9-1.6: Polars / ours CPU 0.76-0.92 ->
  0.88-1.09; ours / scan 7.8-9.1 -> 5.9-6.9; peak 0.85-0.88 -> 0.60 of the 2 GB limit.
- ``feature-speed3``, load 4.0-4.5: Polars / ours CPU 0.95-1.01 -> 1.34-1.39; ours / scan
  4.5-7.1 -> 5.2-5.4 (the LAG window a numpy sort of packed keys, ``features/sequence.py``;
  the vocabulary counted from the per-(row, type) step; the pivot a join per event type).
- ``feature-speed4`` (on main 6a01842), load 4.4-4.8: ours 4.29, 4.48, 4.21 -> 3.08, 3.12,
  3.19 s CPU (whole phase); Polars / ours CPU 1.38, 1.35, 1.38 -> 1.94, 1.87, 1.91 (wall
  1.38, 1.38, 1.38 -> 2.03, 1.95, 2.09); ours / scan CPU 5.4, 5.6, 5.5 -> 3.7, 4.1, 4.2 (wall
  5.3, 5.9, 6.7 -> 2.3, 3.8, 4.1); peak 0.60-0.65 -> 0.53. DuckDB-only, Spark's plan SQL
  unchanged, specs and frames bit-identical to main: learning's per-(row, type) counts are
  segments of sorted ``rid | k | t`` keys (``features/type_counts.py``, 0.77 -> ~0.35 s); the
  sequence is never inserted as a table: sessions, gaps, transition counts, active days and
  streaks are segment sums over its sorted keys (``features/sequence_stats.py``; the seq
  insert, ``act``, ``days`` and ``streak``, ~1.1 s -> 0.3 s). Build alone (load ~2.5): 3.8 ->
  2.7-2.9 s CPU. Left: the event join (1.0 s CPU), the pivot and final select (~0.45 s).

Growth (``--phase duckdb`` children on data from ``generate``: 10M events / 100k users, 30M /
300k, 100M / 1M; 2 threads; one run each; CPU per event against 10M's, peak of the limit):

| main | limit | 10M | 30M | 100M | load |
|---|---|---|---|---|---|
| 2026-12-03 early | 2 GB | 6.1 s, 0.53 | 1.10x, 1.37 | 1.77x, 1.84 | 1.9-6 |
| + memory outside DuckDB counted | 2 GB | 7.2 s, 0.54 | 1.25x, 0.90 | 1.75x, 1.39 | 3.4-4 |
| same | 3 GB | 6.9 s, 0.35 | 1.17x, 0.75 | 1.78x, 1.07 | 2.6-4.5 |
| + numpy paths (feature-speed3/4) | 2 GB | 3.3 s, 0.50 | 1.87x, 1.07 | 2.82x, 1.63 | 1.7-1.9 |
| same | 3 GB | 3.5 s, 0.34 | 1.26x, 0.68 | 2.36x, 1.29 | 1.6-1.7 |

Not within 1.2x of linear: 10M runs the numpy paths, which fall back to SQL when their keys
would not fit a quarter of DuckDB's limit (at 30M under 2 GB, at 100M always), and the SQL
plan spills under 2-3 GB. In ample memory it is linear: 100M with a 12 GB limit (before the
numpy paths) took 72.4 s CPU against 6.1-6.9 s at 10M (1.05-1.19x), peak 7.0 GB. At 100M
under 3 GB, DuckDB's own count stays at its lowered limit (1.5 GB with the 0.95 GB frame and
0.63 GB of Python and label rows), yet the process peaks at 3.9 GB: ~0.7 GB of the final
statement's memory is outside what DuckDB counts. Tried and not kept: chunks of whole
accounts (same values; 97.8 s CPU, peak 4.4 GB: the join and each chunk's scan of it stay);
splitting the events by chunk first (``COPY ... PARTITION_BY``: 27.7 s CPU by itself).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
from _peak import peak_mb

from propensity.simulate.catalog import TRIAL_EVENTS

NAMES = np.array(TRIAL_EVENTS)  # the simulator's trial vocabulary, weights below in order
WEIGHTS = np.array([20, 8, 6, 3, 5, 40, 2, 1, 1, 1, 2, 2, 1], dtype=float)
FAMILIES = ("counts", "recency", "activity", "timing", "transitions", "diversity")
T0 = np.datetime64("2024-01-01T00:00:00", "s")


# ---- data ----------------------------------------------------------------------------------
def generate(out: Path, n_events: int, n_users: int, seed: int) -> None:
    """Users signing up over 60 days, accounts of ~4 users, events over their first 14 days."""
    rng = np.random.default_rng(seed)
    out.mkdir(parents=True, exist_ok=True)
    signup = rng.integers(0, 60 * 86400, n_users)
    users = pd.DataFrame(
        {
            "user_id": np.char.add("u", np.arange(n_users).astype(str)).astype(object),
            "signup_at": T0 + signup.astype("timedelta64[s]"),
            "email_domain": rng.choice(["gmail.com", "acme.com", "uni.edu"], n_users),
            "account_id": np.char.add("a", (np.arange(n_users) // 4).astype(str)).astype(object),
        }
    )
    users.to_parquet(out / "users.parquet", index=False)
    activity = rng.lognormal(0.0, 1.0, n_users)
    chunk = 5_000_000  # written in row groups so 100M events fit in memory
    import pyarrow as pa
    import pyarrow.parquet as pq

    writer = None
    for start in range(0, n_events, chunk):
        n = min(chunk, n_events - start)
        who = rng.choice(n_users, n, p=activity / activity.sum())
        # Bursty offsets: most events early in the trial, some late.
        offset = np.minimum(rng.exponential(3 * 86400, n), 14 * 86400 - 1).astype(np.int64)
        ts = T0 + (signup[who] + offset).astype("timedelta64[s]")
        ev = NAMES[rng.choice(len(NAMES), n, p=WEIGHTS / WEIGHTS.sum())]
        table = pa.table(
            {
                "user_id": pa.array(users["user_id"].to_numpy()[who], pa.string()),
                "event": pa.array(ev, pa.string()),
                "timestamp": pa.array(ts.astype("datetime64[us]")),
            }
        )
        writer = writer or pq.ParquetWriter(out / "events.parquet", table.schema)
        writer.write_table(table, row_group_size=1_000_000)
    if writer is not None:
        writer.close()


def _label_times(users: pd.DataFrame):  # type: ignore[no-untyped-def]
    from propensity.labels import LabelTimes

    frame = users[["user_id", "account_id", "signup_at"]].copy()
    frame["signup_at"] = frame["signup_at"].astype("datetime64[us]")
    frame["cutoff_at"] = frame["signup_at"] + pd.Timedelta(days=7)
    frame["cutoff_age_days"] = 7.0
    # A label that depends on behaviour is not needed for speed; a seeded coin is enough.
    frame["label"] = np.random.default_rng(0).integers(0, 2, len(frame))
    return LabelTimes(frame)


def _cfg(families: tuple[str, ...]):  # type: ignore[no-untyped-def]
    from propensity.config import FeatureFamilies, FeaturesConfig

    flags = {f: f in families for f in FeatureFamilies.model_fields}
    return FeaturesConfig(families=FeatureFamilies(**flags), top_transitions=10)


# ---- phases (each in its own process) ------------------------------------------------------
def phase_duckdb(d: Path, args: argparse.Namespace, families: tuple[str, ...]) -> dict:
    import duckdb

    from propensity.config import MEMORY_VARIABLE
    from propensity.features import learn_spec_and_features

    con = duckdb.connect()
    con.execute(f"SET threads = {args.threads}")
    con.execute(f"SET memory_limit = '{args.memory_limit}'")
    # as propensity's own connection (io/load.py `connect`) records data.memory_limit: the build
    # then leaves room for the table it returns within that limit
    con.execute(f"SET VARIABLE {MEMORY_VARIABLE} = '{args.memory_limit}'")
    con.execute(f"SET temp_directory = '{d / 'spill'}'")
    con.execute(f"CREATE VIEW events AS SELECT * FROM read_parquet('{d / 'events.parquet'}')")
    con.execute(f"CREATE VIEW users AS SELECT * FROM read_parquet('{d / 'users.parquet'}')")
    lt = _label_times(con.execute("SELECT * FROM users ORDER BY user_id").df())
    t = time.perf_counter()
    spec, ff = learn_spec_and_features(con, lt, _cfg(families))
    seconds = time.perf_counter() - t
    ff.frame.to_parquet(d / f"features_{'_'.join(families)}.parquet", index=False)
    (d / f"spec_{'_'.join(families)}.json").write_text(spec.to_json())
    return {"seconds": seconds, "columns": len(spec.columns)}


def phase_polars(d: Path, args: argparse.Namespace) -> dict:
    import polars as pl
    from features_polars import learn_and_build

    from propensity.features import FeatureSpec

    users = pd.read_parquet(d / "users.parquet").sort_values("user_id", ignore_index=True)
    f = _label_times(users).frame
    rows = pl.DataFrame(
        {
            "rid": np.arange(len(f)),
            "user_id": f["user_id"].astype(str).to_numpy(),
            "signup_at": f["signup_at"].to_numpy(),
            "cutoff_at": f["cutoff_at"].to_numpy(),
            "label": f["label"].to_numpy(),
        }
    )
    cfg = _cfg(FAMILIES)
    t = time.perf_counter()
    vocab, transitions, out = learn_and_build(
        d / "events.parquet",
        rows,
        windows_s=tuple(sorted(int(w.total_seconds()) for w in cfg.windows)),
        session_gap_s=int(cfg.session_gap.total_seconds()),
        min_support=cfg.min_event_support,
        max_events=cfg.max_event_types,
        top_transitions=cfg.top_transitions,
    )
    seconds = time.perf_counter() - t
    spec = FeatureSpec(
        families=FAMILIES, events=vocab, windows_s=tuple(sorted(int(w.total_seconds())
        for w in cfg.windows)), session_gap_s=int(cfg.session_gap.total_seconds()),
        key_events=vocab, transitions=transitions,
    )  # fmt: skip
    frame = out.drop("rid").to_pandas()
    frame.columns = list(spec.columns)
    frame.insert(0, "user_id", f["user_id"].to_numpy())
    frame.to_parquet(d / "features_polars.parquet", index=False)
    (d / "spec_polars.json").write_text(spec.to_json())
    return {"seconds": seconds, "columns": len(spec.columns)}


def phase_scan(d: Path, args: argparse.Namespace) -> dict:
    import duckdb

    con = duckdb.connect()
    con.execute(f"SET threads = {args.threads}")
    con.execute(f"SET memory_limit = '{args.memory_limit}'")
    t = time.perf_counter()
    n = con.execute(
        f"""SELECT COUNT(*) FROM (SELECT user_id, event, COUNT(*), MIN(timestamp), MAX(timestamp)
        FROM read_parquet('{d / "events.parquet"}') GROUP BY user_id, event)"""
    ).fetchone()[0]  # every column of the file is read: user_id, event, timestamp
    return {"seconds": time.perf_counter() - t, "groups": n}


def phase_pandas(d: Path, args: argparse.Namespace) -> dict:
    from propensity.features import FeatureSpec

    spec = FeatureSpec.from_json((d / f"spec_{'_'.join(FAMILIES)}.json").read_text())
    t = time.perf_counter()
    out = pandas_features(d, spec)
    seconds = time.perf_counter() - t
    out.to_parquet(d / "features_pandas.parquet", index=False)
    return {"seconds": seconds}


def pandas_features(d: Path, spec) -> pd.DataFrame:  # type: ignore[no-untyped-def]
    """The counts, recency, activity, timing, transitions and diversity features in pandas."""
    from propensity.features.spec import window_label

    users = pd.read_parquet(d / "users.parquet").sort_values("user_id", ignore_index=True)
    ev = pd.read_parquet(d / "events.parquet")
    vocab = list(spec.events)
    code = {e: i for i, e in enumerate(vocab)}
    rid = pd.Series(np.arange(len(users)), index=users["user_id"])
    sig = users["signup_at"].astype("datetime64[s]").astype("int64").to_numpy()
    cut = sig + 7 * 86400
    e = pd.DataFrame(
        {
            "rid": rid.reindex(ev["user_id"]).to_numpy(),
            "ev": ev["event"].map(code).to_numpy(),
            "ts": ev["timestamp"].astype("datetime64[s]").astype("int64").to_numpy(),
        }
    )
    del ev
    e = e.dropna()
    e = e.astype({"rid": "int64", "ev": "int64"})
    e["t"] = e["ts"].to_numpy() - sig[e["rid"].to_numpy()]
    age = cut - sig
    e = e[(e["t"] >= 0) & (e["t"] < age[e["rid"].to_numpy()])]
    e = e.sort_values(["rid", "t", "ev"], kind="stable", ignore_index=True)
    n_rows, v = len(users), len(vocab)
    r, t, k = e["rid"].to_numpy(), e["t"].to_numpy(), e["ev"].to_numpy()
    cols: dict[str, np.ndarray] = {}
    slugs = spec.slugs
    by = r * v + k
    for w in [*spec.windows_s, None]:
        wl = window_label(w)
        mask = np.ones(len(e), bool) if w is None else t >= age[r] - w
        m = np.bincount(by[mask], minlength=n_rows * v).reshape(n_rows, v).astype(float)
        cols[f"n_events_{wl}"] = m.sum(1)
        for j, name in enumerate(vocab):
            cols[f"n_{slugs[name]}_{wl}"] = m[:, j]
        if w is None:
            counts = m
    day = t // 86400
    days = pd.DataFrame({"r": r, "d": day}).drop_duplicates()
    active = np.bincount(days["r"], minlength=n_rows).astype(float)
    island = days["d"] - days.groupby("r").cumcount()
    streak = days.assign(i=island).groupby(["r", "i"]).size().groupby(level=0).max()
    for j, name in enumerate(vocab):
        cols[f"rate_{slugs[name]}_per_active_day"] = counts[:, j] / np.maximum(active, 1)
    grp = pd.DataFrame({"r": r, "k": k, "t": t}).groupby(["r", "k"])["t"]
    first = grp.min().unstack().reindex(index=range(n_rows), columns=range(v))
    last = grp.max().unstack().reindex(index=range(n_rows), columns=range(v))
    first_any, last_any = first.min(1).to_numpy(), last.max(1).to_numpy()
    cols["hours_since_last_event"] = (age - last_any) / 3600
    for j, name in enumerate(vocab):
        cols[f"hours_since_last_{slugs[name]}"] = (age - last[j].to_numpy()) / 3600
    cols["tenure_days"] = (age - first_any) / 86400
    cols["cutoff_age_days"] = age / 86400
    same = np.r_[False, r[1:] == r[:-1]]
    gap = np.where(same, t - np.r_[0, t[:-1]], np.nan)
    sessions = np.bincount(r[~same | (gap > spec.session_gap_s)], minlength=n_rows).astype(float)
    n_all = cols["n_events_all"]
    cols["active_days"] = active
    cols["sessions"] = sessions
    cols["events_per_session"] = np.where(sessions > 0, n_all / np.maximum(sessions, 1), np.nan)
    cols["longest_streak_days"] = streak.reindex(range(n_rows)).fillna(0).to_numpy(float)
    for w in spec.windows_s:
        nw = cols[f"n_events_{window_label(w)}"]
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = nw * age / (np.minimum(w, age) * n_all)
        cols[f"trend_events_{window_label(w)}"] = np.where(n_all > 0, ratio, np.nan)
    g = pd.Series(gap[same]).groupby(r[same])
    cols["gap_mean_hours"] = (g.mean() / 3600).reindex(range(n_rows)).to_numpy()
    cols["gap_max_hours"] = (g.max() / 3600).reindex(range(n_rows)).to_numpy()
    for j, name in enumerate(vocab):
        cols[f"hours_to_first_{slugs[name]}"] = first[j].to_numpy() / 3600
    prev = np.r_[-1, k[:-1]]
    for a, b in spec.transitions:
        hit = same & (prev == code[a]) & (k == code[b])
        cols[f"tr_{slugs[a]}__{slugs[b]}"] = np.bincount(r[hit], minlength=n_rows).astype(float)
    cols["distinct_events"] = (counts > 0).sum(1).astype(float)
    with np.errstate(divide="ignore", invalid="ignore"):
        p = counts / n_all[:, None]
        ent = -np.nansum(np.where(p > 0, p * np.log(p), 0.0), axis=1)
    cols["event_entropy"] = np.maximum(ent, 0.0)
    frame = pd.DataFrame({"user_id": users["user_id"], **cols})
    return frame[["user_id", *spec.columns]]


# ---- driver --------------------------------------------------------------------------------
def _child(args: argparse.Namespace, phase: str) -> dict:
    cmd = [sys.executable, __file__, "--phase", phase, "--dir", str(args.dir),
           "--threads", str(args.threads), "--memory-limit", args.memory_limit]  # fmt: skip
    env = {**os.environ, "POLARS_MAX_THREADS": str(args.threads)}
    done = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env)
    return json.loads(done.stdout.strip().splitlines()[-1])


def _already(args: argparse.Namespace) -> bool:
    """The parquet files from an earlier run with the same sizes (generation takes a while)."""
    import pyarrow.parquet as pq

    ev, us = args.dir / "events.parquet", args.dir / "users.parquet"
    if not (ev.exists() and us.exists()):
        return False
    return (pq.ParquetFile(ev).metadata.num_rows, pq.ParquetFile(us).metadata.num_rows) == (
        args.events,
        args.users,
    )


def _limit_mb(text: str) -> float:
    number, unit = re.fullmatch(r"\s*([\d.]+)\s*([KMGT]i?B)\s*", text, re.I).groups()
    power = {"K": 1, "M": 2, "G": 3, "T": 4}[unit[0].upper()]
    base = 1024 if "i" in unit.lower() else 1000
    return float(number) * base**power / 2**20


def _cross_check(d: Path) -> None:
    duck = pd.read_parquet(d / f"features_{'_'.join(FAMILIES)}.parquet")
    from propensity.features import FeatureSpec

    ours = FeatureSpec.from_json((d / f"spec_{'_'.join(FAMILIES)}.json").read_text())
    theirs_spec = FeatureSpec.from_json((d / "spec_polars.json").read_text())
    same_spec = (ours.events, ours.transitions) == (theirs_spec.events, theirs_spec.transitions)
    for other in ("polars", "pandas"):
        path = d / f"features_{other}.parquet"
        if not path.exists():
            continue
        theirs = pd.read_parquet(path)
        num = duck.columns[2:]
        a, b = duck[num].to_numpy(float), theirs[num].to_numpy(float)
        worst = np.nanmax(np.abs(a - b))
        spec_note = f", same vocabulary and transitions: {same_spec}" if other == "polars" else ""
        same_nan = bool((np.isnan(a) == np.isnan(b)).all())
        print(f"cross-check {other}: {len(num)} columns, max |ours - {other}| = {worst:.2e}, "
              f"NaN patterns equal: {same_nan}{spec_note}")  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=lambda s: int(s.replace("_", "")), default=10_000_000)
    ap.add_argument("--users", type=lambda s: int(s.replace("_", "")), default=100_000)
    ap.add_argument("--dir", type=Path, default=None)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--memory-limit", default="2GB")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--pandas", action="store_true", help="also time the pandas version")
    ap.add_argument("--no-all", action="store_true", help="skip the every-family build")
    ap.add_argument("--phase", default="all")
    args = ap.parse_args()
    args.dir = args.dir or Path(f"/tmp/propensity_bench_features_{args.events}")
    if args.phase != "all":
        runners = {
            "duckdb": lambda: phase_duckdb(args.dir, args, FAMILIES),
            "duckdb-all": lambda: phase_duckdb(
                args.dir, args, (*FAMILIES, "account", "fit", "order", "properties")
            ),
            "scan": lambda: phase_scan(args.dir, args),
            "pandas": lambda: phase_pandas(args.dir, args),
            "polars": lambda: phase_polars(args.dir, args),
        }
        start = resource.getrusage(resource.RUSAGE_SELF)
        result = runners[args.phase]()
        used = resource.getrusage(resource.RUSAGE_SELF)
        result["cpu_s"] = used.ru_utime + used.ru_stime - start.ru_utime - start.ru_stime
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
    phases = ["scan", "duckdb", "polars"] + ([] if args.no_all else ["duckdb-all"])
    phases += ["pandas"] if args.pandas else []
    runs: dict[str, list[dict]] = {p: [] for p in phases}
    loads = []
    for i in range(args.repeats):  # interleaved, each round in a rotated order
        order = phases[i % len(phases) :] + phases[: i % len(phases)]
        for p in order:
            runs[p].append(_child(args, p))
        loads.append(os.getloadavg())
        print(f"  round {i + 1}: " + ", ".join(f"{p} {runs[p][-1]['seconds']:.2f}s" for p in phases)
              + f"; load average {loads[-1][0]:.2f} {loads[-1][1]:.2f} {loads[-1][2]:.2f}",
              flush=True)  # fmt: skip
    med = {p: {k: float(np.median([r[k] for r in rs])) for k in ("seconds", "cpu_s", "peak_mb")}
           for p, rs in runs.items()}  # fmt: skip
    n = args.events
    print(f"\n{args.events:,} events, {args.users:,} users, {args.threads} threads each, "
          f"medians of {args.repeats}")  # fmt: skip
    print(f"{'phase':<12}{'wall s':>9}{'cpu s':>9}{'events/s':>14}{'peak MB':>10}  note")
    for p, r in med.items():
        note = f"{runs[p][0]['columns']} columns" if "columns" in runs[p][0] else ""
        print(f"{p:<12}{r['seconds']:>9.2f}{r['cpu_s']:>9.2f}{n / r['seconds']:>14,.0f}"
              f"{r['peak_mb']:>10.0f}  {note}")  # fmt: skip
    ours = med["duckdb"]
    limit = _limit_mb(args.memory_limit)
    ratio = med["polars"]["seconds"] / ours["seconds"]
    print(f"\npolars / ours (wall):      {ratio:.2f}x   (target >= 1.5; cpu "
          f"{med['polars']['cpu_s'] / ours['cpu_s']:.2f}x)")  # fmt: skip
    print(f"ours / bare scan (wall):   {ours['seconds'] / med['scan']['seconds']:.2f}x   "
          f"(target <= 4)")  # fmt: skip
    print(f"ours peak / memory limit:  {ours['peak_mb'] / limit:.2f}   (limit "
          f"{args.memory_limit}; target <= 1.2; every family: "
          f"{med.get('duckdb-all', ours)['peak_mb'] / limit:.2f})")  # fmt: skip
    if "pandas" in med:
        cpu = med["pandas"]["cpu_s"] / ours["cpu_s"]
        print(f"pandas / ours (wall):      {med['pandas']['seconds'] / ours['seconds']:.2f}x "
              f"(cpu {cpu:.2f}x; pandas runs on 1 thread, without learning the spec)")  # fmt: skip
    print("load average per round: "
          + "; ".join(f"{a:.2f} {b:.2f} {c:.2f}" for a, b, c in loads))  # fmt: skip
    _cross_check(args.dir)
    print(json.dumps({"events": n, "users": args.users, "medians": med}))


if __name__ == "__main__":
    pd.set_option("mode.copy_on_write", True)
    main()
