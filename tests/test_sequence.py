"""Tests for the numpy-sorted sequence step (features/sequence.py): the same table as the
portable plan's LAG window, or nothing when the keys cannot be packed."""

from __future__ import annotations

import duckdb
import numpy as np
import pandas as pd
import pytest

from propensity.features import sequence
from propensity.features.portable import Step
from propensity.features.sequence import materialise_sequence

_OVER = "OVER (PARTITION BY rid ORDER BY t, k)"
_WINDOW = f"SELECT rid, k, t, t - LAG(t) {_OVER} AS gap, LAG(k) {_OVER} AS prev FROM ev"


def _con(ev: pd.DataFrame, sql_type: str) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    con.register("ev_df", ev)
    cols = ", ".join(f"CAST({c} AS {sql_type}) AS {c}" for c in ev.columns)
    con.execute(f"CREATE TEMP TABLE ev AS SELECT {cols} FROM ev_df")
    return con


def _rows(con: duckdb.DuckDBPyConnection, table: str) -> list[tuple]:
    return con.execute(f"SELECT * FROM {table} ORDER BY ALL").fetchall()


@pytest.mark.parametrize("sql_type", ["INTEGER", "BIGINT"])
@pytest.mark.parametrize("seed", range(4))
def test_sequence_matches_the_window(
    seed: int, sql_type: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Check that the sorted keys give the window's rows, values and column types (ties in
    time and type included, rows with one event, every row's first event NULL), whether a row's
    events span decoded slices or not."""
    if seed % 2:
        monkeypatch.setattr(sequence, "_SLICE", 7)  # rows cross slice boundaries
    rng = np.random.default_rng(seed)
    n = 5000
    ev = pd.DataFrame(
        {
            "rid": rng.integers(0, 300, n),
            "k": rng.integers(0, 5, n),
            "t": rng.integers(0, 50, n) * rng.choice([1, 3600, 10**6], n),
        }
    )
    con = _con(ev, sql_type)
    con.execute(f"CREATE TEMP TABLE want AS {_WINDOW}")
    step = Step("got", _WINDOW, "SELECT rid, k, t FROM ev")
    assert materialise_sequence(con, step, "pairs") == ("got", "pairs")
    assert _rows(con, "got") == _rows(con, "want")
    assert con.execute("DESCRIBE got").fetchall() == con.execute("DESCRIBE want").fetchall()
    distinct = "SELECT DISTINCT rid, prev, k FROM want WHERE prev IS NOT NULL"
    assert _rows(con, "pairs") == con.execute(f"{distinct} ORDER BY ALL").fetchall()
    assert [r[1] for r in con.execute("DESCRIBE pairs").fetchall()] == [sql_type] * 3


@pytest.mark.parametrize(
    ("ev", "why"),
    [
        (pd.DataFrame({"rid": [0, 1], "k": [0, -2], "t": [5, 6]}), "a negative code"),
        (pd.DataFrame({"rid": [0, 2**31 - 2], "k": [0, 1], "t": [2**31 - 2, 0]}), "63 bits"),
    ],
)
def test_sequence_declines_keys_it_cannot_pack(ev: pd.DataFrame, why: str) -> None:
    """Check that keys that do not fit (negative, or over 63 bits) leave the step to SQL."""
    con = _con(ev, "BIGINT")
    con.execute("UPDATE ev SET rid = rid * 4 WHERE rid > 0")  # 33 + 31 + 1 bits
    step = Step("got", _WINDOW, "SELECT rid, k, t FROM ev")
    assert materialise_sequence(con, step, "pairs") == (), why
    assert not con.execute("SELECT * FROM duckdb_tables() WHERE table_name = 'got'").fetchall()


def test_sequence_of_no_events() -> None:
    """Check that an empty sequence is an empty table with the window's columns."""
    con = _con(pd.DataFrame({"rid": [1], "k": [0], "t": [0]}), "INTEGER")
    step = Step("got", f"{_WINDOW} WHERE k > 0", "SELECT rid, k, t FROM ev WHERE k > 0")
    assert materialise_sequence(con, step, "pairs") == ("got", "pairs")
    assert _rows(con, "got") == [] and _rows(con, "pairs") == []
    names = [r[0] for r in con.execute("DESCRIBE got").fetchall()]
    assert names == ["rid", "k", "t", "gap", "prev"]
