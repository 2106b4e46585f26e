"""Typed, frozen project configuration, read once from YAML at the edge and passed down.

Every section is a pydantic model with ``extra="forbid"``: an unknown key is an error that names
the key and the allowed ones. Durations are written as ``"7d"``, ``"48h"``, ``"30m"`` or ``"90s"``
and stored as :class:`datetime.timedelta`.

>>> cfg = load_config("configs/demo.yaml")  # doctest: +SKIP
>>> cfg.label.observation_window
datetime.timedelta(days=7)
"""

from __future__ import annotations

from propensity.config._base import (
    Duration,
    Instant,
    PositiveDuration,
    Section,
    parse_duration,
    parse_instant,
)
from propensity.config.crm import (
    CrmConfig,
    LifecycleConfig,
    RouteCondition,
    RouteConfig,
    RouteRule,
    RoutingConfig,
    ScoringConfig,
    SinkConfig,
)
from propensity.config.data import (
    MEMORY_VARIABLE,
    BotsConfig,
    DataConfig,
    DedupConfig,
    ExcludeConfig,
    InputTable,
    Preset,
    memory_bytes,
)
from propensity.config.features import (
    FeatureFamilies,
    FeaturesConfig,
    LaggedWindows,
    MilestoneOrder,
    PropertyAggregate,
)
from propensity.config.load import (
    MAX_CONFIG_BYTES,
    MAX_CONFIG_VALUES,
    config_from_dict,
    load_config,
)
from propensity.config.model import (
    AUTO_SEARCH_MAX_ROWS,
    AUTO_SEARCH_TRIALS,
    TUNED_SETTINGS,
    CalibrationConfig,
    ModelConfig,
    SearchConfig,
    SplitConfig,
    ThresholdConfig,
)
from propensity.config.project import Config, MlflowConfig, SparkConfig
from propensity.config.rules import (
    BaselinesConfig,
    DiscoverConfig,
    PointsCondition,
    PointsRule,
    RuleBaseline,
)
from propensity.config.task import (
    CalendarAnchors,
    EligibilityConfig,
    LabelConfig,
    TargetConfig,
    TaskConfig,
    TrialAnchors,
    Weekday,
)

__all__ = [
    "AUTO_SEARCH_MAX_ROWS",
    "AUTO_SEARCH_TRIALS",
    "BaselinesConfig",
    "BotsConfig",
    "CalendarAnchors",
    "CalibrationConfig",
    "Config",
    "CrmConfig",
    "DataConfig",
    "MEMORY_VARIABLE",
    "memory_bytes",
    "DedupConfig",
    "DiscoverConfig",
    "Duration",
    "EligibilityConfig",
    "ExcludeConfig",
    "FeatureFamilies",
    "FeaturesConfig",
    "InputTable",
    "Instant",
    "LabelConfig",
    "LaggedWindows",
    "LifecycleConfig",
    "MAX_CONFIG_BYTES",
    "MAX_CONFIG_VALUES",
    "MilestoneOrder",
    "MlflowConfig",
    "ModelConfig",
    "PointsCondition",
    "PointsRule",
    "PositiveDuration",
    "Preset",
    "PropertyAggregate",
    "RouteCondition",
    "RouteConfig",
    "RouteRule",
    "RoutingConfig",
    "RuleBaseline",
    "ScoringConfig",
    "SearchConfig",
    "Section",
    "SinkConfig",
    "SparkConfig",
    "SplitConfig",
    "TUNED_SETTINGS",
    "TargetConfig",
    "TaskConfig",
    "ThresholdConfig",
    "TrialAnchors",
    "Weekday",
    "config_from_dict",
    "load_config",
    "parse_duration",
    "parse_instant",
]
