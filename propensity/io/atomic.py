"""Writing outputs so that a reader never sees half a file.

Everything is written to a temporary file in the target's own folder (same filesystem), flushed to
disk, then renamed over the target in one step. A process killed mid-write leaves at most a hidden
``.<name>.<random>.tmp`` file, never a partial output; two writers racing on one path each rename
a whole file, so the result is one of them, never a mix.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

import pandas as pd

__all__ = ["atomic_path", "write_table"]


@contextlib.contextmanager
def atomic_path(target: str | Path) -> Iterator[Path]:
    """Yield a temporary path next to `target`; on success it replaces `target` atomically.

    >>> with atomic_path("out/scores.csv") as tmp:  # doctest: +SKIP
    ...     df.to_csv(tmp)
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def write_table(
    frame: pd.DataFrame, target: str | Path, fmt: Literal["parquet", "csv"] = "parquet"
) -> Path:
    """Write `frame` to `target` atomically as parquet or CSV; returns the target path."""
    with atomic_path(target) as tmp:
        if fmt == "parquet":
            frame.to_parquet(tmp, index=False)
        else:
            frame.to_csv(tmp, index=False)
    return Path(target)
