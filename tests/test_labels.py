"""Tests for propensity.labels: cutoffs, horizon edges, exclusions and the scoring population."""

from __future__ import annotations

from datetime import datetime

import duckdb
import pandas as pd
import pytest

from propensity.config import LabelConfig
from propensity.errors import DataContractError
from propensity.labels import build_label_times, scoring_population

JAN1 = datetime(2024, 1, 1)


def _con(
    users: list[tuple], conversions: list[tuple], events: list[tuple]
) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    frames = {
        "users": pd.DataFrame(users, columns=["user_id", "signup_at", "account_id"]),
        "conversions": pd.DataFrame(conversions, columns=["user_id", "converted_at"]),
        "events": pd.DataFrame(events, columns=["user_id", "event", "timestamp"]),
    }
    for name, df in frames.items():
        for col in ("signup_at", "converted_at", "timestamp"):
            if col in df:
                df[col] = pd.to_datetime(df[col]).astype("datetime64[us]")
        con.register(f"{name}_df", df)
        con.execute(f"CREATE TABLE {name} AS SELECT * FROM {name}_df")
        con.unregister(f"{name}_df")
    return con


@pytest.fixture
def con() -> duckdb.DuckDBPyConnection:
    users = [
        ("a", JAN1, "A"),  # converts exactly at the 7d cutoff -> label 1
        ("b", JAN1, "A"),  # converts exactly at cutoff + 30d -> label 0
        ("c", JAN1, None),  # converts on day 4 -> already a customer at the 7d cutoff
        ("d", None, None),  # no signup -> excluded
        ("e", datetime(2024, 3, 1), None),  # cutoff 03-08 + 30d > data end -> censored
        ("f", JAN1, None),  # never converts -> label 0
        ("g", JAN1, None),  # converts on day 2 and day 19: the first one counts
    ]
    conversions = [
        ("a", datetime(2024, 1, 8)),
        ("b", datetime(2024, 2, 7)),
        ("c", datetime(2024, 1, 5)),
        ("g", datetime(2024, 1, 3)),
        ("g", datetime(2024, 1, 20)),
    ]
    events = [("f", "login", datetime(2024, 3, 15))]
    return _con(users, conversions, events)


def test_labels_horizon_edges_and_exclusions(con: duckdb.DuckDBPyConnection) -> None:
    """Check that [cutoff, cutoff + horizon) is labelled and every exclusion is counted."""
    lt = build_label_times(con, LabelConfig(observation_window="7d", horizon="30d"))
    frame = lt.frame.set_index("user_id")
    assert frame.index.tolist() == ["a", "b", "f"]  # same cutoff, so sorted by user_id
    assert frame["label"].to_dict() == {"a": 1, "b": 0, "f": 0}
    assert frame.loc["a", "cutoff_at"] == pd.Timestamp("2024-01-08")
    assert frame["cutoff_age_days"].tolist() == [7.0, 7.0, 7.0]
    assert frame.loc["a", "account_id"] == "A"
    # c and g converted before 01-08; d has no signup; e's horizon ends 04-07 > 03-15.
    assert lt.excluded == {"signup_missing": 1, "converted_before_cutoff": 2, "right_censored": 1}
    assert lt.settings["data_end"] == "2024-03-15T00:00:00"  # max of events and conversions
    assert lt.settings["horizon_s"] == 30 * 86400
    assert lt.frame["label"].dtype == "int64"


def test_labels_extra_cutoffs(con: duckdb.DuckDBPyConnection) -> None:
    """Check that extra cutoffs add one row per user and trial age, each labelled on its own."""
    cfg = LabelConfig(observation_window="7d", horizon="30d", extra_cutoffs=("3d",))
    lt = build_label_times(con, cfg, data_end=datetime(2024, 6, 1))
    got = {(r.user_id, r.cutoff_age_days): r.label for r in lt.frame.itertuples()}
    # 3d cutoff is 01-04: c (01-05) and a (01-08) convert inside [01-04, 02-03) -> 1;
    # b (02-07) is outside -> 0; g converted 01-03 < 01-04 -> excluded at both ages.
    # With data_end 06-01, e's cutoffs (03-04 + 30d, 03-08 + 30d) are no longer censored.
    assert got == {
        ("a", 3.0): 1, ("b", 3.0): 0, ("c", 3.0): 1, ("e", 3.0): 0, ("f", 3.0): 0,
        ("a", 7.0): 1, ("b", 7.0): 0, ("e", 7.0): 0, ("f", 7.0): 0,
    }  # fmt: skip
    assert lt.excluded == {"signup_missing": 2, "converted_before_cutoff": 3, "right_censored": 0}
    assert lt.frame["cutoff_at"].is_monotonic_increasing


def test_labels_need_the_tables() -> None:
    """Check that a missing conversions table is reported by name."""
    con = duckdb.connect()
    con.execute("CREATE TABLE users (user_id VARCHAR, signup_at TIMESTAMP, account_id VARCHAR)")
    con.execute("CREATE TABLE events (user_id VARCHAR, event VARCHAR, timestamp TIMESTAMP)")
    with pytest.raises(DataContractError, match="Table 'conversions' must exist"):
        build_label_times(con, LabelConfig())


def test_scoring_population(con: duckdb.DuckDBPyConnection) -> None:
    """Check that scoring keeps unconverted users in trial at as_of, with cutoff = as_of."""
    cfg = LabelConfig(trial_length="14d")
    as_of = datetime(2024, 1, 6)
    sp = scoring_population(con, cfg, as_of)
    # a, b, f in trial (signed up 01-01, trial ends 01-15); c, g converted before 01-06;
    # d has no signup; e signs up 03-01, after as_of.
    assert sp.frame["user_id"].tolist() == ["a", "b", "f"]
    assert (sp.frame["cutoff_at"] == pd.Timestamp(as_of)).all()
    assert sp.frame["cutoff_age_days"].tolist() == [5.0, 5.0, 5.0]
    assert "label" not in sp.frame.columns and not sp.has_label
    assert sp.excluded == {
        "signup_missing": 1, "not_signed_up_yet": 1, "converted": 2, "trial_ended": 0,
    }  # fmt: skip


def test_scoring_population_expired_trials(con: duckdb.DuckDBPyConnection) -> None:
    """Check that ended trials drop out unless include_expired, which cuts off at trial end."""
    cfg = LabelConfig(trial_length="14d")
    as_of = datetime(2024, 1, 20)
    sp = scoring_population(con, cfg, as_of)
    # Trials ended 01-15: b (converts only 02-07) and f never convert before as_of -> trial_ended;
    # a, c and g converted before 01-20 -> converted.
    assert sp.frame.empty
    assert sp.excluded["trial_ended"] == 2
    assert sp.excluded["converted"] == 3
    sp = scoring_population(con, cfg, as_of, include_expired=True)
    assert sp.frame["user_id"].tolist() == ["b", "f"]
    assert (sp.frame["cutoff_at"] == pd.Timestamp("2024-01-15")).all()
    assert sp.frame["cutoff_age_days"].tolist() == [14.0, 14.0]


# -- users lost before their cutoff (issue 13) ----------------------------------------------------


def _with_lost(con: duckdb.DuckDBPyConnection, rows: list[tuple]) -> duckdb.DuckDBPyConnection:
    con.execute("CREATE TABLE lost_users (user_id VARCHAR, lost_at TIMESTAMP)")
    con.executemany("INSERT INTO lost_users VALUES (?, ?)", rows)
    return con


def test_users_lost_before_the_cutoff_are_excluded_under_their_own_reason(con) -> None:
    """Check that a user lost (lost_users table) before or at the cutoff is excluded as
    lost_before_cutoff, and one lost after it keeps its label."""
    _with_lost(con, [("b", datetime(2024, 1, 5)), ("f", datetime(2024, 1, 20))])
    lt = build_label_times(con, LabelConfig(observation_window="7d", horizon="30d"))
    assert lt.frame["user_id"].tolist() == ["a", "f"]  # b lost on day 4 of 7; f after the cutoff
    assert lt.excluded == {
        "signup_missing": 1, "converted_before_cutoff": 2, "lost_before_cutoff": 1,
        "right_censored": 1,
    }  # fmt: skip


def test_a_lost_event_marks_users_as_lost(con) -> None:
    """Check that label.lost_event takes each user's first such event as the loss, combined
    with the table, and that the scoring population skips lost users too."""
    con.execute("INSERT INTO events VALUES ('a', 'account_deleted', TIMESTAMP '2024-01-08')")
    con.execute("INSERT INTO events VALUES ('a', 'account_deleted', TIMESTAMP '2024-01-02')")
    cfg = LabelConfig(observation_window="7d", horizon="30d", lost_event="account_deleted")
    lt = build_label_times(con, cfg)
    assert "a" not in lt.frame["user_id"].tolist()
    assert lt.excluded["lost_before_cutoff"] == 1
    assert lt.settings["lost_event"] == "account_deleted"
    sp = scoring_population(con, cfg, datetime(2024, 1, 6))
    assert sp.frame["user_id"].tolist() == ["b", "f"]
    assert sp.excluded["lost"] == 1


def test_data_end_from_the_config_right_censors_the_labels(tmp_path) -> None:
    """Check that training preparation right-censors against data.end, not the last event."""
    from propensity.config import config_from_dict
    from propensity.pipeline.prepare import prepare

    n = 160
    signup = pd.Timestamp("2024-01-01") + pd.to_timedelta(range(n), unit="h")
    users = pd.DataFrame({"user_id": [f"u{i:03d}" for i in range(n)], "signup_at": signup})
    events = pd.DataFrame(
        {"user_id": users["user_id"], "event": "login", "timestamp": signup + pd.Timedelta("1h")}
    )
    conversions = pd.DataFrame(
        {"user_id": users["user_id"][::2], "converted_at": signup[::2] + pd.Timedelta("10d")}
    )
    for name, frame in (("u", users), ("e", events), ("c", conversions)):
        frame.to_parquet(tmp_path / f"{name}.parquet")
    raw = {
        "data": {
            "events": str(tmp_path / "e.parquet"),
            "users": str(tmp_path / "u.parquet"),
            "conversions": str(tmp_path / "c.parquet"),
            "end": "2024-03-01",
        },
        "model": {"min_positives": 20, "min_negatives": 20},
        "features": {"min_event_support": 1},
    }
    prepared = prepare(config_from_dict(raw))
    assert prepared.labels.settings["data_end"] == "2024-03-01T00:00:00"
    # every cutoff (<= 01-14) + 30d is before 03-01: nothing censored, though the last
    # conversion is on 01-17 and the last event on 01-07
    assert prepared.labels.excluded["right_censored"] == 0
    assert len(prepared.labels) == n


def test_the_readers_data_end_is_every_jobs_default(tmp_path) -> None:
    """Check that label times built on a loaded connection (as train, compare and discover do,
    without passing an end) right-censor against data.end, so their row sets agree."""
    from propensity.config import DataConfig
    from propensity.io import load_data

    users = pd.DataFrame({"user_id": ["u1", "u2"], "signup_at": pd.to_datetime(["2024-01-01"] * 2)})
    events = pd.DataFrame(
        {"user_id": ["u1", "u2"], "event": "login", "timestamp": pd.Timestamp("2024-01-02")}
    )
    users.to_parquet(tmp_path / "u.parquet")
    events.to_parquet(tmp_path / "e.parquet")
    cfg = DataConfig(events=str(tmp_path / "e.parquet"), users=str(tmp_path / "u.parquet"))
    censored = build_label_times(load_data(cfg, now=datetime(2024, 6, 1)).con, LabelConfig())
    assert len(censored) == 0 and censored.excluded["right_censored"] == 2
    ended = load_data(
        cfg.model_copy(update={"end": datetime(2024, 3, 1)}), now=datetime(2024, 6, 1)
    )
    labels = build_label_times(ended.con, LabelConfig())
    assert len(labels) == 2 and labels.settings["data_end"] == "2024-03-01T00:00:00"
