"""Tests of the CRM sinks (propensity.io.sinks) against a DuckDB file and a real PostgreSQL."""

from __future__ import annotations

import multiprocessing
import os
import random
import signal
import time
import uuid
from datetime import datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest

from propensity.crm import CURRENT_COLUMNS, HISTORY_COLUMNS
from propensity.io.sinks.duckdb import DuckDBSink

T0 = datetime(2025, 3, 3)


def _tables(k: int, n: int, as_of: datetime) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A current table of ``n`` rows all marked with run ``k``, and its history rows."""
    ids = [f"u{i:06d}" for i in range(n)]
    current = pd.DataFrame({c: pd.Series([None] * n, dtype=object) for c in CURRENT_COLUMNS})
    current = current.assign(
        entity_id=ids,
        account_id=[f"a{i % 7}" for i in range(n)],
        score=float(k),
        percentile=pd.array([i % 101 for i in range(n)], dtype="Int64"),
        is_pql=[i % 3 == 0 for i in range(n)],
        status="pql",
        holdout=False,
        contacted=True,
        reason_1="Invited 3 teammates in the first week — “quoted”, 'ok'",
        pql_since=pd.Timestamp(as_of),
        status_changed_at=pd.NaT,
        last_exit_at=pd.NaT,
        converted_at=pd.NaT,
        routed_at=pd.Timestamp(as_of),
        model_version=f"v{k}",
        updated_at=pd.Timestamp(as_of),
    ).astype(CURRENT_COLUMNS)
    history = current.assign(as_of=pd.Timestamp(as_of), model_version="m", entered=False)
    return current, history[list(HISTORY_COLUMNS)].astype(HISTORY_COLUMNS)


def _sink(kind: str, tmp_path: Path, dsn: str | None, schema: str):
    if kind == "duckdb":
        return DuckDBSink(tmp_path / "crm.duckdb")
    from propensity.io.sinks.postgres import PostgresSink

    return PostgresSink(dsn, schema=schema)


@pytest.fixture(params=["duckdb", "postgres"])
def sink_args(request, tmp_path):
    """(kind, tmp_path, dsn, schema): a fresh DuckDB file or a fresh PostgreSQL schema."""
    dsn = request.getfixturevalue("postgres_dsn") if request.param == "postgres" else None
    return request.param, tmp_path, dsn, f"t_{uuid.uuid4().hex[:12]}"


def test_round_trip_and_idempotent_history(sink_args):
    """Check that both tables read back with their types, the current table is replaced and
    re-writing one as_of replaces its history rows instead of adding to them."""
    sink = _sink(*sink_args)
    try:
        assert sink.read_current().empty
        cur, hist = _tables(1, 50, T0)
        sink.write(cur, hist, T0, "m")
        back = sink.read_current()
        pd.testing.assert_frame_equal(back, cur)
        cur2, hist2 = _tables(2, 30, T0)
        sink.write(cur2, hist2, T0, "m")  # the same as_of again
        sink.write(*_tables(3, 20, T0 + timedelta(days=1)), T0 + timedelta(days=1), "m")
        history = sink.read_history()
        assert len(history) == 30 + 20
        assert not history.duplicated(["entity_id", "as_of", "model_version"]).any()
        assert set(history.loc[history["as_of"] == T0, "score"]) == {2.0}
        assert sink.read_current()["model_version"].unique().tolist() == ["v3"]
    finally:
        sink.close()


def test_postgres_unreachable_is_one_clear_error():
    """Check that a sink server that is down gives one OutputError naming the fix."""
    pytest.importorskip("psycopg")
    from propensity.errors import OutputError
    from propensity.io.sinks.postgres import PostgresSink

    with pytest.raises(OutputError, match="PROPENSITY_CRM_DSN"):
        PostgresSink("postgresql://nobody@127.0.0.1:1/none")


def _writer(args: tuple, start: int, ready) -> None:
    """The sink job: write run after run (re-running each as_of every third run) until killed."""
    sink = _sink(*args)
    ready.set()
    k = start
    while True:
        as_of = T0 + timedelta(days=k % 3)
        sink.write(*_tables(k, 3000 + k, as_of), as_of, "m")
        k += 1


def _check_whole(sink) -> int:
    """The run number of the current table, after checking nothing is partial or mixed."""
    cur = sink.read_current()
    hist = sink.read_history()
    assert not hist.duplicated(["entity_id", "as_of", "model_version"]).any()
    for _, rows in hist.groupby(["as_of", "model_version"]):
        runs = rows["score"].unique()
        assert len(runs) == 1, "history mixes two runs of one as_of"
        assert len(rows) == 3000 + int(runs[0]), "history holds part of a run"
    if cur.empty:
        return -1
    versions = cur["model_version"].unique()
    assert len(versions) == 1, "current table mixes two runs"
    k = int(versions[0][1:])
    assert len(cur) == 3000 + k and cur["entity_id"].is_unique
    return k


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["duckdb", "postgres"])
def test_killed_sink_job_leaves_whole_tables(kind, tmp_path, request):
    """Check that killing the sink job at random moments (20 kills a sink) never
    leaves a partial or mixed table, and re-runs of one as_of never duplicate history rows."""
    dsn = request.getfixturevalue("postgres_dsn") if kind == "postgres" else None
    schema = f"k_{uuid.uuid4().hex[:12]}"
    rng = random.Random(15)
    # children fork from a clean server with the sinks imported: they start at once, so the
    # kills land in the writes, and never inherit a lock another thread of this worker held
    # (a plain fork of a worker that ran Spark or DuckDB can hang before its first write)
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(["pandas", "propensity.io.sinks.duckdb", "propensity.crm", __name__])
    last, began = -1, time.perf_counter()
    for _ in range(20):
        ready = ctx.Event()
        child = ctx.Process(target=_writer, args=((kind, tmp_path, dsn, schema), last + 1, ready))
        child.start()
        assert ready.wait(30)
        time.sleep(rng.uniform(0.0, 0.8))
        os.kill(child.pid, signal.SIGKILL)
        child.join()
        child.close()
        sink = _sink(kind, tmp_path, dsn, schema)
        try:
            now = _check_whole(sink)
        finally:
            sink.close()
        assert now >= last
        last = now
    assert last > 0, "no write ever committed: the kills came too early to test anything"
    assert time.perf_counter() - began < 60
