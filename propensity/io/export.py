"""Writing the cleaned canonical tables, e.g. as the input of the Spark engine."""

from __future__ import annotations

from pathlib import Path

from propensity.io.atomic import atomic_path
from propensity.io.load import LoadedData
from propensity.io.sources import sql_string

__all__ = ["export_canonical"]


def export_canonical(data: LoadedData, out_dir: str | Path) -> dict[str, Path]:
    """Write `events`, `users` and `conversions` as parquet files in canonical form, atomically.

    The tables are what the readers left after mapping and cleaning, so they carry no email
    address (only its domain) and no configured PII column.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = {}
    for table in ("events", "users", "conversions"):
        target = out_dir / f"{table}.parquet"
        with atomic_path(target) as tmp:
            data.con.execute(
                f"COPY (SELECT * FROM {table}) TO {sql_string(str(tmp))} (FORMAT parquet)"
            )
        written[table] = target
    return written
