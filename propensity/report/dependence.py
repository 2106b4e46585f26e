"""Partial dependence without sklearn: vary one feature over a grid, average the prediction.

For a grid value ``v`` of feature ``j``, every row of a seeded sample gets ``x_j = v`` (all its
other features kept), and the curve's point is the mean calibrated probability. The grid is the
feature's quantiles on the sample (numeric) or its levels (categorical), so the curve spans
values that actually occur; missing values are left out of the grid.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["feature_grid", "partial_dependence"]

Predict = Callable[[pd.DataFrame], np.ndarray]


def feature_grid(values: pd.Series, size: int = 10) -> list[Any]:
    """Distinct quantiles of a numeric column (``size`` at most), or a categorical's levels.

    >>> feature_grid(pd.Series([0.0, 1.0, 1.0, 2.0, np.nan]), size=3)
    [0.0, 1.0, 2.0]
    """
    if size < 2:
        raise ValueError(f"The 'size' parameter of feature_grid must be >= 2. Got {size}.")
    if isinstance(values.dtype, pd.CategoricalDtype):
        present = set(values.dropna().astype(str))
        return [level for level in values.cat.categories if str(level) in present]
    numbers = values.to_numpy(dtype=np.float64, na_value=np.nan)
    numbers = numbers[~np.isnan(numbers)]
    if numbers.size == 0:
        return []
    quantiles = np.quantile(numbers, np.linspace(0.0, 1.0, size))
    return [float(v) for v in np.unique(quantiles)]


def partial_dependence(
    predict: Predict,
    X: pd.DataFrame,
    feature: str,
    grid_size: int = 10,
    sample: int = 500,
    seed: int = 0,
) -> pd.DataFrame:
    """``value``, ``mean_probability`` of ``predict`` as ``feature`` sweeps its grid.

    ``predict`` maps a frame with X's columns to one probability per row (e.g.
    ``lambda X: model.predict_proba(X)[:, 1]``); at most ``sample`` rows (seeded) are used, and
    all grid points are predicted in one call.
    """
    if feature not in X.columns:
        raise KeyError(f"feature {feature!r} is not a column of X; pass one of its columns.")
    rows = X
    if len(X) > sample:
        keep = np.sort(np.random.default_rng(seed).choice(len(X), size=sample, replace=False))
        rows = X.iloc[keep]
    grid = feature_grid(rows[feature], grid_size)
    if not grid or rows.empty:
        return pd.DataFrame({"value": [], "mean_probability": []})
    stacked = pd.concat([rows] * len(grid), ignore_index=True)
    column = np.repeat(np.asarray(grid, dtype=object), len(rows))
    if isinstance(rows[feature].dtype, pd.CategoricalDtype):
        stacked[feature] = pd.Categorical(column, categories=rows[feature].cat.categories)
    else:
        stacked[feature] = column.astype(np.float64)
    p = np.asarray(predict(stacked), dtype=np.float64).reshape(len(grid), len(rows))
    return pd.DataFrame({"value": grid, "mean_probability": p.mean(axis=1)})
