"""Tests for propensity.model.calibrate: isotonic and sigmoid maps, serialised without pickle."""

from __future__ import annotations

import json

import numpy as np
import pytest

from propensity.config import CalibrationConfig
from propensity.errors import ModelError
from propensity.evaluate import expected_calibration_error
from propensity.model.calibrate import Calibrator, fit_calibrator, resolve_method


def _miscalibrated(n: int, seed: int):
    """Outcomes from p = sigmoid(z), and an overconfident, shifted score sigmoid(2z + 1)."""
    rng = np.random.default_rng(seed)
    z = rng.normal(-1.0, 1.2, n)
    y = (rng.random(n) < 1 / (1 + np.exp(-z))).astype(int)
    return 1 / (1 + np.exp(-(2 * z + 1))), y


@pytest.mark.parametrize("method", ["isotonic", "sigmoid"])
def test_calibration_fixes_a_miscalibrated_score(method):
    """Check that both methods cut ECE of a distorted score to near zero on fresh data."""
    score_fit, y_fit = _miscalibrated(20_000, seed=0)
    score, y = _miscalibrated(50_000, seed=1)
    before = expected_calibration_error(y, score)
    after = expected_calibration_error(
        y, Calibrator(method=method).fit(score_fit, y_fit).predict(score)
    )
    assert before > 0.08
    assert after < 0.015


def test_sigmoid_recovers_the_known_map():
    """Check that Platt scaling on logit(score) = 2z + 1 finds a = 0.5, b = -0.5."""
    score, y = _miscalibrated(200_000, seed=2)
    cal = Calibrator(method="sigmoid").fit(score, y)
    assert cal.a_ == pytest.approx(0.5, abs=0.02)
    assert cal.b_ == pytest.approx(-0.5, abs=0.03)


def test_isotonic_pools_adjacent_violators():
    """Check the isotonic fit by hand: [0, 1, 0, 1] pools the middle pair to 0.5 each."""
    cal = Calibrator(method="isotonic").fit([0.1, 0.2, 0.3, 0.4], [0, 1, 0, 1])
    got = cal.predict([0.0, 0.1, 0.25, 0.35, 0.4, 0.9])
    # within the 1e-6 tie-breaking slope that keeps the raw ranking
    assert got.tolist() == pytest.approx([0.0, 0.0, 0.5, 0.75, 1.0, 1.0], abs=1e-6)


@pytest.mark.parametrize("method", ["isotonic", "sigmoid", "identity"])
def test_round_trip_through_json_is_exact(method):
    """Check that to_dict -> JSON -> from_dict predicts bit-for-bit the same."""
    score, y = _miscalibrated(5_000, seed=3)
    cal = Calibrator(method=method).fit(score, y)
    back = Calibrator.from_dict(json.loads(json.dumps(cal.to_dict())))
    grid = np.linspace(0, 1, 1001)
    assert np.array_equal(back.predict(grid), cal.predict(grid))


def test_auto_picks_isotonic_only_with_enough_positives():
    """Check that auto means isotonic at >= isotonic_min_positives positives, else sigmoid."""
    cfg = CalibrationConfig(method="auto", isotonic_min_positives=3)
    assert resolve_method(cfg, 3) == "isotonic"
    assert resolve_method(cfg, 2) == "sigmoid"
    assert resolve_method(CalibrationConfig(method="sigmoid"), 10_000) == "sigmoid"
    assert fit_calibrator([0.1, 0.2, 0.8, 0.9], [0, 1, 0, 1], cfg).method == "sigmoid"


@pytest.mark.parametrize(
    ("d", "match"),
    [
        ({"method": "spline"}, "must name a method"),
        ({"method": "sigmoid", "a": 1.0}, "lacks key 'b'"),
    ],
)
def test_bad_saved_calibrators_are_refused(d, match):
    """Check that a malformed calibrator.json raises ModelError saying what is wrong."""
    with pytest.raises(ModelError, match=match):
        Calibrator.from_dict(d)


def test_unfitted_and_bad_method():
    """Check that predicting unfitted or fitting an unknown method raises clearly."""
    with pytest.raises(ModelError, match="not fitted"):
        Calibrator(method="sigmoid").predict([0.5])
    with pytest.raises(ValueError, match="The 'method' parameter of Calibrator"):
        Calibrator(method="spline").fit([0.5], [1])


def test_isotonic_keeps_the_raw_ranking():
    """Check that isotonic calibration breaks its ties by the raw score, so AUC and AP survive."""
    from sklearn.metrics import average_precision_score, roc_auc_score

    rng = np.random.default_rng(5)
    p_raw = rng.uniform(0.01, 0.6, 5000)
    y = (rng.random(5000) < p_raw).astype(int)
    cal = Calibrator(method="isotonic").fit(p_raw, y)
    p = cal.predict(p_raw)
    assert roc_auc_score(y, p) == roc_auc_score(y, p_raw)
    assert average_precision_score(y, p) == average_precision_score(y, p_raw)
    assert np.abs(p - np.interp(p_raw, cal.x_, cal.y_)).max() <= 1e-6
