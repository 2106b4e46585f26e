"""Routing: each new PQL goes to one route (``sales``, ``self_serve``, ...) by segment rules, and
each route takes at most its weekly capacity, filled by rank (highest score first).

Pure. A PQL keeps its route while it stays a PQL. PQLs past a route's capacity for the week go
to its ``overflow`` route, or wait (route ``waiting``) and are routed again on the next run.
"""

from __future__ import annotations

from datetime import datetime

import numpy as np
import pandas as pd

from propensity.config import RouteCondition, RoutingConfig

__all__ = ["WAITING", "route", "rule_routes"]

WAITING = "waiting"


def _matches(frame: pd.DataFrame, cond: RouteCondition) -> np.ndarray:
    if cond.column not in frame.columns:
        return np.zeros(len(frame), dtype=bool)
    values = frame[cond.column]
    ok = np.ones(len(frame), dtype=bool)
    if cond.in_ is not None:
        ok &= values.astype(str).isin([str(v) for v in cond.in_]).to_numpy()
    number = pd.to_numeric(values, errors="coerce").astype("float64")
    if cond.min is not None:
        ok &= (number >= cond.min).to_numpy(dtype=bool)
    if cond.max is not None:
        ok &= (number <= cond.max).to_numpy(dtype=bool)
    return ok


def rule_routes(frame: pd.DataFrame, cfg: RoutingConfig) -> pd.Series:
    """The route each row's segment asks for: the first rule whose conditions all hold."""
    out = pd.Series(cfg.default_route, index=frame.index, dtype=object)
    done = np.zeros(len(frame), dtype=bool)
    for rule in cfg.rules:
        hit = ~done
        for cond in rule.when:
            hit &= _matches(frame, cond)
        out[hit] = rule.route
        done |= hit
    return out


def route(
    state: pd.DataFrame, segments: pd.DataFrame, as_of: datetime, cfg: RoutingConfig
) -> pd.DataFrame:
    """Fill ``route`` and ``routed_at`` on a lifecycle state (``is_pql``, ``score``, ``entered``).

    Candidates are new PQLs and those still waiting; capacity used this ISO week counts the PQLs
    routed earlier in the same week (``routed_at``).
    """
    when = pd.Timestamp(as_of)
    out = state.copy()
    for col, dtype in (("route", "object"), ("routed_at", "datetime64[ns]")):
        if col not in out:
            out[col] = pd.Series(dtype=dtype, index=out.index)
    pql = out["is_pql"].to_numpy(dtype=bool)
    out.loc[~pql, ["route", "routed_at"]] = [None, pd.NaT]
    candidate = pql & (out["entered"].to_numpy() | out["route"].isna().to_numpy())
    candidate |= pql & (out["route"] == WAITING).to_numpy()
    week = when.to_period("W-SUN")
    in_week = out["routed_at"].dt.to_period("W-SUN") == week
    used = out[in_week & ~pd.Series(candidate, index=out.index)].groupby("route").size().to_dict()

    cands = out[candidate].merge(segments, on="entity_id", how="left", suffixes=("", "_seg"))
    cands.index = out.index[candidate]
    wanted = rule_routes(cands, cfg)
    order = cands.sort_values(["score", "entity_id"], ascending=[False, True]).index
    for idx in order:
        target: str | None = wanted[idx]
        seen: set[str] = set()
        while target is not None and target not in seen:
            seen.add(target)
            cap = cfg.routes[target].capacity_per_week
            if cap is None or used.get(target, 0) < cap:
                break
            target = cfg.routes[target].overflow
        else:
            target = WAITING
        if target is None:
            target = WAITING
        out.at[idx, "route"] = target
        if target != WAITING:
            used[target] = used.get(target, 0) + 1
            out.at[idx, "routed_at"] = when
    return out
