"""Tests for propensity.compare: the model and the rules side by side, at equal volume."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from propensity.baselines import PointsBaseline, RuleBaseline
from propensity.compare import (
    chart_points,
    compare,
    gains_chart_data,
    paired_bootstrap_difference,
    rule_points,
    top_k_flags,
)
from propensity.errors import DataContractError
from propensity.evaluate import bootstrap_flag_metrics, gains_curve
from propensity.figures import plot_comparison


@pytest.fixture
def test_frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "a": [1.0, 0.0, 1.0, 1.0, 1.0, 0.0, 0.0, 0.0],
            "label": [1, 1, 1, 0, 0, 0, 0, 0],
        }
    )


SCORES = np.array([0.9, 0.8, 0.3, 0.7, 0.2, 0.2, 0.1, 0.1])


# --- equal-volume matching -----------------------------------------------------------------


def test_top_k_flags_exactly_k_with_ties_broken_by_seed():
    """Check that exactly k rows are flagged: all above the boundary, a seeded pick of the tie."""
    scores = [0.9, 0.5, 0.5, 0.5, 0.1]
    for seed in range(20):
        flags = top_k_flags(scores, 2, seed=seed)
        assert flags.sum() == 2 and flags[0] and not flags[4]
        assert flags[1:4].sum() == 1
        np.testing.assert_array_equal(flags, top_k_flags(scores, 2, seed=seed))  # reproducible
    assert top_k_flags(scores, 0).sum() == 0
    assert top_k_flags(scores, 5).all()
    assert top_k_flags(scores, 4).tolist() == [True, True, True, True, False]


def test_top_k_tie_break_is_uniform_over_seeds():
    """Check that each tied row is picked about equally often across seeds (no row-order bias)."""
    scores = [0.5, 0.5, 0.5, 0.9]
    picks = np.array([top_k_flags(scores, 2, seed=s)[:3] for s in range(600)]).sum(axis=0)
    assert picks.sum() == 600
    np.testing.assert_allclose(picks / 600, 1 / 3, atol=0.06)


@pytest.mark.parametrize(("k", "match"), [(-1, "between 0 and"), (6, "between 0 and")])
def test_top_k_rejects_bad_k(k, match):
    """Check that k outside [0, n] is a clear error."""
    with pytest.raises(ValueError, match=match):
        top_k_flags([0.1] * 5, k)


# --- paired bootstrap ----------------------------------------------------------------------


def test_paired_bootstrap_tiny_known_answer():
    """Check a two-row case whose bootstrap distribution is known exactly.

    Row 0 is a payer flagged by a only, row 1 a non-payer flagged by b only. In a resample of
    two rows, row 0 appears 0, 1 or 2 times (probabilities 1/4, 1/2, 1/4), so conversions
    a - b ranges over 0..2; the precision difference is defined only when both rows appear,
    and is then exactly 1 - 0.
    """
    out = paired_bootstrap_difference([1, 0], [True, False], [False, True], n=2000, seed=0)
    assert out["conversions_captured"] == (0.0, 2.0)
    assert out["precision"] == (1.0, 1.0)


def test_paired_bootstrap_identical_flags_is_exactly_zero():
    """Check that pairing cancels what two flags share, where separate intervals are wide."""
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 300)
    flags = rng.random(300) < 0.3
    out = paired_bootstrap_difference(y, flags, flags, n=500, seed=3)
    assert out == {"precision": (0.0, 0.0), "conversions_captured": (0.0, 0.0)}
    low, high = bootstrap_flag_metrics(y, flags, weeks=1.0, n=500, seed=3)["precision"]
    assert high - low > 0.1


def test_paired_bootstrap_matches_the_analytic_interval():
    """Check conversions a - b against the normal approximation of the multinomial.

    1,000 of 10,000 rows are payers flagged only by a, 500 payers flagged only by b: the
    difference has mean n (p1 - p2) = 500 and variance n (p1 + p2 - (p1 - p2) ** 2) = 1475.
    """
    n = 10_000
    y = np.zeros(n, dtype=int)
    a = np.zeros(n, dtype=bool)
    b = np.zeros(n, dtype=bool)
    y[:1500] = 1
    a[:1000] = True
    b[1000:1500] = True
    b[5000:5500] = True  # non-payers flagged by b, to make its precision 0.5
    out = paired_bootstrap_difference(y, a, b, n=4000, seed=0)
    sd = math.sqrt(n * (0.15 - 0.05**2))
    expected = (500 - 1.96 * sd, 500 + 1.96 * sd)
    np.testing.assert_allclose(out["conversions_captured"], expected, atol=6)
    # precision a = 1, precision b ~ 0.5 with sd sqrt(0.25 / 1000) = 0.0158
    np.testing.assert_allclose(out["precision"], (0.5 - 0.031, 0.5 + 0.031), atol=0.006)


def test_paired_bootstrap_rejects_mismatched_lengths():
    """Check that flags of different lengths are a clear error."""
    with pytest.raises(ValueError, match="same length"):
        paired_bootstrap_difference([1, 0], [True], [True, False])


# --- the comparison table ------------------------------------------------------------------


def test_compare_hand_computed(test_frame):
    """Check every headline number of a rule, the model, and the model at the rule's volume."""
    rule = RuleBaseline(expr="a >= 1", name="a1", description="has a").fit(test_frame)
    result = compare(test_frame, SCORES, 0.75, [rule], weeks=2.0, n_boot=200, seed=0)
    table = result.table.set_index("name")
    assert list(table.index) == ["model", "a1"]

    model = table.loc["model"]  # flags rows 0 and 1, both payers
    assert (model["kind"], model["n_flagged"], model["per_week"]) == ("model", 2, 1.0)
    assert (model["precision"], model["recall"], model["conversions_captured"]) == (1.0, 2 / 3, 2)
    assert model["lift"] == pytest.approx(1 / 0.375)
    assert math.isnan(model["precision_diff"])

    row = table.loc["a1"]  # flags rows 0, 2, 3, 4: two payers
    assert (row["kind"], row["description"], row["note"]) == ("rule", "has a", "")
    assert (row["n_flagged"], row["per_week"], row["precision"]) == (4, 2.0, 0.5)
    assert row["recall"] == pytest.approx(2 / 3) and row["lift"] == pytest.approx(0.5 / 0.375)
    assert row["base_rate"] == 0.375
    # the model's top 4 scores are rows 0, 1, 3, 2: three payers
    assert row["model_precision_same_volume"] == 0.75
    assert row["model_conversions_same_volume"] == 3
    assert row["precision_diff"] == 0.25 and row["conversions_diff"] == 1
    assert row["precision_diff_low"] <= 0.25 <= row["precision_diff_high"]
    assert row["conversions_diff_low"] <= 1 <= row["conversions_diff_high"]
    for metric in ("per_week", "precision", "recall", "lift", "conversions_captured"):
        assert row[f"{metric}_low"] <= row[metric] <= row[f"{metric}_high"]


def test_compare_same_volume_with_ties_at_the_boundary(test_frame):
    """Check that at a volume cutting through tied scores the model flags exactly k rows."""
    test_frame["b"] = [1.0, 1.0, 1.0, 1.0, 1.0, 0.0, 0.0, 0.0]
    rule = RuleBaseline(expr="b >= 1", name="five")
    # the top 5 take rows 0-3 and one of rows 4 and 5 (both 0.2, both non-payers)
    row = compare(test_frame, SCORES, 0.75, [rule], weeks=1.0, n_boot=50).table.iloc[1]
    assert row["n_flagged"] == 5
    assert row["model_conversions_same_volume"] == 3
    assert row["model_precision_same_volume"] == 0.6
    assert row["precision_diff"] == 0.0 and row["conversions_diff"] == 0


def test_compare_reports_rules_flagging_nobody_or_everybody(test_frame):
    """Check that degenerate rules are reported with a note and NaN or zero, not crashed on."""
    rules = [RuleBaseline(expr="a >= 5", name="none"), RuleBaseline(expr="a >= 0", name="all")]
    table = compare(test_frame, SCORES, 0.75, rules, weeks=1.0, n_boot=100).table.set_index("name")
    none, everybody = table.loc["none"], table.loc["all"]
    assert none["note"] == "flags nobody" and none["n_flagged"] == 0
    assert none["recall"] == 0.0 and none["conversions_captured"] == 0
    for col in ("precision", "lift", "model_precision_same_volume", "precision_diff"):
        assert math.isnan(none[col])
    assert math.isnan(none["precision_diff_low"]) and math.isnan(none["precision_diff_high"])
    assert none["conversions_diff"] == 0
    assert everybody["note"] == "flags everybody" and everybody["recall"] == 1.0
    assert everybody["precision"] == 0.375 and everybody["precision_diff"] == 0.0
    assert (everybody["precision_diff_low"], everybody["precision_diff_high"]) == (0.0, 0.0)


def test_compare_fits_unfitted_baselines_on_a_clone(test_frame):
    """Check that an unfitted baseline is cloned and fitted, leaving the caller's object alone."""
    points = PointsBaseline(conditions=[{"when": "a >= 1", "points": 5}], threshold=5, name="p")
    table = compare(test_frame, SCORES, 0.75, [points], weeks=1.0, n_boot=20).table
    assert table.loc[1, "kind"] == "points" and table.loc[1, "n_flagged"] == 4
    assert not hasattr(points, "threshold_")


def test_compare_is_deterministic(test_frame):
    """Check that the same seed gives the same table."""
    rule = RuleBaseline(expr="a >= 1", name="a1")
    first = compare(test_frame, SCORES, 0.75, [rule], weeks=1.0, n_boot=100, seed=7).table
    second = compare(test_frame, SCORES, 0.75, [rule], weeks=1.0, n_boot=100, seed=7).table
    pd.testing.assert_frame_equal(first, second)


def test_gains_and_rule_points(test_frame):
    """Check the chart data: the model's gains curve plus one point per scorer."""
    rule = RuleBaseline(expr="a >= 1", name="a1")
    result = compare(test_frame, SCORES, 0.75, [rule], weeks=1.0, n_boot=10)
    pd.testing.assert_frame_equal(result.gains, gains_curve(test_frame["label"], SCORES))
    points = result.rule_points.set_index("name")
    assert list(points.columns) == [
        "kind",
        "fraction_flagged",
        "fraction_captured",
        "precision",
        "lift",
    ]
    assert points.loc["a1", "fraction_flagged"] == 0.5
    assert points.loc["a1", "fraction_captured"] == pytest.approx(2 / 3)
    assert points.loc["model", "fraction_flagged"] == 0.25
    curve, dots = gains_chart_data([1, 0, 1, 0], [0.9, 0.8, 0.8, 0.1], {"r": [1, 1, 0, 0]})
    assert curve["fraction_captured"].tolist() == [0.5, 1.0, 1.0]
    assert dots.iloc[0][
        ["fraction_flagged", "fraction_captured", "precision", "lift"]
    ].tolist() == [0.5, 0.5, 0.5, 1.0]
    assert math.isnan(rule_points([0, 0], {"r": [True, False]})["fraction_captured"].iloc[0])


@pytest.mark.parametrize(
    ("change", "match"),
    [
        (lambda f, s: (f.drop(columns="label"), s), "'label' column"),
        (lambda f, s: (f.assign(label=[1, 1, 1, 0, 0, 0, 0, np.nan]), s), "1 rows hold"),
        (lambda f, s: (f.assign(label=[2, 1, 1, 0, 0, 0, 0, 0]), s), "only 0 and 1"),
        (lambda f, s: (f, s[:-1]), "one non-NaN score per test row \\(8\\)"),
        (lambda f, s: (f, np.where(s > 0.85, np.nan, s)), "with 1 NaNs"),
    ],
)
def test_compare_rejects_bad_inputs(test_frame, change, match):
    """Check that a bad test frame or score vector raises DataContractError naming the fix."""
    frame, scores = change(test_frame, SCORES)
    with pytest.raises(DataContractError, match=match):
        compare(frame, scores, 0.5, [], weeks=1.0)


def test_compare_rejects_duplicate_names(test_frame):
    """Check that two baselines with one name are refused, since rows are keyed by name."""
    rules = [RuleBaseline(expr="a >= 1", name="x"), RuleBaseline(expr="a >= 0", name="x")]
    with pytest.raises(DataContractError, match="repeated: \\['x'\\]"):
        compare(test_frame, SCORES, 0.5, rules, weeks=1.0)


def test_plot_comparison_draws_each_rule_as_a_point(test_frame):
    """Check that the gains chart shows the model curve and one marker per scorer."""
    rules = [RuleBaseline(expr="a >= 1", name="a1"), RuleBaseline(expr="a >= 5", name="none")]
    result = compare(test_frame, SCORES, 0.75, rules, weeks=1.0, n_boot=10)
    assert chart_points(result.rule_points) == [
        ("model at threshold", 0.25, 2 / 3),
        ("a1", 0.5, 2 / 3),
        ("none", 0.0, 0.0),
    ]
    fig = plot_comparison(result, test_frame["label"], SCORES)
    gains_ax = fig.axes[0]
    labels = [c.get_label() for c in gains_ax.collections]
    assert labels == ["model at threshold", "a1", "none"]
