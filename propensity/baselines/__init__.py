"""Rules-based PQL baselines: boolean rules and points scoring, judged like the model.

Every baseline is an estimator with ``fit(X)``, ``predict_proba(X)`` (column 1 a score in
[0, 1]), ``threshold_`` and ``predict(X)`` (the flag, ``score >= threshold_``), so the same
evaluation code judges rules and the model.
"""

from propensity.baselines.check import check_baselines
from propensity.baselines.grammar import Rule, RuleError
from propensity.baselines.points import PointsBaseline
from propensity.baselines.rules import RuleBaseline
from propensity.baselines.templates import (
    TEMPLATE_DIR,
    Baseline,
    available_templates,
    baseline_from_section,
    baselines_from_config,
    load_template,
)

__all__ = [
    "TEMPLATE_DIR",
    "Baseline",
    "PointsBaseline",
    "Rule",
    "RuleBaseline",
    "RuleError",
    "available_templates",
    "baseline_from_section",
    "baselines_from_config",
    "check_baselines",
    "load_template",
]
