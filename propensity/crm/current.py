"""The CRM current table: one row per entity, ready for a bulk upsert keyed by ``entity_id``.

Values a CRM stores are rounded (score to ``score_decimals``, percentile to a whole number) and
``updated_at`` moves only when a synced value really changes, so a delta sync sends real changes
only. ``status_changed_at`` moves only when the PQL flag flips. Reason texts are at most 255
characters (a CRM text field's usual limit), three at most.
"""

from __future__ import annotations

from datetime import datetime

import numpy as np
import pandas as pd

__all__ = ["CURRENT_COLUMNS", "REASON_LIMIT", "SYNCED", "current_table", "reason_texts"]

REASON_LIMIT = 255
CURRENT_COLUMNS = {
    "entity_id": "object",
    "account_id": "object",
    "score": "float64",
    "percentile": "Int64",
    "is_pql": "bool",
    "status": "object",
    "route": "object",
    "holdout": "bool",
    "contacted": "bool",
    "reason_1": "object",
    "reason_2": "object",
    "reason_3": "object",
    "pql_since": "datetime64[ns]",
    "status_changed_at": "datetime64[ns]",
    "last_exit_at": "datetime64[ns]",
    "converted_at": "datetime64[ns]",
    "routed_at": "datetime64[ns]",
    "model_version": "object",
    "updated_at": "datetime64[ns]",
}
# What a sync sends: a change in any of these moves updated_at.
SYNCED = ["account_id", "score", "percentile", "is_pql", "status", "route", "holdout"]
SYNCED += ["contacted", "reason_1", "reason_2", "reason_3", "model_version"]


def reason_texts(scores: pd.DataFrame, k: int = 3) -> pd.DataFrame:
    """``reason_1..3`` from the score table's ``reason_i_text`` columns, cut to 255 characters.

    >>> reason_texts(pd.DataFrame({"reason_1_text": ["x" * 300]})).iloc[0, 0].__len__()
    255
    """
    out = pd.DataFrame(index=scores.index)
    for i in range(1, k + 1):
        src = scores.get(f"reason_{i}_text")
        col = pd.Series(None, index=scores.index, dtype=object) if src is None else src
        out[f"reason_{i}"] = col.map(
            lambda t: None if not isinstance(t, str) or not t else _cut(t)
        ).astype(object)
    return out


def _cut(text: str) -> str:
    return text if len(text) <= REASON_LIMIT else text[: REASON_LIMIT - 1] + "…"


def current_table(
    state: pd.DataFrame,
    scores: pd.DataFrame,
    previous: pd.DataFrame,
    as_of: datetime,
    model_version: str,
    *,
    score_decimals: int = 2,
    holdout_fraction: float = 0.0,
    holdout_salt: str = "propensity",
) -> pd.DataFrame:
    """Today's current table from the routed lifecycle ``state`` and the score table.

    ``scores`` has ``entity_id``, ``account_id``, ``percentile`` and reason text columns; an
    entity not scored today keeps its last score, percentile and reasons from ``previous``.
    """
    # imported here: the scoring module brings the model stack, which the sinks do not need
    from propensity.scoring import holdout_mask

    when = pd.Timestamp(as_of)
    today = scores.assign(entity_id=scores["entity_id"].astype(str)).set_index("entity_id")
    texts = reason_texts(today)
    prev = previous.set_index("entity_id") if len(previous) else None
    ids = state["entity_id"].astype(str)
    out = pd.DataFrame({"entity_id": ids.to_numpy()})
    for col in ("score", "percentile", "account_id", *texts.columns):
        fresh = (texts[col] if col in texts else today[col]).reindex(ids)
        if prev is not None and col in prev:
            fresh = fresh.where(fresh.notna(), prev[col].reindex(ids))
        out[col] = fresh.to_numpy()
    out["score"] = pd.to_numeric(out["score"]).round(score_decimals)
    out["percentile"] = pd.to_numeric(out["percentile"]).round(0).astype("Int64")
    for col in ("is_pql", "status", "route", "pql_since", "status_changed_at", "last_exit_at"):
        out[col] = state[col].to_numpy()
    for col in ("converted_at", "routed_at"):
        out[col] = state[col].to_numpy()
    ever = out["pql_since"].notna().to_numpy()
    out["holdout"] = holdout_mask(out["entity_id"], holdout_fraction, holdout_salt) & ever
    out["contacted"] = (out["route"] == "sales").to_numpy() & ~out["holdout"].to_numpy()
    if prev is not None and "contacted" in prev:
        # contact is a fact of the past: a PQL sales worked stays contacted after it leaves
        out["contacted"] |= prev["contacted"].reindex(ids).eq(True).to_numpy(dtype=bool)
    out["model_version"] = str(model_version)
    out["updated_at"] = _updated_at(out, prev, when)
    out = out[list(CURRENT_COLUMNS)].astype(CURRENT_COLUMNS)
    return out.sort_values("entity_id", kind="stable").reset_index(drop=True)


def _updated_at(out: pd.DataFrame, prev: pd.DataFrame | None, when: pd.Timestamp) -> np.ndarray:
    if prev is None:
        return np.full(len(out), when.to_datetime64())
    ids = out["entity_id"]
    before = prev.reindex(ids)
    changed = np.zeros(len(out), dtype=bool)
    for col in SYNCED:
        a = out[col].astype(object).to_numpy()
        b = before[col].astype(object).to_numpy() if col in before else np.full(len(out), None)
        changed |= np.array([not _same(x, y) for x, y in zip(a, b, strict=True)], dtype=bool)
    changed |= ~ids.isin(prev.index).to_numpy()
    kept = pd.to_datetime(before["updated_at"]).to_numpy()
    return np.where(changed, when.to_datetime64(), kept)


def _same(a: object, b: object) -> bool:
    if pd.isna(a) if not isinstance(a, list | np.ndarray) else False:
        return bool(pd.isna(b)) if not isinstance(b, list | np.ndarray) else False
    try:
        return bool(a == b)
    except (TypeError, ValueError):
        return False
