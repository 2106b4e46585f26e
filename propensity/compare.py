"""The model and the rules baselines side by side, on the same test rows and at the same volume.

A rule flags some number of users ``k``. Comparing it with the model at the model's own
threshold mixes two things: which users are flagged and how many. So each rule is also matched
with the model flagging *exactly* ``k`` users (its top ``k`` scores), and the difference model
minus rule in precision and in conversions captured gets a paired bootstrap interval.

Ties at the top-``k`` boundary (common with isotonic calibration, which outputs steps) are
broken by a seeded random permutation of the rows: among users with the boundary score, the
ones flagged are a uniform, reproducible sample, so neither row order nor the rule itself
decides them.

The paired bootstrap resamples rows once per replicate and computes both flags' metrics on that
resample. Because resampling rows only changes how many rows land in each (label, rule flag,
model flag) cell, each replicate is drawn as one multinomial over those 8 cells: the same
distribution as resampling rows, at a cost that does not grow with the number of rows. Both
flags are fixed on the whole test set (the model's top ``k`` is chosen once), so the interval
is for "this rule versus this model cutoff".
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import clone

from propensity.errors import DataContractError, InsufficientDataError
from propensity.evaluate import bootstrap_flag_metrics, flag_metrics, gains_curve

__all__ = [
    "Comparison",
    "chart_points",
    "compare",
    "gains_chart_data",
    "model_scores",
    "paired_bootstrap_difference",
    "rule_points",
    "top_k_flags",
]

_INTERVAL_METRICS = ("per_week", "precision", "recall", "lift", "conversions_captured")


@dataclass(frozen=True)
class Comparison:
    """The comparison table, the model's gains curve, and each scorer as a point on it.

    ``table`` has one row for the model at its own threshold, then one per baseline, with
    columns ``name``, ``kind``, ``description``, ``note``, ``n_flagged``, ``base_rate`` and, for
    each of ``per_week``, ``precision``, ``recall``, ``lift``, ``conversions_captured``, the value
    and its 95% bootstrap ``_low``/``_high``. Baseline rows also carry the model at the same
    volume: ``model_precision_same_volume``, ``model_conversions_same_volume``, and
    ``precision_diff``/``conversions_diff`` (model minus rule) with paired ``_low``/``_high``.
    """

    table: pd.DataFrame
    gains: pd.DataFrame
    rule_points: pd.DataFrame


def top_k_flags(scores: Any, k: int, seed: int = 0) -> np.ndarray:
    """Flag exactly ``k`` rows: the highest scores, ties at the boundary broken by a seeded shuffle.

    >>> top_k_flags([0.9, 0.5, 0.5, 0.1], 1).tolist()
    [True, False, False, False]
    """
    s = np.asarray(scores, dtype=float).ravel()
    if not 0 <= k <= s.size:
        raise ValueError(f"k must be between 0 and the number of rows ({s.size}). Got {k}.")
    if np.isnan(s).any():
        raise ValueError(f"scores must not contain NaN. Got {int(np.isnan(s).sum())} NaNs.")
    tiebreak = np.random.default_rng(seed).permutation(s.size)
    order = np.lexsort((tiebreak, -s))  # the last key sorts first: score descending, then shuffle
    flags = np.zeros(s.size, dtype=bool)
    flags[order[:k]] = True
    return flags


def paired_bootstrap_difference(
    y: Any, flags_a: Any, flags_b: Any, n: int = 500, seed: int = 0
) -> dict[str, tuple[float, float]]:
    """95% percentile intervals of ``a`` minus ``b`` in precision and conversions captured.

    Both flags are judged on the same resampled rows in every replicate (see the module
    docstring), so what they share cancels. An interval is NaN when no replicate defines the
    difference (e.g. one flag is empty, so its precision is undefined).
    """
    y_arr = np.asarray(y, dtype=float).ravel()
    a = np.asarray(flags_a, dtype=bool).ravel()
    b = np.asarray(flags_b, dtype=bool).ravel()
    if not y_arr.size == a.size == b.size:
        raise ValueError(
            f"y, flags_a and flags_b must have the same length. Got {y_arr.size}, {a.size} and "
            f"{b.size} instead."
        )
    nan = (float("nan"), float("nan"))
    if n <= 0 or y_arr.size == 0:
        return {"precision": nan, "conversions_captured": nan}
    cell = (y_arr == 1).astype(int) * 4 + a.astype(int) * 2 + b.astype(int)
    counts = np.bincount(cell, minlength=8)
    draws = np.random.default_rng(seed).multinomial(y_arr.size, counts / y_arr.size, size=n)
    draws = draws.reshape(n, 2, 2, 2)  # axes: label, flag a, flag b
    tp_a, tp_b = draws[:, 1, 1, :].sum(axis=1), draws[:, 1, :, 1].sum(axis=1)
    flagged_a, flagged_b = draws[:, :, 1, :].sum(axis=(1, 2)), draws[:, :, :, 1].sum(axis=(1, 2))
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(
            (flagged_a > 0) & (flagged_b > 0), tp_a / flagged_a - tp_b / flagged_b, np.nan
        )
    return {
        "precision": _interval(precision),
        "conversions_captured": _interval((tp_a - tp_b).astype(float)),
    }


def rule_points(y: Any, flags: Mapping[str, Any]) -> pd.DataFrame:
    """Each named flag as a point of the gains chart: ``fraction_flagged``, ``fraction_captured``.

    >>> rule_points([1, 0, 1, 0], {"r": [True, False, False, False]})["fraction_captured"].tolist()
    [0.5]
    """
    y_arr = np.asarray(y, dtype=float).ravel()
    positives = y_arr.sum()
    rows = []
    for name, flag in flags.items():
        f = np.asarray(flag, dtype=bool).ravel()
        captured = float(y_arr[f].sum())
        flagged = float(f.mean()) if f.size else float("nan")
        rows.append(
            {
                "name": name,
                "fraction_flagged": flagged,
                "fraction_captured": captured / positives if positives > 0 else float("nan"),
                "precision": captured / f.sum() if f.any() else float("nan"),
            }
        )
    out = pd.DataFrame(rows, columns=["name", "fraction_flagged", "fraction_captured", "precision"])
    base = positives / y_arr.size if y_arr.size else float("nan")
    out["lift"] = out["precision"] / base if base > 0 else float("nan")
    return out


def gains_chart_data(
    y: Any, model_scores: Any, flags: Mapping[str, Any]
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The model's gains curve and each rule drawn as a point: ``(curve, points)``.

    Plot ``fraction_captured`` against ``fraction_flagged`` for both; a rule point below the
    curve means the model catches more payers at the same volume.
    """
    return gains_curve(y, model_scores), rule_points(y, flags)


def chart_points(points: pd.DataFrame) -> list[tuple[str, float, float]]:
    """``(name, fraction_flagged, fraction_captured)`` per scorer, as ``plot_gains`` takes them.

    The model's own row is named ``model at threshold`` so it does not clash with its curve.
    """
    return [
        ("model at threshold" if name == "model" else str(name), float(f), float(c))
        for name, f, c in points[["name", "fraction_flagged", "fraction_captured"]].itertuples(
            index=False
        )
        if not np.isnan(c)
    ]


def model_scores(model: Any, test: pd.DataFrame) -> np.ndarray:
    """P(y=1) of ``model`` on ``test``: an estimator's ``predict_proba``, or given scores.

    A model that names its ``feature_columns`` (a :class:`~propensity.model.PQLModel`) reads
    only those, so the frame may carry keys, the label and other rules' columns.
    """
    if hasattr(model, "predict_proba"):
        columns = getattr(model, "feature_columns", None)
        X = test[list(columns)] if columns is not None else test
        return np.asarray(model.predict_proba(X), dtype=float)[:, 1]
    return np.asarray(model, dtype=float).ravel()


def compare(
    test: pd.DataFrame,
    model: Any,
    model_threshold: float,
    baselines: Sequence[Any],
    weeks: float,
    n_boot: int = 500,
    seed: int = 0,
    label: str = "label",
) -> Comparison:
    """Judge the model at its threshold and every baseline on ``test``, and each at equal volume.

    ``test`` holds the feature columns the model and the baselines read and the ``label``
    column; ``model`` is an estimator with ``predict_proba`` (the model, scored here on the
    same rows as every rule, so ``train`` and ``compare`` report the same numbers), or its
    probabilities for the rows of ``test`` in order;
    ``weeks`` is the length of the test period (for PQLs per week). Baselines are estimators
    with ``predict(X)`` returning the flag; unfitted ones are cloned and fitted on ``test``
    (fitting a rule only checks its feature names).
    """
    y = _labels(test, label)
    scores = model_scores(model, test)
    if scores.size != y.size or np.isnan(scores).any():
        raise DataContractError(
            [
                f"model_scores must hold one non-NaN score per test row ({y.size}). Got "
                f"{scores.size} scores with {int(np.isnan(scores).sum())} NaNs; score the same "
                f"rows as the test frame."
            ]
        )
    fitted = [_fitted(b, test) for b in baselines]
    names = [_name(b, i) for i, b in enumerate(fitted)]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise DataContractError([f"baseline names must be unique; repeated: {duplicates}."])

    model_flags = scores >= model_threshold
    rows = [_row("model", "model", "", y, model_flags, weeks, n_boot, seed)]
    flags = {"model": model_flags}
    for name, baseline in zip(names, fitted, strict=True):
        flag = np.asarray(baseline.predict(test), dtype=bool).ravel()
        kind = getattr(baseline, "kind", type(baseline).__name__)
        row = _row(name, kind, getattr(baseline, "description", ""), y, flag, weeks, n_boot, seed)
        row.update(_same_volume(y, scores, flag, n_boot, seed))
        rows.append(row)
        flags[name] = flag
    points = rule_points(y, flags)
    points.insert(1, "kind", [r["kind"] for r in rows])
    return Comparison(table=pd.DataFrame(rows), gains=gains_curve(y, scores), rule_points=points)


# --- helpers ------------------------------------------------------------------------------------


def _interval(values: np.ndarray) -> tuple[float, float]:
    finite = values[~np.isnan(values)]
    if finite.size == 0:
        return float("nan"), float("nan")
    low, high = np.percentile(finite, [2.5, 97.5])
    return float(low), float(high)


def _labels(test: pd.DataFrame, label: str) -> np.ndarray:
    if not isinstance(test, pd.DataFrame) or label not in test.columns:
        raise DataContractError(
            [
                f"the test frame must be a DataFrame with a {label!r} column of 0/1 labels; pass "
                f"the labelled feature frame of the test split."
            ]
        )
    y = pd.to_numeric(test[label], errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    bad = int((~np.isin(y, (0.0, 1.0))).sum())
    if bad:
        raise DataContractError(
            [
                f"column {label!r} must hold only 0 and 1; {bad} rows hold something else (or are "
                f"missing). Drop unlabelled rows before comparing."
            ]
        )
    if y.size == 0:
        raise InsufficientDataError("The test frame is empty; nothing to compare on.")
    return y


def _fitted(baseline: Any, test: pd.DataFrame) -> Any:
    if hasattr(baseline, "threshold_"):
        return baseline
    return clone(baseline).fit(test)


def _name(baseline: Any, i: int) -> str:
    return str(getattr(baseline, "label", None) or getattr(baseline, "name", None) or f"rule_{i}")


def _note(flag: np.ndarray) -> str:
    if not flag.any():
        return "flags nobody"
    if flag.all():
        return "flags everybody"
    return ""


def _row(
    name: str,
    kind: str,
    description: str,
    y: np.ndarray,
    flag: np.ndarray,
    weeks: float,
    n_boot: int,
    seed: int,
) -> dict[str, Any]:
    metrics = flag_metrics(y, flag, weeks)
    intervals = bootstrap_flag_metrics(y, flag, weeks, n=n_boot, seed=seed)
    row: dict[str, Any] = {
        "name": name,
        "kind": kind,
        "description": description,
        "note": _note(flag),
        "n_flagged": metrics.n_flagged,
        "base_rate": metrics.base_rate,
    }
    for metric in _INTERVAL_METRICS:
        row[metric] = float(getattr(metrics, metric))
        row[f"{metric}_low"], row[f"{metric}_high"] = intervals[metric]
    return row


def _same_volume(
    y: np.ndarray, scores: np.ndarray, rule_flag: np.ndarray, n_boot: int, seed: int
) -> dict[str, float]:
    model_flag = top_k_flags(scores, int(rule_flag.sum()), seed=seed)
    tp_model, tp_rule = float(y[model_flag].sum()), float(y[rule_flag].sum())
    k = float(rule_flag.sum())
    model_precision = tp_model / k if k else float("nan")
    rule_precision = tp_rule / k if k else float("nan")
    diff = paired_bootstrap_difference(y, model_flag, rule_flag, n=n_boot, seed=seed)
    return {
        "model_precision_same_volume": model_precision,
        "model_conversions_same_volume": tp_model,
        "precision_diff": model_precision - rule_precision,
        "precision_diff_low": diff["precision"][0],
        "precision_diff_high": diff["precision"][1],
        "conversions_diff": tp_model - tp_rule,
        "conversions_diff_low": diff["conversions_captured"][0],
        "conversions_diff_high": diff["conversions_captured"][1],
    }
