"""Point-in-time label times: one row per (user, cutoff) with the label that follows the cutoff.

Prediction engineering is its own step (as in composeml): a cutoff is placed at a fixed trial age
(signup + observation window, plus one per configured extra cutoff), features may only use events
strictly before it, and the label asks "did the first conversion fall in [cutoff, cutoff +
horizon)?". Rows are excluded, and counted per reason, when the answer is already known or not yet
knowable:

- ``signup_missing``: the user has no ``signup_at``, so no cutoff can be placed;
- ``converted_before_cutoff``: the first conversion came before the cutoff (already a customer);
- ``lost_before_cutoff``: the user was lost (account deleted, churned) before the cutoff, by the
  ``lost_users`` table or the configured ``label.lost_event``;
- ``right_censored``: ``cutoff + horizon > data_end``, so the horizon is not fully observed.

Reasons are checked in that order and each excluded row counts once, under its first reason.
Everything is computed in DuckDB; only the (small) label-times table comes back to pandas.

>>> lt = build_label_times(con, LabelConfig())  # doctest: +SKIP
>>> lt.frame.columns.tolist()  # doctest: +SKIP
['user_id', 'account_id', 'signup_at', 'cutoff_at', 'cutoff_age_days', 'label']
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import duckdb
import pandas as pd

from propensity.config import LabelConfig
from propensity.errors import DataContractError, InsufficientDataError

__all__ = [
    "ACTIVE_USERS_SQL",
    "LabelTimes",
    "build_label_times",
    "check_trainable",
    "has_table",
    "require_tables",
    "scoring_population",
    "whole_seconds",
]


@dataclass(frozen=True, eq=False)
class LabelTimes:
    """Label times plus the exclusions and the settings that made them.

    ``frame`` has ``user_id``, ``account_id``, ``signup_at``, ``cutoff_at``, ``cutoff_age_days``
    and, for training, ``label`` (0/1); rows are sorted by ``cutoff_at`` then ``user_id``.
    ``excluded`` maps a reason to the number of (user, cutoff) rows dropped for it.
    ``settings`` is JSON-friendly (durations in seconds, times as ISO strings).
    """

    frame: pd.DataFrame
    excluded: dict[str, int] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def has_label(self) -> bool:
        return "label" in self.frame.columns

    @property
    def calendar(self) -> bool:
        """Whether the rows sit at a task's calendar anchors (read from the settings that made
        them), not at trial ages: every row is then a main row, and rows split by anchor."""
        task = self.settings.get("task") or {}
        return (task.get("anchors") or {}).get("kind") == "calendar"

    def __len__(self) -> int:
        return len(self.frame)


def build_label_times(
    con: duckdb.DuckDBPyConnection, cfg: LabelConfig, data_end: datetime | None = None
) -> LabelTimes:
    """Place cutoffs at signup + each trial age and label conversion within the horizon.

    ``data_end`` is the end of the observed data; it defaults to the ``data_end`` table the
    reader writes for ``data.end``, else the latest event or conversion timestamp. A conversion
    exactly at the cutoff counts (label 1); one exactly at ``cutoff + horizon`` does not. A user
    lost exactly at the cutoff is excluded.
    """
    require_tables(con, ("events", "users", "conversions"))
    if data_end is None and has_table(con, "data_end"):
        data_end = con.execute("SELECT max(data_end) FROM data_end").fetchone()[0]
    if data_end is None:
        data_end = con.execute(
            "SELECT GREATEST((SELECT MAX(timestamp) FROM events),"
            " (SELECT MAX(converted_at) FROM conversions))"
        ).fetchone()[0]
        if data_end is None:
            raise DataContractError(
                [
                    "Tables 'events' and 'conversions' must hold at least one timestamp to place "
                    "label times. Got empty tables instead; load data before building labels."
                ]
            )
    ages = sorted({cfg.observation_window, *cfg.extra_cutoffs})
    horizon_s = whole_seconds(cfg.horizon)
    ages_sql = ", ".join(f"({whole_seconds(a)})" for a in ages)
    lost_sql, lost_params = _lost_sql(con, cfg)
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE _lt_rows AS
        WITH firstconv AS (
            SELECT user_id, MIN(converted_at) AS conv_at FROM conversions GROUP BY user_id
        ), lost AS ({lost_sql}), ages(age_s) AS (VALUES {ages_sql})
        SELECT u.user_id, u.account_id, u.signup_at,
               u.signup_at + to_seconds(a.age_s) AS cutoff_at,
               a.age_s / 86400.0 AS cutoff_age_days,
               f.conv_at, l.lost_at
        FROM users u CROSS JOIN ages a LEFT JOIN firstconv f ON f.user_id = u.user_id
        LEFT JOIN lost l ON l.user_id = u.user_id
        """,
        lost_params,
    )
    try:
        end = pd.Timestamp(data_end).to_pydatetime()
        # each row under its first reason, in the order of the module docstring
        con.execute(
            f"""
            CREATE OR REPLACE TEMP TABLE _lt_reason AS
            SELECT *, CASE
                WHEN signup_at IS NULL THEN 'signup_missing'
                WHEN conv_at < cutoff_at THEN 'converted_before_cutoff'
                WHEN lost_at <= cutoff_at THEN 'lost_before_cutoff'
                WHEN cutoff_at + to_seconds({horizon_s}) > ? THEN 'right_censored'
                ELSE NULL END AS reason
            FROM _lt_rows
            """,
            [end],
        )
        counts = dict(
            con.execute(
                "SELECT reason, COUNT(*) FROM _lt_reason WHERE reason IS NOT NULL GROUP BY reason"
            ).fetchall()
        )
        frame = con.execute(
            f"""
            SELECT user_id, account_id, signup_at, cutoff_at, cutoff_age_days,
                   CASE WHEN conv_at >= cutoff_at
                         AND conv_at < cutoff_at + to_seconds({horizon_s})
                        THEN 1 ELSE 0 END AS label
            FROM _lt_reason WHERE reason IS NULL
            ORDER BY cutoff_at, user_id
            """
        ).df()
    finally:
        con.execute("DROP TABLE IF EXISTS _lt_rows")
        con.execute("DROP TABLE IF EXISTS _lt_reason")
    excluded = {r: int(counts.get(r, 0)) for r in _TRAINING_REASONS}
    if lost_sql == _NO_LOSS:  # said only when a source of losses is configured
        excluded.pop("lost_before_cutoff")
    frame["label"] = frame["label"].astype("int64")
    settings = {
        "kind": "training",
        "observation_window_s": whole_seconds(cfg.observation_window),
        "extra_cutoffs_s": [whole_seconds(a) for a in cfg.extra_cutoffs],
        "horizon_s": horizon_s,
        "data_end": end.isoformat(),
    }
    if cfg.lost_event is not None:
        settings["lost_event"] = cfg.lost_event
    return LabelTimes(_tidy(frame), excluded, settings)


_TRAINING_REASONS = (
    "signup_missing",
    "converted_before_cutoff",
    "lost_before_cutoff",
    "right_censored",
)
_NO_LOSS = "SELECT NULL::VARCHAR AS user_id, NULL::TIMESTAMP AS lost_at WHERE false"


def _lost_sql(con: duckdb.DuckDBPyConnection, cfg: LabelConfig) -> tuple[str, list[Any]]:
    """Each lost user's first loss: from the ``lost_users`` table and ``cfg.lost_event``."""
    parts, params = [], []
    if has_table(con, "lost_users"):
        parts.append("SELECT user_id, lost_at FROM lost_users")
    if cfg.lost_event is not None and has_table(con, "event_history"):
        # a windowed read (io/window.py): the first loss may be before the window
        parts.append("SELECT user_id, first_at AS lost_at FROM event_history WHERE event = ?")
        params.append(cfg.lost_event)
    elif cfg.lost_event is not None and has_table(con, "events"):
        parts.append("SELECT user_id, timestamp AS lost_at FROM events WHERE event = ?")
        params.append(cfg.lost_event)
    if not parts:
        return _NO_LOSS, []
    union = " UNION ALL ".join(parts)
    return f"SELECT user_id, MIN(lost_at) AS lost_at FROM ({union}) GROUP BY user_id", params


def scoring_population(
    con: duckdb.DuckDBPyConnection,
    cfg: LabelConfig,
    as_of: datetime,
    *,
    include_expired: bool = False,
) -> LabelTimes:
    """The users to score at ``as_of``, with ``cutoff_at = min(as_of, signup + trial_length)``.

    By default only users still in trial are scored (signed up before ``as_of``, trial not over
    at ``as_of``, no conversion and not lost before ``as_of``), so the cutoff is ``as_of``. With
    ``include_expired=True`` users whose trial already ended without converting are scored too,
    on their behaviour up to the trial end. There is no ``label`` column.
    """
    require_tables(con, ("users",))
    has_conv = has_table(con, "conversions")
    conv_sql = (
        "SELECT user_id, MIN(converted_at) AS conv_at FROM conversions GROUP BY user_id"
        if has_conv
        else "SELECT NULL::VARCHAR AS user_id, NULL::TIMESTAMP AS conv_at WHERE false"
    )
    trial_s = whole_seconds(cfg.trial_length)
    asof = pd.Timestamp(as_of).to_pydatetime()
    lost_sql, lost_params = _lost_sql(con, cfg)
    params: dict[str, Any] = {"asof": asof, "expired": include_expired}
    if lost_params:
        lost_sql = lost_sql.replace("?", "$lost_event")
        params["lost_event"] = lost_params[0]
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE _sp_rows AS
        WITH firstconv AS ({conv_sql}), lost AS ({lost_sql})
        SELECT u.user_id, u.account_id, u.signup_at, f.conv_at,
               CASE WHEN u.signup_at IS NULL THEN 'signup_missing'
                    WHEN u.signup_at >= $asof THEN 'not_signed_up_yet'
                    WHEN f.conv_at < $asof THEN 'converted'
                    WHEN l.lost_at <= LEAST($asof, u.signup_at + to_seconds({trial_s}))
                         THEN 'lost'
                    WHEN u.signup_at + to_seconds({trial_s}) <= $asof AND NOT $expired
                         THEN 'trial_ended'
                    ELSE NULL END AS reason,
               LEAST($asof, u.signup_at + to_seconds({trial_s})) AS cutoff_at
        FROM users u LEFT JOIN firstconv f ON f.user_id = u.user_id
        LEFT JOIN lost l ON l.user_id = u.user_id
        """,
        params,
    )
    try:
        reasons = dict(
            con.execute(
                "SELECT reason, COUNT(*) FROM _sp_rows WHERE reason IS NOT NULL GROUP BY reason"
            ).fetchall()
        )
        frame = con.execute(
            """
            SELECT user_id, account_id, signup_at, cutoff_at,
                   epoch(cutoff_at - signup_at) / 86400.0 AS cutoff_age_days
            FROM _sp_rows WHERE reason IS NULL ORDER BY cutoff_at, user_id
            """
        ).df()
    finally:
        con.execute("DROP TABLE IF EXISTS _sp_rows")
    excluded = {
        r: int(reasons.get(r, 0))
        for r in ("signup_missing", "not_signed_up_yet", "converted", "trial_ended")
    }
    if lost_sql != _NO_LOSS:
        excluded["lost"] = int(reasons.get("lost", 0))
    settings = {
        "kind": "scoring",
        "as_of": asof.isoformat(),
        "trial_length_s": trial_s,
        "include_expired": include_expired,
    }
    return LabelTimes(_tidy(frame), excluded, settings)


def check_trainable(
    con: duckdb.DuckDBPyConnection | None,
    labels: LabelTimes,
    cfg: LabelConfig,
    min_positives: int,
    min_negatives: int,
    *,
    count_active: Callable[[pd.DataFrame], int] | None = None,
) -> None:
    """Refuse, before any feature is built, label times no honest model can learn from.

    Counts one row per user (the main cutoff, as every reported number does): too few users
    who converted within the horizon or who did not, or no user with any event between signup
    and cutoff (every behavioural feature would be empty: times misread, or a wrong mapping).
    ``count_active`` counts those users of the main rows on another engine (default: the
    ``events`` of ``con``).
    """
    window = cfg.observation_window.total_seconds() / 86_400
    if labels.calendar:  # every (entity, anchor) row counts; an anchor is no trial age
        main, at = labels.frame, "calendar anchors"
    else:
        main = labels.frame[(labels.frame["cutoff_age_days"] - window).abs() < 1e-9]
        at = f"{_days(window)} cutoff"
    positives = int(main["label"].sum()) if len(main) else 0
    negatives = len(main) - positives
    excluded = ", ".join(f"{n:,} {r.replace('_', ' ')}" for r, n in labels.excluded.items() if n)
    if positives < min_positives or negatives < min_negatives:
        rows = "rows" if labels.calendar else "users"
        raise InsufficientDataError(
            f"Not enough data to train honestly: {len(main):,} {rows} can be labelled at the "
            f"{at} ({positives:,} converted within the horizon and "
            f"{negatives:,} did not); at least {min_positives} converted (model.min_positives) "
            f"and {min_negatives} not (model.min_negatives) are needed (lower model.min_positives "
            f"or min_negatives only for a trial run, or add more history)."
            + (f" Rows excluded: {excluded}." if excluded else "")
        )
    if labels.calendar:
        return  # eligibility already asked for an event in the lookback before each anchor
    active = (count_active or (lambda rows: _active_users(con, rows)))(main)
    if active == 0:
        raise InsufficientDataError(
            f"None of the {len(main):,} labelled users has an event between signup and their "
            f"{_days(window)} cutoff, so every behavioural feature would be empty. "
            f"Check that events and users are read in the same time zone and mapped to the right "
            f"columns (data.timezone, data.columns), and that signup_at is the trial start."
        )


ACTIVE_USERS_SQL = (
    "SELECT count(DISTINCT m.user_id) FROM {rows} m JOIN events e "
    "ON e.user_id = m.user_id AND e.timestamp >= m.signup_at AND e.timestamp < m.cutoff_at"
)  # users of the rows ``{rows}`` with an event between signup and cutoff, in portable SQL


def _active_users(con: duckdb.DuckDBPyConnection | None, main: pd.DataFrame) -> int:
    if con is None:
        raise TypeError("check_trainable needs con or count_active")
    con.register("_lt_main", main[["user_id", "signup_at", "cutoff_at"]])
    try:
        [(active,)] = con.execute(ACTIVE_USERS_SQL.format(rows="_lt_main")).fetchall()
    finally:
        con.unregister("_lt_main")
    return int(active)


def _days(days: float) -> str:
    return f"{days:g}-day" if days != int(days) else f"day-{int(days)}"


def _tidy(frame: pd.DataFrame) -> pd.DataFrame:
    """Fix dtypes so label times look the same whatever DuckDB returned."""
    frame = frame.reset_index(drop=True)
    for col in ("signup_at", "cutoff_at"):
        frame[col] = pd.to_datetime(frame[col]).astype("datetime64[us]")
    frame["cutoff_age_days"] = frame["cutoff_age_days"].astype("float64")
    frame["user_id"] = frame["user_id"].astype(object)
    frame["account_id"] = frame["account_id"].astype(object)
    return frame


def whole_seconds(delta: timedelta) -> int:
    """``delta`` in whole seconds: timestamps are whole seconds, so durations are too."""
    return int(round(delta.total_seconds()))


def has_table(con: duckdb.DuckDBPyConnection, name: str) -> bool:
    """Whether ``con`` has a table, view or registered frame ``name`` (a probe query)."""
    try:
        con.execute(f"SELECT 1 FROM {name} LIMIT 0")
    except duckdb.CatalogException:
        return False
    return True


def require_tables(
    con: duckdb.DuckDBPyConnection, names: tuple[str, ...], what: str = "label times"
) -> None:
    """One contract error naming every table of ``names`` that ``con`` lacks, to build ``what``."""
    missing = [n for n in names if not has_table(con, n)]
    if missing:
        raise DataContractError(
            [
                f"Table '{n}' must exist in the DuckDB connection to build {what}. "
                f"Got no such table or view; load it with the reader first."
                for n in missing
            ]
        )
