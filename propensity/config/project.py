"""The whole project configuration, and where runs are tracked and Spark runs."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from propensity.config._base import Section
from propensity.config.crm import CrmConfig, ScoringConfig
from propensity.config.data import DataConfig
from propensity.config.features import FeaturesConfig
from propensity.config.model import CalibrationConfig, ModelConfig, SplitConfig, ThresholdConfig
from propensity.config.rules import BaselinesConfig, DiscoverConfig
from propensity.config.task import LabelConfig, TaskConfig

__all__ = ["Config", "MlflowConfig", "SparkConfig"]


class MlflowConfig(Section):
    tracking_uri: str | None = None  # MLFLOW_TRACKING_URI wins; default sqlite:///mlflow.db
    experiment: str = "propensity"
    registered_model: str = "propensity-pql"
    promotion_metric: Literal["average_precision", "roc_auc", "neg_log_loss"] = "average_precision"
    on_unreachable: Literal["fail", "local"] = "fail"


class SparkConfig(Section):
    """The Spark session used when ``engine: spark`` (see docs/spark.md).

    ``master`` None leaves it to spark-submit or the cluster (Databricks); ``local[2]`` runs on
    this machine. ``conf`` entries go to the session builder as strings (booleans lowercased)
    and win over propensity's defaults, except the session time zone, which must stay UTC.
    """

    master: str | None = None
    app_name: str = "propensity"
    conf: dict[str, str | int | float | bool] = Field(default_factory=dict)


class Config(Section):
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
