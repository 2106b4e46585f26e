"""The model: the out-of-time split, the search or fixed settings, calibration, threshold."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from propensity.config._base import Section

__all__ = [
    "AUTO_SEARCH_MAX_ROWS",
    "AUTO_SEARCH_TRIALS",
    "CalibrationConfig",
    "ModelConfig",
    "SearchConfig",
    "SplitConfig",
    "TUNED_SETTINGS",
    "ThresholdConfig",
]


class SplitConfig(Section):
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


# The automatic search (``trials`` unset) runs only while the train slice has at most this many
# rows (every cutoff counted). Its cost is fixed (17 trials on at most 100k + 100k rows, 70-80 s
# on 2 cores) while what it buys falls as the data grows: on the default simulator world the
# test AP went 0.915x -> 0.940x of the oracle's with it at 87k train rows, 0.952x -> 0.961x at
# 292k, 0.973x -> 0.976x at 871k (within noise); on the benchmark's table the test log loss
# gained 0.0020 at 60k train rows, 0.00065 at 180k, 0.00038 at 600k (where it cost 1.3x the
# CPU of the rest of the fit). docs/config.md has the table.
AUTO_SEARCH_MAX_ROWS = 500_000


class SearchConfig(Section):
    # None: search (AUTO_SEARCH_TRIALS) only when the config sets no LightGBM setting and the
    # train slice has at most ``auto_max_rows`` rows; a number is searched at any size
    trials: int | None = Field(default=None, ge=0)
    # the automatic search's row limit; None: none (search at any size)
    auto_max_rows: int | None = Field(default=AUTO_SEARCH_MAX_ROWS, ge=1)
    # None: no limit. A search cut short by time depends on machine speed and load, so the
    # same data could give another model; set one only where time matters more (it warns)
    time_budget_s: float | None = Field(default=None, gt=0)


AUTO_SEARCH_TRIALS = 16


# The LightGBM settings the search picks; setting any of them in the config turns it off.
TUNED_SETTINGS = (
    "num_leaves",
    "min_child_samples",
    "feature_fraction",
    "bagging_fraction",
    "reg_lambda",
)


class ModelConfig(Section):
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

    def search_trials(self, train_rows: int) -> int:
        """Trials of the hyperparameter search on a train slice of ``train_rows`` rows: as set,
        else only when no setting is given and the slice is within ``search.auto_max_rows``."""
        if self.search.trials is not None:
            return self.search.trials
        if self.model_fields_set & set(TUNED_SETTINGS):
            return 0
        limit = self.search.auto_max_rows
        return 0 if limit is not None and train_rows > limit else AUTO_SEARCH_TRIALS


class CalibrationConfig(Section):
    # auto: isotonic with enough calibration positives, sigmoid otherwise
    method: Literal["auto", "isotonic", "sigmoid"] = "auto"
    isotonic_min_positives: int = Field(default=500, ge=1)
    ece_bins: int = Field(default=15, ge=2)


class ThresholdConfig(Section):
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
