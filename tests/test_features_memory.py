"""The feature build counts the process's memory and its table against data.memory_limit."""

from __future__ import annotations

import contextlib
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from propensity.config import memory_bytes
from propensity.features import engine, memory
from propensity.features.memory import memory_share, resident_bytes
from propensity.io.load import connect
from propensity.labels import LabelTimes


def _limit(con: duckdb.DuckDBPyConnection) -> str:
    return con.execute("SELECT current_setting('memory_limit')").fetchall()[0][0]


def _shown(limit: str) -> str:
    """How DuckDB shows the limit ``limit`` (rounded, in binary units)."""
    return _limit(duckdb.connect(config={"memory_limit": limit}))


def _held(monkeypatch: pytest.MonkeyPatch, con: duckdb.DuckDBPyConnection, held: int) -> None:
    """Make the process appear to hold ``held`` bytes outside DuckDB."""
    used = memory._duckdb_bytes(con)
    monkeypatch.setattr(memory, "resident_bytes", lambda: used + held)


def test_duckdb_gets_the_limit_less_what_the_process_holds_then_the_whole_limit_back(
    monkeypatch,
):
    """Check that DuckDB's share is data.memory_limit less the process's memory outside
    DuckDB, less a reserve for the result (never below half), on propensity's connections;
    that data.memory_limit comes back exactly, also after an error; and that other
    connections keep their limit."""
    con = connect(memory_limit="1GB")
    whole = _limit(con)
    _held(monkeypatch, con, 200_000_000)
    with memory_share(con) as share:
        assert _limit(con) == _shown("800MB")
        share(300_000_000)
        assert _limit(con) == _shown("500MB")
        share(100_000_000)
        assert _limit(con) == _shown("700MB")
        share(900_000_000)  # never below half the limit
        assert _limit(con) == _shown("500MB")
    assert _limit(con) == whole
    with pytest.raises(RuntimeError), memory_share(con):
        raise RuntimeError("mid-build")
    assert _limit(con) == whole
    other = duckdb.connect(config={"memory_limit": "1GB"})
    before = _limit(other)
    with memory_share(other) as share:
        share(300_000_000)
        assert _limit(other) == before
    assert _limit(other) == before
    assert memory_bytes("1GB") == 10**9 and memory_bytes("lots") is None


def test_resident_bytes_is_this_processs_resident_memory():
    """Check the reading against the kernel's VmRSS (Linux, where the build asks it)."""
    status = Path("/proc/self/status").read_text()
    vm_rss = int(next(x for x in status.splitlines() if x.startswith("VmRSS")).split()[1])
    assert abs(resident_bytes() / 1024 - vm_rss) < 0.1 * vm_rss


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
    _held(monkeypatch, con, 100_000_000)
    seen: list[str] = []
    real = engine.memory_share

    @contextlib.contextmanager
    def spy(con):  # type: ignore[no-untyped-def]
        seen.append(_limit(con))
        with real(con) as share:

            def spied(reserve: int) -> None:
                share(reserve)
                seen.append(_limit(con))

            seen.append(_limit(con))
            yield spied

    monkeypatch.setattr(engine, "memory_share", spy)
    from propensity.config import FeaturesConfig

    spec, ff = engine.learn_spec_and_features(con, LabelTimes(frame), FeaturesConfig())
    # the whole limit, then less what the process holds (the one-row frame's block is tiny)
    assert seen == [whole, _shown("900MB"), _shown("900MB")] and len(ff.frame) == 1
    assert _limit(con) == whole

    def fail(self, batch):  # type: ignore[no-untyped-def]
        raise RuntimeError("mid-stream")

    monkeypatch.setattr(engine._Assembler, "add", fail)
    with pytest.raises(RuntimeError, match="mid-stream"):  # the error, not a refused drop
        engine.compute_features(con, LabelTimes(frame), spec)
    assert _limit(con) == whole
    assert not con.execute("SELECT * FROM duckdb_tables() WHERE temporary").fetchall()
