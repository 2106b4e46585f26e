"""The portable SQL subset: the few dialect differences, and the plan an engine runs.

Why not write DuckDB SQL and transpile it? A trial with sqlglot showed silent differences
(``date_diff`` in seconds, day-of-week numbering, ordered list aggregation dropped) and
constructs that do not port at all (ordered collect/first, ``mode``, ASOF join, timestamp
buckets). So the feature SQL is written in a small subset both engines run identically, with
Spark's ANSI mode on:

- timestamps become integer epoch seconds once, in the first relations (``rows`` and ``ev``);
  that conversion, string literals, identifier quoting and JSON extraction are the only
  dialect-specific pieces and live behind :class:`Dialect`;
- after that only integer arithmetic, ``CASE WHEN``, ``SUM/COUNT/MIN/MAX/COUNT(DISTINCT)``,
  ``LAG``/``ROW_NUMBER`` windows ordered by ``(t, k)`` so ties are deterministic, ``LN``,
  ``GREATEST``/``LEAST``, ``COALESCE``, ``NULLIF``-guarded division (Spark ANSI raises on /0) and
  ``CAST(... AS DOUBLE/BIGINT)``; no ``FILTER``, ``QUALIFY``, ``//`` or engine-only functions;
- integer division is never needed: day keys are ``t - t % 86400`` (exact multiples), so
  ``/ 86400`` is exact before the cast;

A plan is a list of :class:`Step` (name + one ``SELECT``) and a final ``SELECT``; each engine
decides how to materialise steps (DuckDB: temp tables; Spark: cached temp views).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["DAY", "DUCKDB", "HOUR", "NLOGN_SCALE", "SPARK", "Dialect", "Plan", "Step"]


@dataclass(frozen=True)
class Dialect:
    """The few expressions that differ between engines."""

    name: str

    def epoch_seconds(self, col: str) -> str:
        """Integer seconds since 1970 of a naive UTC ``TIMESTAMP``."""
        if self.name == "duckdb":
            # epoch_ns accepts every timestamp unit DuckDB has (TIMESTAMP_S/_MS/_NS, TIMESTAMP,
            # TIMESTAMPTZ as its instant); epoch_ms fails on _S/_MS/_NS since DuckDB 2.0.
            return f"(epoch_ns({col}) // 1000000000)"
        # Spark reads naive timestamps in the session zone; the Spark engine pins it to UTC.
        return f"unix_seconds(CAST({col} AS TIMESTAMP))"

    def literal(self, value: str) -> str:
        """A string literal that holds ``value`` verbatim (event names come from user data)."""
        if self.name == "duckdb":
            return "'" + value.replace("'", "''") + "'"
        # Spark treats backslash as an escape and concatenates adjacent literals ('a''b' = 'ab').
        return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"

    def quote(self, ident: str) -> str:
        """A quoted identifier (user attribute columns may hold any character)."""
        if self.name == "duckdb":
            return '"' + ident.replace('"', '""') + '"'
        return "`" + ident.replace("`", "``") + "`"

    def json_number(self, col: str, key: str) -> str:
        """A numeric JSON property as DOUBLE, NULL when absent or not a number."""
        if self.name == "duckdb":
            return f"TRY_CAST(json_extract_string({col}, '$.{key}') AS DOUBLE)"
        return f"TRY_CAST(get_json_object({col}, '$.{key}') AS DOUBLE)"


DUCKDB = Dialect("duckdb")
SPARK = Dialect("spark")

# Spark types ``3600.0`` as DECIMAL, so ``x / 3600.0`` came back rounded to 6 decimals there;
# a DOUBLE divisor gives the same IEEE division on both engines.
HOUR = "CAST(3600 AS DOUBLE)"
DAY = "CAST(86400 AS DOUBLE)"
NLOGN_SCALE = "CAST(1000000 AS DOUBLE)"


@dataclass(frozen=True)
class Step:
    """One named intermediate relation.

    ``ordered`` (a time-ordered sequence step): the ``SELECT`` of the ``rid, k, t`` rows that
    ``sql`` orders by ``(rid, t, k)`` to add each event's ``gap`` and ``prev``; an engine may
    build the step from them outside SQL (DuckDB: :mod:`propensity.features.sequence`).
    """

    name: str
    sql: str
    ordered: str = ""


@dataclass(frozen=True)
class Plan:
    """Steps in dependency order, the final feature select, and the unseen-event count.

    ``shared`` names the steps both selects read: materialise those once (the rest may be
    inlined as CTEs). ``inline`` names steps the final select alone reads once, which an engine
    may fuse into it instead of materialising them.
    """

    steps: tuple[Step, ...]
    final: str
    unseen: str
    shared: tuple[str, ...] = ()
    inline: tuple[str, ...] = ()
