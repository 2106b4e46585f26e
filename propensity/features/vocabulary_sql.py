"""The SQL that learns a spec from the data: event codes, the vocabulary and transitions.

Learning and the feature build share one scan of the events: a coded plan's ``ev`` and ``seq``
(:func:`propensity.features.sql.build_plan` with ``codes``) are what these queries read.
"""

from __future__ import annotations

from propensity.features.portable import Step

__all__ = ["counted_vocabulary_sql", "names_step", "transitions_sql", "vocabulary_sql"]


def names_step(prefix: str) -> Step:
    """Every event type in ``events`` with its code ``c``: its rank among the sorted names.

    Ranks keep ordering by code equal to ordering by name, which the sequence steps rely on
    to break ties in time.
    """
    sql = (
        "SELECT event, ROW_NUMBER() OVER (ORDER BY event) - 1 AS c "
        "FROM (SELECT DISTINCT event FROM events WHERE event IS NOT NULL) n"
    )
    return Step(f"{prefix}names", sql)


def vocabulary_sql(prefix: str, min_support: int, lean: bool = False) -> str:
    """Per event code seen by the learn rows: distinct users and events (a coded plan's ``ev``).

    ``lean``: the plan's ``ev`` has no ``uid``/``learn`` (every row a learn row of its own user).
    """
    if lean:
        return (
            f"SELECT k, COUNT(DISTINCT rid) AS users, COUNT(*) AS n FROM {prefix}ev "
            f"WHERE k IS NOT NULL GROUP BY k HAVING COUNT(DISTINCT rid) >= {int(min_support)}"
        )
    return (
        f"SELECT k, COUNT(DISTINCT uid) AS users, COUNT(*) AS n FROM {prefix}ev "
        f"WHERE learn = 1 AND k IS NOT NULL GROUP BY k "
        f"HAVING COUNT(DISTINCT uid) >= {int(min_support)}"
    )


def counted_vocabulary_sql(prefix: str, min_support: int) -> str:
    """:func:`vocabulary_sql` with ``lean``, read from ``rk``: a coded plan's ``re`` (one row
    per row and event code) over every event code. Each row is its own user, so the users of a
    code are its ``rk`` rows and its events the sum of their ``n_all``."""
    return (
        f"SELECT k, COUNT(*) AS users, SUM(n_all) AS n FROM {prefix}rk "
        f"GROUP BY k HAVING COUNT(*) >= {int(min_support)}"
    )


def transitions_sql(
    prefix: str, rows: str, min_support: int, has_label: bool, pairs: str = ""
) -> str:
    """Consecutive vocabulary pairs of the learn rows: rows with the pair and their positives.

    Reads a coded plan's ``seq`` (materialised), or ``pairs`` (its distinct ``rid, prev, k``,
    :func:`propensity.features.sequence.materialise_sequence`), and the label rows ``rows``.
    """
    label = "l.label" if has_label else "0"
    found = pairs or f"(SELECT DISTINCT rid, prev, k FROM {prefix}seq WHERE prev IS NOT NULL)"
    return f"""SELECT p.prev, p.k, COUNT(*) AS n_with, SUM({label}) AS pos_with
FROM {found} p
JOIN {rows} l ON l.rid = p.rid
WHERE l.learn = 1
GROUP BY p.prev, p.k HAVING COUNT(*) >= {int(min_support)}"""
