"""Tests of propensity.crm.lifecycle: hysteresis, minimum time, cooldown, conversion."""

from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np
import pandas as pd

from propensity.config import LifecycleConfig
from propensity.crm import advance, empty_state

T0 = datetime(2025, 3, 1)
NONE = pd.DataFrame(
    {"entity_id": pd.Series(dtype=object), "converted_at": pd.Series(dtype="M8[ns]")}
)


def _run(series, cfg, converted=NONE, ids=("u1",)):
    state = empty_state()
    flags, states = [], []
    for day, scores in enumerate(series):
        frame = pd.DataFrame({"entity_id": list(ids), "score": np.atleast_1d(scores)})
        frame = frame[frame["score"].notna()]
        state = advance(state, frame, T0 + timedelta(days=day), converted, cfg, 0.5)
        states.append(state)
        flags.append(bool(state.set_index("entity_id")["is_pql"].get(ids[0], False)))
    return flags, states


def test_wobbling_score_flips_once_per_crossing():
    """Check that a score wobbling around the threshold flips the flag at most once per crossing."""
    rng = np.random.default_rng(0)
    # up above 0.5 for 30 days (wobbling +-0.05 around 0.5 after day 10), then far down
    up = 0.5 + rng.uniform(-0.05, 0.05, 40)
    down = 0.2 + rng.uniform(-0.05, 0.05, 40)
    cfg = LifecycleConfig(exit_ratio=0.8, min_pql_time="0d", cooldown="0d")
    flags, _ = _run(np.concatenate([[0.1] * 5, up, down, up]), cfg)
    flips = int(np.sum(np.diff(np.array(flags, dtype=int)) != 0))
    # three real crossings: in, out, in; the wobble around 0.5 adds none
    assert flips == 3
    # without hysteresis the same series flaps many times
    naive = np.concatenate([[0.1] * 5, up, down, up]) >= 0.5
    assert int(np.sum(np.diff(naive.astype(int)) != 0)) > 10


def test_status_changed_at_moves_only_on_flips():
    """Check that status_changed_at is the time of the last flip, not of the last run."""
    cfg = LifecycleConfig(exit_ratio=0.5, min_pql_time="0d", cooldown="0d")
    _, states = _run([0.1, 0.6, 0.45, 0.55, 0.1], cfg)
    changed = [s["status_changed_at"].iloc[0] for s in states]
    assert pd.isna(changed[0])
    assert changed[1] == changed[2] == changed[3] == pd.Timestamp(T0 + timedelta(days=1))
    assert changed[4] == pd.Timestamp(T0 + timedelta(days=4))


def test_minimum_time_and_cooldown():
    """Check that a PQL stays min_pql_time whatever its score and re-enters only after cooldown."""
    cfg = LifecycleConfig(exit_ratio=1.0, min_pql_time="3d", cooldown="5d")
    flags, _ = _run([0.9, 0.1, 0.1, 0.1, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9], cfg)
    # in on day 0, held to day 2, out on day 3; back only on day 8 (3 + 5)
    assert flags == [True, True, True, False, False, False, False, False, True, True]


def test_conversion_suppresses_and_unscored_expires():
    """Check that a converted PQL leaves as 'converted' for good and an unscored one 'expired'."""
    cfg = LifecycleConfig(min_pql_time="0d", cooldown="0d")
    conv = pd.DataFrame(
        {"entity_id": ["u1"], "converted_at": [pd.Timestamp(T0 + timedelta(days=2))]}
    )
    flags, states = _run([0.9, 0.9, 0.9, 0.9], cfg, converted=conv)
    assert flags == [True, True, False, False]
    assert states[-1]["status"].iloc[0] == "converted"
    flags, states = _run([[0.9, 0.1], [None, 0.1]], cfg, ids=("u1", "u2"))
    last = states[-1].set_index("entity_id")
    assert last.loc["u1", "status"] == "expired" and not last.loc["u1", "is_pql"]
    assert "u2" in last.index  # still scored
    assert flags == [True, False]
