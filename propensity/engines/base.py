"""The engine contract: what a job asks of the engine that holds the canonical tables.

Every job (prepare, score, compare) is written once against :class:`Engine`; DuckDB
(:mod:`propensity.engines.duckdb`) and Spark (:mod:`propensity.engines.spark`) each run the same
engine-neutral definitions (label times, the feature plan) on their own tables, and the parity
tests hold the two together. A job never asks which engine it was handed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

import numpy as np
import pandas as pd

from propensity.config import FeaturesConfig, LabelConfig, TaskConfig
from propensity.engines.entities import EntityTables
from propensity.features import FeatureFrame, FeatureSpec
from propensity.io.summary import DataSummary
from propensity.labels import LabelTimes

__all__ = ["Engine", "ScoreScope"]


@dataclass(frozen=True, eq=False)
class ScoreScope:
    """What a score job will ask of the data, known before it is read: the model's spec and the
    first and last as-of, given the newest event (``--as-of latest``). An engine may then read
    only the events those need (DuckDB: ``io/window.py``); the scores are the same."""

    spec: FeatureSpec
    as_of: Callable[[datetime | None], tuple[datetime, datetime]]


class Engine(Protocol):
    """The canonical ``events``, ``users``, ``conversions`` tables, loaded, and the steps on them.

    >>> engine = open_engine(cfg)  # doctest: +SKIP
    >>> labels = engine.label_times(cfg.label, cfg.task)  # doctest: +SKIP
    >>> spec, ff = engine.learn_spec(labels, cfg.features, learn)  # doctest: +SKIP
    """

    name: str
    summary: DataSummary  # what was read, dropped and why

    def latest(self) -> datetime | None:
        """The end of the data: ``data.end`` when set, else the newest event."""
        ...

    def label_times(self, cfg: LabelConfig, task: TaskConfig | None = None) -> LabelTimes:
        """One row per (entity, cutoff) and its label: at trial ages without ``task``
        (``labels.build_label_times``), else at the task's anchors (``task_labels``)."""
        ...

    def check_trainable(
        self, labels: LabelTimes, cfg: LabelConfig, min_positives: int, min_negatives: int
    ) -> None:
        """Refuse label times no honest model can learn from (too few payers, no activity)."""
        ...

    def population(
        self, cfg: LabelConfig, as_of: datetime, task: TaskConfig | None = None
    ) -> LabelTimes:
        """The entities to score at ``as_of``: users in trial and unconverted, or the task's
        eligible entities at an anchor at ``as_of``."""
        ...

    def support(self, rows: LabelTimes, events: Iterable[str] | None = None) -> dict[str, int]:
        """Users per event type (all, or ``events``) before the cutoffs of ``rows``."""
        ...

    def learn_spec(
        self, labels: LabelTimes, cfg: FeaturesConfig, learn: np.ndarray
    ) -> tuple[FeatureSpec, FeatureFrame]:
        """The spec learned on the rows ``learn`` marks, and the features of every row."""
        ...

    def features(self, rows: LabelTimes, spec: FeatureSpec) -> FeatureFrame:
        """The feature table of ``rows`` under ``spec`` (keys first, spec order)."""
        ...

    def member_shares(self, rows: LabelTimes, spec: FeatureSpec | None = None) -> pd.DataFrame:
        """Each member's share of each attributable account feature of the account rows
        ``rows`` (``row``, ``user_id``, ``role``, ``feature``, ``share``): who is behind it
        (with ``spec``, the count columns over the account's events too)."""
        ...

    def known_events(self, rows: pd.DataFrame, vocabulary: Iterable[str]) -> int:
        """Events before each row's cutoff (``user_id``, ``cutoff_at``) whose type is known."""
        ...

    def entity_tables(self, cfg: LabelConfig, task: TaskConfig | None = None) -> EntityTables:
        """What the CRM steps read (``engines.entities.entity_tables``): each entity's first
        conversion (the task's target) and its users row, small tables on the driver."""
        ...
