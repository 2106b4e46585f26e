"""Tests of the windowed read (propensity.io.window): a score job reads only the events its
population and spec need, plus a per-user summary of the history, and gets the same features."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from propensity.config import load_config
from propensity.engines.base import ScoreScope
from propensity.engines.duckdb import open_duckdb
from propensity.features import compute_features
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
