"""Tests for propensity.drift: PSI per feature and score, vocabulary overlap."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from propensity.drift import fit_drift_reference, psi, psi_table, vocabulary_drift


def test_psi_hand_computed():
    """Check PSI on a tiny hand-computed example, with nulls in their own bin and epsilon."""
    train = pd.DataFrame({"x": [1.0, 2.0, 3.0, 4.0]})
    ref = fit_drift_reference(train, ["x"], bins=2)
    assert ref["features"]["x"]["edges"] == [2.5]
    assert ref["features"]["x"]["shares"] == [0.5, 0.5, 0.0]
    score = pd.DataFrame({"x": [1.0, 5.0, 6.0, np.nan]})  # shares 0.25, 0.5, 0.25 (null)
    table = psi_table(ref, score)
    expected = 0.25 * math.log(2) + (0.25 - 1e-4) * math.log(0.25 / 1e-4)
    assert table.loc[0, "feature"] == "x"
    assert table.loc[0, "psi"] == pytest.approx(expected, abs=1e-12)
    assert bool(table.loc[0, "flag"]) is True


def test_psi_function_and_identical_distribution():
    """Check the PSI formula and that a frame against its own reference gives 0."""
    assert psi(np.array([0.5, 0.5]), np.array([0.25, 0.75])) == pytest.approx(
        -0.25 * math.log(0.5) + 0.25 * math.log(1.5)
    )
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"a": rng.normal(size=500), "b": rng.poisson(1.0, 500).astype(float)})
    ref = fit_drift_reference(frame, ["a", "b"], scores=rng.uniform(size=500), bins=10)
    table = psi_table(ref, frame)
    assert table["psi"].abs().max() < 1e-12 and not table["flag"].any()
    json.dumps(ref)  # JSON-able


def test_constant_and_categorical_features():
    """Check a constant column (one bin) and a categorical with unseen and missing levels."""
    train = pd.DataFrame(
        {
            "const": [0.0] * 4,
            "cat": pd.Categorical(["a", "a", "b", "b"]),
        }
    )
    ref = fit_drift_reference(train, ["const", "cat"], bins=4)
    assert ref["features"]["const"]["edges"] == [0.0]
    assert ref["features"]["cat"]["levels"] == ["a", "b"]
    assert ref["features"]["cat"]["shares"] == [0.5, 0.5, 0.0, 0.0]
    now = pd.DataFrame({"const": [0.0] * 4, "cat": pd.Categorical(["a", "a", "c", None])})
    table = psi_table(ref, now, limit=0.1).set_index("feature")
    assert table.loc["const", "psi"] == pytest.approx(0.0)
    # shares now: a 0.5, b 0 (eps), other 0.25, missing 0.25
    expected = (1e-4 - 0.5) * math.log(1e-4 / 0.5) + 2 * (0.25 - 1e-4) * math.log(0.25 / 1e-4)
    assert table.loc["cat", "psi"] == pytest.approx(expected)
    assert table.loc["cat", "flag"] and not table.loc["const", "flag"]


def test_score_row_and_sorting():
    """Check the score row appears with kind 'score' and rows sort by PSI descending."""
    train = pd.DataFrame({"x": np.arange(100.0)})
    ref = fit_drift_reference(train, ["x"], scores=np.linspace(0, 1, 100), bins=5)
    table = psi_table(ref, train, scores=np.full(100, 0.99), limit=0.25)
    assert table["feature"].tolist() == ["score", "x"]
    assert table.loc[0, "kind"] == "score" and table.loc[0, "flag"]


def test_vocabulary_drift():
    """Check the unseen-event share, the flag and the listed types."""
    row = vocabulary_drift({"new_thing": 30, "beta_x": 10}, known_events=960, limit=0.03)
    assert row["share_unseen"] == pytest.approx(0.04)
    assert row["flag"] is True and math.isnan(row["psi"])
    assert row["detail"] == (
        "4.0% of 1000 scoring events have a type unseen in training: new_thing (30), beta_x (10)"
    )
    assert vocabulary_drift({}, 0)["share_unseen"] == 0.0


def test_bad_bins():
    """Check that fewer than two bins is refused with a message naming the parameter."""
    with pytest.raises(ValueError, match="'bins' parameter"):
        fit_drift_reference(pd.DataFrame({"x": [1.0]}), ["x"], bins=1)
