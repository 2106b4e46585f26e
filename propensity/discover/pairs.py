"""Ordered pairs of first occurrences ("A then B, within t") as candidate behaviours.

On the search half, :func:`pair_events` picks the events worth pairing, :func:`pair_stats`
aggregates every ordered pair in every ``within`` bucket in DuckDB, and :func:`order_rows` keeps
an order only where it separates converters better than doing either event at all.
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import pandas as pd

from propensity.discover.candidates import describe_order, order_condition, timing_columns
from propensity.discover.context import ContextModel
from propensity.discover.tables import SEARCH_Z, Tables, evidence, owns, quote
from propensity.features import FeatureSpec

__all__ = ["order_rows", "pair_events", "pair_stats"]

_MAX_PAIR_SHARE = 0.5  # events done by more users than this make no milestone
_SAME_USERS = 0.9  # an order that holds for 90% of an event's users is that event


def pair_events(
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


def pair_stats(
    tables: Tables,
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
    rows = tables.rows("r2", ctx, [owns((a, b), before) for a, b in pairs])
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
    names = ", ".join(quote(timing[e]) for e in events)
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


def order_rows(
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
    search = search.assign(score=evidence(search["o"].to_numpy(float), search["e"].to_numpy(float)))
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
    better = (z[0] > 0) & (z[1] > 0) & (np.maximum(z[0], z[1]) > SEARCH_Z)
    return (best["score"].to_numpy(float) > SEARCH_Z) & better & ~same


def _milestone_text(first: str, then: str, within_s: int | None) -> str:
    from propensity.features.spec import window_label

    bound = "" if within_s is None else f", within: {window_label(within_s)}"
    return f"{{first: {first}, then: {then}{bound}}}"
