"""The feature build's share of data.memory_limit.

DuckDB's ``memory_limit`` caps only DuckDB. A build's process also holds what it held before
(Python, its libraries, the label rows: 0.6 GB at 1M users) and, while the final statement
runs, the feature table it returns. Measured at 100M events under 3GB with DuckDB at the whole
limit, the process peaked at 3.9 GB. So while it builds, DuckDB's limit is data.memory_limit
less the memory the process holds outside DuckDB (and, for the final statement, less the
table's bytes), never below half of data.memory_limit: a smaller share only spills more.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Callable, Iterator

import duckdb

from propensity.config import MEMORY_VARIABLE, memory_bytes
from propensity.features.portable import DUCKDB

__all__ = ["Share", "limit_bytes", "memory_share", "resident_bytes"]

Share = Callable[[int], None]  # lowers DuckDB's share to leave room for that many more bytes
_UNITS = {"KiB": 2**10, "MiB": 2**20, "GiB": 2**30, "TiB": 2**40, "KB": 10**3, "MB": 10**6}
_UNITS |= {"GB": 10**9, "TB": 10**12, "bytes": 1}


def resident_bytes() -> int:
    """The process's resident memory now (Linux); 0 where /proc is not there to ask."""
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


def _duckdb_bytes(con: duckdb.DuckDBPyConnection) -> int:
    """What DuckDB's buffer manager holds now (part of the resident memory)."""
    [(used,)] = con.execute("SELECT sum(memory_usage_bytes) FROM duckdb_memory()").fetchall()
    return int(used or 0)


def _configured(con: duckdb.DuckDBPyConnection) -> str | None:
    """data.memory_limit as propensity's connection was given it; None on other connections."""
    try:
        [(limit,)] = con.execute(f"SELECT getvariable('{MEMORY_VARIABLE}')").fetchall()
    except duckdb.Error:
        return None
    return limit if isinstance(limit, str) and memory_bytes(limit) is not None else None


@contextlib.contextmanager
def memory_share(con: duckdb.DuckDBPyConnection) -> Iterator[Share]:
    """Within the block, DuckDB's limit is data.memory_limit less what the process holds
    outside DuckDB (its resident bytes less DuckDB's own); the share it yields lowers it
    further by a number of bytes about to be filled. data.memory_limit is set back exactly on
    the way out, also after an error. Connections propensity did not open keep their limit.
    """
    limit = _configured(con)
    total = memory_bytes(limit) if limit is not None else None

    def share(reserve: int) -> None:
        if total is None:
            return
        held = max(0, resident_bytes() - _duckdb_bytes(con))
        own = max(total // 2, total - held - reserve)
        with contextlib.suppress(duckdb.Error):  # DuckDB could not free enough: keep its limit
            con.execute(f"SET memory_limit = '{own // 10**6}MB'")

    share(0)
    try:
        yield share
    finally:
        if limit is not None:
            con.execute(f"SET memory_limit = {DUCKDB.literal(limit)}")


def limit_bytes(con: duckdb.DuckDBPyConnection) -> int:
    """DuckDB's memory limit in bytes (it reports e.g. ``'1.8 GiB'``); 0 when unreadable."""
    [(text,)] = con.execute("SELECT current_setting('memory_limit')").fetchall()
    match = re.fullmatch(r"\s*([0-9.]+)\s*([A-Za-z]+)\s*", str(text))
    if match is None or match[2] not in _UNITS:
        return 0
    return int(float(match[1]) * _UNITS[match[2]])
