"""The reader's fast paths give exactly what the plain paths give: exact dedup by row hash
(propensity.io.dedup) and ids read without decoding when there is nothing to trim."""

from datetime import datetime

import duckdb
import numpy as np
import pandas as pd
import pytest

import propensity.io.load as load_module
from propensity.config import DataConfig, DedupConfig
from propensity.io import load_data
from propensity.io.dedup import ROW_HASH, drop_exact_duplicates
from propensity.io.load import _as_text

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
        f"SELECT x, {_as_text('x', 'VARCHAR')}, NULLIF(TRIM(x), '') FROM v"
    ).fetchall()
    assert len(rows) == len(values)
    assert [(x, fast) for x, fast, _ in rows] == [(x, plain) for x, _, plain in rows]
    # the plain ASCII ids take the shortcut (the trimmed ones are still trimmed)
    assert {x: fast for x, fast, _ in rows}[f"u1{SPACES[5]}"] == "u1"
