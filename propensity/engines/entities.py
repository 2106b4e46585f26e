"""What the CRM steps read of each entity (user or account): its conversion and its users row.

One definition for every engine: :func:`entity_tables` runs on a DuckDB connection holding the
canonical tables, DuckDB's own or the few reductions Spark hands over
(``engines/_spark/labels.py``), so ``score --crm`` and ``outcomes`` see the same entities on
either engine.

>>> tables = entity_tables(con, cfg.label, cfg.task)  # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import dataclass

import duckdb
import pandas as pd

from propensity.config import LabelConfig, TaskConfig
from propensity.engines.account import account_users_sql
from propensity.labels import has_table
from propensity.task_labels import target_times

__all__ = ["EntityTables", "entity_tables", "needs_target_times"]


@dataclass(frozen=True, eq=False)
class EntityTables:
    """``converted`` (``entity_id``, ``converted_at``: each entity's first conversion, the
    task's target) and ``users`` (one row per entity, ``user_id`` its key: the users table, or
    one "user" per account for an account task)."""

    converted: pd.DataFrame
    users: pd.DataFrame


def needs_target_times(task: TaskConfig | None) -> bool:
    """Whether an entity's conversion is the task's target (``task_labels.target_times``)
    rather than the user's first row of ``conversions``."""
    return task is not None and (task.entity == "account" or task.anchors.kind == "calendar")


def entity_tables(
    con: duckdb.DuckDBPyConnection, label: LabelConfig, task: TaskConfig | None
) -> EntityTables:
    """Each entity's first conversion and its users row, from the canonical tables in ``con``.

    The conversion is the task's target (an account's first payment, an expansion), so the CRM
    marks ``converted`` what the model predicts; an account's row aggregates its users' columns
    as its fit features do (``engines.account.account_users_sql``)."""
    if needs_target_times(task):
        converted = target_times(con, label, task)  # type: ignore[arg-type]
    elif has_table(con, "conversions"):
        converted = con.execute(
            "SELECT user_id AS entity_id, MIN(converted_at) AS converted_at FROM conversions "
            "GROUP BY user_id"
        ).df()
    else:
        converted = pd.DataFrame(
            {"entity_id": pd.Series(dtype=object), "converted_at": pd.Series(dtype="M8[ns]")}
        )
    accounts = task is not None and task.entity == "account"
    users = con.execute(account_users_sql(con) if accounts else "SELECT * FROM users").df()
    # sorted, so that every engine hands the CRM the same tables in the same order
    converted = converted.sort_values("entity_id", kind="stable", ignore_index=True)
    users = users.sort_values("user_id", kind="stable", ignore_index=True)
    return EntityTables(converted, users)
