"""Global explanations for a training report: mean |SHAP| per feature and two figures.

Figures are plain matplotlib :class:`~matplotlib.figure.Figure` objects built without pyplot, so
no global state or GUI backend is touched; the tracking layer decides where they go.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

__all__ = ["beeswarm_figure", "importance_bar_figure", "mean_abs_shap"]


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


def importance_bar_figure(table: pd.DataFrame, top: int = 20) -> Figure:
    """Horizontal bars of mean |SHAP| for the ``top`` features of :func:`mean_abs_shap`."""
    shown = table.head(top).iloc[::-1]
    fig = Figure(figsize=(7, 0.3 * len(shown) + 1.2))
    ax = fig.add_subplot()
    ax.barh(shown["feature"], shown["mean_abs_shap"], color="#1f77b4")
    ax.set_xlabel("mean |SHAP| (log-odds)")
    ax.set_title("Global feature importance")
    fig.tight_layout()
    return fig


def beeswarm_figure(
    contributions: np.ndarray,
    X: pd.DataFrame,
    top: int = 20,
    max_points: int = 2000,
    seed: int = 0,
) -> Figure:
    """SHAP value per row for the ``top`` features, coloured by the feature's value rank.

    At most ``max_points`` rows (a seeded sample) keep the figure light.
    """
    columns = list(X.columns)
    phi = np.asarray(contributions, dtype=np.float64)[:, : len(columns)]
    rng = np.random.default_rng(seed)
    rows = np.arange(len(phi))
    if len(rows) > max_points:
        rows = np.sort(rng.choice(rows, size=max_points, replace=False))
    order = np.argsort(-np.abs(phi).mean(axis=0), kind="stable")[:top][::-1]
    fig = Figure(figsize=(7, 0.35 * len(order) + 1.2))
    ax = fig.add_subplot()
    for y, j in enumerate(order):
        values = X.iloc[rows, j]
        if isinstance(values.dtype, pd.CategoricalDtype):
            values = values.cat.codes.astype(float).where(values.notna())
        colour = pd.Series(np.asarray(values, dtype=float)).rank(pct=True).fillna(0.5)
        jitter = rng.uniform(-0.3, 0.3, size=len(rows))
        ax.scatter(phi[rows, j], y + jitter, c=colour, cmap="coolwarm", s=4, vmin=0, vmax=1)
    ax.set_yticks(range(len(order)), [columns[j] for j in order])
    ax.axvline(0.0, color="grey", linewidth=0.8)
    ax.set_xlabel("SHAP value (log-odds); colour: feature value, low blue to high red")
    fig.tight_layout()
    return fig
