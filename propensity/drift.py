"""Population stability of features and scores: the scoring frame against the training rows.

``PSI = sum_b (a_b - e_b) * ln(a_b / e_b)`` over bins ``b``, with ``e`` the training shares and
``a`` the scoring shares. Bins are training quantiles (numeric) or levels (categorical); missing
values always get their own bin, unknown levels share an ``other`` bin, and empty bins are
floored at a small epsilon so the log stays finite. A common reading: below 0.1 stable,
0.1-0.25 a shift worth a look, above 0.25 a real change.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["fit_drift_reference", "psi", "psi_table", "vocabulary_drift"]

DRIFT_VERSION = 1
SCORE = "score"
_EPS = 1e-4


def psi(expected: np.ndarray, actual: np.ndarray, eps: float = _EPS) -> float:
    """PSI between two vectors of bin shares (each summing to 1); empty bins floored at ``eps``.

    >>> round(psi(np.array([0.5, 0.5]), np.array([0.25, 0.75])), 4)
    0.2747
    """
    e = np.clip(np.asarray(expected, dtype=np.float64), eps, None)
    a = np.clip(np.asarray(actual, dtype=np.float64), eps, None)
    return float(np.sum((a - e) * np.log(a / e)))


def fit_drift_reference(
    frame: pd.DataFrame, columns: Sequence[str], scores: np.ndarray | None = None, bins: int = 10
) -> dict[str, Any]:
    """JSON-able bin edges and training shares per column (and of the scores, under ``score``).

    Numeric columns get interior edges at the training quantiles (duplicates dropped, so a
    constant column has one bin plus the missing bin); categorical columns get their levels.
    """
    if bins < 2:
        raise ValueError(f"The 'bins' parameter of fit_drift_reference must be >= 2. Got {bins}.")
    features = {name: _fit_column(frame[name], bins) for name in columns}
    out: dict[str, Any] = {"version": DRIFT_VERSION, "bins": bins, "features": features}
    if scores is not None:
        out["score"] = _fit_column(pd.Series(np.asarray(scores, dtype=np.float64)), bins)
    return out


def psi_table(
    reference: Mapping[str, Any],
    frame: pd.DataFrame,
    scores: np.ndarray | None = None,
    limit: float = 0.25,
) -> pd.DataFrame:
    """``feature``, ``kind`` (feature/score), ``psi``, ``flag`` (psi > limit), sorted by psi.

    Columns of the reference missing from ``frame`` are skipped (the model's column check
    reports them); the score row appears when both reference and ``scores`` have it.
    """
    rows = []
    for name, ref in reference.get("features", {}).items():
        if name in frame.columns:
            rows.append((name, "feature", _column_psi(ref, frame[name])))
    if scores is not None and "score" in reference:
        series = pd.Series(np.asarray(scores, dtype=np.float64))
        rows.append((SCORE, "score", _column_psi(reference["score"], series)))
    table = pd.DataFrame(rows, columns=["feature", "kind", "psi"])
    table["psi"] = table["psi"].astype("float64")
    table["flag"] = table["psi"] > limit
    table = table.sort_values(["psi", "feature"], ascending=[False, True], kind="stable")
    return table.reset_index(drop=True)


def vocabulary_drift(
    unseen_events: Mapping[str, int], known_events: int, limit: float = 0.05
) -> dict[str, Any]:
    """A drift row for event types the training vocabulary never saw.

    ``unseen_events`` is the feature engine's count per unseen type (``FeatureFrame``),
    ``known_events`` the number of scoring events whose type is in the vocabulary. The row's
    ``psi`` is NaN (no bins); ``share_unseen`` and ``flag`` (share above ``limit``) carry it.
    """
    unseen = int(sum(unseen_events.values()))
    total = unseen + int(known_events)
    share = unseen / total if total else 0.0
    worst = sorted(unseen_events.items(), key=lambda kv: (-kv[1], kv[0]))[:5]
    listed = ", ".join(f"{name} ({count})" for name, count in worst)
    return {
        "feature": "event_vocabulary",
        "kind": "vocabulary",
        "psi": float("nan"),
        "share_unseen": share,
        "flag": share > limit,
        "detail": (
            f"{share:.1%} of {total} scoring events have a type unseen in training"
            + (f": {listed}" if listed else "")
        ),
    }


def _fit_column(col: pd.Series, bins: int) -> dict[str, Any]:
    if isinstance(col.dtype, pd.CategoricalDtype) or not pd.api.types.is_numeric_dtype(col):
        values = col.astype(object).where(col.notna(), None)
        levels = sorted({str(v) for v in values if v is not None})
        ref = {"type": "categorical", "levels": levels}
    else:
        values = col.to_numpy(dtype=np.float64, na_value=np.nan)
        present = values[~np.isnan(values)]
        edges: list[float] = []
        if len(present):
            qs = np.quantile(present, np.linspace(0, 1, bins + 1)[1:-1])
            edges = [float(e) for e in np.unique(qs)]
        ref = {"type": "numeric", "edges": edges}
    ref["shares"] = [float(s) for s in _shares(ref, col)]
    return ref


def _shares(ref: Mapping[str, Any], col: pd.Series) -> np.ndarray:
    """Bin shares of ``col`` in the reference's bins; the last bin holds missing values."""
    n = len(col)
    if ref["type"] == "categorical":
        levels = list(ref["levels"])
        values = col.astype(object).where(col.notna(), None)
        index = {level: i for i, level in enumerate(levels)}
        # bins: each level, then "other" (levels unseen in training), then missing
        codes = np.array(
            [len(levels) + 1 if v is None else index.get(str(v), len(levels)) for v in values],
            dtype=np.int64,
        )
        counts = np.bincount(codes, minlength=len(levels) + 2)
    else:
        values = col.to_numpy(dtype=np.float64, na_value=np.nan)
        edges = np.asarray(ref["edges"], dtype=np.float64)
        missing = np.isnan(values)
        # right-closed bins (-inf, e1], (e1, e2], ..., (ek, inf), as quantile edges suggest
        codes = np.searchsorted(edges, values[~missing], side="left")
        counts = np.append(np.bincount(codes, minlength=len(edges) + 1), missing.sum())
    return counts / n if n else np.zeros(len(counts))


def _column_psi(ref: Mapping[str, Any], col: pd.Series) -> float:
    return psi(np.asarray(ref["shares"]), _shares(ref, col))
