"""Faults of the machine, not of the code: a full disk, a permission, memory; said in one line.

The CLI hands any exception that is not a :class:`PropensityError` to :func:`environment_error`:
one that the environment caused (anywhere in its chain: an ``OSError`` of a full disk or a
refused permission, DuckDB's or SQLite's "disk is full", DuckDB out of memory) becomes an error
with a message and an exit code; anything else stays a bug, with its traceback.
"""

from __future__ import annotations

import errno

from propensity.errors import DataContractError, OutputError, PropensityError, redact, shorten

__all__ = ["environment_error"]

_FULL_ERRNOS = (errno.ENOSPC, errno.EFBIG, errno.EDQUOT)
_FULL_TEXT = (
    "No space left on device",
    "File too large",
    "Disk quota exceeded",
    "database or disk is full",
)
_DENIED = (errno.EACCES, errno.EPERM, errno.EROFS)


def _chain(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in seen and len(seen) < 20:
        seen.append(current)
        current = current.__cause__ or current.__context__
    return seen


def _line(exc: BaseException) -> str:
    text = str(exc).strip()
    return shorten(redact(text.splitlines()[0] if text else type(exc).__name__), 200)


def environment_error(exc: BaseException) -> PropensityError | None:
    """The user-facing error for a fault of the environment, or None for a bug."""
    for item in _chain(exc):
        if isinstance(item, OSError) and item.errno in _FULL_ERRNOS:
            where = f" writing {item.filename!r}" if item.filename else ""
            return OutputError(
                f"The disk filled up{where} ({item.strerror or _line(item)}). Free disk space "
                f"(or raise the file size limit) and run again; every output is written whole "
                f"or not at all, so nothing partial was left."
            )
        said = next((text for text in _FULL_TEXT if text in str(item)), None)
        if said is not None:
            return OutputError(
                f"The disk filled up ({said}: {_line(item)}). Free disk space (the output "
                f"folder, the tracking store, and TMPDIR for temporary files) and run again; "
                f"nothing partial was left."
            )
        if isinstance(item, OSError) and item.errno in _DENIED:
            where = repr(item.filename) if item.filename else "a file"
            return OutputError(
                f"Permission denied on {where} ({item.strerror or _line(item)}). Run as a user "
                f"that may read the inputs and write the outputs, or change the paths."
            )
        if type(item).__name__ == "OutOfMemoryException":
            return DataContractError(
                [
                    f"DuckDB ran out of memory ({_line(item)}). Raise data.memory_limit in the "
                    f"config, or free memory on this machine."
                ]
            )
    return None
