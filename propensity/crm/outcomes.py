"""Measured outcomes of the PQL program: what the history turned out to be once the horizon
has passed. Pure: the history, conversions and segments in, tables out.

A PQL *entry* is a history row with ``entered``; it converted when the entity's first payment
falls in ``(entry, entry + horizon]``. Only entries (and runs) whose horizon ended by
``data_end`` count, so a young PQL is never read as a miss.

On a simulated world the history may carry each row's exact chance of converting
(``truth_expected``, with the contact effect; ``truth_natural``, without it; see
``propensity.simulate.expect``): the realized precision is then also set against that truth, and
the holdout lift against the true lift of the measured PQLs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd

from propensity.crm.intervals import newcombe_diff, wilson

__all__ = ["Outcomes", "holdout_lift", "measure_outcomes"]


@dataclass(frozen=True, eq=False)
class Outcomes:
    """``runs`` (per as-of and model), ``segments`` (per segment value and route), ``lift``
    (contacted vs held-out PQLs) and ``alerts`` (one line each)."""

    runs: pd.DataFrame
    segments: pd.DataFrame
    lift: dict[str, Any]
    alerts: list[str] = field(default_factory=list)


def _converted_within(
    entity: pd.Series, start: pd.Series, conversions: pd.DataFrame, horizon: timedelta
) -> np.ndarray:
    first = conversions.groupby(conversions["entity_id"].astype(str))["converted_at"].min()
    paid = pd.to_datetime(entity.astype(str).map(first))
    return ((paid > start) & (paid <= start + horizon)).to_numpy(dtype=bool)


def holdout_lift(entries: pd.DataFrame) -> dict[str, Any]:
    """Conversion of contacted minus held-out sales PQLs, with Newcombe's 95% interval."""
    sales = entries[entries["route"] == "sales"]
    hold = sales[sales["holdout"]]
    cont = sales[~sales["holdout"]]
    s1, n1 = int(cont["converted"].sum()), len(cont)
    s2, n2 = int(hold["converted"].sum()), len(hold)
    diff, low, high = newcombe_diff(s1, n1, s2, n2)
    return {
        "contacted": n1,
        "contacted_converted": s1,
        "held_out": n2,
        "held_out_converted": s2,
        "rate_contacted": s1 / n1 if n1 else float("nan"),
        "rate_held_out": s2 / n2 if n2 else float("nan"),
        "lift": diff,
        "lift_low": low,
        "lift_high": high,
    }


def measure_outcomes(
    history: pd.DataFrame,
    conversions: pd.DataFrame,
    segments: pd.DataFrame,
    horizon: timedelta,
    data_end: datetime,
    promised_precision: float | None = None,
    alert_drop: float = 0.3,
    segment_columns: tuple[str, ...] = ("domain_class",),
) -> Outcomes:
    """Realized precision, recall and calibration per run; PQL rate, time to PQL and PQL-to-paid
    per segment and route; the holdout lift; an alert when realized precision falls well below
    ``promised_precision`` (by more than ``alert_drop`` of it, and outside its interval).

    ``segments`` has ``entity_id``, ``signup_at`` and the ``segment_columns``.
    """
    end = pd.Timestamp(data_end)
    hist = history.assign(entity_id=history["entity_id"].astype(str))
    hist = hist[hist["as_of"] + horizon <= end].copy()
    hist["converted"] = _converted_within(hist["entity_id"], hist["as_of"], conversions, horizon)
    runs = _runs(hist)
    entries = hist[hist["entered"]].copy()
    seg = segments.assign(entity_id=segments["entity_id"].astype(str))
    entries = entries.merge(seg, on="entity_id", how="left")
    lift = {**holdout_lift(entries), **_quality(entries)}
    table = _segments(hist.merge(seg, on="entity_id", how="left"), entries, segment_columns)
    alerts = _alerts(entries, promised_precision, alert_drop)
    return Outcomes(runs, table, lift, alerts)


def _runs(hist: pd.DataFrame) -> pd.DataFrame:
    """Per (as_of, model_version): the PQLs' realized precision (all, and those nobody
    contacted), recall among the run's converters, and the calibration gap of the scores."""
    rows = []
    for (as_of, version), run in hist.groupby(["as_of", "model_version"], sort=True):
        scored = run[run["score"].notna()]
        pql = scored[scored["is_pql"]]
        quiet = pql[~pql["contacted"]]
        hits = int(pql["converted"].sum())
        low, high = wilson(hits, len(pql))
        positives = int(scored["converted"].sum())
        rows.append(
            {
                "as_of": as_of,
                "model_version": version,
                "scored": len(scored),
                "pqls": len(pql),
                "precision": hits / len(pql) if len(pql) else np.nan,
                "precision_low": low,
                "precision_high": high,
                "precision_uncontacted": quiet["converted"].mean() if len(quiet) else np.nan,
                "expected_precision": pql["score"].mean() if len(pql) else np.nan,
                **(
                    {"truth_expected": pql["truth_expected"].mean() if len(pql) else np.nan}
                    if "truth_expected" in pql
                    else {}
                ),
                "recall": hits / positives if positives else np.nan,
                "mean_score": scored["score"].mean(),
                "conversion_rate": scored["converted"].mean(),
                "calibration_gap": scored["score"].mean() - scored["converted"].mean(),
            }
        )
    return pd.DataFrame(rows)


def _segments(hist: pd.DataFrame, entries: pd.DataFrame, columns: tuple[str, ...]) -> pd.DataFrame:
    """Per segment value and route: PQL rate among scored entities, median days from signup to
    PQL, and PQL-to-paid."""
    rows = []
    scored = hist[hist["score"].notna()]
    for col in columns:
        if col not in entries:
            continue
        for value, group in entries.groupby(entries[col].astype(str)):
            population = scored.loc[scored[col].astype(str) == value, "entity_id"].nunique()
            for route, sub in [("all", group), *group.groupby("route")]:
                days = (sub["as_of"] - pd.to_datetime(sub["signup_at"])).dt.total_seconds()
                rows.append(
                    {
                        "segment": col,
                        "value": value,
                        "route": route,
                        "pqls": sub["entity_id"].nunique(),
                        "pql_rate": sub["entity_id"].nunique() / population
                        if population
                        else np.nan,
                        "days_to_pql": float(np.median(days)) / 86400 if len(days) else np.nan,
                        "pql_to_paid": sub["converted"].mean(),
                    }
                )
    return pd.DataFrame(rows)


def _quality(entries: pd.DataFrame) -> dict[str, Any]:
    """Realized precision of the PQL entries nobody contacted (free of the sales effect) with
    its Wilson interval, against what their scores expected."""
    quiet = entries[~entries["contacted"]]
    hits, n = int(quiet["converted"].sum()), len(quiet)
    low, high = wilson(hits, n)
    out = {
        "uncontacted": n,
        "precision_uncontacted": hits / n if n else np.nan,
        "precision_uncontacted_low": low,
        "precision_uncontacted_high": high,
        "expected_uncontacted": float(quiet["score"].mean()) if n else np.nan,
    }
    if "truth_expected" in entries:
        out.update(_truth(entries))
    return out


def _truth(entries: pd.DataFrame) -> dict[str, Any]:
    """Realized precision of all PQL entries with its Wilson interval against the truth's
    expectation (contact effect included), and the true lift of the measured contacted sales
    PQLs (their chance with contact minus without)."""
    hits, n = int(entries["converted"].sum()), len(entries)
    low, high = wilson(hits, n)
    quiet = entries[~entries["contacted"]]
    reached = entries[(entries["route"] == "sales") & entries["contacted"]]
    gain = reached["truth_expected"] - reached["truth_natural"]
    return {
        "entries": n,
        "precision": hits / n if n else np.nan,
        "precision_low": low,
        "precision_high": high,
        "truth_expected": float(entries["truth_expected"].mean()) if n else np.nan,
        "truth_expected_uncontacted": float(quiet["truth_expected"].mean())
        if len(quiet)
        else np.nan,
        "truth_lift": float(gain.mean()) if len(gain) else np.nan,
        "truth_unknown": int(entries["truth_expected"].isna().sum()),
    }


def _alerts(entries: pd.DataFrame, promised: float | None, drop: float) -> list[str]:
    """Realized precision of uncontacted entries (contacted ones are lifted by sales) against
    training's promise; all entries when too few were left alone."""
    if promised is None or not np.isfinite(promised) or entries.empty:
        return []
    quiet = entries[~entries["contacted"]]
    base = quiet if len(quiet) >= 30 else entries
    hits, n = int(base["converted"].sum()), len(base)
    low, high = wilson(hits, n)
    realized = hits / n
    if realized < promised * (1 - drop) and high < promised:
        return [
            f"Realized precision {realized:.1%} (95% interval {low:.1%} to {high:.1%}, {n} "
            f"PQLs) is well below the {promised:.1%} training promised: retrain on recent data, "
            f"or check the data for drift."
        ]
    return []
