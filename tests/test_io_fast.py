"""The reader's fast paths give exactly what the plain paths give: exact dedup by row hash
(propensity.io.dedup) and ids read without decoding when there is nothing to trim."""

from datetime import datetime

import duckdb
import numpy as np
import pandas as pd
import pytest

import propensity.io.bots as bots_module
import propensity.io.dedup as dedup_module
import propensity.io.load as load_module
from propensity.config import DataConfig, DedupConfig
from propensity.io import load_data
from propensity.io.columns import as_text
from propensity.io.dedup import ROW_HASH, drop_exact_duplicates

NOW = datetime(2025, 6, 1)


def _reference(con: duckdb.DuckDBPyConnection, table: str) -> None:
    """The plain path: one DISTINCT over every staged column (what the reader did before)."""
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE _reference AS SELECT DISTINCT * EXCLUDE ({ROW_HASH}) "
        f"FROM {table}"
    )
    con.execute(f"DROP TABLE {table}")
    con.execute(f"CREATE TEMP TABLE {table} AS SELECT * FROM _reference")


def _messy(tmp_path) -> DataConfig:
    """Events with repeats that are equal only once read (spaces, sub-second times, an address
    as id, missing values), repeats of missing values, bots' and unknown users' rows."""
    rng = np.random.default_rng(7)
    n = 3000
    users = np.array(["u1", " u1", "u2 ", "Ann@Acme.com", "ann@acme.com", "u3", None, "ghost"])
    frame = pd.DataFrame(
        {
            "user_id": users[rng.integers(0, len(users), n)],
            "event": np.array(["login", "login ", "doc", None])[rng.integers(0, 4, n)],
            "timestamp": pd.Timestamp("2025-01-02")
            + pd.to_timedelta(rng.integers(0, 40, n) * 250, unit="ms"),
            "account_id": np.array(["a1", None, "a2"])[rng.integers(0, 3, n)],
            "properties": np.array(['{"a": 1}', None, "{}", "not json"])[rng.integers(0, 4, n)],
        }
    )
    # a metronome: 60 events exactly a minute apart, twice each
    bot = pd.DataFrame(
        {
            "user_id": "u4",
            "event": "ping",
            "timestamp": pd.Timestamp("2025-01-03") + pd.to_timedelta(np.arange(60), unit="min"),
            "account_id": "a4",
            "properties": "{}",
        }
    )
    pd.concat([frame, bot, bot]).to_parquet(tmp_path / "events.parquet")
    pd.DataFrame(
        {
            "user_id": ["u1", "u2", "ann@acme.com", "u3", "u4"],
            "signup_at": pd.to_datetime(["2025-01-01"] * 5),
        }
    ).to_parquet(tmp_path / "users.parquet")
    return DataConfig(
        events=str(tmp_path / "events.parquet"),
        users=str(tmp_path / "users.parquet"),
        dedup=DedupConfig(mode="exact"),
    )


def _tables(loaded) -> dict[str, list[tuple]]:
    return {
        name: loaded.con.execute(f"SELECT * FROM {name} ORDER BY ALL").fetchall()
        for name in ("events", "users", "conversions")
    }


def test_hash_dedup_gives_the_tables_and_summary_of_a_distinct(tmp_path, monkeypatch):
    """Check that the fast exact dedup (row hashes) and the reference path (one DISTINCT over
    every column) give identical canonical tables and data summaries on messy input."""
    cfg = _messy(tmp_path)
    fast = load_data(cfg, now=NOW)
    monkeypatch.setattr(load_module, "drop_exact_duplicates", _reference)
    reference = load_data(cfg, now=NOW)
    assert _tables(fast) == _tables(reference)
    assert fast.report.as_dict() == reference.report.as_dict()
    assert fast.report.dedup["removed"] > 60  # the bot's copies and the read-equal repeats
    assert fast.report.bots == 1
    (with_events,) = fast.con.execute("SELECT count(DISTINCT user_id) FROM events").fetchone()
    assert fast.report.users_with_events == with_events
    assert not any(ROW_HASH in str(row) for row in fast.con.execute("DESCRIBE events").fetchall())


@pytest.mark.parametrize("collide", [False, True])
def test_drop_exact_duplicates_survives_hash_collisions(collide):
    """Check that rows sharing a hash but not equal all stay, one of each equal group stays,
    and the hash column goes."""
    con = duckdb.connect()
    rows = [("a", 1), ("a", 1), ("b", 2), ("c", None), ("c", None), (None, None), ("d", 4)]
    con.execute("CREATE TEMP TABLE t (k VARCHAR, v INTEGER)")
    con.executemany("INSERT INTO t VALUES (?, ?)", rows)
    h = "CAST(1 AS UBIGINT)" if collide else "hash(k, v)"  # every row collides, or none unequal
    con.execute(f"CREATE TEMP TABLE s AS SELECT *, {h} AS {ROW_HASH} FROM t")
    drop_exact_duplicates(con, "s")
    assert con.execute("SELECT * FROM s ORDER BY ALL").fetchall() == sorted(
        set(rows), key=lambda r: (r[0] is None, r[0] or "", r[1] is None, r[1] or 0)
    )
    assert [c[0] for c in con.execute("DESCRIBE s").fetchall()] == ["k", "v"]


def test_shared_hashes_in_slices_equal_one_sort(monkeypatch):
    """Check that the shared row hashes found a slice of the hashes at a time are those found
    by one sort of them all."""
    con = duckdb.connect()
    con.execute(
        f"CREATE TEMP TABLE s AS SELECT CAST(i % 700 AS UBIGINT) * 2654435761 AS {ROW_HASH} "
        "FROM range(1000) r(i)"
    )
    whole = dedup_module._shared_hashes(con, "s")
    monkeypatch.setattr(dedup_module, "_SORTED_AT_ONCE", 64)
    sliced = dedup_module._shared_hashes(con, "s")
    assert sorted(sliced.tolist()) == sorted(whole.tolist()) == [i * 2654435761 for i in range(300)]


SPACES = [chr(c) for c in (0x20, 0xA0, 0x1680, *range(0x2000, 0x200B), 0x202F, 0x205F, 0x3000)]


def test_ids_skip_trim_only_when_it_changes_nothing():
    """Check that the id expression equals NULLIF(TRIM(x), '') on values with every Unicode
    space separator at either end, tabs, control characters, accents and edge bytes."""
    values = ["u1", "", " ", "!", "! ", " !", "\t u1 \t", "\x01u", "u\x7f", "é", "u é", "~", None]
    for space in SPACES:
        values += [space, f"{space}u1", f"u1{space}", f"u{space}1", f"{space}é{space}"]
    con = duckdb.connect()
    con.execute("CREATE TABLE v (x VARCHAR)")
    con.executemany("INSERT INTO v VALUES (?)", [[v] for v in values])
    rows = con.execute(
        f"SELECT x, {as_text('x', 'VARCHAR')}, NULLIF(TRIM(x), '') FROM v"
    ).fetchall()
    assert len(rows) == len(values)
    assert [(x, fast) for x, fast, _ in rows] == [(x, plain) for x, _, plain in rows]
    # the plain ASCII ids take the shortcut (the trimmed ones are still trimmed)
    assert {x: fast for x, fast, _ in rows}[f"u1{SPACES[5]}"] == "u1"


def _reference_bots(con: duckdb.DuckDBPyConnection, cfg, day_only: bool) -> list[tuple]:
    """The plain rules (what the reader did before): every user's hours and sorted gaps."""
    hourly = (
        "SELECT user_id, NULL AS peak, NULL AS peak_day, NULL AS hours, NULL AS hours_day "
        "FROM stage_events GROUP BY user_id"
        if day_only
        else """SELECT user_id, max(peak) AS peak, arg_min(d, (-peak, d)) AS peak_day,
                   max(active_hours) AS hours, arg_min(d, (-active_hours, d)) AS hours_day
            FROM (SELECT user_id, date_trunc('day', h) AS d, count(*) AS active_hours,
                         max(n) AS peak
                  FROM (SELECT user_id, date_trunc('hour', timestamp) AS h, count(*) AS n
                        FROM stage_events GROUP BY ALL) GROUP BY ALL) GROUP BY user_id"""
    )
    regular = f"""SELECT user_id, count(*) AS k, stddev_pop(g) / avg(g) AS cv FROM (
            SELECT user_id, epoch(timestamp) - lag(epoch(timestamp))
                   OVER (PARTITION BY user_id ORDER BY timestamp) AS g
            FROM stage_events WHERE user_id IN (SELECT user_id FROM stage_events
                GROUP BY user_id HAVING count(*) > {cfg.regular_min_gaps}))
        WHERE g > 0 GROUP BY user_id HAVING count(*) >= {cfg.regular_min_gaps}"""
    return con.execute(
        f"""WITH per_day AS (
            SELECT user_id, max(n) AS day_n, arg_min(d, (-n, d)) AS n_day FROM (
                SELECT user_id, date_trunc('day', timestamp) AS d, count(*) AS n
                FROM stage_events GROUP BY ALL) GROUP BY user_id
        ), typical AS (SELECT quantile_cont(day_n, 0.99) AS p99 FROM per_day)
        SELECT u.user_id, u.day_n, u.n_day, t.p99, h.peak, h.peak_day, h.hours, h.hours_day,
               r.k, r.cv
        FROM per_day u CROSS JOIN typical t JOIN ({hourly}) h USING (user_id)
        LEFT JOIN ({regular}) r USING (user_id) ORDER BY user_id"""
    ).fetchall()


def _expected(rows: list[tuple], cfg, day_only: bool) -> dict[str, str]:
    """Each flagged user and the start of their reason, from the reference's per-user figures
    (the rules in find_bots's order; the busiest day's reason is cut before its p99)."""
    out = {}
    for user, day_n, n_day, p99, peak, peak_day, hours, hours_day, k, cv in rows:
        busy = day_n > cfg.max_events_per_day or (
            cfg.busiest_day_factor > 0 and day_n > max(500, cfg.busiest_day_factor * p99)
        )
        if not day_only and peak > cfg.max_events_per_hour:
            out[user] = f"{peak:,} events in one hour on {peak_day:%Y-%m-%d}"
        elif busy:
            out[user] = f"{day_n:,} events on {n_day:%Y-%m-%d} (the busiest 1%"
        elif not day_only and hours > cfg.max_active_hours_per_day:
            out[user] = f"active in {hours} of the 24 hours of {hours_day:%Y-%m-%d}"
        elif not day_only and cv is not None and cv < cfg.regular_gap_cv:
            out[user] = f"{k} gaps between events varying by {cv:.3f} of their mean"
    return out


def _tricky_events(seed: int) -> pd.DataFrame:
    """People at random times, one-event-a-day users, timers with jitter on both sides of the
    gap rule's 0.1, repeated seconds, timers across midnight, bursts and a crawler."""
    rng = np.random.default_rng(seed)
    t0 = pd.Timestamp("2025-01-01").value // 10**9
    users: dict[str, np.ndarray] = {}
    for i in range(150):  # people: a few sessions a day
        n = int(rng.integers(1, 400))
        days = rng.integers(0, 30, n) * 86400
        users[f"p{i}"] = t0 + days + rng.integers(8 * 3600, 20 * 3600, n)
    for i in range(40):  # one event a day, at a time drawn around noon
        n = int(rng.integers(40, 70))
        users[f"d{i}"] = t0 + np.arange(n) * 86400 + 43200 + rng.integers(-600 * i, 600 * i + 1, n)
    for i, jitter in enumerate(np.linspace(0.0, 0.3, 31)):  # timers, cv from 0 to ~0.17
        n = 50 + i % 5
        step = int(rng.integers(30, 5000))
        gaps = np.maximum(1, np.round(step * (1 + jitter * rng.uniform(-1, 1, n)))).astype(int)
        start = t0 + int(rng.integers(0, 86400))
        times = start + np.concatenate([[0], np.cumsum(gaps)])
        users[f"t{i}"] = np.repeat(times, 1 + (rng.random(len(times)) < 0.1))  # repeated seconds
    users["burst"] = t0 + np.cumsum(rng.integers(1, 4, 1500))
    users["crawler"] = t0 + np.arange(2, 24 * 3600, 1800)
    users["still"] = np.full(80, t0 + 5)  # 80 events in one second: no gap at all
    rows = [(u, int(s)) for u, times in users.items() for s in times]
    frame = pd.DataFrame(rows, columns=["user_id", "epoch"])
    frame["timestamp"] = pd.to_datetime(frame.pop("epoch"), unit="s")
    frame["account_id"] = np.array(["a1", "a2", None])[rng.integers(0, 3, len(frame))]
    return frame.sample(frac=1, random_state=seed)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_bot_rules_equal_the_plain_rules_on_tricky_users(seed):
    """Check that find_bots (one (user, day) pass, hourly and exact gap checks only for the
    users who might break them) flags the users the plain rules flag, for the same reasons."""
    from propensity.config import BotsConfig
    from propensity.io.bots import find_bots, per_user_sql, per_user_table

    con = duckdb.connect()
    frame = _tricky_events(seed)
    con.register("timed", frame)
    con.register("day_only", frame.assign(timestamp=frame["timestamp"].dt.floor("D")))
    # without the burst no user has 500 events, so per_user_table aggregates by day only the
    # users with enough events to break an hourly or the gap rule
    con.register("no_burst", frame[frame["user_id"] != "burst"])
    configs = [
        BotsConfig(),
        BotsConfig(regular_gap_cv=0.05, regular_min_gaps=20, busiest_day_factor=0),
        BotsConfig(regular_gap_cv=0.2, max_active_hours_per_day=12, busiest_day_factor=3),
    ]
    for cfg in configs:
        for day_only, source in ((False, "timed"), (True, "day_only"), (False, "no_burst")):
            con.execute(f"CREATE OR REPLACE TABLE stage_events AS SELECT * FROM {source}")
            reference = _reference_bots(con, cfg, day_only)
            expected = _expected(reference, cfg, day_only)
            found = find_bots(con, cfg, day_only)
            con.execute(f"CREATE OR REPLACE TABLE per_user AS {per_user_sql('stage_events')}")
            assert find_bots(con, cfg, day_only, per_user="per_user") == found
            per_user_table(con, cfg, "stage_events", "some_days", account=True)
            assert find_bots(con, cfg, day_only, per_user="some_days") == found
            accounts = "SELECT user_id, min(account_id) FROM stage_events GROUP BY ALL ORDER BY 1"
            some = con.execute("SELECT user_id, account_id FROM some_days ORDER BY 1").fetchall()
            assert some == con.execute(accounts).fetchall()
            if source == "no_burst" and cfg == BotsConfig():
                (aggregated,) = con.execute(
                    "SELECT count(day_n) FROM some_days WHERE n <= 21"
                ).fetchone()
                assert aggregated == 0
            assert [u for u, _ in found] == sorted(expected)
            assert [(u, why) for u, why in found if not why.startswith(expected[u])] == []
            if source == "timed" and cfg == BotsConfig():
                regular = {u for u, *_, cv in reference if cv is not None and cv < 0.1}
                assert {"t0", "t5"} <= regular and not regular >= {"t20", "t30"}
                assert {"burst", "crawler"} <= set(expected)


def test_the_reader_imports_no_pandas():
    """Check that importing the reader and its config leaves pandas unimported (about half a
    second of every load's start-up, which reading the data never needs)."""
    import subprocess
    import sys

    code = (
        "import sys; from propensity.config import DataConfig; from propensity.io import "
        "load_data; print('pandas' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.parametrize("slices", [False, True])
def test_day_figures_equal_the_sql_figures(monkeypatch, slices):
    """Check that per_user_table's (user, day) figures from NumPy equal per_user_sql's, in one
    sort or in slices, with times before 1970 and across midnight; and that times with a
    fraction of a second take the SQL path, with the same figures."""
    import propensity.io.user_days as user_days
    from propensity.config import BotsConfig
    from propensity.io.bots import per_user_sql, per_user_table

    if slices:
        monkeypatch.setattr(user_days, "_SORTED_AT_ONCE", 500)
    took_numpy = []
    day_figures = bots_module.day_figures
    monkeypatch.setattr(
        bots_module,
        "day_figures",
        lambda *a: took_numpy.append(day_figures(*a) is not None) or day_figures(*a),
    )
    frame = _tricky_events(3)
    old = pd.DataFrame(
        {
            "user_id": "old",
            "timestamp": pd.Timestamp("1969-12-30 23:00")
            + pd.to_timedelta(np.arange(0, 60 * 3600, 1700), unit="s"),
            "account_id": "a9",
        }
    )
    con = duckdb.connect()
    con.register("frame", pd.concat([frame, old]))
    columns = "user_id, n, day_n, n_day, days, span, spread_days, within, within_sq"
    for fraction in ("0", "123"):
        con.execute(
            "CREATE OR REPLACE TABLE e AS SELECT user_id, account_id, "
            f"timestamp + INTERVAL ({fraction}) MICROSECOND AS timestamp FROM frame"
        )
        per_user_table(con, BotsConfig(), "e", "fast")
        fast = con.execute(f"SELECT {columns} FROM fast ORDER BY user_id").fetchall()
        plain = con.execute(f"SELECT {columns} FROM ({per_user_sql('e')}) ORDER BY 1").fetchall()
        assert [r[:-1] for r in fast] == [r[:-1] for r in plain]
        assert [r[-1] for r in fast] == pytest.approx([r[-1] for r in plain], rel=1e-12)
        assert len(fast) == frame["user_id"].nunique() + 1
    assert took_numpy == [True, False]


def test_day_figures_leave_events_without_a_user_as_sql_does(monkeypatch):
    """Check that per_user_table gives a user id that is missing the same row from NumPy as
    from SQL (its count, and no figures: it joins to no figures in either), and every other
    user the same figures."""
    from propensity.config import BotsConfig
    from propensity.io.bots import per_user_table

    con = duckdb.connect()
    con.register("frame", _tricky_events(4))
    con.execute(
        "CREATE TABLE e AS SELECT NULLIF(user_id, 'p3') AS user_id, account_id, timestamp "
        "FROM frame"
    )
    per_user_table(con, BotsConfig(), "e", "fast", account=True)
    monkeypatch.setattr(bots_module, "day_figures", lambda *a: None)
    per_user_table(con, BotsConfig(), "e", "plain", account=True)
    fast, plain = (
        con.execute(f"SELECT * EXCLUDE (within_sq) FROM {t} ORDER BY ALL").fetchall()
        for t in ("fast", "plain")
    )
    assert fast == plain
    [(_, n, _, *figures)] = [r for r in fast if r[0] is None]
    assert n > 0 and figures == [None] * 6
