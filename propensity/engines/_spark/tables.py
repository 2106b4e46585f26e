"""Register the canonical tables (``events``, ``users``, ``conversions``, ``payments``,
``lost_users``) as Spark temp views.

Spark reads tables already in canonical form (``propensity/contract.py``): the column mapping,
cleaning and validation of raw exports is the DuckDB reader's job, and a lakehouse usually has a
cleaned table already. Every missing column of every table is reported at once.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from propensity.contract import TABLES
from propensity.errors import DataContractError

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

__all__ = ["register_tables"]

_TIME_TYPES = ("timestamp", "timestamp_ntz")
# email is dropped at the edge; email_domain and account_id may be absent from users.
_NEEDED = {
    "events": ("user_id", "event", "timestamp"),
    "users": ("user_id", "signup_at", "account_id", "email_domain"),
    "conversions": ("user_id", "converted_at"),
    "payments": ("account_id", "paid_at", "seats"),
    "lost_users": ("user_id", "lost_at"),
}
_OPTIONAL = ("payments", "lost_users")  # no view when not given (an earlier call's is dropped)


def register_tables(
    spark: SparkSession,
    events: str | DataFrame,
    users: str | DataFrame,
    conversions: str | DataFrame | None = None,
    fmt: str = "parquet",
    payments: str | DataFrame | None = None,
    lost_users: str | DataFrame | None = None,
) -> dict[str, DataFrame]:
    """Create the views ``events``, ``users``, ``conversions`` (and ``payments``,
    ``lost_users``) from paths or DataFrames.

    A path is anything Spark reads with ``fmt`` (a folder of parquet parts, ``s3://...``,
    a glob). ``properties`` and ``account_id`` may be missing from events (added as nulls);
    without conversions an empty table is used (scoring needs none). Without payments there is
    no ``payments`` view (one left by an earlier call is dropped): account tasks then count
    first payments from conversions. Likewise ``lost_users`` (label times then read losses from
    ``label.lost_event`` only, if set).

    >>> register_tables(spark, "data/events/", "data/users.parquet")  # doctest: +SKIP
    """
    from pyspark.errors import AnalysisException
    from pyspark.sql import functions as F

    given = {"events": events, "users": users, "conversions": conversions}
    for name, source in (("payments", payments), ("lost_users", lost_users)):
        if source is not None:
            given[name] = source
    frames: dict[str, DataFrame] = {}
    problems: list[str] = []
    for name, source in given.items():
        if source is None:
            frames[name] = spark.sql(
                "SELECT CAST(NULL AS STRING) AS user_id, "
                "CAST(NULL AS TIMESTAMP_NTZ) AS converted_at WHERE 1 = 0"
            )
            continue
        try:
            df = spark.read.format(fmt).load(source) if isinstance(source, str) else source
        except AnalysisException as exc:  # e.g. PATH_NOT_FOUND: the user's input, not a bug
            first = str(exc).strip().splitlines()[0][:300]
            problems.append(
                f"Spark cannot read {name} from {source!r}: {first}. Check data.{name}."
            )
            continue
        types = dict(df.dtypes)
        if name == "events":
            for col in ("account_id", "properties"):
                if col not in types:
                    df = df.withColumn(col, F.lit(None).cast("string"))
                    types[col] = "string"
        missing = [c for c in _NEEDED[name] if c not in types]
        if missing:
            problems.append(
                f"Spark table {name!r} must have the columns {list(_NEEDED[name])}. Got "
                f"{sorted(types)} (missing {missing}); write it in canonical form "
                f"(propensity/contract.py): 'propensity validate --config C --export DIR' "
                f"writes the cleaned canonical tables for it."
            )
        contract = TABLES[name]
        bad = [
            f"{c.name} ({types[c.name]})"
            for c in contract.columns
            if c.kind == "timestamp" and c.name in types and types[c.name] not in _TIME_TYPES
        ]
        if bad:
            problems.append(
                f"Spark table {name!r} must hold timestamps in {bad}. Got other types; cast "
                f"them to TIMESTAMP (naive UTC) when writing the table."
            )
        frames[name] = df
    if problems:
        raise DataContractError(problems)
    for name, df in frames.items():
        df.createOrReplaceTempView(name)
    for name in _OPTIONAL:
        if name not in given:
            spark.catalog.dropTempView(name)
    return frames
