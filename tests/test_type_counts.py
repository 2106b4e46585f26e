"""Tests for the per-(row, event type) counts from sorted keys (features/type_counts.py): the
same spec and feature frame, bit for bit, as learning's SQL group-by."""

from __future__ import annotations

import numpy as np
import pytest
from test_sequence_stats import _cfg, _data, _same

from propensity.features import learn, learn_spec_and_features, rows


@pytest.mark.parametrize("narrow", [True, False])
@pytest.mark.parametrize(
    "families", [("counts", "activity", "transitions", "recency", "diversity"), ("counts",)]
)
@pytest.mark.parametrize("seed", range(3))
def test_type_counts_match_the_group_by(
    seed: int, families: tuple[str, ...], narrow: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Check that one row per user (every row learns: the counts serve the vocabulary and
    the features) gives the SQL group-by's spec and frame (ties, events at the cutoff, a user
    without events, 32- and 64-bit joins)."""
    if not narrow:
        monkeypatch.setattr(rows, "fits_int32", lambda frame: False)
    con, lt, _ = _data(seed, per_user=1)
    cfg = _cfg(families)
    made: list[bool] = []
    real = learn.materialise_type_counts
    monkeypatch.setattr(
        learn, "materialise_type_counts", lambda *a: made.append(real(*a)) or made[-1]
    )
    spec, fast = learn_spec_and_features(con, lt, cfg)
    assert made == [True], "the counts came from the sorted keys"
    monkeypatch.setattr(learn, "materialise_type_counts", lambda *a: False)
    spec_sql, slow = learn_spec_and_features(con, lt, cfg)
    assert spec == spec_sql and len(spec.events) == 5
    _same(fast.frame, slow.frame)
    assert np.isfinite(fast.frame.filter(like="count").to_numpy()).all()
