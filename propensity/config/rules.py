"""The rules the model is judged against, and rule discovery."""

from __future__ import annotations

from pydantic import Field

from propensity.config._base import PositiveDuration, Section

__all__ = ["BaselinesConfig", "DiscoverConfig", "PointsCondition", "PointsRule", "RuleBaseline"]


class RuleBaseline(Section):
    """A boolean rule over feature columns, e.g. ``n_teammate_invited_all >= 3``.

    The grammar is in ``propensity/baselines/grammar.py``.
    """

    name: str
    expr: str
    description: str = ""  # where the definition comes from, shown next to the results


class PointsCondition(Section):
    """Points given when ``when`` holds, optionally decayed by the age of the behaviour."""

    when: str  # a boolean rule expression over features
    points: float  # may be negative (e.g. a free-mail domain)
    # The feature holding the behaviour's age in hours, e.g. ``hours_since_last_pricing_viewed``.
    # Only conditions that name one decay; a missing age (never happened) means no decay.
    recency: str | None = None


class PointsRule(Section):
    """Lead scoring the way marketing-automation tools do it: points per condition."""

    name: str
    conditions: tuple[PointsCondition, ...]
    threshold: float  # a lead is flagged when its (decayed) points total reaches this
    # Optional decay: points of a condition are multiplied by 0.5 ** (age / half_life), where age
    # is the value of the condition's ``recency`` feature (hours since the behaviour).
    half_life: PositiveDuration | None = None
    description: str = ""


class BaselinesConfig(Section):
    """Rules-based PQL definitions judged side by side with the model."""

    rules: tuple[RuleBaseline, ...] = ()
    points: tuple[PointsRule, ...] = ()
    # Names of files in configs/baselines/ (without .yaml) to include, e.g. "plan_limit_hit".
    templates: tuple[str, ...] = ()
    bootstrap: int = Field(default=500, ge=0)
    # Also judge the rule `propensity discover` learns on the training slice (see docs/discover.md).
    suggested: bool = False


class DiscoverConfig(Section):
    """Aha moments and a suggested rule, learned on the training slice (docs/discover.md)."""

    # Fraction of trial users the suggested rule should flag; default: the threshold policy's
    # volume (capacity or top_fraction), else 5%.
    volume: float | None = Field(default=None, gt=0, lt=1)
    max_conditions: int = Field(default=3, ge=1, le=3)
    estimate_fraction: float = Field(default=0.5, gt=0, lt=1)  # held out for honest estimates
    min_users: int = Field(default=30, ge=5)  # per half, for a behaviour to be reported
    pair_events: int = Field(default=12, ge=2)  # events tried in "A then B"
    top: int = Field(default=15, ge=1)  # behaviours printed
