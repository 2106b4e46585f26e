"""Whether a trained model may become champion: good enough at all, then better than the champion.

A model is never promoted when its numbers do not exclude chance (the 95% interval of ROC AUC
on the test slice includes 0.5, or that of the lift at its threshold includes 1) or when a rules
baseline catches more payers than the model flagging as many users. The reason is one line,
kept in the model's metadata so `score` can warn loudly if such a model is ever used.

Otherwise the new version becomes champion when it beats the current champion on the configured
metric over the SAME test rows (the champion is re-scored on them), or when there is no champion
yet; ties keep the champion. Tracking only reads the champion and sets the alias.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from propensity.errors import ModelError
from propensity.evaluate import ranking_metrics
from propensity.model.bundle import PQLModel
from propensity.tracking import LoadedModel, PromotionDecision, TrackedRun

__all__ = ["decide_promotion", "metric_value", "publish", "weakness"]

# A rule must flag at least this many test users for "it beats the model" to mean something.
MIN_RULE_FLAGGED = 10


def metric_value(metric: str, y: Any, p: Any) -> float:
    """``average_precision``, ``roc_auc`` or ``neg_log_loss`` (minus log loss: higher is better)."""
    values = ranking_metrics(y, p)
    return -values["log_loss"] if metric == "neg_log_loss" else float(values[metric])


def weakness(metrics: Mapping[str, Any], comparison: pd.DataFrame | None = None) -> str:
    """Why the model must not be promoted, in one line; empty when it may be.

    ``metrics`` is :func:`~propensity.model.train.fit_model`'s; ``comparison`` the table of
    :func:`~propensity.compare.compare` (model first, then one row per baseline).
    """
    used = metrics.get("test_slice", {})
    on = f"{used.get('rows', '?')} test users, {used.get('positives', '?')} paid"
    auc = metrics.get("test_calibrated", {}).get("roc_auc", float("nan"))
    low, high = metrics.get("test_calibrated_ci", {}).get("roc_auc", (float("nan"),) * 2)
    if not auc > 0.5 or not low > 0.5:
        return (
            f"ROC AUC {auc:.3f} [95% {low:.3f}, {high:.3f}] on {on}: the interval does not "
            f"exclude chance (0.5)"
        )
    t = metrics.get("threshold", {})
    lift_low, lift_high = t.get("ci", {}).get("lift", (float("nan"),) * 2)
    if not lift_low > 1.0:
        return (
            f"lift at the threshold {t.get('lift', float('nan')):.2f}x [95% {lift_low:.2f}, "
            f"{lift_high:.2f}] on {on}: the interval does not exclude 1 (a random pick)"
        )
    if comparison is not None and "precision_diff" in comparison:
        rules = comparison[(comparison["name"] != "model")]
        rules = rules[(rules["n_flagged"] >= MIN_RULE_FLAGGED) & (rules["precision_diff"] < 0)]
        if "precision_diff_high" in rules:
            # a loss inside the paired bootstrap's noise is not a loss: on 12 flagged users one
            # payer more is 8 points; only an interval wholly below zero says the rule is better
            high = rules["precision_diff_high"]
            rules = rules[high.isna() | (high < 0)]
        if len(rules):
            worst = rules.loc[rules["precision_diff"].idxmin()]
            return (
                f"the rule {worst['name']} beats the model at its own volume "
                f"({int(worst['n_flagged'])} flagged: {worst['precision']:.1%} of them pay vs "
                f"the model's {worst['model_precision_same_volume']:.1%})"
            )
    return ""


def decide_promotion(
    version: str,
    model: PQLModel,
    X_test: pd.DataFrame,
    y_test: Any,
    metric: str,
    champion: LoadedModel | None,
    weak: str = "",
) -> PromotionDecision:
    """Champion-or-not for ``version``: never when ``weak``; else beat the champion's metric."""
    y = np.asarray(y_test)
    new_value = metric_value(metric, y, model.predict_proba(X_test)[:, 1])
    current = None if champion is None else champion.version

    def decide(promoted: bool, reason: str, value: float | None = None) -> PromotionDecision:
        return PromotionDecision(promoted, metric, new_value, value, current, version, reason, weak)

    if weak:
        return decide(False, f"not promoted: {weak}")
    if champion is None:
        return decide(True, "no champion yet")
    old = champion.pqlmodel
    try:
        # The new spec may add features; the champion reads its own columns of the same rows.
        columns = [c for c in old.feature_columns if c in X_test.columns]
        champion_p = old.predict_proba(
            X_test[columns] if len(columns) == len(old.feature_columns) else X_test
        )[:, 1]
    except ModelError as exc:
        return decide(
            False,
            f"champion v{current} cannot score this test frame ({exc}); promote by hand with "
            f"set_champion if the new feature spec is intended",
        )
    champion_value = metric_value(metric, y, champion_p)
    if math.isnan(new_value):
        return decide(False, f"{metric} is undefined on this test window", champion_value)
    if math.isnan(champion_value) or new_value > champion_value:
        return decide(True, f"{metric} {new_value:.4f} beats champion's", champion_value)
    return decide(False, f"{metric} {new_value:.4f} does not beat champion's", champion_value)


def publish(
    run: TrackedRun, model: PQLModel, X_test: pd.DataFrame, y_test: Any, weak: str = ""
) -> PromotionDecision:
    """Log and register ``model``, decide its promotion, and let tracking set the alias."""
    model.metadata["weakness"] = weak
    version = run.publish(model)
    decision = decide_promotion(
        version,
        model,
        X_test,
        y_test,
        run.cfg.mlflow.promotion_metric,
        run.champion(),
        weak,
    )
    run.record_promotion(decision)
    return decision
