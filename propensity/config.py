"""Typed, frozen project configuration, read once from YAML at the edge and passed down.

Every section is a pydantic model with ``extra="forbid"``: an unknown key is an error that names
the key and the allowed ones. Durations are written as ``"7d"``, ``"48h"``, ``"30m"`` or ``"90s"``
and stored as :class:`datetime.timedelta`.

>>> cfg = load_config("configs/demo.yaml")  # doctest: +SKIP
>>> cfg.label.observation_window
datetime.timedelta(days=7)
"""

from __future__ import annotations

import difflib
import re
import reprlib
import zoneinfo
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from propensity.errors import ConfigError, shorten

__all__ = [
    "BaselinesConfig",
    "BotsConfig",
    "CalendarAnchors",
    "CalibrationConfig",
    "Config",
    "CrmConfig",
    "DataConfig",
    "DedupConfig",
    "DiscoverConfig",
    "Duration",
    "EligibilityConfig",
    "FeaturesConfig",
    "LabelConfig",
    "LaggedWindows",
    "LifecycleConfig",
    "MlflowConfig",
    "ModelConfig",
    "PointsRule",
    "PositiveDuration",
    "Preset",
    "RouteCondition",
    "RouteConfig",
    "RouteRule",
    "RoutingConfig",
    "RuleBaseline",
    "ScoringConfig",
    "SinkConfig",
    "SparkConfig",
    "SplitConfig",
    "TargetConfig",
    "TaskConfig",
    "ThresholdConfig",
    "TrialAnchors",
    "load_config",
    "parse_duration",
]

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d|w)\s*$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_duration(value: Any) -> timedelta:
    """Parse ``"7d"``, ``"48h"``, ``"30m"``, ``"90s"`` or ``"2w"`` into a timedelta.

    >>> parse_duration("36h")
    datetime.timedelta(days=1, seconds=43200)
    """
    if isinstance(value, timedelta):
        return value
    match = _DURATION.match(str(value)[:40])
    if match is None:
        raise ValueError(
            f"a duration must be a number followed by s, m, h, d or w (e.g. '7d', '48h'). "
            f"Got {shorten(repr(value), 40)} instead."
        )
    number, unit = match.groups()
    try:
        return timedelta(**{_UNITS[unit]: float(number)})
    except OverflowError:
        raise ValueError(
            f"a duration must be shorter than a million days. Got {shorten(repr(value), 40)} "
            f"instead."
        ) from None


def _positive(value: timedelta) -> timedelta:
    if value <= timedelta(0):
        raise ValueError("a duration here must be longer than zero (e.g. '1d').")
    return value


Duration = Annotated[timedelta, BeforeValidator(parse_duration)]
# Windows, horizons and trial lengths: zero would label or count nothing, silently.
PositiveDuration = Annotated[timedelta, BeforeValidator(parse_duration), AfterValidator(_positive)]


def parse_instant(value: Any) -> datetime:
    """A date or time from the config as naive UTC (zoned values are converted).

    >>> parse_instant("2025-06-30T02:00:00+02:00")
    datetime.datetime(2025, 6, 30, 0, 0)
    """
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, date):
        moment = datetime(value.year, value.month, value.day)
    else:
        try:
            moment = datetime.fromisoformat(str(value)[:40].strip())
        except ValueError:
            raise ValueError(
                f"a time must be ISO-8601, e.g. 2025-06-30 or 2025-06-30T00:00:00Z. Got "
                f"{shorten(repr(value), 40)} instead."
            ) from None
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC).replace(tzinfo=None)
    return moment


Instant = Annotated[datetime, BeforeValidator(parse_instant)]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Preset(StrEnum):
    """Column layouts of the common event exports."""

    canonical = "canonical"
    segment = "segment"
    amplitude = "amplitude"
    mixpanel = "mixpanel"


class ExcludeConfig(_Section):
    """Internal and test users to drop before anything else."""

    email_domains: tuple[str, ...] = ()
    user_ids: tuple[str, ...] = ()


class DedupConfig(_Section):
    """Which repeated events are one event sent twice, and so removed.

    ``auto`` removes events sharing an event id when the export has one (``column``, or the
    preset's: Segment ``messageId``, Amplitude and Mixpanel ``$insert_id``, canonical
    ``event_id``); otherwise exact duplicates, except on day-only exports (every timestamp at
    midnight), where two identical rows are two real events on the same day and nothing is
    removed. The data summary says which ran and what it removed.
    """

    mode: Literal["auto", "exact", "event_id", "none"] = "auto"
    column: str | None = None  # source column holding a unique event id

    @model_validator(mode="after")
    def _event_id_has_a_column(self) -> DedupConfig:
        if self.mode == "event_id" and not self.column:
            raise ValueError(
                "dedup mode 'event_id' needs the event id's source column; add "
                "'column: <name>' under data.dedup."
            )
        return self


class BotsConfig(_Section):
    """Bots and scripted accounts: users whose events no person could have made.

    A user is a bot when, on some day, it sends more than ``max_events_per_hour`` events in one
    clock hour or ``max_events_per_day`` in the day, or more than ``busiest_day_factor`` times
    what the busiest 1% of users send on their busiest day (and over 500), or is active in more
    than ``max_active_hours_per_day`` of the day's 24 clock hours (people sleep); or when at
    least ``regular_min_gaps`` gaps between its events are near-identical (their coefficient of
    variation below ``regular_gap_cv``: a metronome, not a person). The hour and gap rules need
    times of day, so on day-only exports only the per-day rules apply.
    """

    exclude: bool = True
    max_events_per_hour: int = Field(default=1000, ge=1)
    max_events_per_day: int = Field(default=10_000, ge=1)
    busiest_day_factor: float = Field(default=20.0, ge=0)  # 0 turns this rule off
    max_active_hours_per_day: int = Field(default=21, ge=1, le=24)
    regular_gap_cv: float = Field(default=0.1, ge=0)
    regular_min_gaps: int = Field(default=50, ge=2)


InputTable = Literal["events", "users", "conversions", "lost_users", "payments"]
_MEMORY = re.compile(r"^(\d+(?:\.\d+)?)\s*(MB|GB|TB)$")
_MIN_MEMORY_MB = 128  # below this DuckDB cannot hold its own buffers for the reader's queries


def _memory_limit(value: str) -> str:
    match = _MEMORY.match(value)
    if match is None:
        raise ValueError(
            f"a memory limit is a number and MB, GB or TB (e.g. '3GB'). Got "
            f"{shorten(repr(value), 40)} instead."
        )
    number, unit = float(match[1]), match[2]
    megabytes = number * {"MB": 1, "GB": 1000, "TB": 1_000_000}[unit]
    if megabytes < _MIN_MEMORY_MB:
        raise ValueError(
            f"a memory limit below {_MIN_MEMORY_MB}MB is too small for DuckDB to run the "
            f"reader's queries. Got {value!r}; give at least {_MIN_MEMORY_MB}MB (e.g. '1GB')."
        )
    return value


class DataConfig(_Section):
    """Where the data is and how its columns map onto the contract."""

    events: str
    users: str | None = None  # without it, signup is each user's first event (validate only)
    conversions: str | None = None
    # Users lost before their cutoff (deleted accounts): a table of user_id, lost_at.
    lost_users: str | None = None
    # Every payment of an account (account_id, paid_at, seats): account and expansion tasks.
    payments: str | None = None
    format: Literal["auto", "parquet", "csv", "jsonl"] = "auto"
    preset: Preset = Preset.canonical
    # Per table, canonical column -> source column; wins over the preset.
    columns: dict[InputTable, dict[str, str]] = Field(default_factory=dict)
    timezone: str = "UTC"  # zone of naive timestamps
    epoch_unit: Literal["auto", "s", "ms"] = "auto"
    exclude: ExcludeConfig = ExcludeConfig()
    dedup: DedupConfig = DedupConfig()
    bots: BotsConfig = BotsConfig()
    unknown_user_events: Literal["drop", "fail"] = "drop"
    # The end of the observed data (the export time): later rows are dropped, labels are
    # right-censored against it and `--as-of latest` means it. None: the last event.
    end: Instant | None = None
    max_future: Duration = timedelta(days=1)  # tolerance past "now" before a timestamp is bad
    pii_columns: tuple[str, ...] = ("email",)  # never written to any output
    # DuckDB's memory cap; past it DuckDB spills to a temporary folder instead of growing
    memory_limit: Annotated[str, AfterValidator(_memory_limit)] = "3GB"

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        if value.upper() == "UTC":
            return value
        try:
            zoneinfo.ZoneInfo(value)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
            close = difflib.get_close_matches(value, sorted(zoneinfo.available_timezones()), n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise ValueError(
                f"a time zone must be an IANA name such as 'Europe/Paris' or 'UTC'. Got "
                f"{shorten(repr(value), 40)} instead.{hint}"
            ) from None
        return value


class LabelConfig(_Section):
    """Prediction engineering: where each cutoff falls and how far the label looks."""

    observation_window: PositiveDuration = timedelta(days=7)
    horizon: PositiveDuration = timedelta(days=30)
    # Additional cutoffs per user (trial ages), e.g. ["1d", "3d"]; the main window is always one.
    extra_cutoffs: tuple[PositiveDuration, ...] = ()
    trial_length: PositiveDuration = timedelta(days=14)  # scoring cutoff: min(as_of, trial end)
    # An event meaning "this account is gone" (deleted, churned): users lost before a cutoff
    # are excluded from labels and scoring, counted under their own reason.
    lost_event: str | None = None


# -- task: what is predicted, for whom, from when (issue 14) ------------------------------------
Weekday = Literal["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]


class TrialAnchors(_Section):
    """Anchors at trial ages: ``label.observation_window`` and ``label.extra_cutoffs`` after
    signup, exactly as without a ``task`` section."""

    kind: Literal["trial"] = "trial"


class CalendarAnchors(_Section):
    """Anchors at calendar snapshots: every day, or every week on ``weekday``, at 00:00 UTC.

    ``start``/``end`` bound the anchors (both inclusive); without them, the first anchor after
    the first event and the last one at or before the data end.
    """

    kind: Literal["calendar"]
    every: Literal["day", "week"] = "week"
    weekday: Weekday = "monday"
    start: Instant | None = None
    end: Instant | None = None

    @model_validator(mode="after")
    def _start_before_end(self) -> CalendarAnchors:
        if self.start is not None and self.end is not None and self.start > self.end:
            raise ValueError(
                f"calendar anchors need start <= end. Got start {self.start:%Y-%m-%d %H:%M} "
                f"after end {self.end:%Y-%m-%d %H:%M}; swap them or drop one."
            )
        return self


class EligibilityConfig(_Section):
    """Who is scored at an anchor: active (any event) in the ``lookback`` before it, and in the
    right state: ``not_paid`` (first payment or event targets) or ``paying`` (expansion)."""

    lookback: PositiveDuration | None = None  # calendar anchors only; default 28d
    status: Literal["not_paid", "paying"] | None = None  # default: follows the target


class TargetConfig(_Section):
    """What the label asks: the entity's ``first_payment`` (the conversions table), an
    ``expansion_payment`` (a payment with more seats than the first, or ``event`` after the
    first payment) or the first ``event`` of a configured name."""

    kind: Literal["first_payment", "expansion_payment", "event"] = "first_payment"
    event: str | None = None

    @model_validator(mode="after")
    def _event_when_needed(self) -> TargetConfig:
        if self.kind == "event" and not self.event:
            raise ValueError(
                "target kind 'event' needs the event's name; add 'event: <name>' under "
                "task.target (e.g. 'event: plan_upgraded')."
            )
        if self.kind == "first_payment" and self.event is not None:
            raise ValueError(
                "target kind 'first_payment' reads the conversions table and takes no 'event'; "
                "use kind 'event' to label the first occurrence of an event."
            )
        return self


class TaskConfig(_Section):
    """The prediction task: the entity, its anchors, who is eligible, the target and horizon.

    Without a ``task`` section the task is today's: users at trial ages, first payment, the
    ``label`` section's horizon.
    """

    entity: Literal["user", "account"] = "user"
    anchors: Annotated[TrialAnchors | CalendarAnchors, Field(discriminator="kind")] = TrialAnchors()
    eligibility: EligibilityConfig = EligibilityConfig()
    target: TargetConfig = TargetConfig()
    horizon: PositiveDuration | None = None  # calendar anchors; default label.horizon
    first_seen: Literal["signup", "first_event"] = "signup"  # where an entity's life starts

    @model_validator(mode="after")
    def _consistent(self) -> TaskConfig:
        problems = []
        trial = self.anchors.kind == "trial"
        if trial and self.entity != "user":
            problems.append(
                "trial anchors place cutoffs at a user's trial age; an account task needs "
                "calendar anchors (anchors: {kind: calendar})"
            )
        if trial and self.target.kind != "first_payment":
            problems.append(
                "trial anchors label the first payment (as the label section does); other "
                "targets need calendar anchors"
            )
        for key, value in (
            ("horizon", self.horizon),
            ("eligibility.lookback", self.eligibility.lookback),
        ):
            if trial and value is not None:
                problems.append(
                    f"task.{key} applies to calendar anchors; with trial anchors the label "
                    f"section decides (label.horizon, trial age)"
                )
        if trial and self.first_seen != "signup":
            problems.append("trial anchors count trial age from signup; drop task.first_seen")
        wanted = "paying" if self.target.kind == "expansion_payment" else "not_paid"
        if self.eligibility.status not in (None, wanted):
            problems.append(
                f"a {self.target.kind} target is predicted for entities that are "
                f"{wanted.replace('_', ' ')}; set eligibility.status to '{wanted}' or drop it"
            )
        if self.target.kind == "expansion_payment" and self.entity != "account":
            problems.append(
                "an expansion_payment target needs entity 'account' (seats are bought by accounts)"
            )
        if problems:
            raise ValueError("; ".join(problems) + ".")
        return self

    @property
    def lookback(self) -> timedelta:
        """How recent an event makes an entity active at an anchor."""
        return self.eligibility.lookback or timedelta(days=28)

    @property
    def status(self) -> Literal["not_paid", "paying"]:
        """The state an entity must be in at an anchor."""
        return self.eligibility.status or (
            "paying" if self.target.kind == "expansion_payment" else "not_paid"
        )


class MilestoneOrder(_Section):
    """``first`` happened before ``then`` (and, with ``within``, no later than that after)."""

    first: str
    then: str
    within: Duration | None = None


class PropertyAggregate(_Section):
    """Numeric aggregates of one JSON property of one event type."""

    event: str
    property: str
    aggregates: tuple[Literal["sum", "mean", "max", "min"], ...] = ("sum", "max")


class FeatureFamilies(_Section):
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


class LaggedWindows(_Section):
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


class FeaturesConfig(_Section):
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


class SplitConfig(_Section):
    """Out-of-time split by cutoff date; fractions of the cutoff-time range, in order."""

    train: float = Field(default=0.6, gt=0, lt=1)
    validation: float = Field(default=0.15, gt=0, lt=1)
    calibration: float = Field(default=0.1, gt=0, lt=1)
    test: float = Field(default=0.15, gt=0, lt=1)

    @model_validator(mode="after")
    def _sums_to_one(self) -> SplitConfig:
        total = self.train + self.validation + self.calibration + self.test
        if abs(total - 1.0) > 1e-6:
            raise ValueError(
                f"split fractions train + validation + calibration + test must sum to 1. "
                f"Got {total:.3f} instead."
            )
        return self


class SearchConfig(_Section):
    # None: search (AUTO_SEARCH_TRIALS) only when the config sets no LightGBM setting
    trials: int | None = Field(default=None, ge=0)
    # a safety net only: a search cut short by time depends on machine speed
    time_budget_s: float = Field(default=300.0, gt=0)


AUTO_SEARCH_TRIALS = 16
# The LightGBM settings the search picks; setting any of them in the config turns it off.
TUNED_SETTINGS = (
    "num_leaves",
    "min_child_samples",
    "feature_fraction",
    "bagging_fraction",
    "reg_lambda",
)


class ModelConfig(_Section):
    """LightGBM settings and the minimum data needed to train honestly."""

    n_estimators: int = Field(default=2000, ge=1)
    learning_rate: float = Field(default=0.05, gt=0, le=1)
    num_leaves: int = Field(default=31, ge=2)
    min_child_samples: int = Field(default=40, ge=1)
    feature_fraction: float = Field(default=0.8, gt=0, le=1)
    bagging_fraction: float = Field(default=0.8, gt=0, le=1)
    reg_lambda: float = Field(default=1.0, ge=0)
    early_stopping_rounds: int = Field(default=100, ge=1)
    min_positives: int = Field(default=50, ge=1)
    min_negatives: int = Field(default=50, ge=1)
    search: SearchConfig = SearchConfig()
    n_jobs: int = 2

    def search_trials(self) -> int:
        """Trials of the hyperparameter search: as set, else only when no setting is given."""
        if self.search.trials is not None:
            return self.search.trials
        return 0 if self.model_fields_set & set(TUNED_SETTINGS) else AUTO_SEARCH_TRIALS


class CalibrationConfig(_Section):
    # auto: isotonic with enough calibration positives, sigmoid otherwise
    method: Literal["auto", "isotonic", "sigmoid"] = "auto"
    isotonic_min_positives: int = Field(default=500, ge=1)
    ece_bins: int = Field(default=15, ge=2)


class ThresholdConfig(_Section):
    """How the PQL threshold is chosen; only the chosen policy's parameter is needed."""

    policy: Literal["capacity", "precision", "expected_value", "top_fraction"] = "capacity"
    capacity_per_week: float | None = Field(default=None, gt=0)
    target_precision: float | None = Field(default=None, gt=0, le=1)
    value_of_conversion: float | None = Field(default=None, gt=0)
    cost_of_contact: float | None = Field(default=None, gt=0)
    top_fraction: float | None = Field(default=None, gt=0, le=1)
    bootstrap: int = Field(default=500, ge=0)

    @model_validator(mode="after")
    def _policy_has_its_parameter(self) -> ThresholdConfig:
        needed = {
            "capacity": ("capacity_per_week",),
            "precision": ("target_precision",),
            "expected_value": ("value_of_conversion", "cost_of_contact"),
            "top_fraction": ("top_fraction",),
        }[self.policy]
        missing = [key for key in needed if getattr(self, key) is None]
        if missing:
            raise ValueError(
                f"threshold policy '{self.policy}' needs {', '.join(missing)}; add it under "
                f"'threshold:' in the config."
            )
        return self


class RuleBaseline(_Section):
    """A boolean rule over feature columns, e.g. ``n_teammate_invited_all >= 3``.

    The grammar is in ``propensity/baselines/grammar.py``.
    """

    name: str
    expr: str
    description: str = ""  # where the definition comes from, shown next to the results


class PointsCondition(_Section):
    """Points given when ``when`` holds, optionally decayed by the age of the behaviour."""

    when: str  # a boolean rule expression over features
    points: float  # may be negative (e.g. a free-mail domain)
    # The feature holding the behaviour's age in hours, e.g. ``hours_since_last_pricing_viewed``.
    # Only conditions that name one decay; a missing age (never happened) means no decay.
    recency: str | None = None


class PointsRule(_Section):
    """Lead scoring the way marketing-automation tools do it: points per condition."""

    name: str
    conditions: tuple[PointsCondition, ...]
    threshold: float  # a lead is flagged when its (decayed) points total reaches this
    # Optional decay: points of a condition are multiplied by 0.5 ** (age / half_life), where age
    # is the value of the condition's ``recency`` feature (hours since the behaviour).
    half_life: PositiveDuration | None = None
    description: str = ""


class BaselinesConfig(_Section):
    """Rules-based PQL definitions judged side by side with the model."""

    rules: tuple[RuleBaseline, ...] = ()
    points: tuple[PointsRule, ...] = ()
    # Names of files in configs/baselines/ (without .yaml) to include, e.g. "plan_limit_hit".
    templates: tuple[str, ...] = ()
    bootstrap: int = Field(default=500, ge=0)
    # Also judge the rule `propensity discover` learns on the training slice (see docs/discover.md).
    suggested: bool = False


class DiscoverConfig(_Section):
    """Aha moments and a suggested rule, learned on the training slice (docs/discover.md)."""

    # Fraction of trial users the suggested rule should flag; default: the threshold policy's
    # volume (capacity or top_fraction), else 5%.
    volume: float | None = Field(default=None, gt=0, lt=1)
    max_conditions: int = Field(default=3, ge=1, le=3)
    estimate_fraction: float = Field(default=0.5, gt=0, lt=1)  # held out for honest estimates
    min_users: int = Field(default=30, ge=5)  # per half, for a behaviour to be reported
    pair_events: int = Field(default=12, ge=2)  # events tried in "A then B"
    top: int = Field(default=15, ge=1)  # behaviours printed


class ScoringConfig(_Section):
    reason_codes: int = Field(default=3, ge=0)
    # Which rows get SHAP reason codes: the PQLs plus the top fraction of scores, or all rows.
    explain: Literal["pql_and_top", "all", "none"] = "pql_and_top"
    explain_top_fraction: float = Field(default=0.1, ge=0, le=1)
    holdout_fraction: float = Field(default=0.0, ge=0, lt=1)
    holdout_salt: str = "propensity"
    drift_psi_limit: float = Field(default=0.25, gt=0)
    account_rollup: bool = True
    output_format: Literal["parquet", "csv"] = "parquet"


class LifecycleConfig(_Section):
    """When a scored entity becomes, stays and stops being a PQL (see docs/crm.md)."""

    # None: the model's threshold. An entity enters at or above it...
    entry_threshold: float | None = Field(default=None, gt=0, le=1)
    # ...and leaves below entry x exit_ratio: a score wobbling around the entry cannot flap.
    exit_ratio: float = Field(default=0.8, gt=0, le=1)
    min_pql_time: Duration = timedelta(days=7)
    cooldown: Duration = timedelta(days=14)
    suppress_converted: bool = True


class RouteCondition(_Section):
    """One test on a segment column: ``in`` a list of values, and/or within ``min``/``max``."""

    column: str = Field(min_length=1, max_length=200)
    in_: list[str | int | float | bool] | None = Field(default=None, alias="in")
    min: float | None = None
    max: float | None = None

    @model_validator(mode="after")
    def _has_a_test(self) -> RouteCondition:
        if self.in_ is None and self.min is None and self.max is None:
            raise ValueError(f"the condition on '{self.column}' needs 'in', 'min' or 'max'.")
        return self


class RouteRule(_Section):
    """Send entities matching every condition to ``route``; the first matching rule wins."""

    name: str = Field(min_length=1, max_length=100)
    route: str = Field(min_length=1, max_length=50)
    when: list[RouteCondition] = Field(min_length=1, max_length=50)


class RouteConfig(_Section):
    # None: no limit. PQLs past the week's capacity go to ``overflow`` (or wait when None).
    capacity_per_week: int | None = Field(default=None, ge=0)
    overflow: str | None = None


class RoutingConfig(_Section):
    rules: list[RouteRule] = Field(default_factory=list, max_length=100)
    default_route: str = "self_serve"
    routes: dict[str, RouteConfig] = Field(
        default_factory=lambda: {"sales": RouteConfig(), "self_serve": RouteConfig()}
    )

    @model_validator(mode="after")
    def _routes_are_declared(self) -> RoutingConfig:
        known = set(self.routes)
        named = [("default_route", self.default_route)]
        named += [(f"rules[{r.name}].route", r.route) for r in self.rules]
        named += [(f"routes.{k}.overflow", v.overflow) for k, v in self.routes.items()]
        bad = [f"{where}={name!r}" for where, name in named if name and name not in known]
        if bad:
            raise ValueError(
                f"every route must be declared under 'routes' ({', '.join(sorted(known))}). Got "
                f"{', '.join(bad)}; add it to routes or fix the name."
            )
        return self


class SinkConfig(_Section):
    # duckdb: a file (the embedded default); postgres: a libpq URI (psycopg, extra 'postgres')
    kind: Literal["duckdb", "postgres"] = "duckdb"
    path: str = "outputs/crm.duckdb"
    # e.g. postgresql://user@localhost:5432/crm; PROPENSITY_CRM_DSN wins when set
    dsn: str | None = None
    db_schema: str = Field(default="public", pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
    current_table: str = Field(default="pql_current", pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
    history_table: str = Field(default="pql_history", pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")


class CrmConfig(_Section):
    """CRM outputs: lifecycle, routing, field names and the sink (see docs/crm.md)."""

    lifecycle: LifecycleConfig = LifecycleConfig()
    routing: RoutingConfig = RoutingConfig()
    sink: SinkConfig = SinkConfig()
    preset: Literal["generic", "salesforce", "hubspot"] = "generic"
    score_decimals: int = Field(default=2, ge=0, le=6)
    # conversions after a PQL count for outcomes only within this long (the label horizon)
    outcome_horizon: PositiveDuration = timedelta(days=30)
    # alert when realized precision is below training's promise by more than this share
    alert_drop: float = Field(default=0.3, gt=0, lt=1)


class MlflowConfig(_Section):
    tracking_uri: str | None = None  # MLFLOW_TRACKING_URI wins; default sqlite:///mlflow.db
    experiment: str = "propensity"
    registered_model: str = "propensity-pql"
    promotion_metric: Literal["average_precision", "roc_auc", "neg_log_loss"] = "average_precision"
    on_unreachable: Literal["fail", "local"] = "fail"


class SparkConfig(_Section):
    """The Spark session used when ``engine: spark`` (see docs/spark.md).

    ``master`` None leaves it to spark-submit or the cluster (Databricks); ``local[2]`` runs on
    this machine. ``conf`` entries go to the session builder as strings (booleans lowercased)
    and win over propensity's defaults, except the session time zone, which must stay UTC.
    """

    master: str | None = None
    app_name: str = "propensity"
    conf: dict[str, str | int | float | bool] = Field(default_factory=dict)


class Config(_Section):
    """The whole project configuration."""

    project: str = "propensity"
    seed: int = 42
    engine: Literal["duckdb", "spark"] = "duckdb"
    output_dir: str = "outputs"
    data: DataConfig
    label: LabelConfig = LabelConfig()
    task: TaskConfig | None = None  # None: users at trial ages, as the label section says
    features: FeaturesConfig = FeaturesConfig()
    split: SplitConfig = SplitConfig()
    model: ModelConfig = ModelConfig()
    calibration: CalibrationConfig = CalibrationConfig()
    threshold: ThresholdConfig = ThresholdConfig(policy="top_fraction", top_fraction=0.05)
    baselines: BaselinesConfig = BaselinesConfig()
    discover: DiscoverConfig = DiscoverConfig()
    scoring: ScoringConfig = ScoringConfig()
    crm: CrmConfig = CrmConfig()
    mlflow: MlflowConfig = MlflowConfig()
    spark: SparkConfig = SparkConfig()


# A config is a few kilobytes; these bounds keep a hostile file (a YAML alias bomb expands to
# billions of values from a few lines) from taking the machine's memory or flooding the log.
MAX_CONFIG_BYTES = 1_000_000
MAX_CONFIG_VALUES = 100_000
_MAX_PROBLEMS = 20


def load_config(path: str | Path, **overrides: Any) -> Config:
    """Read a YAML config into a validated, frozen :class:`Config`.

    Relative data paths are resolved against the config file's folder's parent when they do
    not exist as given, so ``configs/demo.yaml`` can say ``data/demo/events.parquet``.
    """
    path = Path(path)
    raw = _read_yaml(path)
    raw.update(overrides)
    return config_from_dict(raw, source=str(path))


def _read_yaml(path: Path) -> dict[str, Any]:
    """The config file as a plain mapping, bounded in bytes read and values expanded."""
    name = repr(str(path))
    if path.is_dir():
        raise ConfigError(f"Config file {name} is a folder. Pass --config with a YAML file.")
    if not path.is_file():
        raise ConfigError(f"Config file {name} does not exist. Pass --config with a YAML file.")
    try:
        with open(path, "rb") as handle:
            data = handle.read(MAX_CONFIG_BYTES + 1)
    except OSError as exc:
        raise ConfigError(
            f"Config file {name} cannot be read ({exc.strerror or exc}). Check its permissions."
        ) from None
    if len(data) > MAX_CONFIG_BYTES:
        raise ConfigError(
            f"Config file {name} is larger than {MAX_CONFIG_BYTES:,} bytes; a config is a few "
            f"kilobytes. Pass the project's YAML config, not a data file."
        )
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise ConfigError(
            f"Config file {name} is not UTF-8 text (byte 0x{data[exc.start]:02x} on line "
            f"{line}). Save it as UTF-8."
        ) from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(
            f"Config file {name} is not valid YAML: {shorten(str(exc), 300)}"
        ) from None
    except RecursionError:
        raise ConfigError(f"Config file {name} nests too deeply to be a config.") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"Config file {name} must hold a mapping of sections at the top.")
    _check_size(raw, name)
    return raw


def _check_size(raw: Any, name: str) -> None:
    """Refuse a document whose values, with every YAML alias expanded, exceed the bound.

    Aliases share one Python object, so sizes are memoised by identity: the count is exact and
    costs one visit per distinct object, however large the expansion would be.
    """
    sizes: dict[int, int] = {}
    open_: set[int] = set()

    def size(obj: Any) -> int:
        if not isinstance(obj, dict | list):
            return 1
        key = id(obj)
        if key in sizes:
            return sizes[key]
        if key in open_:
            raise ConfigError(
                f"Config file {name} holds a value that contains itself (a recursive YAML "
                f"alias). Write the value out."
            )
        open_.add(key)
        items = [*obj.keys(), *obj.values()] if isinstance(obj, dict) else obj
        total = 1
        for item in items:
            total += size(item)
            if total > MAX_CONFIG_VALUES:
                break
        open_.discard(key)
        sizes[key] = total
        return total

    try:
        total = size(raw)
    except RecursionError:
        raise ConfigError(f"Config file {name} nests too deeply to be a config.") from None
    if total > MAX_CONFIG_VALUES:
        raise ConfigError(
            f"Config file {name} expands to more than {MAX_CONFIG_VALUES:,} values (YAML "
            f"aliases repeat what they point at). Write the config without nested aliases."
        )


def config_from_dict(raw: dict[str, Any], source: str = "config") -> Config:
    """Validate a plain mapping into a :class:`Config`, with messages that name each key."""
    try:
        return Config.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(_explain(exc, source)) from None
    except RecursionError:
        raise ConfigError(f"Invalid config {source}: it nests too deeply to be a config.") from None


def _explain(exc: ValidationError, source: str) -> str:
    problems = []
    errors = exc.errors(include_url=False, include_context=False)
    for err in errors[:_MAX_PROBLEMS]:
        where = shorten(".".join(str(part) for part in err["loc"]) or "(top level)", 80)
        if err["type"] == "extra_forbidden":
            allowed = _allowed_keys(err["loc"][:-1])
            close = difflib.get_close_matches(str(err["loc"][-1])[:80], allowed, n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            problems.append(
                f"unknown key '{where}'.{hint} Allowed keys here: {', '.join(sorted(allowed))}."
            )
        elif err["type"] == "missing":
            problems.append(f"missing required key '{where}'.")
        else:
            msg = shorten(err["msg"].removeprefix("Value error, "), 300)
            got = shorten(_safe_repr(err.get("input")), 60)
            problems.append(f"bad value for '{where}': {msg} (got {got}).")
    if len(errors) > _MAX_PROBLEMS:
        problems.append(f"... and {len(errors) - _MAX_PROBLEMS} more problems.")
    body = "\n".join(f"  - {p}" for p in problems)
    return f"Invalid config {source}:\n{body}"


_REPR = reprlib.Repr()
_REPR.maxlevel, _REPR.maxstring, _REPR.maxother = 3, 60, 60
_REPR.maxlist = _REPR.maxtuple = _REPR.maxdict = 5


def _safe_repr(value: Any) -> str:
    """A repr that stops early on big values: what a user gave, never a megabyte of it."""
    return _REPR.repr(value)


def _allowed_keys(loc: tuple[Any, ...]) -> list[str]:
    """The keys of the section at ``loc``, through optional sections and tagged unions (whose
    tag, e.g. ``calendar`` in ``task.anchors.calendar``, is part of pydantic's location)."""
    model: type[BaseModel] = Config
    parts = list(loc)
    i = 0
    while i < len(parts):
        field = model.model_fields.get(str(parts[i]))
        models = _models(getattr(field, "annotation", None))
        if len(models) > 1:
            i += 1
            models = [m for m in models if i < len(parts) and _tag(m) == parts[i]]
        if len(models) != 1:
            return []
        model = models[0]
        i += 1
    return list(model.model_fields)


def _models(annotation: Any) -> list[type[BaseModel]]:
    """The sections an annotation allows (``X | None`` and ``A | B`` unwrapped)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for arg in get_args(annotation) for m in _models(arg)]


def _tag(model: type[BaseModel]) -> Any:
    kind = model.model_fields.get("kind")
    args = get_args(kind.annotation) if kind is not None else ()
    return args[0] if args else None
