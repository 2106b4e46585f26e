"""Tests for propensity.model.calibrate: isotonic and sigmoid maps, serialised without pickle."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.base import clone

from propensity.config import CalibrationConfig
from propensity.errors import ModelError
from propensity.evaluate import expected_calibration_error
from propensity.model.calibrate import Calibrator, fit_calibrator


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
    """Check the isotonic fit by hand: [0, 1, 0, 1] pools the middle pair to 0.5 each.

    The end steps of one row each (0 of 1, 1 of 1) read (k + 1/2) / (n + 1): 0.25 and 0.75.
    """
    cal = Calibrator(method="isotonic").fit([0.1, 0.2, 0.3, 0.4], [0, 1, 0, 1])
    got = cal.predict([0.0, 0.1, 0.25, 0.35, 0.4, 0.9])
    # within the 1e-6 tie-breaking slope that keeps the raw ranking
    assert got.tolist() == pytest.approx([0.25, 0.25, 0.5, 0.625, 0.75, 0.75], abs=1e-6)


def test_isotonic_never_writes_exactly_one():
    """Check that a top step of all positives reads below 1 (and a bottom one above 0)."""
    rng = np.random.default_rng(0)
    p_raw = np.sort(rng.uniform(0, 1, 2000))
    y = (p_raw > 0.9).astype(int)  # every row above 0.9 paid: a step at exactly 1
    cal = Calibrator(method="isotonic").fit(p_raw, y)
    p = cal.predict(np.linspace(0, 1, 101))
    assert p.max() < 1.0 and p.min() > 0.0
    assert p.max() == pytest.approx(199.5 / 200, abs=1e-5)  # 199 of 199 paid


@pytest.mark.parametrize("method", ["sigmoid", "isotonic", "auto"])
def test_a_calibrator_never_inverts_the_ranking(method):
    """Check that a score anti-correlated with the outcome gets identity, not a flipped map.

    This is the 600-user export of issue 13: a sigmoid slope of -34 turned ROC AUC 0.05 into a
    printed 0.95.
    """
    rng = np.random.default_rng(1)
    p_raw = rng.uniform(0.01, 0.99, 3000)
    y = (rng.random(3000) < 1 - p_raw).astype(int)
    cal = Calibrator(method=method, isotonic_min_positives=10).fit(p_raw, y)
    assert cal.method_ == "identity"
    grid = np.linspace(0.01, 0.99, 99)
    assert np.all(np.diff(cal.predict(grid)) > 0)


def test_auto_keeps_raw_scores_that_are_already_calibrated():
    """Check that auto keeps identity when no map beats the raw scores on held-out folds."""
    rng = np.random.default_rng(2)
    p_raw = rng.uniform(0.0, 0.5, 3000)
    y = (rng.random(3000) < p_raw).astype(int)
    cal = Calibrator(method="auto", random_state=3).fit(p_raw, y)
    assert cal.method_ == "identity", cal.cv_log_loss_
    assert set(cal.cv_log_loss_) == {"identity", "sigmoid", "isotonic"}


def test_auto_fixes_a_miscalibrated_score():
    """Check that auto learns a map (method_) for a distorted score, and is seeded."""
    score, y = _miscalibrated(5_000, seed=4)
    a = Calibrator(method="auto", random_state=1).fit(score, y)
    b = clone(a).fit(score, y)
    assert a.method_ in ("sigmoid", "isotonic")
    assert a.cv_log_loss_[a.method_] < a.cv_log_loss_["identity"]
    assert a.to_dict() == b.to_dict()
    assert a.get_params() == {
        "cv": 5,
        "isotonic_min_positives": 500,
        "method": "auto",
        "random_state": 1,
    }


@pytest.mark.parametrize("method", ["isotonic", "sigmoid", "identity"])
def test_round_trip_through_json_is_exact(method):
    """Check that to_dict -> JSON -> from_dict predicts bit-for-bit the same."""
    score, y = _miscalibrated(5_000, seed=3)
    cal = Calibrator(method=method).fit(score, y)
    back = Calibrator.from_dict(json.loads(json.dumps(cal.to_dict())))
    grid = np.linspace(0, 1, 1001)
    assert np.array_equal(back.predict(grid), cal.predict(grid))


def test_auto_tries_isotonic_only_with_enough_positives():
    """Check that auto judges isotonic only at >= isotonic_min_positives positives."""
    score, y = _miscalibrated(3_000, seed=5)
    many = CalibrationConfig(method="auto", isotonic_min_positives=int(y.sum()))
    few = CalibrationConfig(method="auto", isotonic_min_positives=int(y.sum()) + 1)
    assert "isotonic" in fit_calibrator(score, y, many).cv_log_loss_
    assert "isotonic" not in fit_calibrator(score, y, few).cv_log_loss_
    assert fit_calibrator(score, y, CalibrationConfig(method="sigmoid")).method_ == "sigmoid"


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


def _held_out_losses_fold_by_fold(p, y, candidates, seed):
    """The held-out judgement of ``auto`` as its definition: each fold fitted from scratch."""
    from sklearn.model_selection import StratifiedKFold

    losses = dict.fromkeys(candidates, 0.0)
    for fit_idx, held in StratifiedKFold(5, shuffle=True, random_state=seed).split(p, y):
        for name in candidates:
            part = Calibrator(method=name).fit(p[fit_idx], y[fit_idx])
            q = np.clip(part.predict(p[held]), 1e-6, 1 - 1e-6)
            loss = float(-np.mean(y[held] * np.log(q) + (1 - y[held]) * np.log1p(-q)))
            losses[name] += loss * held.size / y.size
    return losses


@pytest.mark.parametrize("rounded", [False, True])
def test_auto_shares_the_logit_and_sort_across_folds_exactly(rounded):
    """Check that auto's held-out losses equal fitting each fold from scratch, to the bit."""
    p, y = _miscalibrated(3_000, seed=5)
    p = np.round(p, 2) if rounded else p  # ties in the score, across outcomes
    cal = Calibrator(method="auto", isotonic_min_positives=100, random_state=3).fit(p, y)
    want = _held_out_losses_fold_by_fold(p, y, ["identity", "sigmoid", "isotonic"], 3)
    assert cal.cv_log_loss_ == want


def test_isotonic_fit_does_not_depend_on_the_row_order():
    """Check that isotonic breakpoints are the same for shuffled and sorted rows (ties too)."""
    p, y = _miscalibrated(4_000, seed=6)
    p = np.round(p, 2)
    order = np.random.default_rng(0).permutation(p.size)
    sort = np.lexsort((y, p))
    a = Calibrator(method="isotonic").fit(p[order], y[order]).to_dict()
    b = Calibrator(method="isotonic").fit(p[sort], y[sort]).to_dict()
    assert a == b and a["method"] == "isotonic"


def test_platt_fit_is_the_same_whatever_the_blas_threads():
    """Check that the sigmoid map is bit for bit the same with one BLAS thread and with the
    machine's: np.dot of long vectors rounds by thread count (with it, b moved in its last bits
    on every seed of these scores); the fit sums pairwise instead."""
    from threadpoolctl import threadpool_limits

    from propensity.model.calibrate import _fit_platt, _logit

    rng = np.random.default_rng(0)
    p = rng.beta(0.5, 8, size=1_000_000)  # raw scores like a model's: mostly small, calibrated
    y = (rng.random(p.size) < p).astype(float)
    machine = _fit_platt(_logit(p), y)
    with threadpool_limits(limits=1, user_api="blas"):
        one = _fit_platt(_logit(p), y)
    assert machine == one
    assert machine[0] == pytest.approx(1, abs=0.02) and machine[1] == pytest.approx(0, abs=0.02)
