"""The embedded default engine: the canonical tables in one DuckDB connection (``io.load_data``)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import datetime, timedelta

import duckdb
import numpy as np
import pandas as pd

from propensity.config import CalendarAnchors, Config, FeaturesConfig, LabelConfig, TaskConfig
from propensity.engines.account import (
    account_entities,
    build_account_tables,
    entity_rows,
    is_account,
    member_shares,
    with_members,
)
from propensity.engines.base import ScoreScope
from propensity.engines.entities import EntityTables, entity_tables
from propensity.features import (
    FeatureFrame,
    FeatureSpec,
    compute_features,
    learn_spec_and_features,
)
from propensity.features.named import event_support
from propensity.io import LoadedData, load_data
from propensity.io.summary import DataSummary
from propensity.io.window import HISTORY, EventWindow
from propensity.labels import (
    LabelTimes,
    build_label_times,
    check_trainable,
    has_table,
    scoring_population,
)
from propensity.task_labels import task_label_times, task_population

__all__ = ["DuckDBEngine", "event_window", "open_duckdb"]


class DuckDBEngine:
    """:class:`propensity.engines.base.Engine` on a :class:`propensity.io.LoadedData`."""

    name = "duckdb"

    def __init__(self, data: LoadedData) -> None:
        self.data = data
        self.summary: DataSummary = data.report
        self._accounts_built = False

    @property
    def con(self) -> duckdb.DuckDBPyConnection:
        """The connection holding ``events``, ``users``, ``conversions`` (for DuckDB-only work)."""
        return self.data.con

    def latest(self) -> datetime | None:
        return self.summary.data_end or self.summary.last_event

    def label_times(self, cfg: LabelConfig, task: TaskConfig | None = None) -> LabelTimes:
        if task is None:
            return build_label_times(self.con, cfg)
        labels = task_label_times(self.con, cfg, task)
        return entity_rows(labels) if task.entity == "account" else labels

    def check_trainable(
        self, labels: LabelTimes, cfg: LabelConfig, min_positives: int, min_negatives: int
    ) -> None:
        check_trainable(self.con, labels, cfg, min_positives, min_negatives)

    def population(
        self, cfg: LabelConfig, as_of: datetime, task: TaskConfig | None = None
    ) -> LabelTimes:
        if task is not None and isinstance(task.anchors, CalendarAnchors):
            rows = task_population(self.con, cfg, task, as_of)
            return entity_rows(rows) if task.entity == "account" else rows
        return scoring_population(self.con, cfg, as_of)

    def support(self, rows: LabelTimes, events: Iterable[str] | None = None) -> dict[str, int]:
        name = "_propensity_support_rows"
        self.con.register(name, rows.frame[["user_id", "signup_at", "cutoff_at"]])
        try:
            with self._entities(is_account(rows)):
                return event_support(lambda sql: self.con.execute(sql).fetchall(), name, events)
        finally:
            self.con.unregister(name)

    def learn_spec(
        self, labels: LabelTimes, cfg: FeaturesConfig, learn: np.ndarray
    ) -> tuple[FeatureSpec, FeatureFrame]:
        # one event scan serves the spec and the features
        if not is_account(labels):
            return learn_spec_and_features(self.con, labels, cfg, learn)
        with self._entities(True):
            spec, result = learn_spec_and_features(self.con, labels, cfg, learn)
        spec = replace(spec, families=(*spec.families, "members"))
        frame = with_members(self.con, labels, result.frame, list(spec.columns))
        return spec, FeatureFrame(frame, result.unseen_events)

    def features(self, rows: LabelTimes, spec: FeatureSpec) -> FeatureFrame:
        history = HISTORY if has_table(self.con, HISTORY) else None  # a windowed read
        if "members" not in spec.families:
            return compute_features(self.con, rows, spec, history)
        base = replace(spec, families=tuple(f for f in spec.families if f != "members"))
        with self._entities(True):
            result = compute_features(self.con, rows, base)
        frame = with_members(self.con, rows, result.frame, list(spec.columns))
        return FeatureFrame(frame, result.unseen_events)

    def member_shares(self, rows: LabelTimes, spec: FeatureSpec | None = None) -> pd.DataFrame:
        """Each member's share of the attributable account features of ``rows``
        (``engines.account.member_shares``), for naming the users behind an account PQL."""
        return member_shares(self.con, rows, spec)

    def entity_tables(self, cfg: LabelConfig, task: TaskConfig | None = None) -> EntityTables:
        return entity_tables(self.con, cfg, task)

    @contextmanager
    def _entities(self, accounts: bool) -> Iterator[None]:
        """``events`` and ``users`` hold one "user" per account for the duration (built once),
        so the user-level families run on accounts (``engines.account.account_entities``)."""
        if not accounts:
            yield
            return
        if not self._accounts_built:
            build_account_tables(self.con)
            self._accounts_built = True
        with account_entities(self.con):
            yield

    def known_events(self, rows: pd.DataFrame, vocabulary: Iterable[str]) -> int:
        if any(str(c).startswith("acct_") for c in rows.columns):  # an account's feature table
            with self._entities(True):
                return self._known_events(rows, vocabulary)
        return self._known_events(rows, vocabulary)

    def _known_events(self, rows: pd.DataFrame, vocabulary: Iterable[str]) -> int:
        self.con.register("_score_rows", rows[["user_id", "cutoff_at"]])
        try:
            [(n,)] = self.con.execute(
                "SELECT count(*) FROM events e JOIN _score_rows r ON e.user_id = r.user_id "
                "WHERE e.timestamp < r.cutoff_at AND e.event IN (SELECT unnest(?))",
                [list(vocabulary)],
            ).fetchall()
        finally:
            self.con.unregister("_score_rows")
        return int(n)


def open_duckdb(
    cfg: Config, data: LoadedData | None = None, scope: ScoreScope | None = None
) -> DuckDBEngine:
    """Read, clean and check the tables named in ``cfg.data`` into DuckDB (unless given).

    With a score job's ``scope``, only the events its population and spec need are read, plus
    a per-user summary of the history (:func:`event_window`, ``io/window.py``).
    """
    if data is None:
        window = None if scope is None else event_window(cfg, scope)
        data = load_data(cfg.data, window=window)
    return DuckDBEngine(data)


def event_window(cfg: Config, scope: ScoreScope) -> EventWindow | None:
    """The events a score job needs: from the first as-of less the trial (a user in trial
    signed up after it, and features read events since signup) or the longest window when
    there are account features (teammates' events back from the cutoff), to the last as-of.

    None (read everything) for what the window does not cover yet: calendar anchors, whose
    eligibility looks back over the task's lookback, and account entities.
    """
    task = cfg.task
    if task is not None and (task.entity != "user" or isinstance(task.anchors, CalendarAnchors)):
        return None
    span = cfg.label.trial_length
    if "account" in scope.spec.families and scope.spec.windows_s:
        span = max(span, timedelta(seconds=max(scope.spec.windows_s)))

    def window(latest: datetime | None) -> tuple[datetime, datetime]:
        first, last = scope.as_of(latest)
        return first - span, max(first, last)  # a reversed range is the job's to refuse

    return window
