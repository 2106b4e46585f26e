"""Writing the cleaned canonical tables, e.g. as the input of the Spark engine."""

from __future__ import annotations

from pathlib import Path

import duckdb

from propensity.io.atomic import atomic_paths
from propensity.io.faults import environment_error
from propensity.io.load import LoadedData
from propensity.io.outputs import check_output_dir
from propensity.io.sources import sql_string

__all__ = ["export_canonical"]

_TABLES = ("events", "users", "conversions")


def export_canonical(data: LoadedData, out_dir: str | Path) -> dict[str, Path]:
    """Write `events`, `users` and `conversions` as parquet files in canonical form.

    The tables are what the readers left after mapping and cleaning, so they carry no email
    address (only its domain) and no configured PII column. All three are written to temporary
    files and renamed together: a failure (a full disk) leaves none of them half-written.
    """
    out_dir = Path(out_dir)
    check_output_dir(out_dir, "--export")
    targets = [out_dir / f"{table}.parquet" for table in _TABLES]
    try:
        with atomic_paths(targets) as tmps:
            for table, tmp in zip(_TABLES, tmps, strict=True):
                data.con.execute(
                    f"COPY (SELECT * FROM {table}) TO {sql_string(str(tmp))} (FORMAT parquet)"
                )
    except duckdb.IOException as exc:
        raise environment_error(exc) or exc from None
    return dict(zip(_TABLES, targets, strict=True))
