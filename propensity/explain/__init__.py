"""SHAP values, reason codes and global explanations (the only package that imports shap).

Contributions are on the raw model's log-odds scale; the calibrated probability is a monotone
map of the raw score, so positive contributions raise it too.
"""

from propensity.explain._treeshap import TreeShapModel, prepare_in_background
from propensity.explain.importance import mean_abs_shap
from propensity.explain.reasons import (
    CONTEXT_FEATURES,
    fit_reference,
    reason_codes,
    reason_columns,
    sentence,
    top_percent,
    wording,
)
from propensity.explain.values import Method, shap_values, to_matrix

__all__ = [
    "CONTEXT_FEATURES",
    "Method",
    "TreeShapModel",
    "fit_reference",
    "mean_abs_shap",
    "prepare_in_background",
    "reason_codes",
    "reason_columns",
    "sentence",
    "shap_values",
    "to_matrix",
    "top_percent",
    "wording",
]
