"""The append-only history: one row per (entity, as_of, model version) of every run.

Idempotent per ``(as_of, model_version)``: a sink replaces that run's rows as a whole, so
re-running one as-of never duplicates rows (see ``propensity.io.sinks``).
"""

from __future__ import annotations

from datetime import datetime

import pandas as pd

__all__ = ["HISTORY_COLUMNS", "HISTORY_KEY", "history_rows"]

HISTORY_KEY = ["as_of", "model_version"]
HISTORY_COLUMNS = {
    "entity_id": "object",
    "as_of": "datetime64[ns]",
    "model_version": "object",
    "score": "float64",
    "is_pql": "bool",
    "status": "object",
    "route": "object",
    "holdout": "bool",
    "contacted": "bool",
    "entered": "bool",
}


def history_rows(current: pd.DataFrame, state: pd.DataFrame, as_of: datetime) -> pd.DataFrame:
    """This run's history rows: every entity scored now or flipped now (the others did not move).

    ``state`` is the lifecycle state of the run (``score`` NaN when not scored, ``entered``,
    ``exited``); ``current`` the current table built from it.
    """
    moved = state["score"].notna() | state["entered"] | state["exited"]
    ids = state.loc[moved, "entity_id"].astype(str)
    rows = current.set_index("entity_id").loc[ids].reset_index()
    rows["as_of"] = pd.Timestamp(as_of)
    rows["entered"] = state.loc[moved, "entered"].to_numpy(dtype=bool)
    rows["score"] = state.loc[moved, "score"].to_numpy(dtype=float)
    out = rows[list(HISTORY_COLUMNS)].astype(HISTORY_COLUMNS)
    return out.sort_values("entity_id", kind="stable").reset_index(drop=True)
