"""Tests of the exact conversion chance of scored rows (propensity.simulate.expect)."""

from __future__ import annotations

import json
from datetime import timedelta

import numpy as np
import pandas as pd
import pytest

from propensity.errors import DataContractError
from propensity.simulate.contact import apply_contact_effect
from propensity.simulate.conversion import NEVER, draw_conversions
from propensity.simulate.expect import TruthWorld, expected_conversion, read_truth_world

DAY = 86_400
H = timedelta(days=30)
T0 = pd.Timestamp("2025-03-01")
N = 200_000


def _draws(p: float, seed: int = 3) -> np.ndarray:
    """Natural payment times (seconds after T0; inf: never) of N candidates with cutoff T0."""
    rng = np.random.default_rng(seed)
    at = draw_conversions(rng, np.full(N, p), np.zeros(N, np.int64), 30 * DAY, np.ones(N, bool))
    return np.where(at == NEVER, np.inf, at.astype(float))


def _world(p: float, n: int = 1) -> TruthWorld:
    users = pd.DataFrame(
        {"cutoff_s": T0.timestamp(), "p_true": p, "candidate": True, "paid_s": np.inf},
        index=[f"u{i}" for i in range(n)],
    )
    return TruthWorld(users, H)


def _chance(p: float, as_of: pd.Timestamp, **contact) -> float:
    rows = pd.Series(["u0"])
    return float(expected_conversion(_world(p), rows, pd.Series([as_of]), H, **contact)[0])


@pytest.mark.parametrize("days", [-3, 0, 5, 20, 29.5, 45])
def test_expectation_matches_the_simulators_draws(days):
    """Check that the chance of paying in (a, a + 30d] given no payment by a equals the share
    of the simulator's own draws that do, before, at and after the cutoff."""
    t = _draws(0.3)
    a = days * DAY
    alive = t > a
    hit = (t[alive] <= a + 30 * DAY).mean()
    se = np.sqrt(hit * (1 - hit) / alive.sum())
    assert _chance(0.3, T0 + pd.Timedelta(days=days)) == pytest.approx(hit, abs=4 * se + 1e-4)


def test_expectation_adds_the_contact_effect_exactly():
    """Check that with a contact effect the chance equals the share of rows converting after
    apply_contact_effect, for rows at, after and before the contact."""
    t = _draws(0.25, seed=4)
    ids = [f"u{i}" for i in range(N)]
    paid = np.isfinite(t)
    natural = pd.DataFrame(
        {
            "user_id": np.array(ids)[paid],
            "converted_at": T0 + pd.to_timedelta(t[paid], unit="s"),
        }
    )
    c = T0 + pd.Timedelta(days=5)
    contacts = pd.DataFrame({"entity_id": ids, "contacted_at": c})
    done = apply_contact_effect(natural, contacts, 0.3, H, seed=2)
    first = done.conversions.groupby("user_id")["converted_at"].min()
    first = first.reindex(ids).to_numpy(dtype="datetime64[ns]")
    for day in (5, 15, 40, 2):
        a = T0 + pd.Timedelta(days=day)
        alive = t > day * DAY  # scored at a: not paid by a in the natural world
        hit = ((first > a) & (first <= a + H))[alive].mean()
        se = np.sqrt(hit * (1 - hit) / alive.sum())
        found = _chance(0.25, a, contacted_at=pd.Series([c]), effect=0.3, contact_horizon=H)
        assert found == pytest.approx(hit, abs=4 * se + 1e-4), day


def test_known_payers_and_unknown_entities():
    """Check that users who cannot pay later get 0 or 1 from their known payment, and that
    an entity the world does not know gets NaN."""
    users = pd.DataFrame(
        {
            "cutoff_s": T0.timestamp(),
            "p_true": 0.2,
            "candidate": [False, False, True],
            "paid_s": [(T0 + pd.Timedelta(days=3)).timestamp(), np.inf, 0.0],
        },
        index=["early", "bot", "paid_before"],
    )
    world = TruthWorld(users, H)
    ids = pd.Series(["early", "early", "bot", "paid_before", "nobody"])
    as_of = pd.Series([T0, T0 + pd.Timedelta(days=4), T0, T0, T0])
    got = expected_conversion(world, ids, as_of, H)
    np.testing.assert_array_equal(got[:4], [1.0, 0.0, 0.0, 0.0])
    assert np.isnan(got[4])


def test_read_truth_world_refuses_what_it_cannot_know(tmp_path):
    """Check that a folder without a truth, or a day-only world, is refused with a message
    that names the folder."""
    with pytest.raises(DataContractError, match="lacks truth.parquet, oracle.json"):
        read_truth_world(tmp_path)
    pd.DataFrame(
        {
            "user_id": ["u"],
            "cutoff_at": [T0],
            "p_true": [0.1],
            "reason": [None],
            "converted_at": [pd.NaT],
        }
    ).to_parquet(tmp_path / "truth.parquet")
    settings = {"horizon_seconds": 30 * DAY, "world": {"day_only": True}}
    (tmp_path / "oracle.json").write_text(json.dumps({"settings": settings}))
    with pytest.raises(DataContractError, match="day-only world"):
        read_truth_world(tmp_path)
    settings["world"]["day_only"] = False
    (tmp_path / "oracle.json").write_text(json.dumps({"settings": settings}))
    world = read_truth_world(tmp_path)
    assert world.horizon == H and world.users.loc["u", "candidate"]
