"""Judge anything that produces scores: the model and the rules baselines use the same code.

Two views of a scorer:

- ranking and calibration of probabilities (:func:`ranking_metrics`, :func:`reliability_curve`,
  :func:`gains_curve`);
- a yes/no flag at an operating point (:func:`flag_metrics`, with seeded bootstrap intervals in
  :func:`bootstrap_flag_metrics`), which is what a sales team feels: PQLs per week, how many of
  them pay (precision), how many payers they catch (recall), and lift over the base rate.

>>> flag_metrics([1, 0, 1, 0], [True, True, False, False], weeks=2.0).precision
0.5
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score, roc_auc_score

__all__ = [
    "FlagMetrics",
    "bootstrap_flag_metrics",
    "bootstrap_roc_auc",
    "expected_calibration_error",
    "flag_metrics",
    "gains_curve",
    "ranking_metrics",
    "reliability_curve",
]

# Probabilities are clipped this far from 0 and 1 so that log loss stays finite.
_EPS = 1e-15


def _as_arrays(y: Any, p: Any, name: str = "p") -> tuple[np.ndarray, np.ndarray]:
    """Check and convert labels and scores once, with messages naming the argument."""
    y_arr = np.asarray(y, dtype=float).ravel()
    p_arr = np.asarray(p, dtype=float).ravel()
    if y_arr.shape != p_arr.shape:
        raise ValueError(
            f"y and {name} must have the same length. Got {y_arr.size} labels and "
            f"{p_arr.size} values instead."
        )
    if y_arr.size and not np.isin(y_arr, (0.0, 1.0)).all():
        raise ValueError("y must hold only 0 and 1. Got other values instead.")
    if np.isnan(p_arr).any():
        raise ValueError(f"{name} must not contain NaN. Got {int(np.isnan(p_arr).sum())} NaNs.")
    return y_arr, p_arr


def _bin_index(p: np.ndarray, bins: int) -> np.ndarray:
    """Equal-width bins on [0, 1]; p == 1 falls in the last bin rather than a bin of its own."""
    if bins < 1:
        raise ValueError(f"bins must be a positive integer. Got {bins} instead.")
    return np.minimum((np.clip(p, 0.0, 1.0) * bins).astype(int), bins - 1)


def reliability_curve(y: Any, p: Any, bins: int = 15) -> pd.DataFrame:
    """Mean predicted probability vs observed positive rate per equal-width bin.

    Empty bins are left out.

    >>> reliability_curve([0, 1], [0.1, 0.9], bins=2)["fraction_positive"].tolist()
    [0.0, 1.0]
    """
    y_arr, p_arr = _as_arrays(y, p)
    idx = _bin_index(p_arr, bins)
    count = np.bincount(idx, minlength=bins)
    sum_p = np.bincount(idx, weights=p_arr, minlength=bins)
    sum_y = np.bincount(idx, weights=y_arr, minlength=bins)
    keep = count > 0
    return pd.DataFrame(
        {
            "bin": np.arange(bins)[keep],
            "mean_predicted": sum_p[keep] / count[keep],
            "fraction_positive": sum_y[keep] / count[keep],
            "count": count[keep],
        }
    )


def expected_calibration_error(y: Any, p: Any, bins: int = 15) -> float:
    """Count-weighted mean gap between predicted and observed rates over equal-width bins.

    >>> expected_calibration_error([0, 1], [0.0, 1.0])
    0.0
    """
    curve = reliability_curve(y, p, bins)
    total = curve["count"].sum()
    if total == 0:
        return float("nan")
    gap = (curve["mean_predicted"] - curve["fraction_positive"]).abs()
    return float((gap * curve["count"]).sum() / total)


def ranking_metrics(y: Any, p: Any, bins: int = 15) -> dict[str, float]:
    """ROC AUC, average precision, log loss, Brier score and ECE of probabilities ``p``.

    The two ranking metrics are NaN when ``y`` holds a single class (they are undefined then).
    """
    y_arr, p_arr = _as_arrays(y, p)
    if y_arr.size == 0:
        raise ValueError("ranking_metrics needs at least one row. Got an empty input instead.")
    two_classes = 0 < y_arr.sum() < y_arr.size
    clipped = np.clip(p_arr, _EPS, 1 - _EPS)
    log_loss = -np.mean(y_arr * np.log(clipped) + (1 - y_arr) * np.log(1 - clipped))
    return {
        "roc_auc": float(roc_auc_score(y_arr, p_arr)) if two_classes else float("nan"),
        "average_precision": (
            float(average_precision_score(y_arr, p_arr)) if two_classes else float("nan")
        ),
        "log_loss": float(log_loss),
        "brier": float(np.mean((p_arr - y_arr) ** 2)),
        "ece": expected_calibration_error(y_arr, p_arr, bins),
    }


@dataclass(frozen=True)
class FlagMetrics:
    """What a yes/no flag delivers over a period of ``weeks``.

    ``precision`` is NaN when nothing is flagged; ``lift`` is NaN when the base rate is zero.
    """

    n_flagged: int
    per_week: float
    precision: float
    recall: float
    lift: float
    conversions_captured: int
    base_rate: float

    def to_dict(self) -> dict[str, float]:
        return {k: float(v) for k, v in asdict(self).items()}


def _check_weeks(weeks: float) -> float:
    if not np.isfinite(weeks) or weeks <= 0:
        raise ValueError(f"weeks must be a positive number. Got {weeks!r} instead.")
    return float(weeks)


def _from_cells(tp: np.ndarray, fp: np.ndarray, fn: np.ndarray, n: int, weeks: float) -> dict:
    """Flag metrics from confusion-matrix cells; vectorised so the bootstrap is one call."""
    tp, fp, fn = (np.asarray(a, dtype=float) for a in (tp, fp, fn))
    flagged = tp + fp
    positives = tp + fn
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(flagged > 0, tp / np.where(flagged > 0, flagged, 1), np.nan)
        recall = np.where(positives > 0, tp / np.where(positives > 0, positives, 1), np.nan)
        base_rate = positives / n
        lift = np.where(base_rate > 0, precision / np.where(base_rate > 0, base_rate, 1), np.nan)
    return {
        "n_flagged": flagged,
        "per_week": flagged / weeks,
        "precision": precision,
        "recall": recall,
        "lift": lift,
        "conversions_captured": tp,
        "base_rate": base_rate,
    }


def _cells(y: Any, flagged: Any) -> tuple[int, int, int, int]:
    y_arr, f_arr = _as_arrays(y, np.asarray(flagged, dtype=bool), name="flagged")
    f_bool = f_arr.astype(bool)
    pos = y_arr == 1
    tp = int((f_bool & pos).sum())
    fp = int((f_bool & ~pos).sum())
    fn = int((~f_bool & pos).sum())
    return tp, fp, fn, int(y_arr.size)


def flag_metrics(y: Any, flagged: Any, weeks: float) -> FlagMetrics:
    """Volume, precision, recall and lift of a boolean flag over ``weeks`` of data.

    >>> m = flag_metrics([1, 1, 0, 0, 0, 0, 0, 0], [1, 0, 1, 0, 0, 0, 0, 0], weeks=0.5)
    >>> (m.n_flagged, m.per_week, m.precision, m.recall, m.lift)
    (2, 4.0, 0.5, 0.5, 2.0)
    """
    weeks = _check_weeks(weeks)
    tp, fp, fn, n = _cells(y, flagged)
    if n == 0:
        raise ValueError("flag_metrics needs at least one row. Got an empty input instead.")
    m = _from_cells(np.array(tp), np.array(fp), np.array(fn), n, weeks)
    return FlagMetrics(
        n_flagged=tp + fp,
        per_week=float(m["per_week"]),
        precision=float(m["precision"]),
        recall=float(m["recall"]),
        lift=float(m["lift"]),
        conversions_captured=tp,
        base_rate=float(m["base_rate"]),
    )


def bootstrap_flag_metrics(
    y: Any, flagged: Any, weeks: float, n: int = 500, seed: int = 0
) -> dict[str, tuple[float, float]]:
    """95% percentile intervals of every :class:`FlagMetrics` field over ``n`` row resamples.

    Resampling rows with replacement only changes how many rows land in each confusion-matrix
    cell, so each replicate is drawn as one multinomial over the four cells: the same
    distribution as resampling rows, at a cost independent of the number of rows.
    """
    weeks = _check_weeks(weeks)
    tp, fp, fn, rows = _cells(y, flagged)
    if rows == 0:
        raise ValueError("bootstrap_flag_metrics needs at least one row. Got an empty input.")
    fields = list(FlagMetrics.__dataclass_fields__)
    if n <= 0:
        return {f: (float("nan"), float("nan")) for f in fields}
    tn = rows - tp - fp - fn
    rng = np.random.default_rng(seed)
    draws = rng.multinomial(rows, np.array([tp, fp, fn, tn]) / rows, size=n)
    m = _from_cells(draws[:, 0], draws[:, 1], draws[:, 2], rows, weeks)
    out = {}
    for field in fields:
        values = m[field]
        if np.isnan(values).all():
            out[field] = (float("nan"), float("nan"))
        else:
            low, high = np.nanpercentile(values, [2.5, 97.5])
            out[field] = (float(low), float(high))
    return out


def bootstrap_roc_auc(y: Any, p: Any, n: int = 500, seed: int = 0) -> tuple[float, float]:
    """95% percentile interval of ROC AUC over ``n`` seeded row resamples (NaN when undefined).

    Each replicate weighs rows by how often the resample drew them; AUC is then the weighted
    share of (positive, negative) pairs in order, ties counting half, from group sums over runs
    of scores: one sort in total, not one per replicate.

    >>> bootstrap_roc_auc([0, 0, 1, 1], [0.1, 0.2, 0.8, 0.9], n=50)
    (1.0, 1.0)
    """
    y_arr, p_arr = _as_arrays(y, p)
    nan = (float("nan"), float("nan"))
    if n <= 0 or y_arr.size == 0:
        return nan
    key, runs = _run_keys(y_arr, p_arr)
    rng = np.random.default_rng(seed)
    values = np.full(n, np.nan)
    for i in range(n):
        counts = np.bincount(key[rng.integers(0, y_arr.size, y_arr.size)], minlength=2 * runs)
        neg, pos = counts[:runs], counts[runs:]
        total_pos, total_neg = int(pos.sum()), int(neg.sum())
        if total_pos and total_neg:
            # twice the pairs in order, ties counting half: 2 * below + neg per run
            twice = int(np.dot(pos, 2 * np.cumsum(neg) - neg))
            values[i] = 0.5 * twice / (float(total_pos) * float(total_neg))
    if np.isnan(values).all():
        return nan
    low, high = np.nanpercentile(values, [2.5, 97.5])
    return float(low), float(high)


def _run_keys(y: np.ndarray, p: np.ndarray) -> tuple[np.ndarray, int]:
    """One key per row, ``run + runs * label``, over runs of ascending scores; and ``runs``.

    A replicate's sums per key are then one count of the drawn rows' keys, in int64, so its
    pair count is exact. A run is one distinct score holding both labels, or a stretch of
    consecutive distinct scores holding one label only: no pair inside such a stretch is ever
    tied or in order, and every row outside it is above or below all of it, so merging the
    stretch leaves the pair count of every replicate unchanged. With scores mostly distinct
    the runs are a fraction of the rows, and so is the work per replicate that is not a draw.
    """
    order = np.argsort(p, kind="stable")
    positive = y[order] == 1
    sorted_p = p[order]
    group = np.cumsum(np.r_[True, sorted_p[1:] != sorted_p[:-1]]) - 1
    # 1: positives only, 2: negatives only, 3: both (ties across labels count half, so a
    # distinct score with both labels stays a run of its own)
    groups = int(group[-1]) + 1
    kind = (np.bincount(group[positive], minlength=groups) > 0) + 2 * (
        np.bincount(group[~positive], minlength=groups) > 0
    )
    starts = np.r_[True, (kind[1:] != kind[:-1]) | (kind[1:] == 3)]
    run = np.cumsum(starts) - 1
    runs = int(run[-1]) + 1
    key = np.empty(y.size, dtype=np.intp)
    key[order] = run[group] + runs * positive
    return key, runs


def gains_curve(y: Any, score: Any) -> pd.DataFrame:
    """Cumulative gains: flag every row with ``score >= threshold``, for each distinct score.

    Rows are ordered from the highest threshold down; tied scores enter together, so the curve
    only has points a real threshold can reach.

    >>> gains_curve([1, 0, 1, 0], [0.9, 0.8, 0.8, 0.1])["fraction_captured"].tolist()
    [0.5, 1.0, 1.0]
    """
    y_arr, s_arr = _as_arrays(y, score, name="score")
    if y_arr.size == 0:
        raise ValueError("gains_curve needs at least one row. Got an empty input instead.")
    order = np.argsort(-s_arr, kind="mergesort")
    s_sorted, y_sorted = s_arr[order], y_arr[order]
    cum_pos = np.cumsum(y_sorted)
    # last position of each run of equal scores
    last = np.r_[np.flatnonzero(np.diff(s_sorted) != 0), s_sorted.size - 1]
    flagged = (last + 1) / s_sorted.size
    total_pos = y_arr.sum()
    captured = cum_pos[last] / total_pos if total_pos > 0 else np.full(last.size, np.nan)
    return pd.DataFrame(
        {
            "fraction_flagged": flagged,
            "fraction_captured": captured,
            "lift": captured / flagged,
            "threshold": s_sorted[last],
        }
    )
