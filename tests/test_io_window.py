"""Tests of the windowed read (propensity.io.window): a score job reads only the events its
population and spec need, plus a per-user summary of the history, and gets the same features."""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from propensity.config import DataConfig, ExcludeConfig, load_config
from propensity.engines.base import ScoreScope
from propensity.engines.duckdb import open_duckdb
from propensity.features import compute_features
from propensity.io import load_data
from propensity.io.clean import has_table
from propensity.io.window import HISTORY
from propensity.simulate import simulate

AS_OF = datetime(2025, 4, 10, 6)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A simulated product of 1,500 users over 120 days, with a lost event and the demo config."""
    tmp = tmp_path_factory.mktemp("window")
    simulate(tmp / "data", users=1500, seed=11, days=120)
    cfg = yaml.safe_load((Path(__file__).parent.parent / "configs" / "demo.yaml").read_text())
    cfg["data"].update(
        events=str(tmp / "data" / "events"),
        users=str(tmp / "data" / "users.parquet"),
        conversions=str(tmp / "data" / "conversions.parquet"),
    )
    # a loss the scoring population reads from the events: some happen before the window
    cfg["label"]["lost_event"] = "help_viewed"
    path = tmp / "project.yaml"
    path.write_text(yaml.safe_dump(cfg))
    config = load_config(path)
    full = open_duckdb(config)
    labels = full.label_times(config.label)
    learn = np.ones(len(labels.frame), dtype=bool)
    spec, _ = full.learn_spec(labels, config.features, learn)
    return config, full, spec


def _windowed(config, spec, as_of=AS_OF, to=None):
    scope = ScoreScope(spec, lambda latest: (as_of, to or as_of))
    return open_duckdb(config, scope=scope)


def test_windowed_read_gives_the_same_population_and_features(world):
    """Check that the windowed read gives the full read's population and features (1e-12),
    on a spec with account and since-signup features, while reading far fewer events."""
    config, full, spec = world
    assert "account" in spec.families and spec.windows_s
    narrow = _windowed(config, spec)
    pop_full = full.population(config.label, AS_OF)
    pop_narrow = narrow.population(config.label, AS_OF)
    pd.testing.assert_frame_equal(pop_narrow.frame, pop_full.frame)
    assert pop_narrow.excluded["lost"] == pop_full.excluded["lost"] > 0
    a = full.features(pop_full, spec).frame
    b = narrow.features(pop_narrow, spec).frame
    pd.testing.assert_frame_equal(b, a, rtol=1e-12, atol=1e-12)
    (n_full,) = full.con.execute("SELECT count(*) FROM events").fetchone()
    (n_narrow,) = narrow.con.execute("SELECT count(*) FROM events").fetchone()
    assert n_narrow < n_full / 3
    (lo,) = narrow.con.execute("SELECT min(timestamp) FROM events").fetchone()
    assert lo >= AS_OF - config.label.trial_length
    assert narrow.latest() == full.latest()


def test_history_summary_is_what_active_users_need(world):
    """Check that account active users count members whose first event is before the window:
    without the history summary the window alone would count fewer."""
    config, full, spec = world
    narrow = _windowed(config, spec)
    pop = narrow.population(config.label, AS_OF)
    (before,) = narrow.con.execute(
        f"SELECT count(DISTINCT h.user_id) FROM {HISTORY} h JOIN users u USING (user_id) "
        f"WHERE u.account_id IN (SELECT account_id FROM users WHERE signup_at > ?) "
        f"AND h.first_at < (SELECT min(timestamp) FROM events)",
        [AS_OF - config.label.trial_length],
    ).fetchone()
    assert before > 0  # members first seen before the window exist
    right = narrow.features(pop, spec).frame["account_active_users"]
    window_only = compute_features(narrow.con, pop, spec).frame["account_active_users"]
    assert (window_only <= right).all() and (window_only < right).any()


def test_backtest_window_covers_every_date(world):
    """Check that one windowed read for a range of dates gives each date the full read's
    features."""
    config, full, spec = world
    last = AS_OF + timedelta(days=5)
    narrow = _windowed(config, spec, AS_OF, last)
    for when in (AS_OF, last):
        pop = full.population(config.label, when)
        a = full.features(pop, spec).frame
        b = narrow.features(narrow.population(config.label, when), spec).frame
        pd.testing.assert_frame_equal(b, a, rtol=1e-12, atol=1e-12)


def test_as_of_latest_reads_the_newest_events(world):
    """Check that --as-of latest windows back from the cleaned data's newest event."""
    config, full, spec = world
    scope = ScoreScope(spec, lambda latest: (latest, latest))
    narrow = open_duckdb(config, scope=scope)
    assert narrow.latest() == full.latest()
    (hi,) = narrow.con.execute("SELECT max(timestamp) FROM events").fetchone()
    (lo,) = narrow.con.execute("SELECT min(timestamp) FROM events").fetchone()
    assert hi < full.latest() and lo >= full.latest() - config.label.trial_length


@pytest.mark.slow
def test_score_job_gives_the_full_reads_scores(trained_world, tmp_path):
    """Check that score_job, reading only the window, writes the full read's scores (1e-12),
    flags and reasons."""
    from propensity.pipeline.score import score_job

    _, config = trained_world
    cfg = load_config(config)
    day = "2025-03-02T12:00:00"
    narrow = score_job(cfg, day, tmp_path / "narrow.parquet").scores
    full = score_job(cfg, day, tmp_path / "full.parquet", engine=open_duckdb(cfg)).scores
    assert len(full) > 100
    np.testing.assert_allclose(narrow["score"], full["score"], rtol=0, atol=1e-12)
    pd.testing.assert_frame_equal(
        narrow.drop(columns=["scored_at", "score"]), full.drop(columns=["scored_at", "score"])
    )


@pytest.mark.parametrize("case", ["csv", "no_users_table"])
def test_text_sources_and_signup_from_events(world, tmp_path, case):
    """Check that a CSV export (text times: no pushdown, read row by row) and a project
    without a users table (signup = first event, from the history) give the full read's
    population and features."""
    config, _, spec = world
    data = config.data
    if case == "csv":
        simulate(tmp_path, users=600, seed=5, days=100, format="csv")
        data = data.model_copy(
            update={
                "events": str(tmp_path / "events"),
                "users": str(tmp_path / "users.csv"),
                "conversions": str(tmp_path / "conversions.csv"),
            }
        )
    else:
        data = data.model_copy(update={"users": None})
        fit = ("numeric_user_columns", "categorical_user_columns")
        spec = dataclasses.replace(
            spec, families=tuple(f for f in spec.families if f != "fit"), **dict.fromkeys(fit, ())
        )
    config = config.model_copy(update={"data": data})
    full = open_duckdb(config)
    narrow = _windowed(config, spec)
    pop_full = full.population(config.label, AS_OF)
    pop_narrow = narrow.population(config.label, AS_OF)
    assert len(pop_full) > 20
    pd.testing.assert_frame_equal(pop_narrow.frame, pop_full.frame)
    a = full.features(pop_full, spec).frame
    b = narrow.features(pop_narrow, spec).frame
    pd.testing.assert_frame_equal(b, a, rtol=1e-12, atol=1e-12)


def _tiny(tmp_path: Path, epoch: bool = False) -> DataConfig:
    events = pd.DataFrame(
        {
            "user_id": ["u1", "u1", "u2", "u3"],
            "event": ["login", "doc_created", "login", "login"],
            "timestamp": pd.to_datetime(
                ["2025-01-01 10:00", "2025-01-01 10:05", "2025-01-02 09:00", "2025-01-03 12:00"]
            ),
            "account_id": ["a1", "a1", "a2", "a3"],
        }
    )
    if epoch:
        events["timestamp"] = events["timestamp"].astype("int64") // 10**9
    users = pd.DataFrame(
        {
            "user_id": ["u1", "u2", "u3"],
            "signup_at": pd.to_datetime(["2025-01-01", "2025-01-02", "2025-01-03"]),
            "email": ["ann@acme.com", "bob@gmail.com", "qa@propensity-internal.test"],
        }
    )
    events.to_parquet(tmp_path / "events.parquet")
    users.to_parquet(tmp_path / "users.parquet")
    return DataConfig(
        events=str(tmp_path / "events.parquet"),
        users=str(tmp_path / "users.parquet"),
        exclude=ExcludeConfig(email_domains=("propensity-internal.test",)),
    )


def test_latest_moved_by_cleaning_falls_back_to_a_full_read(tmp_path):
    """Check that when the newest event belongs to a user cleaning removes, --as-of latest
    still windows back from the cleaned newest event (by reading everything)."""
    data = _tiny(tmp_path)
    loaded = load_data(data, window=lambda latest: (latest - timedelta(hours=12), latest))
    assert loaded.report.last_event == datetime(2025, 1, 2, 9)
    assert not has_table(loaded.con, HISTORY)  # the full read's tables
    (n,) = loaded.con.execute("SELECT count(*) FROM events").fetchone()
    assert n == 3


@pytest.mark.parametrize("epoch", [False, True])
def test_window_and_history_on_hand_data(tmp_path, epoch):
    """Check the window's rows and the history's first and last times, on a timestamp and on
    an epoch-seconds column (both read through the raw aggregate)."""
    data = _tiny(tmp_path, epoch)
    fixed = (datetime(2025, 1, 1, 10, 5), datetime(2025, 1, 2, 12))
    loaded = load_data(data, window=lambda latest: fixed)
    rows = loaded.con.execute("SELECT user_id, event FROM events ORDER BY timestamp").fetchall()
    assert rows == [("u1", "doc_created"), ("u2", "login")]
    history = loaded.con.execute(
        f"SELECT user_id, event, first_at, last_at FROM {HISTORY} ORDER BY user_id, event"
    ).fetchall()
    assert history == [
        ("u1", "doc_created", datetime(2025, 1, 1, 10, 5), datetime(2025, 1, 1, 10, 5)),
        ("u1", "login", datetime(2025, 1, 1, 10), datetime(2025, 1, 1, 10)),
        ("u2", "login", datetime(2025, 1, 2, 9), datetime(2025, 1, 2, 9)),
    ]  # u3 is internal: gone from the history too
    assert loaded.report.last_event == datetime(2025, 1, 2, 9)
