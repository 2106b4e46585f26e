"""SHAP values of a LightGBM booster, three exact ways, all on the raw log-odds scale.

Contributions explain the booster's raw score (log-odds). The calibrated probability a user sees
is a monotone map of that raw score (booster sigmoid, then the calibrator), so a feature that
pushes the log-odds up also pushes the probability up; its size in probability points is not the
SHAP value.

- ``"native"``: LightGBM's ``predict(..., pred_contrib=True)`` (recursive TreeSHAP in C++).
- ``"tree_explainer"``: ``shap.TreeExplainer``; this is the only place shap is imported.
- ``"fast"``: :mod:`propensity.explain._treeshap`, the same numbers from compiled loops that
  keep each leaf's answers per row pattern (``benchmarks/treeshap.py`` prints the speed-up).
  Its trees are prepared once per booster and kept. A call that would have to prepare them
  first (and, in a fresh process, import numba and load its compiled code: about a second of
  CPU) goes to ``"native"`` below ``FAST_MIN_ROWS_COLD`` rows, a call on a prepared booster
  below ``FAST_MIN_ROWS``, so it is never the slower of the two. A score job starts the
  preparation in a thread as soon as its model is loaded (``prepare_in_background``), so the
  start-up overlaps the data read. Unsupported boosters (linear
  trees, multiclass, rf) use ``"native"``.
"""

from __future__ import annotations

import warnings
from typing import Literal

import lightgbm as lgb
import numpy as np
import pandas as pd

from propensity.explain._treeshap import (
    TreeShapModel,
    is_prepared,
    is_warming,
    prepared,
    supports,
)

__all__ = ["Method", "shap_values", "to_matrix"]

Method = Literal["fast", "native", "tree_explainer"]
# Crossovers measured by benchmarks/treeshap.py (300 trees x 31 leaves, 2 busy cores): a
# prepared booster is faster than pred_contrib from ~15 rows; an unprepared one in a
# fresh process (numba's import and start-up, then the trees) from ~350-400 rows.
FAST_MIN_ROWS = 30
FAST_MIN_ROWS_COLD = 500


def to_matrix(X: pd.DataFrame | np.ndarray) -> np.ndarray:
    """A float64 matrix as LightGBM reads a frame: categoricals become codes, missing NaN."""
    if isinstance(X, np.ndarray):
        return np.asarray(X, dtype=np.float64)
    columns = []
    for name in X.columns:
        col = X[name]
        if isinstance(col.dtype, pd.CategoricalDtype):
            codes = col.cat.codes.to_numpy().astype(np.float64)
            codes[codes < 0] = np.nan
            columns.append(codes)
        else:
            columns.append(col.to_numpy(dtype=np.float64, na_value=np.nan))
    if not columns:
        return np.empty((len(X), 0))
    return np.column_stack(columns)


def shap_values(
    booster: lgb.Booster,
    X: pd.DataFrame | np.ndarray,
    method: Method = "fast",
    n_threads: int = 2,
    explainer: TreeShapModel | None = None,
) -> np.ndarray:
    """SHAP values ``(n, n_features + 1)`` on the raw log-odds scale, the bias in the last column.

    ``X`` must already be in the booster's column order and encoding (``PQLModel.prepare``).
    Pass a prebuilt ``explainer`` to reuse the parsed trees across calls.

    >>> phi = shap_values(model.booster, model.prepare(frame))  # doctest: +SKIP
    >>> phi.sum(axis=1)  # == model.booster.predict(..., raw_score=True)  # doctest: +SKIP
    """
    matrix = to_matrix(X)
    if len(matrix) == 0:
        return np.zeros((0, booster.num_feature() + 1))
    if method == "native":
        return np.asarray(booster.predict(matrix, pred_contrib=True, num_threads=n_threads))
    if method == "tree_explainer":
        return _tree_explainer(booster, matrix)
    if method == "fast":
        if explainer is None:
            # Below a few hundred rows the fixed cost of starting numba and preparing the trees
            # outweighs the per-row saving, so the C++ recursion is faster there.
            # a booster prepared (or being prepared) in the background costs no start-up here
            ready = is_prepared(booster) or is_warming(booster)
            floor = FAST_MIN_ROWS if ready else FAST_MIN_ROWS_COLD
            if len(matrix) < floor or not supports(booster):
                return shap_values(booster, matrix, "native", n_threads)
            try:
                explainer = prepared(booster)
            except ValueError:  # a tree with an empty child: TreeSHAP's cover ratio is 0/0
                return shap_values(booster, matrix, "native", n_threads)
        return explainer.shap_values(matrix, n_threads=n_threads)
    raise ValueError(
        f"The 'method' parameter of shap_values must be 'fast', 'native' or 'tree_explainer'. "
        f"Got {method!r} instead."
    )


def _tree_explainer(booster: lgb.Booster, matrix: np.ndarray) -> np.ndarray:
    with warnings.catch_warnings():
        # shap's import touches deprecated matplotlib colormap APIs; not ours to fix
        warnings.simplefilter("ignore", PendingDeprecationWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        import shap  # heavy import (numba, ...): only when asked for

    explanation = shap.TreeExplainer(booster)(matrix, check_additivity=False)
    values = np.asarray(explanation.values, dtype=np.float64)
    base = np.broadcast_to(np.asarray(explanation.base_values, dtype=np.float64), len(values))
    return np.column_stack([values, base])
