"""One CRM step: the previous current table and today's scores in, today's current table and
history rows out (lifecycle, then routing, then the tables)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import pandas as pd

from propensity.config import CrmConfig, ScoringConfig
from propensity.crm.current import CURRENT_COLUMNS, current_table
from propensity.crm.history import history_rows
from propensity.crm.lifecycle import STATE_COLUMNS, advance
from propensity.crm.routing import route

__all__ = ["CrmTables", "crm_step", "empty_current"]


@dataclass(frozen=True, eq=False)
class CrmTables:
    """``current`` (one row per entity) and ``history`` (this run's rows)."""

    current: pd.DataFrame
    history: pd.DataFrame


def empty_current() -> pd.DataFrame:
    """A current table with no row (before the first run)."""
    return pd.DataFrame({c: pd.Series(dtype=t) for c, t in CURRENT_COLUMNS.items()})


def crm_step(
    previous: pd.DataFrame,
    scores: pd.DataFrame,
    as_of: datetime,
    converted: pd.DataFrame,
    segments: pd.DataFrame,
    cfg: CrmConfig,
    scoring: ScoringConfig,
    model_threshold: float,
    model_version: str,
) -> CrmTables:
    """Advance the lifecycle from ``previous`` (``empty_current()`` at first) with ``scores``.

    ``scores`` is the score table with ``user_id`` renamed ``entity_id`` (or already named so).
    """
    scores = scores.rename(columns={"user_id": "entity_id"})
    prev = previous.astype({c: t for c, t in CURRENT_COLUMNS.items() if c in STATE_COLUMNS})
    state = advance(prev, scores, as_of, converted, cfg.lifecycle, model_threshold)
    carried = prev.set_index("entity_id")[["route", "routed_at"]]
    state = state.join(carried, on="entity_id")
    state = route(state, segments, as_of, cfg.routing)
    current = current_table(
        state,
        scores,
        previous,
        as_of,
        model_version,
        score_decimals=cfg.score_decimals,
        holdout_fraction=scoring.holdout_fraction,
        holdout_salt=scoring.holdout_salt,
    )
    return CrmTables(current, history_rows(current, state, as_of))
