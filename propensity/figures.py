"""Every figure of the project: the one module that imports matplotlib.

Each function returns a matplotlib Figure; :func:`figure_png` turns one into PNG bytes, and
writing them is the caller's job. Figures are built on the Agg canvas without pyplot, so nothing
depends on a display or on pyplot's global state (no ``matplotlib.use``), and figures are freed
when dropped.

>>> fig = plot_score_distribution([0, 1, 0, 1], [0.1, 0.8, 0.3, 0.6])
>>> fig.savefig(path)  # doctest: +SKIP
"""

from __future__ import annotations

import io
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from sklearn.metrics import precision_recall_curve, roc_curve

from propensity.compare import Comparison, chart_points
from propensity.evaluate import gains_curve, ranking_metrics, reliability_curve

__all__ = [
    "beeswarm_figure",
    "figure_png",
    "importance_bar_figure",
    "plot_comparison",
    "plot_feature_importance",
    "plot_gains",
    "plot_partial_dependence",
    "plot_precision_recall",
    "plot_reliability",
    "plot_roc",
    "plot_score_distribution",
]

Scores = Any  # an array of scores, or a mapping of name -> array to compare several scorers


def _figure(ncols: int = 1, width: float = 5.5, height: float = 4.5) -> tuple[Figure, list]:
    fig = Figure(figsize=(width * ncols, height), layout="constrained")
    FigureCanvasAgg(fig)
    axes = [fig.add_subplot(1, ncols, i + 1) for i in range(ncols)]
    return fig, axes


def _named(scores: Scores) -> dict[str, np.ndarray]:
    if isinstance(scores, Mapping):
        return {str(k): np.asarray(v, dtype=float) for k, v in scores.items()}
    return {"model": np.asarray(scores, dtype=float)}


def plot_roc(y: Any, scores: Scores) -> Figure:
    """ROC curve of one scorer, or of each scorer in a ``{name: scores}`` mapping."""
    fig, (ax,) = _figure()
    for name, s in _named(scores).items():
        fpr, tpr, _ = roc_curve(y, s)
        auc = ranking_metrics(y, s)["roc_auc"]
        ax.plot(fpr, tpr, label=f"{name} (AUC {auc:.3f})")
    ax.plot([0, 1], [0, 1], color="grey", linestyle=":", label="chance")
    ax.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC")
    ax.legend(loc="lower right")
    return fig


def plot_precision_recall(y: Any, scores: Scores) -> Figure:
    """Precision-recall curve(s), with the base rate as the line a random flag would draw."""
    fig, (ax,) = _figure()
    for name, s in _named(scores).items():
        precision, recall, _ = precision_recall_curve(y, s)
        ap = ranking_metrics(y, s)["average_precision"]
        ax.plot(recall, precision, label=f"{name} (AP {ap:.3f})")
    base = float(np.mean(y))
    ax.axhline(base, color="grey", linestyle=":", label=f"base rate {base:.3f}")
    ax.set(xlabel="recall", ylabel="precision", title="Precision-recall", ylim=(0, 1.02))
    ax.legend(loc="upper right")
    return fig


def plot_reliability(y: Any, p_raw: Any, p_calibrated: Any, bins: int = 15) -> Figure:
    """Reliability diagram before and after calibration; marker area follows the bin's rows."""
    fig, (ax,) = _figure()
    for name, p in (("raw", p_raw), ("calibrated", p_calibrated)):
        curve = reliability_curve(y, p, bins)
        ece = ranking_metrics(y, p, bins)["ece"]
        sizes = 10 + 200 * curve["count"] / max(curve["count"].max(), 1)
        ax.plot(
            curve["mean_predicted"],
            curve["fraction_positive"],
            marker="o",
            markersize=0,
            label=f"{name} (ECE {ece:.3f})",
        )
        ax.scatter(curve["mean_predicted"], curve["fraction_positive"], s=sizes, alpha=0.6)
    ax.plot([0, 1], [0, 1], color="grey", linestyle=":", label="perfect")
    ax.set(
        xlabel="mean predicted probability",
        ylabel="observed conversion rate",
        title="Reliability",
        xlim=(0, 1),
        ylim=(0, 1),
    )
    ax.legend(loc="upper left")
    return fig


def plot_gains(
    y: Any, score: Any, rules: Sequence[tuple[str, float, float]] | None = None
) -> Figure:
    """Cumulative gains (left) and lift (right); rules drawn as points to compare against.

    ``rules`` holds ``(name, fraction_flagged, fraction_captured)`` of yes/no baselines.
    """
    fig, (gains_ax, lift_ax) = _figure(ncols=2)
    g = gains_curve(y, score)
    flagged = np.r_[0.0, g["fraction_flagged"]]
    captured = np.r_[0.0, g["fraction_captured"]]
    gains_ax.plot(flagged, captured, label="model")
    gains_ax.plot([0, 1], [0, 1], color="grey", linestyle=":", label="random")
    lift_ax.plot(g["fraction_flagged"], g["lift"], label="model")
    lift_ax.axhline(1.0, color="grey", linestyle=":", label="random")
    for name, f, c in rules or ():
        gains_ax.scatter([f], [c], marker="D", zorder=3, label=name)
        if f > 0:
            lift_ax.scatter([f], [c / f], marker="D", zorder=3, label=name)
    gains_ax.set(
        xlabel="fraction of users flagged",
        ylabel="fraction of conversions captured",
        title="Cumulative gains",
        xlim=(0, 1),
        ylim=(0, 1.02),
    )
    lift_ax.set(
        xlabel="fraction of users flagged", ylabel="lift over base rate", title="Lift", xscale="log"
    )
    gains_ax.legend(loc="lower right")
    lift_ax.legend(loc="upper right")
    return fig


def plot_score_distribution(y: Any, p: Any, bins: int = 30) -> Figure:
    """Histograms of the score for converters and non-converters (each normalised to density)."""
    fig, (ax,) = _figure()
    y_arr, p_arr = np.asarray(y), np.asarray(p, dtype=float)
    edges = np.linspace(0.0, max(1.0, float(p_arr.max(initial=0.0))), bins + 1)
    for label, name in ((0, "did not convert"), (1, "converted")):
        values = p_arr[y_arr == label]
        if values.size:
            ax.hist(values, bins=edges, density=True, alpha=0.5, label=f"{name} (n={values.size})")
    ax.set(xlabel="predicted probability", ylabel="density", title="Score by outcome")
    ax.legend(loc="upper right")
    return fig


def plot_feature_importance(model: Any, top: int = 20, importance_type: str = "gain") -> Figure:
    """Horizontal bars of the ``top`` features by LightGBM importance (gain by default).

    ``model`` is a :class:`~propensity.model.PQLModel` or a ``lightgbm.Booster``.
    """
    booster = getattr(model, "booster", model)
    names = np.asarray(booster.feature_name())
    values = np.asarray(booster.feature_importance(importance_type=importance_type), dtype=float)
    order = np.argsort(-values, kind="mergesort")[:top][::-1]  # largest bar at the top
    fig, (ax,) = _figure(height=max(2.5, 0.3 * len(order) + 1))
    ax.barh(names[order], values[order])
    ax.set(xlabel=f"importance ({importance_type})", title=f"Top {len(order)} features")
    return fig


def plot_comparison(comparison: Comparison, y: Any, model_scores: Any) -> Figure:
    """Gains and lift of the model with every baseline (and the model's threshold) as a point."""
    return plot_gains(y, model_scores, chart_points(comparison.rule_points))


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


def plot_partial_dependence(curves: Mapping[str, pd.DataFrame], ncols: int = 3) -> Figure:
    """One small panel per feature: mean calibrated probability against the feature's value."""
    names = list(curves)
    ncols = max(1, min(ncols, len(names)))
    nrows = max(1, math.ceil(len(names) / ncols))
    fig = Figure(figsize=(4.0 * ncols, 3.0 * nrows), layout="constrained")
    FigureCanvasAgg(fig)
    for i, name in enumerate(names):
        ax = fig.add_subplot(nrows, ncols, i + 1)
        curve = curves[name]
        if pd.api.types.is_numeric_dtype(curve["value"]):
            ax.plot(curve["value"], curve["mean_probability"], marker="o", markersize=3)
        else:
            ax.bar([str(v) for v in curve["value"]], curve["mean_probability"])
            ax.tick_params(axis="x", labelrotation=30)
        ax.set_title(name, fontsize=9)
        ax.set_ylabel("mean probability", fontsize=8)
    return fig


def figure_png(fig: Figure, dpi: int = 100) -> bytes:
    """The figure as PNG bytes (Agg canvas: no display, no pyplot state)."""
    if not isinstance(fig.canvas, FigureCanvasAgg):
        FigureCanvasAgg(fig)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")
    return buffer.getvalue()
