"""A boolean PQL rule as an estimator, so the code that judges the model judges rules too.

>>> import pandas as pd
>>> X = pd.DataFrame({"n_plan_limit_hit_all": [0.0, 2.0]})
>>> RuleBaseline(expr="n_plan_limit_hit_all >= 1", name="limit").fit(X).predict(X).tolist()
[False, True]
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted

from propensity import config
from propensity.baselines.grammar import Rule, RuleError
from propensity.contract import FEATURES
from propensity.errors import DataContractError

__all__ = ["RuleBaseline"]


class RuleBaseline(BaseEstimator):
    """Flag a user when a boolean rule over feature columns holds.

    Parameters
    ----------
    expr : str
        The rule, e.g. ``"n_teammate_invited_all >= 3 and n_message_sent_all >= 50"``.
    name : str or None
        A short name for tables and charts; defaults to the rule text.
    description : str
        Where the definition comes from (shown next to results).

    Attributes
    ----------
    rule_ : Rule
        The parsed rule.
    features_ : tuple of str
        The feature columns the rule reads.
    threshold_ : float
        0.5: the score is 1.0 or 0.0, so ``score >= threshold_`` is the rule's flag.
    """

    kind = "rule"

    def __init__(self, *, expr: str, name: str | None = None, description: str = "") -> None:
        self.expr = expr
        self.name = name
        self.description = description

    @classmethod
    def from_config(cls, section: config.RuleBaseline) -> RuleBaseline:
        """Build the (unfitted) estimator from its config section."""
        return cls(expr=section.expr, name=section.name, description=section.description)

    @property
    def label(self) -> str:
        """The name shown in tables: ``name``, or the rule text when it has none."""
        return self.name or self.expr

    def fit(self, X: pd.DataFrame, y: object = None) -> RuleBaseline:
        """Parse the rule and check it against ``X``'s columns; nothing is learned from ``y``."""
        _check_frame(X, self.label)
        self.rule_ = parse_named(self.expr, f"Rule {self.label!r}")
        self.rule_.check(X, name=self.name, warn=True)
        self.features_ = self.rule_.features
        self.threshold_ = 0.5
        return self

    def named_features(self) -> tuple[str, ...]:
        """The feature columns the rule names (parsed, not checked against any table)."""
        return parse_named(self.expr, f"Rule {self.label!r}").features

    def decision(self, X: pd.DataFrame) -> np.ndarray:
        """One boolean per row: does the rule hold?"""
        check_is_fitted(self, "rule_")
        _check_frame(X, self.label)
        return self.rule_.evaluate(X, name=self.name)

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        """Shape (n, 2): column 1 is 1.0 where the rule holds and 0.0 elsewhere."""
        score = self.decision(X).astype(float)
        return np.column_stack([1.0 - score, score])

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        """The flag: ``predict_proba(X)[:, 1] >= threshold_`` (a boolean array)."""
        return self.predict_proba(X)[:, 1] >= self.threshold_

    def __str__(self) -> str:
        return f"{self.label}: {self.expr}"


def parse_named(text: str, owner: str) -> Rule:
    """Parse ``text``; a syntax error names its owner, e.g. ``Rule 'plan_limit_hit': ...``."""
    try:
        return Rule.parse(text)
    except RuleError as exc:
        raise RuleError(
            f"{owner}: {exc}", expression=exc.expression, position=exc.position
        ) from None


def _check_frame(X: object, name: str) -> None:
    """The feature table's contract (a rule reads features, no keys), named for the baseline;
    the columns a rule names are checked by the rule itself."""
    try:
        FEATURES.validate(X, keys=())  # type: ignore[arg-type]  (checking it is a frame)
    except DataContractError as exc:
        raise RuleError(
            f"Baseline {name!r} needs a pandas DataFrame of features: {exc}", expression=name
        ) from None
