"""Bots and scripted accounts: users whose events no person could have made.

The rules (``data.bots``, see :class:`propensity.config.BotsConfig`) look only at event times,
so they hold for any product: a person does not send a thousand events in one clock hour or ten
thousand in a day (nor twenty times what the busiest 1% of this product's users send on their
busiest day), is not active in 22 of a day's 24 hours, and does not click at intervals equal to
within a tenth of their mean, fifty times in a row. Heavy real users stay well inside them: on
the simulator's worlds the busiest people reach about 25 events in an hour, 60 in a day (the top
1% about 40) and 11 active hours, and their gaps vary by more than twice their mean; its
crawler is active around the clock, about a thousand events a day.
"""

from __future__ import annotations

import duckdb

from propensity.config import BotsConfig
from propensity.io.user_days import day_figures

__all__ = ["bot_rule", "find_bots", "per_user_sql", "per_user_table"]


_DAY_FLOOR = 500  # the relative per-day rule never flags a day with fewer events than this


def bot_rule(cfg: BotsConfig, day_only: bool) -> str:
    """The rule in words, for the data summary."""
    day = f"more than {cfg.max_events_per_day:,} events on one day"
    if cfg.busiest_day_factor > 0:
        day += (
            f" (or more than {cfg.busiest_day_factor:g} times the busiest 1% of users' busiest "
            f"day, and over {_DAY_FLOOR})"
        )
    if day_only:
        return f"{day}; the export has no times of day, so the hourly and gap rules cannot apply"
    return (
        f"{day}, more than {cfg.max_events_per_hour:,} events in one clock hour, activity in "
        f"more than {cfg.max_active_hours_per_day} of a day's 24 hours, or "
        f"{cfg.regular_min_gaps}+ gaps between events varying by less than "
        f"{cfg.regular_gap_cv:g} of their mean"
    )


def find_bots(
    con: duckdb.DuckDBPyConnection,
    cfg: BotsConfig,
    day_only: bool,
    table: str = "stage_events",
    per_user: str | None = None,
) -> list[tuple[str, str]]:
    """``(user_id, why)`` of every user of `table` the rules flag, sorted by user id.

    One (user, day) aggregation serves every rule (:func:`per_user_sql`): each user's busiest
    day, the few users whose busiest day could break an hourly rule, and a lower bound of each
    user's gap variation (:func:`_gap_bound`) that leaves only the users who might be regular
    to the exact check (their events sorted, gap by gap). ``per_user``: a table made by
    :func:`per_user_sql` from `table`, holding exactly its users now,
    read instead of aggregating again.
    """
    busy = f"day_n > {int(cfg.max_events_per_day)}"
    if cfg.busiest_day_factor > 0:
        factor = float(cfg.busiest_day_factor)
        busy += f" OR day_n > greatest({_DAY_FLOOR}, {factor!r} * p99)"
    checks = [f"({busy})"]
    whys = [
        f"WHEN {busy} THEN format('{{:,}} events on {{}} (the busiest 1% of users reach "
        f"{{:,.0f}})', day_n, strftime(n_day, '%Y-%m-%d'), p99)"
    ]
    regular = ""
    if not day_only:
        checks += [
            f"peak > {int(cfg.max_events_per_hour)}",
            f"hours > {int(cfg.max_active_hours_per_day)}",
            f"coalesce(cv < {float(cfg.regular_gap_cv)!r}, false)",
        ]
        whys = [
            f"WHEN peak > {int(cfg.max_events_per_hour)} THEN "
            f"format('{{:,}} events in one hour on {{}}', peak, strftime(peak_day, '%Y-%m-%d'))",
            *whys,
            f"WHEN hours > {int(cfg.max_active_hours_per_day)} THEN "
            f"format('active in {{}} of the 24 hours of {{}}', hours, "
            f"strftime(hours_day, '%Y-%m-%d'))",
            "WHEN cv IS NOT NULL THEN "
            "format('{} gaps between events varying by {:.3f} of their mean', k, cv)",
        ]
        min_gaps = int(cfg.regular_min_gaps)
        regular = f"""
        , suspects AS (
            SELECT user_id FROM per_day
            WHERE n > {min_gaps} AND {_gap_bound(float(cfg.regular_gap_cv))}
        ), gaps AS (
            SELECT e.user_id, epoch(e.timestamp) - lag(epoch(e.timestamp))
                   OVER (PARTITION BY e.user_id ORDER BY e.timestamp) AS g
            FROM {table} e SEMI JOIN suspects s ON e.user_id = s.user_id
        ), regular AS (
            SELECT user_id, count(*) AS k, stddev_pop(g) / avg(g) AS cv
            FROM gaps WHERE g > 0 GROUP BY user_id HAVING count(*) >= {min_gaps}
        )"""
    join = "LEFT JOIN regular r ON r.user_id = u.user_id" if regular else ""
    cols = "r.k, r.cv" if regular else "NULL AS k, NULL AS cv"
    # A user's events in one hour, and their active hours in a day, are at most the day's
    # events: only users whose busiest day exceeds one of the hourly limits can break an hourly
    # rule, so the (user, hour) aggregation runs on those few only; the rest get NULLs there,
    # which no rule flags.
    hour_floor = min(int(cfg.max_events_per_hour), int(cfg.max_active_hours_per_day))
    hourly = ""
    hour_cols = "NULL AS peak, NULL AS peak_day, NULL AS hours, NULL AS hours_day"
    if not day_only:
        hourly = f"""
        , candidates AS (
            SELECT user_id FROM per_day WHERE day_n > {hour_floor}
        ), hourly AS (
            SELECT e.user_id, date_trunc('hour', e.timestamp) AS h, count(*) AS n
            FROM {table} e SEMI JOIN candidates c ON e.user_id = c.user_id GROUP BY ALL
        ), hours_daily AS (
            SELECT user_id, date_trunc('day', h) AS d, count(*) AS active_hours, max(n) AS peak
            FROM hourly GROUP BY ALL
        ), per_hour AS (
            SELECT user_id, max(peak) AS peak, arg_min(d, (-peak, d)) AS peak_day,
                   max(active_hours) AS hours, arg_min(d, (-active_hours, d)) AS hours_day
            FROM hours_daily GROUP BY user_id
        )"""
        hour_cols = "h.peak, h.peak_day, h.hours, h.hours_day"
    hour_join = "LEFT JOIN per_hour h ON h.user_id = u.user_id" if hourly else ""
    users = f"SELECT * FROM {per_user}" if per_user is not None else per_user_sql(table)
    rows = con.execute(
        f"""
        WITH per_day AS (
            {users}
        ), typical AS (
            SELECT quantile_cont(day_n, 0.99) AS p99 FROM per_day
        ){hourly}{regular}
        SELECT user_id, CASE {" ".join(whys)} END AS why FROM (
            SELECT u.user_id, u.day_n, u.n_day, {hour_cols}, t.p99, {cols}
            FROM per_day u CROSS JOIN typical t {hour_join} {join}
        ) WHERE {" OR ".join(checks)}
        ORDER BY user_id
        """
    ).fetchall()
    return [(str(user), str(why)) for user, why in rows]


def _gap_bound(cv: float) -> str:
    """True for the users of ``per_day`` whose gaps might vary by less than `cv` of their mean.

    A user's distinct event times t_0 < ... < t_k make k gaps summing to the span S, and the
    gaps' coefficient of variation is sqrt(k * sum(g^2) / S^2 - 1). Both factors have lower
    bounds from the (user, day) aggregates alone: k is at least the days - 1 gaps between
    active days plus one gap inside each day whose first and last event differ; inside such a
    day, its (at most n - 1) gaps sum to its span D, so their squares sum to at least
    D^2 / (n - 1); the days - 1 gaps between days sum to S minus the days' spans, so their
    squares sum to at least that squared over days - 1 (Cauchy-Schwarz, both). A user whose
    bound already reaches `cv` (with a margin far above rounding) cannot be flagged; only the
    others, timer-driven scripts and a few people with one event a day, are checked exactly.
    """
    k_low = "(days - 1 + spread_days)"
    between = "CAST(span - within AS DOUBLE)"
    sq_low = f"(within_sq + CASE WHEN days > 1 THEN {between} ^ 2 / (days - 1) ELSE 0 END)"
    return (
        f"span > 0 AND {k_low} * {sq_low} <= "
        f"CAST(span AS DOUBLE) ^ 2 * (1 + {cv!r} ^ 2) * (1 + 1e-6)"
    )


def per_user_table(
    con: duckdb.DuckDBPyConnection,
    cfg: BotsConfig,
    table: str,
    into: str,
    account: bool = False,
) -> None:
    """Create `into`: the columns of :func:`per_user_sql` for every user of `table`, with the
    (user, day) figures only for the users a rule could flag (NULL for the rest, which no rule
    flags), and with ``account``, each user's smallest ``account_id``.

    Most of the cost of the bots' rules is the (user, day) aggregation, one group per active
    user-day. A user's busiest day has at most their ``n`` events, so a user with no more
    events than an hourly limit cannot break an hourly rule, nor one with no more than
    ``regular_min_gaps`` the gap rule; first one cheap per-user count, then the (user, day)
    pass over the others' events only. The busiest-day rule compares with the busiest 1%
    (p99) of every user: when any user has enough events to break it, every user is aggregated
    by day, so that p99 is exact whenever it can flag someone (and otherwise it flags no one).
    The (user, day) figures come from one sort in NumPy (:mod:`propensity.io.user_days`), the
    same as :func:`per_user_sql`'s for a fraction of its cost; in SQL when the times are not
    whole seconds.
    """
    accounts = ", min(account_id) AS account_id" if account else ""
    counts = f"{into}_n"
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE {counts} AS SELECT user_id, count(*) AS n{accounts}, "
        f"row_number() OVER () - 1 AS _code FROM {table} GROUP BY user_id"
    )
    day_limit = int(cfg.max_events_per_day)
    if cfg.busiest_day_factor > 0:
        day_limit = min(day_limit, _DAY_FLOOR)
    # the fewest events that might break a rule other than the busiest day's (a day-only
    # export, which those rules skip, is decided later: this holds for it too)
    limits = (cfg.max_events_per_hour, cfg.max_active_hours_per_day, cfg.regular_min_gaps)
    floor = int(min(limits))
    n_busy, n_low = con.execute(
        f"SELECT count(*) FILTER (WHERE n > {day_limit}), count(*) FILTER (WHERE n <= {floor}) "
        f"FROM {counts}"
    ).fetchone()
    some = n_busy == 0 and n_low  # the others' events only
    figures = day_figures(con, table, counts, f"u.n > {floor}" if some else "")
    if figures is not None:
        con.register(f"{into}_days", figures)
        days, key = f"{into}_days", "_code"
    else:  # times day_figures does not take: the same figures in SQL
        where = f"user_id IN (SELECT user_id FROM {counts} WHERE n > {floor})" if some else ""
        days, key = f"({per_user_sql(table, where, with_n=False)})", "user_id"
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE {into} AS SELECT u.* EXCLUDE (_code), "
        f"d.* EXCLUDE ({key}) FROM {counts} u LEFT JOIN {days} d USING ({key})"
    )
    if figures is not None:
        con.unregister(f"{into}_days")
    con.execute(f"DROP TABLE {counts}")


def per_user_sql(table: str, where: str = "", with_n: bool = True) -> str:
    """Each user of `table` from one (user, day) aggregation: events ``n``, busiest day
    (``day_n`` events on ``n_day``, the earliest of ties) and what :func:`_gap_bound` reads
    (active ``days``, ``span`` between the first and last event, ``spread_days`` whose first
    and last event differ, the sum of those days' spans ``within`` and ``within_sq``, each
    day's span squared over its events less one).

    ``where`` keeps only the events it holds; ``with_n`` False leaves ``n`` out (counted
    elsewhere)."""
    # Whole microseconds: exact integers, as are their sums in a double (below 2^53 µs, 285
    # years). The busiest day is the earliest of ties: the key orders by events, then day.
    return f"""
        SELECT user_id, {"CAST(sum(n) AS BIGINT) AS n," if with_n else ""}
               max(n) AS day_n, arg_max(d, n * 10000000 - epoch_us(d) // 86400000000) AS n_day,
               count(*) AS days, max(hi) - min(lo) AS span,
               sum(CAST(hi > lo AS INTEGER)) AS spread_days,
               sum(CAST(hi - lo AS DOUBLE)) AS within,
               sum(CAST(hi - lo AS DOUBLE) ^ 2 / greatest(n - 1, 1)) AS within_sq
        FROM (
            SELECT user_id, date_trunc('day', timestamp) AS d, count(*) AS n,
                   epoch_us(min(timestamp)) AS lo, epoch_us(max(timestamp)) AS hi
            FROM {table} {f"WHERE {where}" if where else ""} GROUP BY user_id, d
        ) GROUP BY user_id"""
