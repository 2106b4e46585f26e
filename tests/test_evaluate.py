"""Tests for propensity.evaluate: hand-computed metrics on tiny inputs."""

from __future__ import annotations

import math

import numpy as np
import pytest

from propensity.evaluate import (
    FlagMetrics,
    bootstrap_flag_metrics,
    bootstrap_roc_auc,
    expected_calibration_error,
    flag_metrics,
    gains_curve,
    ranking_metrics,
    reliability_curve,
)

Y6 = [0, 0, 1, 1, 1, 0]
P6 = [0.1, 0.2, 0.3, 0.7, 0.8, 0.9]
# bootstrap_roc_auc of test_bootstrap_roc_auc_pinned_values, computed before its runs rewrite
PINNED_AUC_INTERVAL = (0.8665237886876949, 0.8868207093415341)


def test_ece_six_rows_two_bins():
    """Check that ECE on 6 rows and 2 bins is the count-weighted gap |0.2-1/3|, |0.8-2/3|."""
    assert expected_calibration_error(Y6, P6, bins=2) == pytest.approx(2 / 15)


def test_ece_six_rows_ten_bins():
    """Check that ECE with one row per bin is the mean absolute error."""
    expected = np.mean(np.abs(np.array(P6) - np.array(Y6)))
    assert expected_calibration_error(Y6, P6, bins=10) == pytest.approx(expected)


def test_reliability_curve_skips_empty_bins_and_puts_one_in_last_bin():
    """Check that empty bins are left out and p == 1 lands in the last bin."""
    curve = reliability_curve([0, 1, 1], [0.05, 1.0, 0.95], bins=4)
    assert curve["bin"].tolist() == [0, 3]
    assert curve["count"].tolist() == [1, 2]
    assert curve["mean_predicted"].tolist() == pytest.approx([0.05, 0.975])
    assert curve["fraction_positive"].tolist() == [0.0, 1.0]


def test_ranking_metrics_values():
    """Check AUC, AP, log loss and Brier on the 6-row example against hand computation."""
    m = ranking_metrics(Y6, P6, bins=2)
    # positive scores 0.3, 0.7, 0.8 vs negatives 0.1, 0.2, 0.9: 6 of 9 pairs ordered right
    assert m["roc_auc"] == pytest.approx(6 / 9)
    # ranking 0.9(0) 0.8(1) 0.7(1) 0.3(1): precision at each hit 1/2, 2/3, 3/4
    assert m["average_precision"] == pytest.approx((1 / 2 + 2 / 3 + 3 / 4) / 3)
    p, y = np.array(P6), np.array(Y6)
    assert m["log_loss"] == pytest.approx(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))
    assert m["brier"] == pytest.approx((0.01 + 0.04 + 0.49 + 0.09 + 0.04 + 0.81) / 6)
    assert m["ece"] == pytest.approx(2 / 15)


def test_ranking_metrics_single_class_gives_nan_ranking():
    """Check that one class gives NaN AUC and AP instead of an error."""
    m = ranking_metrics([0, 0, 0], [0.1, 0.2, 0.3])
    assert math.isnan(m["roc_auc"]) and math.isnan(m["average_precision"])
    assert m["brier"] == pytest.approx((0.01 + 0.04 + 0.09) / 3)


@pytest.mark.parametrize(
    ("y", "p", "match"),
    [
        ([0, 1], [0.5], "same length"),
        ([0, 2], [0.5, 0.5], "only 0 and 1"),
        ([0, 1], [0.5, float("nan")], "NaN"),
    ],
)
def test_bad_inputs(y, p, match):
    """Check that malformed inputs raise with a message naming the problem."""
    with pytest.raises(ValueError, match=match):
        ranking_metrics(y, p)


def test_flag_metrics_hand_example():
    """Check volume, precision, recall and lift of a flag on 10 rows over 2 weeks."""
    y = [1, 1, 1, 0, 0, 0, 0, 0, 0, 0]
    f = [1, 1, 0, 1, 0, 0, 0, 0, 0, 0]
    m = flag_metrics(y, f, weeks=2.0)
    assert m == FlagMetrics(
        n_flagged=3,
        per_week=1.5,
        precision=pytest.approx(2 / 3),
        recall=pytest.approx(2 / 3),
        lift=pytest.approx((2 / 3) / 0.3),
        conversions_captured=2,
        base_rate=pytest.approx(0.3),
    )


def test_flag_metrics_nothing_flagged_and_bad_weeks():
    """Check that no flags gives NaN precision and that weeks <= 0 is refused."""
    m = flag_metrics([1, 0], [0, 0], weeks=1.0)
    assert m.n_flagged == 0 and math.isnan(m.precision) and m.recall == 0.0
    with pytest.raises(ValueError, match="weeks must be a positive"):
        flag_metrics([1, 0], [1, 0], weeks=0.0)


def test_bootstrap_is_seeded_and_brackets_the_estimate():
    """Check that bootstrap intervals are deterministic per seed and contain the estimate."""
    rng = np.random.default_rng(0)
    y = rng.random(2000) < 0.1
    f = np.where(y, rng.random(2000) < 0.6, rng.random(2000) < 0.05)
    a = bootstrap_flag_metrics(y, f, weeks=4.0, n=300, seed=7)
    b = bootstrap_flag_metrics(y, f, weeks=4.0, n=300, seed=7)
    assert a == b
    point = flag_metrics(y, f, weeks=4.0)
    for key in ("precision", "recall", "lift", "per_week"):
        low, high = a[key]
        assert low < getattr(point, key) < high
    # the total row count is fixed, so n_flagged / weeks == per_week in every replicate
    assert a["per_week"][0] == pytest.approx(a["n_flagged"][0] / 4.0)


def test_bootstrap_zero_replicates_gives_nan():
    """Check that n=0 bootstrap replicates gives NaN intervals rather than an error."""
    out = bootstrap_flag_metrics([1, 0], [1, 0], weeks=1.0, n=0)
    assert all(math.isnan(lo) and math.isnan(hi) for lo, hi in out.values())


def _pairwise_bootstrap_auc(y, p, n, seed):
    """The definition: per replicate, draw rows, count every drawn (positive, negative) pair."""
    y, p = np.asarray(y, dtype=float), np.asarray(p, dtype=float)
    rng = np.random.default_rng(seed)
    values = np.full(n, np.nan)
    for i in range(n):
        idx = rng.integers(0, y.size, y.size)
        pos, neg = p[idx][y[idx] == 1], p[idx][y[idx] == 0]
        if pos.size and neg.size:
            twice = int(2 * (pos[:, None] > neg).sum() + (pos[:, None] == neg).sum())
            values[i] = 0.5 * twice / (float(pos.size) * float(neg.size))
    if np.isnan(values).all():
        return (math.nan, math.nan)
    low, high = np.nanpercentile(values, [2.5, 97.5])
    return (float(low), float(high))


@pytest.mark.parametrize("rows", [1, 2, 9, 60, 301])
@pytest.mark.parametrize("scores", ["distinct", "rounded", "constant", "half_tied"])
def test_bootstrap_roc_auc_equals_counting_every_pair(rows, scores):
    """Check that the bootstrap AUC interval is bit-identical to counting every drawn pair."""
    rng = np.random.default_rng(rows)
    for rate in (0.0, 0.1, 0.5, 1.0):
        y = (rng.random(rows) < rate).astype(int)
        p = {
            "distinct": rng.random(rows) + 0.3 * y,
            "rounded": np.round(rng.random(rows) * 0.5 + 0.4 * y * rng.random(rows), 1),
            "constant": np.full(rows, 0.25),
            "half_tied": np.where(rng.random(rows) < 0.5, 0.5, rng.random(rows)),
        }[scores]
        for seed in (0, 7):
            got = bootstrap_roc_auc(y, p, n=40, seed=seed)
            want = _pairwise_bootstrap_auc(y, p, 40, seed)
            assert np.array_equal(got, want, equal_nan=True), (rate, seed, got, want)


def test_bootstrap_roc_auc_pinned_values():
    """Check that the interval stays exactly what it was (same draws, same arithmetic)."""
    rng = np.random.default_rng(3)
    y = rng.random(5000) < 0.2
    p = np.round(rng.random(5000) * 0.6 + 0.3 * y, 3)
    assert bootstrap_roc_auc(y, p, n=100, seed=11) == PINNED_AUC_INTERVAL


def test_bootstrap_roc_auc_undefined_gives_nan():
    """Check that a single class or no replicates gives a NaN interval, not an error."""
    assert all(math.isnan(v) for v in bootstrap_roc_auc([1, 1, 1], [0.1, 0.2, 0.3]))
    assert all(math.isnan(v) for v in bootstrap_roc_auc([0, 1], [0.1, 0.2], n=0))


def test_gains_curve_handles_ties():
    """Check that tied scores enter the gains curve together at one threshold."""
    g = gains_curve([1, 0, 1, 0], [0.9, 0.8, 0.8, 0.1])
    assert g["fraction_flagged"].tolist() == [0.25, 0.75, 1.0]
    assert g["fraction_captured"].tolist() == [0.5, 1.0, 1.0]
    assert g["lift"].tolist() == pytest.approx([2.0, 4 / 3, 1.0])
    assert g["threshold"].tolist() == [0.9, 0.8, 0.1]
