"""Tests for the per-row sequence steps from sorted keys (features/sequence_stats.py): the
same feature frame, bit for bit, as the plan's SQL over the sequence table."""

from __future__ import annotations

from datetime import datetime, timedelta

import duckdb
import numpy as np
import pandas as pd
import pytest

from propensity.config import FeatureFamilies, FeaturesConfig
from propensity.features import (
    compute_features,
    engine,
    learn,
    learn_spec_and_features,
    rows,
    sequence_stats,
)
from propensity.labels import LabelTimes

T0 = datetime(2024, 1, 1)
NAMES = np.array(["a", "b", "c", "d", "e"])


def _data(seed: int, per_user: int = 2) -> tuple[duckdb.DuckDBPyConnection, LabelTimes, np.ndarray]:
    """Users with ``per_user`` rows (one user with no events), timestamps tied in time and
    type and exactly at the cutoffs, cutoffs off any weekly grid (the portable plan)."""
    rng = np.random.default_rng(seed)
    n_users = 30
    users = pd.DataFrame(
        {
            "user_id": [f"u{i}" for i in range(n_users)],
            "signup_at": [T0 + timedelta(seconds=int(s)) for s in rng.integers(0, 86400, n_users)],
            "email_domain": "x.com",
            "account_id": [f"a{i // 3}" for i in range(n_users)],
        }
    )
    ages = rng.integers(1, 6 * 86400, (n_users, per_user))
    label = [
        (u, a, s, s + timedelta(seconds=int(age)), age / 86400, int(rng.integers(0, 2)))
        for u, a, s, row in zip(users.user_id, users.account_id, users.signup_at, ages, strict=True)
        for age in row
    ]
    frame = pd.DataFrame(
        label,
        columns=["user_id", "account_id", "signup_at", "cutoff_at", "cutoff_age_days", "label"],
    ).astype({"signup_at": "datetime64[us]", "cutoff_at": "datetime64[us]"})
    n = 3000
    who = rng.integers(0, n_users - 1, n)  # the last user has no events
    # A coarse grid of times (many ties), plus some events exactly at a cutoff.
    offset = rng.integers(0, 7 * 24, n) * rng.choice([1, 600, 3600], n)
    ts = users.signup_at.to_numpy()[who] + offset.astype("timedelta64[s]")
    at_cut = rng.random(n) < 0.1
    # ... exactly at the first row's cutoff, or a window's length before it (a window's edge)
    back = rng.choice([0, 86400, 36 * 3600], n).astype("timedelta64[s]")
    ts[at_cut] = frame.cutoff_at.to_numpy()[per_user * who[at_cut]] - back[at_cut]
    events = pd.DataFrame(
        {"user_id": users.user_id.to_numpy()[who], "event": NAMES[rng.integers(0, 5, n)]}
    ).assign(timestamp=pd.Series(ts).astype("datetime64[us]"), properties=None)
    con = duckdb.connect()
    for name, df in (("users", users), ("events", events)):
        con.register(f"{name}_df", df)
        con.execute(f"CREATE TABLE {name} AS SELECT * FROM {name}_df")
    return con, LabelTimes(frame), rng.random(len(frame)) < 0.7


def _cfg(families: tuple[str, ...]) -> FeaturesConfig:
    flags = {f: f in families for f in FeatureFamilies.model_fields}
    return FeaturesConfig(
        families=FeatureFamilies(**flags),
        windows=("1d", "36h", "3d"),
        session_gap="30m",
        min_event_support=1,
        top_transitions=6,
    )


def _same(a: pd.DataFrame, b: pd.DataFrame) -> None:
    assert list(a.columns) == list(b.columns) and a.dtypes.equals(b.dtypes)
    for c in a.columns:
        if a[c].dtype == "float64":
            assert np.array_equal(a[c].to_numpy().view("int64"), b[c].to_numpy().view("int64")), c
        else:
            assert a[c].equals(b[c]), c


@pytest.mark.parametrize(
    ("narrow", "counting"),
    [(True, ""), (False, ""), (True, "by row"), (True, "by pair")],
)
@pytest.mark.parametrize(
    "families",
    [
        ("counts", "activity", "transitions", "recency"),
        ("activity",),
        ("transitions",),
        ("counts", "activity"),
    ],
)
@pytest.mark.parametrize("seed", range(3))
def test_row_stats_match_the_sql_steps(
    seed: int,
    families: tuple[str, ...],
    narrow: bool,
    counting: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Check that learning and computing give the SQL path's spec and frame bit for bit
    (32- and 64-bit joins, learn masks, rows spanning slices or not, each way of counting
    transitions)."""
    if counting == "by row":
        monkeypatch.setattr(sequence_stats, "_SPAN_SLACK", -(10**9))
    if counting == "by pair":
        monkeypatch.setattr(sequence_stats, "_PAIR_BITS", 0)
    if seed % 2:
        monkeypatch.setattr(sequence_stats, "_SLICE", 7)  # rows cross slice boundaries
    if not narrow:
        monkeypatch.setattr(rows, "fits_int32", lambda frame: False)
    con, lt, mask = _data(seed)
    cfg = _cfg(families)
    made: list[tuple[str, ...]] = []
    real = engine.materialise_row_stats
    monkeypatch.setattr(
        engine, "materialise_row_stats", lambda *a: made.append(real(*a)) or made[-1]
    )
    spec, fast = learn_spec_and_features(con, lt, cfg, mask)
    computed = compute_features(con, lt, spec).frame
    assert len(made) == 2 and all(made), "the per-row steps came from the sorted keys"
    with monkeypatch.context() as m:
        m.setattr(engine, "sort_sequence", lambda con, step: None)
        m.setattr(learn, "sort_sequence", lambda con, step: None)
        spec_sql, slow = learn_spec_and_features(con, lt, cfg, mask)
        computed_sql = compute_features(con, lt, spec).frame
    assert spec == spec_sql
    assert "transitions" not in families or spec.transitions
    _same(fast.frame, slow.frame)
    _same(computed, computed_sql)
    _same(computed, fast.frame)
