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
from datetime import timedelta
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, model_validator

from propensity.errors import ConfigError

__all__ = [
    "BaselinesConfig",
    "CalibrationConfig",
    "Config",
    "DataConfig",
    "DiscoverConfig",
    "Duration",
    "FeaturesConfig",
    "LabelConfig",
    "MlflowConfig",
    "ModelConfig",
    "PointsRule",
    "Preset",
    "RuleBaseline",
    "ScoringConfig",
    "SparkConfig",
    "SplitConfig",
    "ThresholdConfig",
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
    match = _DURATION.match(str(value))
    if match is None:
        raise ValueError(
            f"a duration must be a number followed by s, m, h, d or w (e.g. '7d', '48h'). "
            f"Got {value!r} instead."
        )
    number, unit = match.groups()
    return timedelta(**{_UNITS[unit]: float(number)})


Duration = Annotated[timedelta, BeforeValidator(parse_duration)]


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


class DataConfig(_Section):
    """Where the data is and how its columns map onto the contract."""

    events: str
    users: str | None = None  # without it, signup is each user's first event (validate only)
    conversions: str | None = None
    format: Literal["auto", "parquet", "csv", "jsonl"] = "auto"
    preset: Preset = Preset.canonical
    # Per table, canonical column -> source column; wins over the preset.
    columns: dict[Literal["events", "users", "conversions"], dict[str, str]] = Field(
        default_factory=dict
    )
    timezone: str = "UTC"  # zone of naive timestamps
    epoch_unit: Literal["auto", "s", "ms"] = "auto"
    exclude: ExcludeConfig = ExcludeConfig()
    unknown_user_events: Literal["drop", "fail"] = "drop"
    max_future: Duration = timedelta(days=1)  # tolerance past "now" before a timestamp is bad
    pii_columns: tuple[str, ...] = ("email",)  # never written to any output
    # DuckDB's memory cap; past it DuckDB spills to a temporary folder instead of growing
    memory_limit: str = Field(default="3GB", pattern=r"^\d+(\.\d+)?\s*(MB|GB|TB)$")


class LabelConfig(_Section):
    """Prediction engineering: where each cutoff falls and how far the label looks."""

    observation_window: Duration = timedelta(days=7)
    horizon: Duration = timedelta(days=30)
    # Additional cutoffs per user (trial ages), e.g. ["1d", "3d"]; the main window is always one.
    extra_cutoffs: tuple[Duration, ...] = ()
    trial_length: Duration = timedelta(days=14)  # scoring cutoff is min(as_of, signup + trial)


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
    timing: bool = True
    order: bool = True
    transitions: bool = True
    diversity: bool = True
    account: bool = True
    fit: bool = True
    properties: bool = True


class FeaturesConfig(_Section):
    """Which behavioural feature families to compute and their settings."""

    families: FeatureFamilies = FeatureFamilies()
    windows: tuple[Duration, ...] = (timedelta(days=1), timedelta(days=3), timedelta(days=7))
    session_gap: Duration = timedelta(minutes=30)
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
    trials: int = Field(default=0, ge=0)
    time_budget_s: float = Field(default=120.0, gt=0)


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
    half_life: Duration | None = None
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
    features: FeaturesConfig = FeaturesConfig()
    split: SplitConfig = SplitConfig()
    model: ModelConfig = ModelConfig()
    calibration: CalibrationConfig = CalibrationConfig()
    threshold: ThresholdConfig = ThresholdConfig(policy="top_fraction", top_fraction=0.05)
    baselines: BaselinesConfig = BaselinesConfig()
    discover: DiscoverConfig = DiscoverConfig()
    scoring: ScoringConfig = ScoringConfig()
    mlflow: MlflowConfig = MlflowConfig()
    spark: SparkConfig = SparkConfig()


def load_config(path: str | Path, **overrides: Any) -> Config:
    """Read a YAML config into a validated, frozen :class:`Config`.

    Relative data paths are resolved against the config file's folder's parent when they do
    not exist as given, so ``configs/demo.yaml`` can say ``data/demo/events.parquet``.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(
            f"Config file {str(path)!r} does not exist. Pass --config with a YAML file."
        )
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ConfigError(f"Config file {str(path)!r} is not valid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"Config file {str(path)!r} must hold a mapping of sections at the top.")
    raw.update(overrides)
    return config_from_dict(raw, source=str(path))


def config_from_dict(raw: dict[str, Any], source: str = "config") -> Config:
    """Validate a plain mapping into a :class:`Config`, with messages that name each key."""
    try:
        return Config.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(_explain(exc, source)) from None


def _explain(exc: ValidationError, source: str) -> str:
    problems = []
    for err in exc.errors():
        where = ".".join(str(part) for part in err["loc"]) or "(top level)"
        if err["type"] == "extra_forbidden":
            allowed = _allowed_keys(err["loc"][:-1])
            close = difflib.get_close_matches(str(err["loc"][-1]), allowed, n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            problems.append(
                f"unknown key '{where}'.{hint} Allowed keys here: {', '.join(sorted(allowed))}."
            )
        elif err["type"] == "missing":
            problems.append(f"missing required key '{where}'.")
        else:
            msg = err["msg"].removeprefix("Value error, ")
            problems.append(f"bad value for '{where}': {msg} (got {err.get('input')!r}).")
    body = "\n".join(f"  - {p}" for p in problems)
    return f"Invalid config {source}:\n{body}"


def _allowed_keys(loc: tuple[Any, ...]) -> list[str]:
    model: type[BaseModel] = Config
    for part in loc:
        field = model.model_fields.get(str(part))
        annotation = getattr(field, "annotation", None)
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            model = annotation
        else:
            return []
    return list(model.model_fields)
