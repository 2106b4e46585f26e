"""Arrow tables in the shapes the files are written in: canonical or an export preset.

Events take the preset's column names and timestamp style; users, conversions and truth are
always canonical. ``text_times`` writes canonical timestamps as ISO-8601 text (``...Z``) for
formats without a timestamp type (csv, jsonl).
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from propensity.config import Preset
from propensity.simulate.behaviour import INTEGRATIONS, Events
from propensity.simulate.catalog import ALL_EVENTS, CHANNELS, ROLES, code
from propensity.simulate.conversion import NEVER
from propensity.simulate.population import KIND_BOT, KIND_INTERNAL, Population

__all__ = ["conversions_table", "events_table", "truth_table", "users_table"]

_UTC = pa.timestamp("us", tz="UTC")
_INTEGRATIONS = pa.array(INTEGRATIONS, pa.string())


def events_table(pop: Population, rows: Events, preset: Preset, text_times: bool) -> pa.Table:
    """The events of one chunk with the preset's columns (``user`` -1 means no user id)."""
    idx = pa.array(rows.user, mask=rows.user < 0)
    user = pc.take(pa.array(pop.user_id, pa.string()), idx)
    account = pc.take(pa.array(pop.account_id, pa.string()), idx)
    event = pc.take(pa.array(ALL_EVENTS, pa.string()), pa.array(rows.code))
    props = _properties(rows)
    ts = rows.ts
    if preset == Preset.segment:
        cols = {"userId": user, "event": event, "timestamp": _iso(ts), "properties": props}
        cols["groupId"] = account
    elif preset == Preset.amplitude:
        naive = pc.strftime(pa.array(ts * 1_000_000, pa.timestamp("us")), "%Y-%m-%d %H:%M:%S")
        cols = {"user_id": user, "event_type": event, "event_time": naive}
        cols |= {"event_properties": props, "account_id": account}
    elif preset == Preset.mixpanel:
        cols = {"distinct_id": user, "event": event, "time": pa.array(ts, pa.int64())}
        cols |= {"properties": props, "account_id": account}
    else:
        cols = {"user_id": user, "event": event, "timestamp": _time(ts, text_times)}
        cols |= {"account_id": account, "properties": props}
    return pa.table(cols)


def users_table(pop: Population, text_times: bool) -> pa.Table:
    """One row per user: ids, signup time, email, account and attributes."""
    size = pop.company_size
    return pa.table(
        {
            "user_id": pa.array(pop.user_id, pa.string()),
            "signup_at": _time(pop.signup, text_times),
            "email": pa.array(pop.email, pa.string()),
            "account_id": pa.array(pop.account_id, pa.string()),
            "role": pa.array(np.array(ROLES, dtype=object)[pop.role], pa.string()),
            "channel": pa.array(np.array(CHANNELS, dtype=object)[pop.channel], pa.string()),
            "company_size": pa.array(
                np.nan_to_num(size).astype(np.int64), pa.int64(), mask=np.isnan(size)
            ),
        }
    )


def conversions_table(
    pop: Population, converted_at: np.ndarray, end: int, text_times: bool
) -> pa.Table:
    """First payments known at the data end."""
    paid = converted_at < end
    return pa.table(
        {
            "user_id": pa.array(pop.user_id[paid], pa.string()),
            "converted_at": _time(converted_at[paid], text_times),
        }
    )


def truth_table(
    pop: Population,
    cutoff: np.ndarray,
    p_true: np.ndarray,
    converted_at: np.ndarray,
    horizon: int,
    end: int,
) -> pa.Table:
    """The ground truth per user; timestamps naive UTC like the canonical DuckDB tables."""
    already = converted_at < cutoff
    censored = cutoff + horizon > end
    reason = np.full(len(pop), None, dtype=object)
    # Later reasons overwrite earlier ones: a bot is a bot whatever else is true of it.
    for mask, why in (
        (censored, "censored"),
        (already, "already_customer"),
        (pop.kind == KIND_INTERNAL, "internal"),
        (pop.kind == KIND_BOT, "bot"),
    ):
        reason[mask] = why
    label = ((converted_at > cutoff) & (converted_at <= cutoff + horizon)).astype(np.int8)
    never = converted_at == NEVER
    return pa.table(
        {
            "user_id": pa.array(pop.user_id, pa.string()),
            "account_id": pa.array(pop.account_id, pa.string()),
            "signup_at": _naive(pop.signup),
            "cutoff_at": _naive(cutoff),
            "p_true": pa.array(p_true, pa.float64()),
            "label": pa.array(label, pa.int8(), mask=already | censored),
            "eligible": pa.array(pc.is_null(pa.array(reason, pa.string()))),
            "reason": pa.array(reason, pa.string()),
            "converted_at": pa.array(
                np.where(never, 0, converted_at) * 1_000_000, pa.timestamp("us"), mask=never
            ),
            "intent": pa.array(pop.intent, pa.float64()),
        }
    )


def _properties(rows: Events) -> pa.Array:
    """JSON object text per event: a value where the event has one, ``{}``, or null on login."""
    template = np.zeros(len(ALL_EVENTS), dtype=np.int64)
    template[code("login")] = 1
    out = pc.take(pa.array(["{}", None], pa.string()), pa.array(template[rows.code]))
    for name, make in (
        ("doc_created", lambda v: ('{"doc_size": ', pc.cast(v, pa.string()), "}")),
        ("export_done", lambda v: ('{"rows": ', pc.cast(v, pa.string()), "}")),
        ("integration_connected", lambda v: ('{"integration": "', pc.take(_INTEGRATIONS, v), '"}')),
    ):
        # Build text only for the few rows that carry a value, then scatter it in.
        mask = rows.code == code(name)
        if mask.any():
            parts = make(pa.array(rows.value[mask]))
            text = pc.binary_join_element_wise(*parts, "")
            out = pc.replace_with_mask(out, pa.array(mask), text)
    return out


def _time(ts: np.ndarray, text: bool) -> pa.Array:
    return _iso(ts) if text else pa.array(ts * 1_000_000, _UTC)


def _iso(ts: np.ndarray) -> pa.Array:
    return pc.strftime(pa.array(ts, pa.timestamp("s")), "%Y-%m-%dT%H:%M:%SZ")


def _naive(ts: np.ndarray) -> pa.Array:
    return pa.array(ts * 1_000_000, pa.timestamp("us"))
