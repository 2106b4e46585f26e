"""The features section: windows, families, milestones, properties, lags."""

from __future__ import annotations

from datetime import timedelta
from typing import Literal

from pydantic import Field, model_validator

from propensity.config._base import Duration, PositiveDuration, Section

__all__ = [
    "FeatureFamilies",
    "FeaturesConfig",
    "LaggedWindows",
    "MilestoneOrder",
    "PropertyAggregate",
]


class MilestoneOrder(Section):
    """``first`` happened before ``then`` (and, with ``within``, no later than that after)."""

    first: str
    then: str
    within: Duration | None = None


class PropertyAggregate(Section):
    """Numeric aggregates of one JSON property of one event type."""

    event: str
    property: str
    aggregates: tuple[Literal["sum", "mean", "max", "min"], ...] = ("sum", "max")


class FeatureFamilies(Section):
    counts: bool = True
    recency: bool = True
    activity: bool = True
    # None: on for rows at trial ages, off at calendar anchors (hours from signup to a first
    # event is a trial-clock measure; across months of calendar anchors it tracks the cohort's
    # age, not the user: it cost 0.10x of AP against the oracle on simulated freemium worlds)
    timing: bool | None = None
    order: bool = True
    transitions: bool = True
    diversity: bool = True
    account: bool = True
    fit: bool = True
    properties: bool = True
    # None: on for rows at calendar anchors (a freemium user has no trial clock), off otherwise
    lagged: bool | None = None


class LaggedWindows(Section):
    """Windows of ``window`` days that end ``lags`` before the anchor (0d: the last ``window``),
    each with its counts, active days, trend (the last ``recent`` against the rest) and recency.
    """

    window: PositiveDuration = timedelta(days=28)
    lags: tuple[Duration, ...] = tuple(timedelta(days=7 * k) for k in range(4))
    recent: PositiveDuration = timedelta(days=7)

    @model_validator(mode="after")
    def _whole_days(self) -> LaggedWindows:
        day = timedelta(days=1)
        values = (self.window, self.recent, *self.lags)
        if any(v < timedelta(0) or v % day for v in values):
            raise ValueError(
                "lagged windows count whole days back from the anchor: window, recent and lags "
                "must be whole days >= 0 (e.g. '28d', lags [0d, 7d]). Got "
                f"{[f'{v.total_seconds() / 86400:g}d' for v in values]} instead."
            )
        if self.recent >= self.window:
            raise ValueError(
                f"lagged.recent must be shorter than lagged.window (the trend compares the last "
                f"'recent' days with the rest of the window). Got recent "
                f"{self.recent.days}d >= window {self.window.days}d instead."
            )
        if len(set(self.lags)) != len(self.lags):
            raise ValueError("lagged.lags must not repeat a lag; list each once.")
        return self


class FeaturesConfig(Section):
    """Which behavioural feature families to compute and their settings."""

    families: FeatureFamilies = FeatureFamilies()
    windows: tuple[PositiveDuration, ...] = (
        timedelta(days=1),
        timedelta(days=3),
        timedelta(days=7),
    )
    session_gap: PositiveDuration = timedelta(minutes=30)
    # Event types for recency and time-to-first; empty means every type in the vocabulary.
    key_events: tuple[str, ...] = ()
    milestones: tuple[MilestoneOrder, ...] = ()
    top_transitions: int = Field(default=20, ge=0)
    min_event_support: int = Field(default=20, ge=1)  # users needed for an event type to count
    max_event_types: int = Field(default=60, ge=1)
    free_mail_domains: tuple[str, ...] = (
        "gmail.com",
        "yahoo.com",
        "hotmail.com",
        "outlook.com",
        "icloud.com",
        "aol.com",
        "proton.me",
        "protonmail.com",
        "gmx.com",
        "mail.com",
        "yandex.com",
        "live.com",
    )
    enterprise_domains: tuple[str, ...] = ()
    education_suffixes: tuple[str, ...] = (".edu", ".ac.uk", ".edu.au")
    numeric_user_columns: tuple[str, ...] = ()
    categorical_user_columns: tuple[str, ...] = ()
    max_category_levels: int = Field(default=50, ge=1)  # most frequent levels kept per column
    properties: tuple[PropertyAggregate, ...] = ()
    lagged: LaggedWindows = LaggedWindows()  # read when families.lagged is on
