"""Rank candidate behaviours by how much they separate converters, with honest intervals.

On the training slice's rows (one per user), in four steps:

1. **Two halves.** Users are split at random (seeded) into a *search* half and an *estimate*
   half (``estimate_fraction`` of them). Everything that is chosen (each behaviour's threshold
   and window, which events are paired, the model of everything else) is chosen on the search
   half; every number reported comes from the estimate half, which took no part in any choice.
2. **Aggregates in DuckDB.** For every candidate condition (each count column at each of its
   values, each ordered pair of first occurrences in each ``within`` bucket) one SQL pass over
   the already-built feature table gives, per half, the users ``n``, the converters ``O`` and
   the conversions ``E`` expected by the model of everything else (:mod:`.context`). Cumulative
   sums turn per-value groups into "at least v" and "within t" for all thresholds at once.
3. **Choice (search half).** Per behaviour, the condition with the highest lower bound of the
   adjusted lift ``O / E``. Pairs are drawn among the ``pair_events`` events whose counts
   separate best, and an "A then B" is kept only when it separates better than A alone and
   than B alone under the same yardstick: otherwise the order adds nothing to its events.
4. **Estimates (estimate half).** Coverage, conversion rate, plain lift and adjusted lift, each
   with a Bonferroni-corrected interval over the rows of the table (simultaneous 95%), ranked by
   the lower bound of the adjusted lift. A behaviour that only travels with others (a vanity
   event) has an adjusted lift near 1 and sinks, however high its plain lift.

Multiple testing is handled twice over: the choice of thresholds, windows and pairs never sees
the numbers reported, and the reported intervals hold for all rows at once.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import duckdb
import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from propensity.discover.candidates import (
    ThresholdColumn,
    describe_threshold,
    prerequisites,
    threshold_columns,
    timing_columns,
)
from propensity.discover.context import ContextModel
from propensity.discover.intervals import byar_interval, wilson_interval, z_value
from propensity.discover.pairs import order_rows, pair_stats
from propensity.discover.pairs import pair_events as events_to_pair
from propensity.discover.tables import Tables, bucket, evidence, owns, quote
from propensity.errors import DataContractError, InsufficientDataError
from propensity.features import FeatureSpec

__all__ = ["BEHAVIOUR_COLUMNS", "Behaviours", "rank_behaviours", "split_halves"]

BEHAVIOUR_COLUMNS = (
    "rank", "kind", "behaviour", "condition", "milestone", "users", "coverage",
    "conversion_rate", "lift", "lift_low", "lift_high", "adjusted_lift", "adjusted_low",
    "adjusted_high", "extra_per_1000", "extra_low", "extra_high", "evidence", "significant",
)  # fmt: skip


@dataclass(frozen=True, eq=False)
class Behaviours:
    """The ranked table (columns :data:`BEHAVIOUR_COLUMNS`) and how it was made.

    ``table`` also carries ``first``, ``then`` and ``within_s`` for order rows (what ``init``
    needs to write a milestone). ``search_users``/``estimate_users`` and their converters size
    the two halves; ``base_rate`` is the estimate half's conversion rate.
    """

    table: pd.DataFrame
    search_users: int
    estimate_users: int
    search_positives: int
    estimate_positives: int
    base_rate: float
    alpha: float


def split_halves(user_ids: Any, estimate_fraction: float, seed: int) -> np.ndarray:
    """True for the users in the estimate half: a seeded draw over the sorted user ids.

    The same users and seed give the same halves whatever the row order.

    >>> split_halves(["b", "a", "c", "d"], 0.5, seed=1).sum()
    np.int64(2)
    """
    ids = np.asarray(user_ids, dtype=object).astype(str)
    order = np.argsort(ids, kind="stable")
    draw = np.random.default_rng(seed).permutation(len(ids)) < round(len(ids) * estimate_fraction)
    out = np.zeros(len(ids), dtype=bool)
    out[order] = draw
    return out


def rank_behaviours(
    con: duckdb.DuckDBPyConnection,
    frame: pd.DataFrame,
    spec: FeatureSpec,
    *,
    estimate_fraction: float = 0.5,
    min_users: int = 30,
    pair_events: int = 12,
    alpha: float = 0.05,
    seed: int = 0,
) -> Behaviours:
    """Rank the spec's candidate behaviours on ``frame`` (one row per user, with ``label``).

    ``min_users``: fewest users (in each half) a condition must hold for, and fail for.
    """
    y = _labels(frame)
    est = split_halves(frame["user_id"], estimate_fraction, seed)
    _enough(y, est, min_users)
    # the context fits are small Gram matrices: a second BLAS thread only adds contention
    with threadpool_limits(1, user_api="blas"), Tables(con, frame, y, est) as tables:
        ctx = ContextModel(frame, spec, fit_rows=~est)
        before = _prerequisites(spec, frame, ~est)
        columns = _with_prerequisites(threshold_columns(spec), before, frame)
        singles = _single_stats(tables, columns, ctx)
        chosen = _choose_thresholds(singles, columns, min_users, int((~est).sum()))
        events = events_to_pair(chosen, spec, frame, ~est, pair_events)
        pairs = pair_stats(tables, spec, events, ctx, before) if len(events) > 1 else None
    rows = [_threshold_row(c, columns, singles) for c in chosen]
    if pairs is not None:
        rows += order_rows(pairs, spec, min_users, int((~est).sum()))
    table = _estimates(pd.DataFrame(rows), est, y, alpha)
    return Behaviours(
        table=table,
        search_users=int((~est).sum()),
        estimate_users=int(est.sum()),
        search_positives=int(y[~est].sum()),
        estimate_positives=int(y[est].sum()),
        base_rate=float(y[est].mean()),
        alpha=alpha,
    )


def _prerequisites(
    spec: FeatureSpec, frame: pd.DataFrame, search: np.ndarray
) -> dict[str, tuple[str, ...]]:
    """What leads to each event, learned on the search half (see ``prerequisites``)."""
    rows = np.flatnonzero(search)
    firsts = {
        e: frame[c].to_numpy(dtype=float)[rows]
        for e, c in timing_columns(spec).items()
        if c in frame
    }
    return prerequisites(firsts)


def _with_prerequisites(
    columns: list[ThresholdColumn], before: dict[str, tuple[str, ...]], frame: pd.DataFrame
) -> list[ThresholdColumn]:
    """The columns present in ``frame``; an event's yardstick also leaves out what leads to it."""
    out = []
    for c in columns:
        if c.column in frame:
            out.append(replace(c, owns=owns((c.event,), before)) if c.event else c)
    return out


# ---- input checks ------------------------------------------------------------------------------
def _labels(frame: pd.DataFrame) -> np.ndarray:
    missing = [c for c in ("user_id", "label") if c not in frame]
    if missing:
        raise DataContractError(
            [
                f"Discovery needs the labelled feature rows of the training slice, with columns "
                f"user_id and label. Got a frame without {missing}; pass prepared training rows."
            ]
        )
    return frame["label"].to_numpy(dtype=float)


def _enough(y: np.ndarray, est: np.ndarray, min_users: int) -> None:
    halves = {"search": ~est, "estimate": est}
    small = {
        name: (int(rows.sum()), int(y[rows].sum()))
        for name, rows in halves.items()
        if y[rows].sum() < 10 or rows.sum() < 2 * min_users
    }
    if small:
        found = "; ".join(f"{k} half {n} users, {p} converters" for k, (n, p) in small.items())
        raise InsufficientDataError(
            f"Discovery needs at least 10 converters and {2 * min_users} users in each half of "
            f"the training slice. Got {found}. Load a longer period, or lower "
            f"discover.min_users / change discover.estimate_fraction."
        )


# ---- singles -----------------------------------------------------------------------------------
def _single_stats(
    tables: Tables, columns: list[ThresholdColumn], ctx: ContextModel
) -> pd.DataFrame:
    """Per column, half and value v: users, converters and expected conversions with >= v."""
    if not columns:
        return pd.DataFrame(columns=["col", "est", "v", "n", "o", "e"])
    keys = sorted({c.owns for c in columns})
    rows = tables.rows("r1", ctx, keys)
    colctx = tables.register(
        "colctx",
        pd.DataFrame(
            {"col": [c.column for c in columns], "ctx": [keys.index(c.owns) + 1 for c in columns]}
        ),
    )
    names = ", ".join(quote(c.column) for c in columns)
    groups = tables.fetch(
        f"""
        WITH long AS (
            UNPIVOT (SELECT _rid AS rid, {names} FROM {tables.name("feat")})
            ON {names} INTO NAME col VALUE v
        )
        SELECT l.col, r.est, {bucket("l.v")} AS v,
               COUNT(*) AS n, SUM(r.y) AS o, SUM(r.ps[c.ctx]) AS e
        FROM long l
        JOIN {rows} r ON r.rid = l.rid
        JOIN {colctx} c ON c.col = l.col
        WHERE NOT isnan(l.v) AND l.v > 0
        GROUP BY ALL
        """
    )
    # "at least v": cumulative from the highest value down, per column and half
    groups = groups.sort_values(["col", "est", "v"], ascending=[True, True, False])
    cum = groups.groupby(["col", "est"], sort=False)[["n", "o", "e"]].cumsum()
    return groups[["col", "est", "v"]].assign(**{k: cum[k].to_numpy() for k in ("n", "o", "e")})


def _choose_thresholds(
    singles: pd.DataFrame, columns: list[ThresholdColumn], min_users: int, search_n: int
) -> list[tuple[str, float, float]]:
    """Per behaviour, its best (column, value) on the search half, with the search score."""
    s = singles[~singles["est"].astype(bool)]
    s = s[(s["n"] >= min_users) & (s["n"] <= search_n - min_users)]
    if s.empty:
        return []
    s = s.assign(score=evidence(s["o"].to_numpy(float), s["e"].to_numpy(float)))
    order = {c.column: i for i, c in enumerate(columns)}
    behaviour = {c.column: c.behaviour for c in columns}
    s = s.assign(behaviour=s["col"].map(behaviour), pos=s["col"].map(order))
    # highest score; ties go to the earlier column (since signup) and the lower value
    s = s.sort_values(["behaviour", "score", "pos", "v"], ascending=[True, False, True, True])
    best = s.drop_duplicates("behaviour")
    return list(zip(best["col"], best["v"].astype(float), best["score"].astype(float), strict=True))


def _threshold_row(
    choice: tuple[str, float, float], columns: list[ThresholdColumn], singles: pd.DataFrame
) -> dict[str, Any]:
    col, value, score = choice
    info = next(c for c in columns if c.column == col)
    e = singles[(singles["col"] == col) & singles["est"].astype(bool) & (singles["v"] >= value)]
    # cumulative counts: the smallest value at or above the threshold holds all of them
    top = e.sort_values("v").head(1)
    n, o, ex = (float(top[k].iloc[0]) if len(top) else 0.0 for k in ("n", "o", "e"))
    return {
        "kind": info.kind,
        "behaviour": describe_threshold(info, value),
        "condition": f"{col} >= {_num(value)}",
        "milestone": "",
        "column": col,
        "value": value,
        "event": info.event,
        "first": None,
        "then": None,
        "within_s": None,
        "search_score": score,
        "n": n,
        "o": o,
        "e": ex,
    }


# ---- estimates ---------------------------------------------------------------------------------
def _estimates(rows: pd.DataFrame, est: np.ndarray, y: np.ndarray, alpha: float) -> pd.DataFrame:
    """Coverage, rates, lifts, extra converters and simultaneous intervals (estimate half).

    Ranked by the evidence (z-score) of extra converters: how sure we are that the behaviour's
    users convert more than everything else they did predicts. A behaviour that adds nothing
    has evidence about N(0, 1) whatever its size, so neither a near-universal behaviour with a
    tight interval around 1 nor a rare one with a wide interval is favoured.
    """
    columns = [*BEHAVIOUR_COLUMNS, "first", "then", "within_s", "column", "value", "event"]
    if rows.empty:
        return pd.DataFrame(columns=columns)
    rows = rows[rows["n"] > 0].reset_index(drop=True)
    total, base = float(est.sum()), float(y[est].mean())
    z = z_value(alpha, m=len(rows))
    n, o, e = (rows[k].to_numpy(dtype=float) for k in ("n", "o", "e"))
    rate_low, rate_high = wilson_interval(o, n, z)
    adj_low, adj_high = byar_interval(o, e, z)
    o_low, o_high = byar_interval(o, np.ones_like(o), z)
    per = 1000 / total
    out = rows.assign(
        users=n.astype(int),
        coverage=n / total,
        conversion_rate=o / n,
        lift=o / n / base,
        lift_low=rate_low / base,
        lift_high=rate_high / base,
        adjusted_lift=o / e,
        adjusted_low=adj_low,
        adjusted_high=adj_high,
        extra_per_1000=(o - e) * per,
        extra_low=(o_low - e) * per,
        extra_high=(o_high - e) * per,
        evidence=evidence(o, e),
        significant=adj_low > 1,
    )
    out = out.sort_values(
        ["evidence", "adjusted_lift", "behaviour"], ascending=[False, False, True]
    ).reset_index(drop=True)
    out.insert(0, "rank", np.arange(1, len(out) + 1))
    return out[columns]


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"
