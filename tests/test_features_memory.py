"""The feature build counts the table it returns against data.memory_limit."""

from __future__ import annotations

import duckdb
import pandas as pd
import pytest

from propensity.config import memory_bytes
from propensity.features import engine
from propensity.features.engine import _make_room, _restore_limit
from propensity.io.load import connect
from propensity.labels import LabelTimes


def _limit(con: duckdb.DuckDBPyConnection) -> str:
    return con.execute("SELECT current_setting('memory_limit')").fetchall()[0][0]


def _shown(limit: str) -> str:
    """How DuckDB shows the limit ``limit`` (rounded, in binary units)."""
    return _limit(duckdb.connect(config={"memory_limit": limit}))


def test_duckdb_gets_the_limit_less_the_result_then_the_whole_limit_back():
    """Check that the build lowers DuckDB's share by the result's bytes (at most by half) on
    propensity's connections, restores data.memory_limit exactly, and leaves others alone."""
    con = connect(memory_limit="1GB")
    whole = _limit(con)
    _make_room(con, 300_000_000)
    assert _limit(con) == _shown("700MB")
    _restore_limit(con)
    assert _limit(con) == whole
    _make_room(con, 900_000_000)  # never below half the limit
    assert _limit(con) == _shown("500MB")
    _restore_limit(con)
    other = duckdb.connect(config={"memory_limit": "1GB"})
    before = _limit(other)
    _make_room(other, 300_000_000)
    assert _limit(other) == before
    assert memory_bytes("1GB") == 10**9 and memory_bytes("lots") is None


def test_a_build_on_propensitys_connection_ends_with_its_limit(monkeypatch):
    """Check that computing features lowers the limit while the final statement runs and
    gives data.memory_limit back afterwards, also when the build fails."""
    con = connect(memory_limit="1GB")
    whole = _limit(con)
    con.execute(
        "CREATE TABLE events AS SELECT 'u0' AS user_id, 'login' AS event, "
        "TIMESTAMP '2025-01-02 10:00:00' AS timestamp, NULL::VARCHAR AS properties"
    )
    con.execute(
        "CREATE TABLE users AS SELECT 'u0' AS user_id, TIMESTAMP '2025-01-01' AS signup_at, "
        "'a0' AS account_id, 'acme.com' AS email_domain"
    )
    frame = pd.DataFrame(
        {
            "user_id": ["u0"],
            "account_id": ["a0"],
            "signup_at": pd.to_datetime(["2025-01-01"]),
            "cutoff_at": pd.to_datetime(["2025-01-08"]),
            "cutoff_age_days": [7.0],
            "label": [1],
        }
    )
    seen: list[str] = []
    real = engine._make_room

    def spy(con, result):  # type: ignore[no-untyped-def]
        real(con, result)
        seen.append(_limit(con))

    monkeypatch.setattr(engine, "_make_room", spy)
    from propensity.config import FeaturesConfig

    spec, ff = engine.learn_spec_and_features(con, LabelTimes(frame), FeaturesConfig())
    assert seen and all(s != whole for s in seen) and len(ff.frame) == 1
    assert _limit(con) == whole

    def fail(self, batch):  # type: ignore[no-untyped-def]
        raise RuntimeError("mid-stream")

    monkeypatch.setattr(engine._Assembler, "add", fail)
    with pytest.raises(RuntimeError, match="mid-stream"):  # the error, not a refused drop
        engine.compute_features(con, LabelTimes(frame), spec)
    assert _limit(con) == whole
    assert not con.execute("SELECT * FROM duckdb_tables() WHERE temporary").fetchall()
