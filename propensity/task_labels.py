"""Label times of a task (config ``task:``): entities at calendar anchors, users or accounts.

Trial anchors (and no ``task`` section) are today's label times, built by
:func:`propensity.labels.build_label_times` unchanged. Calendar anchors place one anchor every
day or week (00:00 UTC) and keep, per anchor, the entities that are eligible there:

- the entity had an event in ``[anchor - lookback, anchor)`` (an account: any member);
- it was first seen before the anchor (``signup_at``, an account's earliest member's; or its
  first event with ``first_seen: first_event``);
- it is in the target's state: not paid (first payment or event not yet happened), or paying
  and not yet expanded;
- a user was not lost before the anchor.

Each active (entity, anchor) that fails is counted under its first reason, in this order:
``signup_missing``, ``first_seen_after_anchor``, ``converted_before_anchor`` (first payment),
``target_before_anchor`` (event), ``not_paying`` and ``expanded_before_anchor`` (expansion),
``lost_before_anchor``, ``right_censored`` (``anchor + horizon > data_end``). Only past
times (strictly before the anchor) decide eligibility; the label asks whether the target fell
in ``[anchor, anchor + horizon)``.

An account is ``users.account_id``; its first payment is its members' earliest conversion. An
expansion is, with a ``payments`` table (``account_id``, ``paid_at``, ``seats``), the first
payment with more seats than the account's first payment; else the first ``target.event``
after the first payment.

>>> lt = task_label_times(con, cfg.label, cfg.task)  # doctest: +SKIP
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import duckdb
import pandas as pd

from propensity.config import CalendarAnchors, LabelConfig, TaskConfig
from propensity.errors import DataContractError
from propensity.labels import (
    LabelTimes,
    build_label_times,
    has_table,
    require_tables,
    whole_seconds,
)

__all__ = [
    "WEEKDAYS",
    "calendar_anchors",
    "target_times",
    "task_label_times",
    "task_population",
]

WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_DAY = 86_400
_MONDAY = datetime(1970, 1, 5)  # epoch day 4


def task_label_times(
    con: duckdb.DuckDBPyConnection,
    label: LabelConfig,
    task: TaskConfig | None,
    data_end: datetime | None = None,
) -> LabelTimes:
    """Label times of ``task``: today's for trial anchors (or none), else calendar anchors."""
    if task is None or not isinstance(task.anchors, CalendarAnchors):
        return build_label_times(con, label, data_end)
    require_tables(con, ("events", "users"), "task label times")
    end = _data_end(con, data_end)
    horizon = whole_seconds(task.horizon or label.horizon)
    _entities(con, task, label)
    try:
        start = task.anchors.start or con.execute("SELECT min(timestamp) FROM events").fetchone()[0]
        if start is None:
            raise DataContractError(
                ["Table 'events' must hold at least one event to place calendar anchors."]
            )
        anchors = calendar_anchors(task.anchors, pd.Timestamp(start).to_pydatetime(), end)
        _active_pairs(con, anchors, whole_seconds(task.lookback))
        frame, counts = _label(con, task, horizon, end)
    finally:
        for name in ("_tk_members", "_tk_entity", "_tk_days", "_tk_anchors", "_tk_pairs"):
            con.execute(f"DROP TABLE IF EXISTS {name}")
    settings = {
        "kind": "training",
        "task": task.model_dump(mode="json"),
        "horizon_s": horizon,
        "lookback_s": whole_seconds(task.lookback),
        "anchors": len(anchors),
        "data_end": end.isoformat(),
    }
    return LabelTimes(frame, counts, settings)


def task_population(
    con: duckdb.DuckDBPyConnection, label: LabelConfig, task: TaskConfig, as_of: datetime
) -> LabelTimes:
    """The entities to score at ``as_of`` for a calendar task (one anchor at ``as_of``, no label).

    The same eligibility as training rows, minus censoring (nothing is labelled).
    """
    require_tables(con, ("events", "users"), "task label times")
    asof = pd.Timestamp(as_of).to_pydatetime()
    _entities(con, task, label)
    try:
        con.execute(
            "CREATE OR REPLACE TEMP TABLE _tk_pairs AS SELECT DISTINCT m.entity_id, "
            "$asof::TIMESTAMP AS anchor_at FROM events e JOIN _tk_members m USING (user_id) "
            "WHERE m.entity_id IS NOT NULL AND e.timestamp < $asof "
            f"AND e.timestamp >= $asof - to_seconds({whole_seconds(task.lookback)})",
            {"asof": asof},
        )
        frame, counts = _label(con, task, None, None)
    finally:
        for name in ("_tk_members", "_tk_entity", "_tk_pairs"):
            con.execute(f"DROP TABLE IF EXISTS {name}")
    settings = {"kind": "scoring", "as_of": asof.isoformat(), "task": task.model_dump(mode="json")}
    return LabelTimes(frame.drop(columns="label"), counts, settings)


def target_times(
    con: duckdb.DuckDBPyConnection, label: LabelConfig, task: TaskConfig
) -> pd.DataFrame:
    """When each entity first met the task's target (``entity_id``, ``converted_at``): an
    account's first payment, its expansion or the target event; entities that never did are
    left out. The CRM marks these ``converted`` and outcomes count them as the entity's
    conversion, so both read the target the model was trained on."""
    _entities(con, task, label)
    return con.execute(
        "SELECT entity_id, target_at AS converted_at FROM _tk_entity "
        "WHERE target_at IS NOT NULL ORDER BY entity_id"
    ).df()


def calendar_anchors(
    anchors: CalendarAnchors, first: datetime, data_end: datetime
) -> list[datetime]:
    """Every anchor of the cadence in ``[start, end]`` (defaults: after ``first``, ``data_end``).

    >>> from propensity.config import CalendarAnchors
    >>> a = CalendarAnchors(kind="calendar", start="2025-01-01", end="2025-01-20")
    >>> [d.strftime("%a %d") for d in calendar_anchors(a, a.start, a.end)]
    ['Mon 06', 'Mon 13', 'Mon 20']
    """
    lo = anchors.start if anchors.start is not None else first + timedelta(seconds=1)
    hi = anchors.end if anchors.end is not None else data_end
    step = timedelta(days=1 if anchors.every == "day" else 7)
    day = datetime(lo.year, lo.month, lo.day)
    day += timedelta(days=1) if day < lo else timedelta(0)
    if anchors.every == "week":
        day += timedelta(days=(WEEKDAYS.index(anchors.weekday) - day.weekday()) % 7)
    out = []
    while day <= hi:
        out.append(day)
        day += step
    return out


def _entities(con: duckdb.DuckDBPyConnection, task: TaskConfig, label: LabelConfig) -> None:
    """``_tk_members`` (user -> entity) and ``_tk_entity``: first seen, target and payment times."""
    entity = "user_id" if task.entity == "user" else "account_id"
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE _tk_members AS "
        f"SELECT user_id, {entity} AS entity_id, signup_at FROM users"
    )
    paid_sql = _first_payment_sql(con, task.entity == "account")
    target = task.target
    if target.kind == "first_payment":
        target_sql = "p.paid_at"
    elif target.kind == "event":
        target_sql = "ev.first_at"
    elif has_table(con, "payments"):
        target_sql = "x.expanded_at"
    elif target.event is not None:
        target_sql = "ev.after_paid_at"
    else:
        raise DataContractError(
            [
                "An expansion_payment target needs a 'payments' table (account_id, paid_at, "
                "seats) or task.target.event (e.g. 'seat_added'). Got neither; load payments "
                "or name the expansion event."
            ]
        )
    lost_sql = _lost_sql(con, label) if task.entity == "user" else _NO_LOSS
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE _tk_entity AS
        WITH seen AS (
            SELECT m.entity_id, min(m.signup_at) AS signup_at,
                   bool_and(m.signup_at IS NULL) AS signup_missing,
                   min(e.timestamp) AS first_event_at
            FROM _tk_members m LEFT JOIN events e USING (user_id)
            WHERE m.entity_id IS NOT NULL GROUP BY m.entity_id
        ), p AS ({paid_sql}), x AS ({_expansion_sql(con)}), ev AS ({_event_sql(target.event)}),
        lost AS ({lost_sql})
        SELECT s.entity_id, s.signup_at, s.first_event_at,
               s.signup_missing AND {str(task.first_seen == "signup").lower()} AS signup_missing,
               {"s.signup_at" if task.first_seen == "signup" else "s.first_event_at"}
                   AS first_seen_at,
               p.paid_at, {target_sql} AS target_at, lost.lost_at
        FROM seen s LEFT JOIN p USING (entity_id) LEFT JOIN x USING (entity_id)
        LEFT JOIN ev USING (entity_id) LEFT JOIN lost USING (entity_id)
        """,
        [target.event] if target.event is not None else [],
    )


def _first_payment_sql(con: duckdb.DuckDBPyConnection, accounts: bool) -> str:
    """Per entity: the earliest conversion of a member (or an account's payment)."""
    parts = []
    if has_table(con, "conversions"):
        parts.append(
            "SELECT m.entity_id, c.converted_at AS t FROM conversions c "
            "JOIN _tk_members m USING (user_id)"
        )
    if accounts and has_table(con, "payments"):
        parts.append("SELECT account_id AS entity_id, paid_at AS t FROM payments")
    if not parts:
        return "SELECT NULL::VARCHAR AS entity_id, NULL::TIMESTAMP AS paid_at WHERE false"
    union = " UNION ALL ".join(parts)
    return f"SELECT entity_id, min(t) AS paid_at FROM ({union}) GROUP BY entity_id"


def _expansion_sql(con: duckdb.DuckDBPyConnection) -> str:
    """Per account entity: the first payment with more seats than its first payment."""
    if not has_table(con, "payments"):
        return "SELECT NULL::VARCHAR AS entity_id, NULL::TIMESTAMP AS expanded_at WHERE false"
    return """
        WITH pay AS (
            SELECT account_id AS entity_id, paid_at, seats FROM payments
            WHERE account_id IS NOT NULL
        ), first AS (
            SELECT entity_id, arg_max(seats, paid_at) FILTER (WHERE paid_at = first_at) AS seats0
            FROM (SELECT *, min(paid_at) OVER (PARTITION BY entity_id) AS first_at FROM pay)
            GROUP BY entity_id
        )
        SELECT p.entity_id, min(p.paid_at) AS expanded_at
        FROM pay p JOIN first f USING (entity_id) WHERE p.seats > f.seats0
        GROUP BY p.entity_id
    """


def _event_sql(event: str | None) -> str:
    """Per entity: the first target event, and the first one after the first payment."""
    if event is None:
        return (
            "SELECT NULL::VARCHAR AS entity_id, NULL::TIMESTAMP AS first_at, "
            "NULL::TIMESTAMP AS after_paid_at WHERE false"
        )
    return """
        SELECT m.entity_id, min(e.timestamp) AS first_at,
               min(e.timestamp) FILTER (WHERE e.timestamp > p.paid_at) AS after_paid_at
        FROM events e JOIN _tk_members m USING (user_id) LEFT JOIN p USING (entity_id)
        WHERE e.event = ? AND m.entity_id IS NOT NULL GROUP BY m.entity_id
    """


_NO_LOSS = "SELECT NULL::VARCHAR AS entity_id, NULL::TIMESTAMP AS lost_at WHERE false"


def _lost_sql(con: duckdb.DuckDBPyConnection, label: LabelConfig) -> str:
    parts = []
    if has_table(con, "lost_users"):
        parts.append("SELECT user_id AS entity_id, lost_at FROM lost_users")
    if label.lost_event is not None:
        name = label.lost_event.replace("'", "''")
        parts.append(
            f"SELECT user_id AS entity_id, timestamp AS lost_at FROM events WHERE event = '{name}'"
        )
    if not parts:
        return _NO_LOSS
    union = " UNION ALL ".join(parts)
    return f"SELECT entity_id, min(lost_at) AS lost_at FROM ({union}) GROUP BY entity_id"


def _active_pairs(con: duckdb.DuckDBPyConnection, anchors: list[datetime], lookback: int) -> None:
    """``_tk_pairs``: each (entity, anchor) with an event in ``[anchor - lookback, anchor)``.

    Events shrink to one row per entity and day (its last event) first: anchors are midnights,
    so a day before the anchor is wholly before it, and it holds an event in the window exactly
    when its last event is at or after ``anchor - lookback``.
    """
    con.execute(
        "CREATE OR REPLACE TEMP TABLE _tk_anchors AS SELECT unnest($a::TIMESTAMP[]) AS anchor_at",
        {"a": anchors},
    )
    con.execute(
        """
        CREATE OR REPLACE TEMP TABLE _tk_days AS
        SELECT m.entity_id, date_trunc('day', e.timestamp) AS day, max(e.timestamp) AS last_at
        FROM events e JOIN _tk_members m USING (user_id)
        WHERE m.entity_id IS NOT NULL GROUP BY ALL
        """
    )
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE _tk_pairs AS
        SELECT DISTINCT d.entity_id, a.anchor_at FROM _tk_days d JOIN _tk_anchors a
        ON d.day < a.anchor_at AND d.last_at >= a.anchor_at - to_seconds({lookback})
        """
    )


def _label(
    con: duckdb.DuckDBPyConnection, task: TaskConfig, horizon: int | None, end: datetime | None
) -> tuple[pd.DataFrame, dict[str, int]]:
    """Reasons per active pair, their counts, and the eligible rows with their labels."""
    state = (
        "WHEN e.target_at < p.anchor_at THEN 'converted_before_anchor'"
        if task.target.kind == "first_payment"
        else "WHEN e.target_at < p.anchor_at THEN 'target_before_anchor'"
    )
    if task.status == "paying":
        state = (
            "WHEN e.paid_at IS NULL OR e.paid_at >= p.anchor_at THEN 'not_paying' "
            "WHEN e.target_at < p.anchor_at THEN 'expanded_before_anchor'"
        )
    censor = (
        f"WHEN p.anchor_at + to_seconds({horizon}) > $end THEN 'right_censored'"
        if horizon is not None
        else ""
    )
    params: dict[str, Any] = {"end": end} if horizon is not None else {}
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE _tk_rows AS
        SELECT p.entity_id, p.anchor_at, e.first_seen_at, e.target_at, CASE
            WHEN e.signup_missing THEN 'signup_missing'
            WHEN e.first_seen_at IS NULL OR e.first_seen_at >= p.anchor_at
                THEN 'first_seen_after_anchor'
            {state}
            WHEN e.lost_at < p.anchor_at THEN 'lost_before_anchor'
            {censor}
            ELSE NULL END AS reason
        FROM _tk_pairs p JOIN _tk_entity e USING (entity_id)
        """,
        params,
    )
    try:
        counts = dict(
            con.execute(
                "SELECT reason, count(*) FROM _tk_rows WHERE reason IS NOT NULL GROUP BY reason"
            ).fetchall()
        )
        horizon_sql = f"to_seconds({horizon or 0})"
        frame = con.execute(
            f"""
            SELECT r.entity_id, r.first_seen_at, r.anchor_at AS cutoff_at,
                   epoch(r.anchor_at - r.first_seen_at) / 86400.0 AS cutoff_age_days,
                   CASE WHEN r.target_at >= r.anchor_at
                         AND r.target_at < r.anchor_at + {horizon_sql}
                        THEN 1 ELSE 0 END AS label
            FROM _tk_rows r WHERE r.reason IS NULL ORDER BY r.anchor_at, r.entity_id
            """
        ).df()
    finally:
        con.execute("DROP TABLE IF EXISTS _tk_rows")
    return _shape(con, frame, task), {r: int(counts.get(r, 0)) for r in _reasons(task)}


def _reasons(task: TaskConfig) -> tuple[str, ...]:
    state = {
        "first_payment": ("converted_before_anchor",),
        "event": ("target_before_anchor",),
        "expansion_payment": ("not_paying", "expanded_before_anchor"),
    }[task.target.kind]
    lost = ("lost_before_anchor",) if task.entity == "user" else ()
    return ("signup_missing", "first_seen_after_anchor", *state, *lost, "right_censored")


def _shape(con: duckdb.DuckDBPyConnection, frame: pd.DataFrame, task: TaskConfig) -> pd.DataFrame:
    """The label-times columns: a user's keys as today, an account's with ``first_seen_at``."""
    frame["label"] = frame["label"].astype("int64")
    for col in ("first_seen_at", "cutoff_at"):
        frame[col] = pd.to_datetime(frame[col]).astype("datetime64[us]")
    frame["cutoff_age_days"] = frame["cutoff_age_days"].astype("float64")
    if task.entity == "account":
        frame = frame.rename(columns={"entity_id": "account_id"})
        frame["account_id"] = frame["account_id"].astype(object)
        return frame[["account_id", "first_seen_at", "cutoff_at", "cutoff_age_days", "label"]]
    accounts = dict(con.execute("SELECT user_id, account_id FROM users").fetchall())
    frame = frame.rename(columns={"entity_id": "user_id", "first_seen_at": "signup_at"})
    frame["user_id"] = frame["user_id"].astype(object)
    frame["account_id"] = frame["user_id"].map(accounts).astype(object)
    return frame[["user_id", "account_id", "signup_at", "cutoff_at", "cutoff_age_days", "label"]]


def _data_end(con: duckdb.DuckDBPyConnection, data_end: datetime | None) -> datetime:
    """As in :func:`build_label_times`: given, else the ``data_end`` table, else the latest
    event or conversion."""
    if data_end is None and has_table(con, "data_end"):
        data_end = con.execute("SELECT max(data_end) FROM data_end").fetchone()[0]
    if data_end is None:
        conv = (
            "(SELECT max(converted_at) FROM conversions)"
            if has_table(con, "conversions")
            else "NULL"
        )
        data_end = con.execute(
            f"SELECT GREATEST((SELECT max(timestamp) FROM events), {conv})"
        ).fetchone()[0]
    if data_end is None:
        raise DataContractError(
            ["Table 'events' must hold at least one timestamp to place anchors. Got none."]
        )
    return pd.Timestamp(data_end).to_pydatetime()
