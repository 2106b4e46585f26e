"""Global explanations for a training report: mean |SHAP| per feature.

Its figures (bars, beeswarm) are drawn by :mod:`propensity.figures`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

__all__ = ["mean_abs_shap"]


def mean_abs_shap(contributions: np.ndarray, columns: Sequence[str]) -> pd.DataFrame:
    """``feature``, ``mean_abs_shap``, ``mean_shap`` sorted by importance (ties by name)."""
    phi = np.asarray(contributions, dtype=np.float64)[:, : len(columns)]
    table = pd.DataFrame(
        {
            "feature": list(columns),
            "mean_abs_shap": np.abs(phi).mean(axis=0) if len(phi) else 0.0,
            "mean_shap": phi.mean(axis=0) if len(phi) else 0.0,
        }
    )
    table = table.sort_values(["mean_abs_shap", "feature"], ascending=[False, True])
    return table.reset_index(drop=True)
