"""Points-based lead scoring, the way marketing-automation tools (HubSpot, Marketo) do it.

Each condition is a rule expression worth some points (negative points are allowed). A user's
total is the sum of the points of the conditions that hold. With a ``half_life``, a condition
that names a ``recency`` feature (the behaviour's age in hours, e.g.
``hours_since_last_pricing_viewed``) earns ``points * 0.5 ** (age / half_life)``: a pricing
visit two half-lives ago is worth a quarter. Decay is explicit, never guessed from names:
conditions without ``recency`` never decay, and neither does a row whose age is missing (the
behaviour never happened, so there is nothing to age). Negative ages count as 0.

The score squashes the total monotonically into (0, 1) around the threshold,
``1 / (1 + exp(-(total - threshold) / scale))`` with ``scale`` the largest absolute points of
one condition, so ``threshold_ = 0.5`` and ``score >= 0.5`` exactly when ``total >= threshold``.

>>> import pandas as pd
>>> X = pd.DataFrame(
...     {"n_pricing_viewed_all": [0.0, 1.0], "hours_since_last_pricing_viewed": [None, 24.0]}
... )
>>> model = PointsBaseline(
...     conditions=[{"when": "n_pricing_viewed_all >= 1", "points": 20,
...                  "recency": "hours_since_last_pricing_viewed"}],
...     threshold=10, half_life="1d").fit(X)
>>> model.points(X).tolist()
[0.0, 10.0]
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import timedelta

import numpy as np
import pandas as pd
from pydantic import ValidationError
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted

from propensity import config
from propensity.baselines.grammar import RuleError
from propensity.baselines.rules import _check_frame, parse_named

__all__ = ["PointsBaseline"]

# The largest float below 0.5: where rounding would put a total just under the threshold at
# exactly 0.5, the score is nudged down so the flag and the score never disagree.
_BELOW_HALF = float(np.nextafter(0.5, 0.0))


class PointsBaseline(BaseEstimator):
    """Flag a user when the (decayed) points total of the conditions reaches ``threshold``.

    Parameters
    ----------
    conditions : sequence of PointsCondition or mappings
        Each ``{"when": rule, "points": float, "recency": feature or None}``.
    threshold : float
        The points total at which a user is a PQL.
    half_life : timedelta, str such as ``"7d"``, hours as a number, or None
        Decay of conditions that name a ``recency`` feature; None means no decay.
    name, description : str
        Shown in tables and charts.

    Attributes
    ----------
    conditions_ : tuple of PointsCondition
    rules_ : tuple of Rule
        The parsed ``when`` of each condition.
    half_life_hours_ : float or None
    scale_ : float
        Points per unit of the logistic squash (the largest absolute points of a condition).
    threshold_ : float
        0.5, so that ``predict_proba(X)[:, 1] >= threshold_`` is the flag.
    """

    kind = "points"

    def __init__(
        self,
        *,
        conditions: Sequence[config.PointsCondition | Mapping[str, object]],
        threshold: float,
        half_life: timedelta | str | float | None = None,
        name: str | None = None,
        description: str = "",
    ) -> None:
        self.conditions = conditions
        self.threshold = threshold
        self.half_life = half_life
        self.name = name
        self.description = description

    @classmethod
    def from_config(cls, section: config.PointsRule) -> PointsBaseline:
        """Build the (unfitted) estimator from its config section."""
        return cls(
            conditions=section.conditions,
            threshold=section.threshold,
            half_life=section.half_life,
            name=section.name,
            description=section.description,
        )

    @property
    def label(self) -> str:
        return self.name or "points"

    def fit(self, X: pd.DataFrame, y: object = None) -> PointsBaseline:
        """Parse every condition and check it (and its recency feature) against ``X``."""
        _check_frame(X, self.label)
        self.conditions_ = tuple(self._condition(c) for c in self.conditions)
        if not self.conditions_:
            raise self._error("needs at least one condition; add some under 'conditions:'")
        self.rules_ = tuple(
            parse_named(c.when, f"Points baseline {self.label!r}, condition {i + 1}")
            for i, c in enumerate(self.conditions_)
        )
        self.half_life_hours_ = self._half_life_hours()
        self._check_columns(X, warn=True)
        self.scale_ = max(abs(c.points) for c in self.conditions_) or 1.0
        self.threshold_ = 0.5
        return self

    def named_features(self) -> tuple[str, ...]:
        """Every feature the conditions name, and their recency features when points decay."""
        names: dict[str, None] = {}
        for i, c in enumerate(self._condition(c) for c in self.conditions):
            rule = parse_named(c.when, f"Points baseline {self.label!r}, condition {i + 1}")
            names.update(dict.fromkeys(rule.features))
            if c.recency is not None and self.half_life is not None:
                names[c.recency] = None
        return tuple(names)

    def breakdown(self, X: pd.DataFrame) -> pd.DataFrame:
        """Points earned per condition (columns are the ``when`` texts), after decay."""
        check_is_fitted(self, "rules_")
        _check_frame(X, self.label)
        self._check_columns(X)
        earned = {}
        for condition, rule in zip(self.conditions_, self.rules_, strict=True):
            holds = rule.node.evaluate(X)
            earned[condition.when] = np.where(
                holds, condition.points * self._decay(X, condition), 0.0
            )
        return pd.DataFrame(earned, index=X.index)

    def points(self, X: pd.DataFrame) -> np.ndarray:
        """The points total per row."""
        return self.breakdown(X).to_numpy(dtype=float).sum(axis=1)

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        """Shape (n, 2): column 1 is the points total squashed monotonically into (0, 1)."""
        total = self.points(X)
        margin = (total - float(self.threshold)) / self.scale_
        with np.errstate(over="ignore"):  # exp overflow gives inf, hence a score of exactly 0
            score = 1.0 / (1.0 + np.exp(-margin))
        score = np.where(total < self.threshold, np.minimum(score, _BELOW_HALF), score)
        return np.column_stack([1.0 - score, score])

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        """The flag: the points total reaches ``threshold`` (a boolean array)."""
        return self.predict_proba(X)[:, 1] >= self.threshold_

    # --- helpers ---------------------------------------------------------------------------

    def _condition(self, raw: object) -> config.PointsCondition:
        if isinstance(raw, config.PointsCondition):
            return raw
        try:
            return config.PointsCondition.model_validate(raw)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()
            )
            raise self._error(
                f"has a bad condition {raw!r} ({problems}); write each as "
                f"{{when: <rule>, points: <number>, recency: <feature, optional>}}"
            ) from None

    def _half_life_hours(self) -> float | None:
        if self.half_life is None:
            return None
        if isinstance(self.half_life, int | float) and not isinstance(self.half_life, bool):
            hours = float(self.half_life)
        else:
            try:
                hours = config.parse_duration(self.half_life).total_seconds() / 3600
            except ValueError as exc:
                raise self._error(f"has a bad half_life: {exc}") from None
        if not hours > 0:
            raise self._error(f"needs a positive half_life. Got {self.half_life!r} instead")
        return hours

    def _check_columns(self, X: pd.DataFrame, warn: bool = False) -> None:
        for rule in self.rules_:
            rule.check(X, name=self.name, warn=warn)
        missing = [
            c.recency
            for c in self.conditions_
            if c.recency is not None and self.half_life_hours_ is not None and c.recency not in X
        ]
        if missing:
            raise self._error(
                f"decays by recency features {missing} that the feature table does not have; "
                f"name 'hours_since_last_<event>' columns that exist or drop 'recency'"
            )
        for c in self.conditions_:
            if c.recency is not None and c.recency in X and not _is_numeric(X[c.recency]):
                raise self._error(f"needs a numeric recency feature; {c.recency!r} is not numeric")

    def _decay(self, X: pd.DataFrame, condition: config.PointsCondition) -> np.ndarray | float:
        if self.half_life_hours_ is None or condition.recency is None:
            return 1.0
        age = X[condition.recency].to_numpy(dtype=float, na_value=np.nan)
        factor = 0.5 ** (np.clip(age, 0.0, None) / self.half_life_hours_)
        return np.where(np.isnan(age), 1.0, factor)

    def _error(self, what: str) -> RuleError:
        return RuleError(f"Points baseline {self.label!r} {what}.", expression=self.label)


def _is_numeric(series: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(series.dtype) and not pd.api.types.is_bool_dtype(
        series.dtype
    )
