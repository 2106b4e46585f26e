"""The PQL lifecycle: who becomes, stays and stops being a PQL from one daily run to the next.

Pure: the previous state and today's scores in, today's state out. Rules (docs/crm.md):

- an entity enters at ``score >= entry`` and leaves below ``entry * exit_ratio`` (hysteresis: a
  score wobbling around the entry threshold flips the flag once per real crossing, not daily);
- once in, it stays at least ``min_pql_time``, whatever its score;
- after leaving it may re-enter only after ``cooldown``;
- a converted entity leaves with status ``converted`` and, with ``suppress_converted``, never
  comes back; an entity no longer scored (trial over, lost) leaves with status ``expired``.
"""

from __future__ import annotations

from datetime import datetime

import numpy as np
import pandas as pd

from propensity.config import LifecycleConfig

__all__ = ["STATE_COLUMNS", "advance", "empty_state", "thresholds"]

# The lifecycle's own columns; other modules add theirs beside them.
STATE_COLUMNS = {
    "entity_id": "object",
    "is_pql": "bool",
    "status": "object",
    "pql_since": "datetime64[ns]",
    "status_changed_at": "datetime64[ns]",
    "last_exit_at": "datetime64[ns]",
    "converted_at": "datetime64[ns]",
}


def empty_state() -> pd.DataFrame:
    """A state with no entity (the first run)."""
    return pd.DataFrame({c: pd.Series(dtype=t) for c, t in STATE_COLUMNS.items()})


def thresholds(cfg: LifecycleConfig, model_threshold: float) -> tuple[float, float]:
    """``(entry, exit)`` thresholds: the configured (or the model's) entry and entry x ratio.

    >>> thresholds(LifecycleConfig(exit_ratio=0.5), 0.4)
    (0.4, 0.2)
    """
    entry = float(cfg.entry_threshold if cfg.entry_threshold is not None else model_threshold)
    return entry, entry * cfg.exit_ratio


def advance(
    previous: pd.DataFrame,
    scores: pd.DataFrame,
    as_of: datetime,
    converted: pd.DataFrame,
    cfg: LifecycleConfig,
    model_threshold: float,
) -> pd.DataFrame:
    """Today's lifecycle state from the previous one (``empty_state()`` at first).

    - ``scores``: ``entity_id``, ``score`` of every entity scored at ``as_of``;
    - ``converted``: ``entity_id``, ``converted_at`` (first conversion; later ones are ignored).

    Returns one row per entity that is scored now or was ever a PQL, with ``STATE_COLUMNS`` plus
    ``score`` (NaN when not scored now), ``entered`` and ``exited`` (flipped in this run).
    """
    when = pd.Timestamp(as_of)
    entry, exit_ = thresholds(cfg, model_threshold)
    prev = previous[list(STATE_COLUMNS)].astype(STATE_COLUMNS)
    now = scores[["entity_id", "score"]].assign(
        entity_id=lambda f: f["entity_id"].astype(str),
        score=lambda f: pd.to_numeric(f["score"]).astype("float64"),
    )
    state = prev.merge(now, on="entity_id", how="outer")
    state["is_pql"] = state["is_pql"].eq(True).to_numpy(dtype=bool)
    conv = converted.assign(entity_id=converted["entity_id"].astype(str))
    conv = conv[pd.to_datetime(conv["converted_at"]) <= when]
    first = pd.to_datetime(conv.groupby("entity_id")["converted_at"].min())
    found = first.astype("datetime64[ns]").reindex(state["entity_id"]).to_numpy()
    state["converted_at"] = state["converted_at"].where(state["converted_at"].notna(), found)

    was = state["is_pql"].to_numpy()
    scored = state["score"].notna().to_numpy()
    score = state["score"].to_numpy(dtype="float64", na_value=-np.inf)
    is_conv = state["converted_at"].notna().to_numpy()
    blocked = is_conv & cfg.suppress_converted
    held = (when - state["pql_since"]).lt(cfg.min_pql_time).to_numpy(dtype=bool)
    cooled = (when - state["last_exit_at"]).ge(cfg.cooldown).to_numpy()
    cooled |= state["last_exit_at"].isna().to_numpy()

    stays = was & scored & ~is_conv & ((score >= exit_) | held)
    enters = ~was & scored & ~blocked & cooled & (score >= entry)
    is_pql = stays | enters
    exited = was & ~is_pql

    state["is_pql"] = is_pql
    state["entered"] = enters
    state["exited"] = exited
    flipped = enters | exited
    state.loc[flipped, "status_changed_at"] = when
    state.loc[enters, "pql_since"] = when
    state.loc[exited, "last_exit_at"] = when
    state["status"] = np.select(
        [is_pql, is_conv, ~scored], ["pql", "converted", "expired"], default="not_pql"
    )
    keep = scored | state["pql_since"].notna().to_numpy()
    state = state[keep].sort_values("entity_id", kind="stable").reset_index(drop=True)
    return state[[*STATE_COLUMNS, "score", "entered", "exited"]]
