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

import itertools
from dataclasses import dataclass, replace
from typing import Any

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
from threadpoolctl import threadpool_limits

from propensity.discover.candidates import (
    ThresholdColumn,
    describe_order,
    describe_threshold,
    event_key,
    order_condition,
    prerequisites,
    threshold_columns,
    timing_columns,
)
from propensity.discover.context import ContextModel
from propensity.discover.intervals import byar_interval, wilson_interval, z_value
from propensity.errors import DataContractError, InsufficientDataError
from propensity.features import FeatureSpec

__all__ = ["BEHAVIOUR_COLUMNS", "Behaviours", "rank_behaviours", "split_halves"]

BEHAVIOUR_COLUMNS = (
    "rank", "kind", "behaviour", "condition", "milestone", "users", "coverage",
    "conversion_rate", "lift", "lift_low", "lift_high", "adjusted_lift", "adjusted_low",
    "adjusted_high", "extra_per_1000", "extra_low", "extra_high", "evidence", "significant",
)  # fmt: skip
_SEARCH_Z = z_value(0.05, two_sided=False)  # choosing on the search half: one-sided 95%
_MAX_PAIR_SHARE = 0.5  # events done by more users than this make no milestone
_SAME_USERS = 0.9  # an order that holds for 90% of an event's users is that event
_calls = itertools.count()


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
    with threadpool_limits(1, user_api="blas"), _Tables(con, frame, y, est) as tables:
        ctx = ContextModel(frame, spec, fit_rows=~est)
        before = _prerequisites(spec, frame, ~est)
        columns = _with_prerequisites(threshold_columns(spec), before, frame)
        singles = _single_stats(tables, columns, ctx)
        chosen = _choose_thresholds(singles, columns, min_users, int((~est).sum()))
        events = _pair_events(chosen, spec, frame, ~est, pair_events)
        pairs = _pair_stats(tables, spec, events, ctx, before) if len(events) > 1 else None
    rows = [_threshold_row(c, columns, singles) for c in chosen]
    if pairs is not None:
        rows += _order_rows(pairs, spec, min_users, int((~est).sum()))
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


def _owns(events: tuple[str, ...], before: dict[str, tuple[str, ...]]) -> tuple[str, ...]:
    """The context keys a behaviour over ``events`` leaves out: them and what leads to them."""
    return tuple(sorted({event_key(x) for e in events for x in (e, *before.get(e, ()))}))


def _with_prerequisites(
    columns: list[ThresholdColumn], before: dict[str, tuple[str, ...]], frame: pd.DataFrame
) -> list[ThresholdColumn]:
    """The columns present in ``frame``; an event's yardstick also leaves out what leads to it."""
    out = []
    for c in columns:
        if c.column in frame:
            out.append(replace(c, owns=_owns((c.event,), before)) if c.event else c)
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


# ---- DuckDB relations --------------------------------------------------------------------------
class _Tables:
    """The feature rows and halves as DuckDB relations for one call, dropped on exit.

    Context probabilities travel as one array per row (``ps``, indexed by context id) in a temp
    table keyed by row: joining a long (row, context) table instead was ten times slower.
    """

    def __init__(
        self, con: duckdb.DuckDBPyConnection, frame: pd.DataFrame, y: np.ndarray, est: np.ndarray
    ) -> None:
        self.con = con
        self.p = f"_disc{next(_calls)}_"
        self.frame = frame.reset_index(drop=True).assign(_rid=np.arange(len(frame)))
        self.y, self.est = y, est
        self._views: list[str] = []
        self._tables: list[str] = []

    def __enter__(self) -> _Tables:
        self.register("feat", self.frame)
        return self

    def __exit__(self, *exc: object) -> None:
        for name in self._views:
            self.con.unregister(name)
        for name in self._tables:
            self.con.execute(f"DROP TABLE IF EXISTS {name}")

    def name(self, short: str) -> str:
        return f"{self.p}{short}"

    def register(self, short: str, data: pd.DataFrame | pa.Table) -> str:
        name = self.name(short)
        self.con.register(name, data)
        self._views.append(name)
        return name

    def table(self, short: str, sql: str) -> str:
        """Materialise ``sql`` as a temp table (read more than once, or joined large)."""
        name = self.name(short)
        self.con.execute(f"CREATE OR REPLACE TEMP TABLE {name} AS {sql}")
        self._tables.append(name)
        return name

    def rows(self, short: str, ctx: ContextModel, keys: list[tuple[str, ...]]) -> str:
        """A temp table (rid, est, y, ps): ``ps[i + 1]`` leaves context ``keys[i]`` out."""
        n = len(self.frame)
        probs = np.column_stack([ctx.probabilities(k) for k in keys]) if keys else np.zeros((n, 1))
        arrow = pa.table(
            {
                "rid": pa.array(np.arange(n)),
                "est": pa.array(self.est),
                "y": pa.array(self.y),
                "ps": pa.FixedSizeListArray.from_arrays(pa.array(probs.ravel()), probs.shape[1]),
            }
        )
        view = self.register(f"{short}_in", arrow)
        return self.table(short, f"SELECT rid, est, y, CAST(ps AS DOUBLE[]) AS ps FROM {view}")

    def fetch(self, sql: str) -> pd.DataFrame:
        return self.con.execute(sql).df()


def _q(ident: str) -> str:
    return '"' + ident.replace('"', '""') + '"'


def _bucket(col: str) -> str:
    """``col`` rounded down to two significant digits (exact for integers below 100)."""
    scale = f"pow(10, floor(log10({col})) - 1)"
    return f"round(floor({col} / {scale} + 1e-9) * {scale}, 9)"


# ---- singles -----------------------------------------------------------------------------------
def _single_stats(
    tables: _Tables, columns: list[ThresholdColumn], ctx: ContextModel
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
    names = ", ".join(_q(c.column) for c in columns)
    groups = tables.fetch(
        f"""
        WITH long AS (
            UNPIVOT (SELECT _rid AS rid, {names} FROM {tables.name("feat")})
            ON {names} INTO NAME col VALUE v
        )
        SELECT l.col, r.est, {_bucket("l.v")} AS v,
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


def _evidence(o: np.ndarray, e: np.ndarray) -> np.ndarray:
    """The z-score of the extra converters, ``(O - E) / sqrt(E)`` (O is Poisson(E) if the
    behaviour adds nothing): the criterion for choosing and for ranking."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(e > 0, (o - e) / np.sqrt(e), -np.inf)


def _choose_thresholds(
    singles: pd.DataFrame, columns: list[ThresholdColumn], min_users: int, search_n: int
) -> list[tuple[str, float, float]]:
    """Per behaviour, its best (column, value) on the search half, with the search score."""
    s = singles[~singles["est"].astype(bool)]
    s = s[(s["n"] >= min_users) & (s["n"] <= search_n - min_users)]
    if s.empty:
        return []
    s = s.assign(score=_evidence(s["o"].to_numpy(float), s["e"].to_numpy(float)))
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


# ---- pairs -------------------------------------------------------------------------------------
def _pair_events(
    chosen: list[tuple[str, float, float]],
    spec: FeatureSpec,
    frame: pd.DataFrame,
    search: np.ndarray,
    limit: int,
) -> list[str]:
    """The events to pair: done by at most half the users, best separating first (search half).

    An event most users do (a login, a page view) happens first for nearly everyone, so "it,
    then B" only says when B happened; such events make no milestone.
    """
    timing = {
        e: c
        for e, c in timing_columns(spec).items()
        if c in frame and frame[c].iloc[np.flatnonzero(search)].notna().mean() <= _MAX_PAIR_SHARE
    }
    ranked = []
    for col, _, _ in sorted(chosen, key=lambda c: -c[2]):
        event = spec.describe(col).event if col in spec.columns else None
        if event in timing and event not in ranked:
            ranked.append(event)
    ranked += [e for e in sorted(timing) if e not in ranked]
    return ranked[:limit]


def _ladder(spec: FeatureSpec) -> list[int]:
    """The ``within`` bounds tried, in seconds: an hour and the spec's own windows."""
    return sorted({3600, *spec.windows_s})


def _pair_stats(
    tables: _Tables,
    spec: FeatureSpec,
    events: list[str],
    ctx: ContextModel,
    before: dict[str, tuple[str, ...]],
) -> dict[str, pd.DataFrame]:
    """Per ordered pair, half and ``within`` bound: users, converters and expected, cumulative
    over the bounds (bucket ``i`` holds every gap up to the ``i``-th bound; the last is any gap);
    and per pair, the same for each of its two events done at all."""
    timing = timing_columns(spec)
    pairs = list(itertools.combinations(sorted(events), 2))
    rows = tables.rows("r2", ctx, [_owns((a, b), before) for a, b in pairs])
    pairctx = tables.register(
        "pairctx",
        pd.DataFrame(
            [(a, b, i + 1) for i, (x, y) in enumerate(pairs) for a, b in ((x, y), (y, x))],
            columns=["ea", "eb", "ctx"],
        ),
    )
    evmap = tables.register(
        "evmap", pd.DataFrame({"col": [timing[e] for e in events], "ev": list(events)})
    )
    ladder = _ladder(spec)
    grid = tables.register("grid", pd.DataFrame({"bucket": np.arange(len(ladder) + 1)}))
    gap = "(b.h - a.h)"
    bucket = " ".join(f"WHEN {gap} <= {s / 3600!r} THEN {i}" for i, s in enumerate(ladder))
    names = ", ".join(_q(timing[e]) for e in events)
    firsts = tables.table(
        "firsts",
        f"""SELECT u.rid, m.ev, u.h FROM (
            UNPIVOT (SELECT _rid AS rid, {names} FROM {tables.name("feat")})
            ON {names} INTO NAME col VALUE h
        ) u JOIN {evmap} m ON m.col = u.col WHERE NOT isnan(u.h)""",
    )
    ordered = tables.fetch(
        f"""
        WITH g AS (
            SELECT a.ev AS ea, b.ev AS eb, r.est,
                   CASE {bucket} ELSE {len(ladder)} END AS bucket,
                   COUNT(*) AS n, SUM(r.y) AS o, SUM(r.ps[c.ctx]) AS e
            FROM {firsts} a
            JOIN {firsts} b ON a.rid = b.rid AND a.h < b.h
            JOIN {rows} r ON r.rid = a.rid
            JOIN {pairctx} c ON c.ea = a.ev AND c.eb = b.ev
            GROUP BY ALL
        ),
        filled AS (
            SELECT k.ea, k.eb, k.est, grid.bucket,
                   COALESCE(g.n, 0) AS n, COALESCE(g.o, 0) AS o, COALESCE(g.e, 0) AS e
            FROM (SELECT DISTINCT ea, eb, est FROM g) k CROSS JOIN {grid} grid
            LEFT JOIN g ON g.ea = k.ea AND g.eb = k.eb AND g.est = k.est
                       AND g.bucket = grid.bucket
        )
        SELECT ea, eb, est, bucket,
               SUM(n) OVER w AS n, SUM(o) OVER w AS o, SUM(e) OVER w AS e
        FROM filled
        WINDOW w AS (PARTITION BY ea, eb, est ORDER BY bucket ROWS UNBOUNDED PRECEDING)
        """
    )
    singles = tables.fetch(
        f"""
        SELECT c.ea, c.eb, r.est,
               SUM(CASE WHEN f.ev = c.ea THEN 1 ELSE 0 END) AS n_a,
               SUM(CASE WHEN f.ev = c.ea THEN r.y ELSE 0 END) AS o_a,
               SUM(CASE WHEN f.ev = c.ea THEN r.ps[c.ctx] ELSE 0 END) AS e_a,
               SUM(CASE WHEN f.ev = c.eb THEN 1 ELSE 0 END) AS n_b,
               SUM(CASE WHEN f.ev = c.eb THEN r.y ELSE 0 END) AS o_b,
               SUM(CASE WHEN f.ev = c.eb THEN r.ps[c.ctx] ELSE 0 END) AS e_b
        FROM {firsts} f
        JOIN {pairctx} c ON f.ev = c.ea OR f.ev = c.eb
        JOIN {rows} r ON r.rid = f.rid
        GROUP BY ALL
        """
    )
    return {"ordered": ordered, "singles": singles}


def _order_rows(
    stats: dict[str, pd.DataFrame], spec: FeatureSpec, min_users: int, search_n: int
) -> list[dict[str, Any]]:
    """The kept "A then B (within t)" rows: the best bound per pair (search half), when the
    order matters (:func:`_order_matters`), with the estimate half's numbers."""
    ladder: list[int | None] = [*_ladder(spec), None]
    ordered = stats["ordered"].astype({"est": bool})
    search = ordered[~ordered["est"]]
    search = search[(search["n"] >= min_users) & (search["n"] <= search_n - min_users)]
    if search.empty:
        return []
    search = search.assign(
        score=_evidence(search["o"].to_numpy(float), search["e"].to_numpy(float))
    )
    best = search.sort_values(["ea", "eb", "score", "bucket"], ascending=[True, True, False, True])
    best = best.drop_duplicates(["ea", "eb"])
    anygap = ordered[~ordered["est"] & (ordered["bucket"] == len(ladder) - 1)]
    best = best.merge(
        anygap[["ea", "eb", "n"]].rename(columns={"n": "n_any"}), on=["ea", "eb"], how="left"
    )
    singles = stats["singles"].astype({"est": bool})
    best = best.merge(singles[~singles["est"]].drop(columns="est"), on=["ea", "eb"], how="left")
    best = best[_order_matters(best)]
    est = ordered[ordered["est"]].drop(columns="est")
    best = best[["ea", "eb", "bucket", "score", "n", "n_any"]].rename(columns={"n": "n_search"})
    best = best.merge(est, on=["ea", "eb", "bucket"], how="left").fillna(
        {"n": 0.0, "o": 0.0, "e": 0.0}
    )
    out = []
    for row in best.itertuples(index=False):
        # a bound that every such user meets (the widest window at a day-7 cutoff) is no bound
        within = None if row.n_search >= row.n_any else ladder[int(row.bucket)]
        condition = order_condition(spec, row.ea, row.eb, within)
        out.append(
            {
                "kind": "order",
                "behaviour": describe_order(row.ea, row.eb, within),
                "condition": condition,
                "milestone": "" if condition else _milestone_text(row.ea, row.eb, within),
                "column": None,
                "value": None,
                "event": None,
                "first": row.ea,
                "then": row.eb,
                "within_s": within,
                "search_score": float(row.score),
                "n": float(row.n),
                "o": float(row.o),
                "e": float(row.e),
            }
        )
    return out


def _order_matters(best: pd.DataFrame) -> np.ndarray:
    """Whether each "A then B" is more than doing A, or B, at all (search half, same yardstick).

    The users who did A then B are a subset of A's users and of B's users. The order is kept
    when, under the model of everything but A and B:

    - it separates converters at all (one-sided 95% evidence of extra converters);
    - its adjusted lift beats that of the *other* users of A and of the other users of B, and
      beats at least one of them significantly (one-sided 95%, a test on the log ratio);
    - neither event nearly always comes with the other in this order (90% of its users), where
      "A then B" would be just "did A" (or "did B") under another name.
    """
    o, e = best["o"].to_numpy(float), best["e"].to_numpy(float)
    z = []
    for side in ("a", "b"):
        o_rest = best[f"o_{side}"].to_numpy(float) - o
        e_rest = best[f"e_{side}"].to_numpy(float) - e
        with np.errstate(divide="ignore", invalid="ignore"):
            log_ratio = np.log(np.maximum(o, 0.5) / e) - np.log(np.maximum(o_rest, 0.5) / e_rest)
            se = np.sqrt(1 / np.maximum(o, 0.5) + 1 / np.maximum(o_rest, 0.5))
        z.append(np.where(e_rest > 0, log_ratio / se, -np.inf))
    n_any = best["n_any"].to_numpy(float)
    same = (n_any >= _SAME_USERS * best["n_a"].to_numpy(float)) | (
        n_any >= _SAME_USERS * best["n_b"].to_numpy(float)
    )
    better = (z[0] > 0) & (z[1] > 0) & (np.maximum(z[0], z[1]) > _SEARCH_Z)
    return (best["score"].to_numpy(float) > _SEARCH_Z) & better & ~same


def _milestone_text(first: str, then: str, within_s: int | None) -> str:
    from propensity.features.spec import window_label

    bound = "" if within_s is None else f", within: {window_label(within_s)}"
    return f"{{first: {first}, then: {then}{bound}}}"


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
        evidence=_evidence(o, e),
        significant=adj_low > 1,
    )
    out = out.sort_values(
        ["evidence", "adjusted_lift", "behaviour"], ascending=[False, False, True]
    ).reset_index(drop=True)
    out.insert(0, "rank", np.arange(1, len(out) + 1))
    return out[columns]


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"
