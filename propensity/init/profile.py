"""What the data says about the settings a starter config needs, with the evidence for each.

Everything is read from the canonical tables a :class:`~propensity.io.LoadedData` holds:

- the trial length: the day activity of users who never paid falls below 90% of its first-week
  level for good (trials end; the pull of the product goes with them), else the median time
  from signup to payment, else 14 days;
- the label: cutoff at half the trial (whole weeks from 14 days on), a 30-day horizon (14 days
  when the data is short), extra cutoffs at earlier and later trial ages;
- the event vocabulary, counted as ``train`` counts it (users before their cutoff, on the
  earliest 60% of labelled users: the training slice), with a support floor that suits the
  number of users;
- milestones (pairs of events whose order carries signal on that slice), numeric event
  properties, and users columns that describe the user rather than the outcome.

Only the training slice's labels are read, never the later ones the model is judged on.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import duckdb
import numpy as np
import pandas as pd

from propensity.features.named import event_support

__all__ = ["Profile", "profile_data"]

_COMMON_TRIALS = (7, 14, 21, 30, 45, 60, 90)
_TRAIN_FRACTION = 0.6  # the default split's training slice
_MAX_EVENT_TYPES = 60  # the default features.max_event_types
_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_ID_LIKE = re.compile(r"(^|_)(id|uuid|key)$|Id$", re.IGNORECASE)
# Users columns that may be filled in after (or because) a user paid: never features.
_OUTCOME_WORDS = re.compile(
    r"plan|paid|pay|convert|subscri|revenue|mrr|arr\b|churn|status|tier|billing|price|customer|"
    r"upgrade|trial_end|cancel",
    re.IGNORECASE,
)
_RESERVED = {"user_id", "signup_at", "account_id", "email_domain", "email"}


@dataclass(frozen=True)
class Profile:
    """The numbers behind a starter config, and a sentence of evidence for each choice."""

    users: int
    converted: int
    first_signup: datetime
    last_signup: datetime
    data_end: datetime
    trial_days: int
    window_days: int
    horizon_days: int
    extra_cutoff_days: tuple[int, ...]
    event_types: int
    train_users: int
    train_positives: int
    min_event_support: int
    support: dict[str, int]
    vocabulary: tuple[str, ...]
    milestones: tuple[tuple[str, str], ...]
    properties: tuple[tuple[str, str], ...]
    numeric_columns: tuple[str, ...]
    categorical_columns: tuple[str, ...]
    skipped_columns: dict[str, str]
    activity_q90: int
    day_only: bool
    evidence: dict[str, str] = field(default_factory=dict)

    @property
    def weeks(self) -> float:
        """Weeks of signups in the data (at least one)."""
        return max((self.last_signup - self.first_signup) / timedelta(days=7), 1.0)

    @property
    def conversion_rate(self) -> float:
        return self.converted / self.users if self.users else 0.0

    @property
    def signups_per_week(self) -> float:
        return self.users / self.weeks


def profile_data(con: duckdb.DuckDBPyConnection) -> Profile:
    """Profile the canonical ``events``, ``users`` and ``conversions`` tables in ``con``."""
    evidence: dict[str, str] = {}
    users, converted, first, last, end, n_types, midnight = con.execute(
        """
        SELECT (SELECT count(*) FROM users),
               (SELECT count(DISTINCT c.user_id) FROM conversions c
                JOIN users u ON u.user_id = c.user_id),
               (SELECT min(signup_at) FROM users), (SELECT max(signup_at) FROM users),
               GREATEST((SELECT max(timestamp) FROM events),
                        (SELECT max(converted_at) FROM conversions)),
               (SELECT count(DISTINCT event) FROM events),
               (SELECT bool_and(timestamp = date_trunc('day', timestamp)) FROM events)
        """
    ).fetchall()[0]
    span = (end - first) / timedelta(days=1)
    trial = _trial_days(con, end, span, evidence)
    window = max(1, round(trial / 2 / 7)) * 7 if trial >= 14 else max(1, trial // 2)
    horizon = 30 if span >= window + 30 + 28 else 14
    weeks = ", in whole weeks" if trial >= 14 else ""
    short = "" if horizon == 30 else f" (the data spans only {span:.0f} days)"
    evidence["label"] = (
        f"cutoff at day {window} (half the {trial}-day trial{weeks}), label: paid within "
        f"{horizon} days after it{short}"
    )
    later = window + (trial - window) // 2 if trial - window >= 4 else window
    extra = sorted({d for d in (1, 3, 7, later) if d != window and d < trial})
    rows = _train_rows(con, window, horizon, end)
    n_train, positives = len(rows), int(rows["label"].sum())
    con.register("_init_rows", rows)
    try:
        support = event_support(lambda sql: con.execute(sql).fetchall(), "_init_rows")
        floor = int(np.clip(round(0.02 * n_train), 5, 20))
        ranked = sorted(support, key=lambda e: (-support[e], e))
        # as learn_spec picks it: enough users, then the most common max_event_types
        vocabulary = tuple(sorted([e for e in ranked if support[e] >= floor][:_MAX_EVENT_TYPES]))
        milestones = _milestones(con, vocabulary, support, n_train, positives, floor, evidence)
        (q90,) = con.execute(
            """
            SELECT COALESCE(quantile_disc(n, 0.9), 0) FROM (
                SELECT r.user_id, count(e.user_id) AS n FROM _init_rows r
                LEFT JOIN events e ON e.user_id = r.user_id
                     AND e.timestamp >= r.signup_at AND e.timestamp < r.cutoff_at
                GROUP BY r.user_id)
            """
        ).fetchall()[0]
        numeric, categorical, skipped = _user_columns(con)
    finally:
        con.unregister("_init_rows")
    return Profile(
        users=int(users),
        converted=int(converted),
        first_signup=first,
        last_signup=last,
        data_end=end,
        trial_days=trial,
        window_days=window,
        horizon_days=horizon,
        extra_cutoff_days=tuple(extra),
        event_types=int(n_types),
        train_users=n_train,
        train_positives=positives,
        min_event_support=floor,
        support=support,
        vocabulary=vocabulary,
        milestones=milestones,
        properties=_properties(con, vocabulary, support),
        numeric_columns=numeric,
        categorical_columns=categorical,
        skipped_columns=skipped,
        activity_q90=int(q90),
        day_only=bool(midnight),
        evidence=evidence,
    )


def _trial_days(
    con: duckdb.DuckDBPyConnection, end: datetime, span: float, evidence: dict[str, str]
) -> int:
    """The trial length read from the activity of users who never paid, else from payments."""
    horizon_days = int(min(90, max(14, span // 2)))
    shares = con.execute(
        f"""
        WITH never AS (
            SELECT user_id, signup_at FROM users
            WHERE user_id NOT IN (SELECT user_id FROM conversions)
              AND signup_at + INTERVAL {horizon_days} DAY <= ?
        ), days AS (
            SELECT DISTINCT e.user_id,
                   CAST(floor(epoch(e.timestamp - n.signup_at) / 86400) AS INTEGER) AS d
            FROM events e JOIN never n ON n.user_id = e.user_id
            WHERE e.timestamp >= n.signup_at
        )
        SELECT d, count(*) * 1.0 / (SELECT count(*) FROM never), (SELECT count(*) FROM never)
        FROM days WHERE d < {horizon_days} GROUP BY d ORDER BY d
        """,
        [end],
    ).fetchall()
    a = np.zeros(horizon_days)
    n_never = shares[0][2] if shares else 0
    for d, share, _ in shares:
        a[d] = share
    if n_never >= 30:
        plateau = float(np.median(a[1:8]))
        above = np.flatnonzero(a[1:] >= 0.9 * plateau) + 1
        trial = int(above.max()) + 1 if len(above) else 0
        later = a[min(trial + 7, horizon_days - 1)] if trial else plateau
        if 5 <= trial < horizon_days - 2 and later <= 0.6 * plateau:
            trial = _snap(trial)
            evidence["trial"] = (
                f"{trial}-day trial: on a day of their first week {plateau:.0%} of the users who "
                f"never paid ({n_never:,}) are active; from day {trial} on, never again 90% of "
                f"that"
            )
            return trial
    paid = con.execute(
        """
        SELECT median(epoch(c.converted_at - u.signup_at) / 86400), count(*)
        FROM conversions c JOIN users u ON u.user_id = c.user_id
        WHERE c.converted_at > u.signup_at + INTERVAL 1 DAY
        """
    ).fetchall()[0]
    if paid[0] is not None and paid[1] >= 20:
        trial = _snap(int(np.clip(round(paid[0]), 7, 60)))
        evidence["trial"] = (
            f"{trial}-day trial: no clear end of activity, so taken from the median time from "
            f"signup to payment ({paid[0]:.1f} days over {paid[1]:,} payers)"
        )
        return trial
    evidence["trial"] = "14-day trial: the data shows no trial end and too few payments (default)"
    return 14


def _snap(days: int) -> int:
    return next((c for c in _COMMON_TRIALS if abs(c - days) <= 1), days)


def _train_rows(
    con: duckdb.DuckDBPyConnection, window: int, horizon: int, end: datetime
) -> pd.DataFrame:
    """One row per labelled user of the earliest 60% of the cutoff range (the training slice)."""
    return con.execute(
        f"""
        WITH first_paid AS (SELECT user_id, min(converted_at) AS paid FROM conversions
                            GROUP BY user_id),
        rows AS (
            SELECT u.user_id, u.signup_at, u.signup_at + INTERVAL {window} DAY AS cutoff_at,
                   f.paid
            FROM users u LEFT JOIN first_paid f ON f.user_id = u.user_id
            WHERE u.signup_at IS NOT NULL
              AND u.signup_at + INTERVAL {window + horizon} DAY <= ?
              AND (f.paid IS NULL OR f.paid >= u.signup_at + INTERVAL {window} DAY)
        ), bounds AS (SELECT min(cutoff_at) AS lo, max(cutoff_at) AS hi FROM rows)
        SELECT user_id, signup_at, cutoff_at,
               CAST(COALESCE(paid < cutoff_at + INTERVAL {horizon} DAY, false) AS INTEGER) AS label
        FROM rows, bounds
        WHERE epoch(cutoff_at - lo) <= {_TRAIN_FRACTION} * epoch(hi - lo)
        ORDER BY cutoff_at, user_id
        """,
        [end],
    ).fetchdf()


def _milestones(
    con: duckdb.DuckDBPyConnection,
    vocabulary: tuple[str, ...],
    support: dict[str, int],
    n_train: int,
    positives: int,
    floor: int,
    evidence: dict[str, str],
    keep: int = 2,
) -> tuple[tuple[str, str], ...]:
    """Pairs of events whose order (first a, then b) moves the conversion rate most.

    Ranked like the transitions: ``|P(paid | a before b) - P(paid | not)| * users with it``,
    among events done by 5-90% of training users, keeping pairs seen in both orders.
    """
    if positives < 10 or n_train == 0:
        evidence["milestones"] = "no milestones: too few payers in the training slice to rank them"
        return ()
    middle = [e for e in vocabulary if 0.05 <= support[e] / n_train <= 0.9]
    middle = sorted(middle, key=lambda e: (-support[e], e))[:12]
    if len(middle) < 2:
        return ()
    pairs = con.execute(
        """
        WITH firsts AS (
            SELECT e.user_id, e.event, min(e.timestamp) AS t FROM events e
            JOIN _init_rows r ON r.user_id = e.user_id
            WHERE e.timestamp >= r.signup_at AND e.timestamp < r.cutoff_at
              AND e.event IN (SELECT unnest(?))
            GROUP BY e.user_id, e.event
        )
        SELECT a.event, b.event, count(*) AS n_ab, sum(r.label) AS pos_ab
        FROM firsts a JOIN firsts b ON a.user_id = b.user_id AND a.t < b.t
        JOIN _init_rows r ON r.user_id = a.user_id
        GROUP BY a.event, b.event
        """,
        [middle],
    ).fetchdf()
    if pairs.empty:
        return ()
    pairs.columns = ["a", "b", "n_ab", "pos_ab"]
    rate_rest = (positives - pairs["pos_ab"]) / (n_train - pairs["n_ab"]).clip(lower=1)
    pairs["score"] = ((pairs["pos_ab"] / pairs["n_ab"] - rate_rest).abs() * pairs["n_ab"]).round(9)
    reverse = pairs.set_index(["a", "b"])["n_ab"]
    pairs["n_ba"] = [reverse.get((b, a), 0) for a, b in zip(pairs["a"], pairs["b"], strict=True)]
    pairs = pairs[(pairs["n_ab"] >= floor) & (pairs["n_ba"] >= 0.1 * pairs["n_ab"])]
    chosen: list[tuple[str, str]] = []
    for row in pairs.sort_values(["score", "a", "b"], ascending=[False, True, True]).itertuples():
        if {row.a, row.b} not in [set(c) for c in chosen]:
            chosen.append((str(row.a), str(row.b)))
        if len(chosen) == keep:
            break
    if chosen:
        evidence["milestones"] = (
            "milestones: the event pairs whose order moves the training slice's conversion rate "
            "most (both orders seen)"
        )
    return tuple(chosen)


PROPERTY_SAMPLE = 500_000  # rows of vocabulary events read for their properties' keys


def _properties(
    con: duckdb.DuckDBPyConnection, vocabulary: tuple[str, ...], support: dict[str, int]
) -> tuple[tuple[str, str], ...]:
    """Numeric JSON properties of vocabulary events (sampled), most common events first."""
    if not vocabulary:
        return ()
    where = "properties IS NOT NULL AND event IN (SELECT unnest(?))"
    (n,) = con.execute(f"SELECT count(*) FROM events WHERE {where}", [list(vocabulary)]).fetchone()
    # A sample by each row's content, not the first rows a scan yields: those depend on the
    # file order and DuckDB's threads, and `init` should propose the same properties each run.
    keep = min(1.0, PROPERTY_SAMPLE / max(n, 1))
    found = con.execute(
        f"""
        WITH sample AS (
            SELECT event, properties FROM events
            WHERE {where} AND hash(event, properties, timestamp, user_id) % 1000003
                < {round(keep * 1000003)}
        ), keys AS (
            SELECT event, properties, unnest(json_keys(properties)) AS k
            FROM sample WHERE json_valid(properties)
        )
        SELECT event, k, count(*) AS n,
               count(*) FILTER (WHERE json_type(properties, '$."' || k || '"')
                                IN ('BIGINT', 'UBIGINT', 'DOUBLE')) AS numeric
        FROM keys GROUP BY event, k
        """,
        [list(vocabulary)],
    ).fetchall()
    keep = [
        (str(event), str(key))
        for event, key, n, numeric in found
        if n >= 50 and numeric >= 0.95 * n and _KEY.match(str(key)) and not _ID_LIKE.search(key)
    ]
    keep.sort(key=lambda p: (-support.get(p[0], 0), p))
    return tuple(keep[:5])


def _user_columns(
    con: duckdb.DuckDBPyConnection,
) -> tuple[tuple[str, ...], tuple[str, ...], dict[str, str]]:
    """Users columns fit to be features: numeric, or text with 2-50 levels; never the outcome."""
    numeric: list[str] = []
    categorical: list[str] = []
    skipped: dict[str, str] = {}
    described = con.execute("DESCRIBE users").fetchall()
    types = {name: str(dtype).upper() for name, dtype, *_ in described}
    (n_users,) = con.execute("SELECT count(*) FROM users").fetchall()[0]
    for name, dtype in types.items():
        if name in _RESERVED:
            continue
        if _OUTCOME_WORDS.search(name):
            skipped[name] = "its name suggests it may describe the outcome (a paid plan)"
            continue
        if _ID_LIKE.search(name):
            skipped[name] = "an identifier"
            continue
        q = '"' + name.replace('"', '""') + '"'
        filled, levels = con.execute(
            f"SELECT count({q}), count(DISTINCT {q}) FROM users"
        ).fetchall()[0]
        if not n_users or filled < 0.2 * n_users or levels < 2:
            skipped[name] = "mostly empty or a single value"
        elif dtype.startswith(("TIMESTAMP", "DATE", "TIME")):
            skipped[name] = "a time (not an attribute)"
        elif _numeric(dtype):
            numeric.append(name)
        elif levels <= 50:
            if _separates(con, q):
                skipped[name] = "one of its values marks most payers (it may record the outcome)"
            else:
                categorical.append(name)
        else:
            skipped[name] = f"{levels:,} distinct values (free text or identifiers)"
    return tuple(numeric), tuple(categorical), skipped


def _numeric(dtype: str) -> bool:
    return dtype.startswith(
        ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "FLOAT", "DOUBLE", "DECIMAL",
         "UTINYINT", "USMALLINT", "UINTEGER", "UBIGINT", "BOOLEAN")
    )  # fmt: skip


def _separates(con: duckdb.DuckDBPyConnection, column: str) -> bool:
    """A level that 90%+ of its users paid with, covering 30%+ of payers: an outcome column."""
    rows: list[Any] = con.execute(
        f"""
        SELECT count(*) AS n, count(c.user_id) AS paid,
               (SELECT count(DISTINCT user_id) FROM conversions) AS payers
        FROM users u LEFT JOIN (SELECT DISTINCT user_id FROM conversions) c
             ON c.user_id = u.user_id
        WHERE u.{column} IS NOT NULL GROUP BY u.{column}
        """
    ).fetchall()
    return any(
        n >= 30 and paid >= 0.9 * n and payers and paid >= 0.3 * payers for n, paid, payers in rows
    )
