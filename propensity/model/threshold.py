"""Turn calibrated probabilities into a yes/no PQL flag, by a policy a sales team can reason about.

Policies (:class:`~propensity.config.ThresholdConfig`):

- ``capacity``: the team can work N PQLs a week; pick the threshold whose weekly volume on the
  test period is closest to N;
- ``precision``: the lowest threshold whose precision on the test period reaches the target (the
  most PQLs at that quality); when no threshold reaches it, the choice says so and falls back to
  the most precise threshold;
- ``expected_value``: contact when ``p * value > cost``, so the threshold is ``cost / value`` on
  calibrated probabilities (the one policy that needs no test data, only calibration);
- ``top_fraction``: flag the top X% of scores.

Scores tie (isotonic calibration is a step function), so volumes move in jumps; a threshold
``t`` flags every row with ``p >= t``.

>>> from propensity.config import ThresholdConfig
>>> cfg = ThresholdConfig(policy="top_fraction", top_fraction=0.5)
>>> choose_threshold([1, 0, 1, 0], [0.9, 0.7, 0.4, 0.1], weeks=1.0, cfg=cfg).threshold
0.7
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator

from propensity.config import ThresholdConfig
from propensity.evaluate import bootstrap_flag_metrics, flag_metrics, gains_curve

__all__ = ["ThresholdChoice", "ThresholdPolicy", "choose_threshold", "threshold_report"]


@dataclass(frozen=True)
class ThresholdChoice:
    """The chosen threshold, whether the policy's goal was reachable, and a note saying why."""

    policy: str
    threshold: float
    reachable: bool
    note: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class ThresholdPolicy(BaseEstimator):
    """The threshold policy as an estimator: ``fit(p, y)`` learns ``threshold_``.

    Parameters
    ----------
    cfg : ThresholdConfig
        The policy and its parameter.
    weeks : float
        Length of the period ``p`` covers (capacity is per week).

    Attributes
    ----------
    threshold_ : float
        Flag rows with ``p >= threshold_``.
    choice_ : ThresholdChoice
        The threshold with whether the goal was reachable and why.

    >>> from propensity.config import ThresholdConfig
    >>> cfg = ThresholdConfig(policy="top_fraction", top_fraction=0.5)
    >>> ThresholdPolicy(cfg=cfg, weeks=1.0).fit([0.9, 0.7, 0.4, 0.1], [1, 0, 1, 0]).threshold_
    0.7
    """

    def __init__(self, *, cfg: ThresholdConfig, weeks: float = 1.0) -> None:
        self.cfg = cfg
        self.weeks = weeks

    def fit(self, p: Any, y: Any) -> ThresholdPolicy:
        """Choose the threshold on calibrated probabilities ``p`` with outcomes ``y``."""
        self.choice_ = choose_threshold(y, p, self.weeks, self.cfg)
        self.threshold_ = self.choice_.threshold
        return self

    def predict(self, p: Any) -> np.ndarray:
        """The PQL flag: ``p >= threshold_``."""
        return np.asarray(p, dtype=float).ravel() >= self.threshold_


def _candidates(y: np.ndarray, p: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every reachable operating point: thresholds (high to low), flagged counts, positives hit.

    The first point flags nobody (threshold just above the top score).
    """
    g = gains_curve(y, p)
    n = p.size
    total_pos = y.sum()
    flagged = np.r_[0, np.rint(g["fraction_flagged"].to_numpy() * n).astype(int)]
    captured = np.r_[0.0, np.nan_to_num(g["fraction_captured"].to_numpy()) * total_pos]
    thresholds = np.r_[np.nextafter(p.max(), np.inf), g["threshold"].to_numpy()]
    return thresholds, flagged, captured


def _closest_volume(y: np.ndarray, p: np.ndarray, target: float) -> tuple[float, int]:
    """Threshold whose flagged count is closest to ``target`` (ties: the smaller volume)."""
    thresholds, flagged, _ = _candidates(y, p)
    best = int(np.argmin(np.abs(flagged - target)))  # argmin takes the first, i.e. smaller volume
    return float(thresholds[best]), int(flagged[best])


def choose_threshold(y: Any, p: Any, weeks: float, cfg: ThresholdConfig) -> ThresholdChoice:
    """Pick the PQL threshold on calibrated probabilities ``p`` of a period of ``weeks``."""
    y_arr = np.asarray(y, dtype=float).ravel()
    p_arr = np.asarray(p, dtype=float).ravel()
    if p_arr.size == 0:
        raise ValueError("choose_threshold needs at least one scored row. Got none.")
    if cfg.policy == "capacity":
        target = cfg.capacity_per_week * weeks
        t, k = _closest_volume(y_arr, p_arr, target)
        note = (
            f"capacity {cfg.capacity_per_week:g}/week over {weeks:.2f} weeks = {target:.1f} PQLs; "
            f"threshold {t:.4f} flags {k} ({k / weeks:.1f}/week)"
        )
        return ThresholdChoice("capacity", t, target <= p_arr.size, note)
    if cfg.policy == "top_fraction":
        target = cfg.top_fraction * p_arr.size
        t, k = _closest_volume(y_arr, p_arr, target)
        note = f"top {cfg.top_fraction:.1%} of {p_arr.size} rows; threshold {t:.4f} flags {k}"
        return ThresholdChoice("top_fraction", t, True, note)
    if cfg.policy == "expected_value":
        t = cfg.cost_of_contact / cfg.value_of_conversion
        reachable = t <= 1.0
        note = (
            f"contact when p x {cfg.value_of_conversion:g} > {cfg.cost_of_contact:g}: "
            f"threshold {t:.4f}"
        )
        if not reachable:
            note += " (above 1: contacting never pays, so nobody is flagged)"
        return ThresholdChoice("expected_value", float(t), reachable, note)
    return _precision_policy(y_arr, p_arr, cfg.target_precision)


def _precision_policy(y: np.ndarray, p: np.ndarray, target: float) -> ThresholdChoice:
    thresholds, flagged, captured = _candidates(y, p)
    thresholds, flagged, captured = thresholds[1:], flagged[1:], captured[1:]
    precision = captured / flagged
    ok = np.flatnonzero(precision >= target - 1e-12)
    if ok.size:
        i = int(ok[-1])  # candidates run high to low, so the last is the lowest threshold
        note = (
            f"lowest threshold reaching precision {target:.1%}: {thresholds[i]:.4f} "
            f"(precision {precision[i]:.1%}, {int(flagged[i])} flagged)"
        )
        return ThresholdChoice("precision", float(thresholds[i]), True, note)
    i = int(np.flatnonzero(precision == precision.max())[-1])
    note = (
        f"target precision {target:.1%} is unreachable on the test period: the best is "
        f"{precision[i]:.1%} at threshold {thresholds[i]:.4f} ({int(flagged[i])} flagged), "
        f"which is used instead. Lower threshold.target_precision or improve the features."
    )
    return ThresholdChoice("precision", float(thresholds[i]), False, note)


def threshold_report(
    y: Any, p: Any, threshold: float, weeks: float, bootstrap: int = 500, seed: int = 0
) -> dict[str, Any]:
    """Flag metrics at ``threshold`` (PQLs/week, precision, recall, lift, ...) with 95% CIs.

    Returns the :class:`~propensity.evaluate.FlagMetrics` fields plus ``threshold``, ``weeks``
    and ``ci`` (field -> [low, high], seeded bootstrap over rows).
    """
    flagged = np.asarray(p, dtype=float) >= threshold
    point = flag_metrics(y, flagged, weeks).to_dict()
    ci = bootstrap_flag_metrics(y, flagged, weeks, n=bootstrap, seed=seed)
    return {
        "threshold": float(threshold),
        "weeks": float(weeks),
        **point,
        "ci": {k: [lo, hi] for k, (lo, hi) in ci.items()},
    }
