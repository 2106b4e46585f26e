"""Checking where outputs go before any work is done, so a bad place fails in a second.

A place is bad when it cannot hold the output: a file where a folder is needed (or the reverse),
a folder this user may not write in or a read-only disk, the filesystem root, or an input of the
same job (writing there would replace the data, or be read back as data next time). Each is an
:class:`OutputError` (exit 2) naming the option or key, the path and the fix; nothing is created
by the check itself.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from propensity.errors import OutputError

__all__ = ["check_output_dir", "check_output_file"]


def _nearest_existing(path: Path) -> Path:
    for candidate in (path, *path.parents):
        if os.path.lexists(candidate):
            return candidate
    return Path(path.anchor or ".")


def _check_parent(path: Path, what: str) -> None:
    """The folders up to `path` either exist as folders this user may write in, or can be made."""
    parent = _nearest_existing(path.parent if path.parent != path else path)
    if not parent.is_dir():
        raise OutputError(
            f"{what} {str(path)!r} cannot be created: {str(parent)!r} is a file, not a folder. "
            f"Choose a path whose folders are folders."
        )
    if not os.access(parent, os.W_OK | os.X_OK):
        raise OutputError(
            f"{what} {str(path)!r} cannot be written: this user may not write in "
            f"{str(parent)!r} (no permission, or a read-only disk). Choose a folder you can "
            f"write in."
        )


def check_output_dir(path: str | Path, what: str) -> None:
    """Refuse a folder output (`what` names the option or key) that cannot be a folder here."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise OutputError(
            f"{what} {str(path)!r} is a file; a folder is needed there. Give a folder path (it is "
            f"created when missing), or move the file away."
        )
    resolved = path.resolve()
    if resolved == Path(resolved.anchor):
        raise OutputError(
            f"{what} {str(path)!r} is the root of the filesystem. Give a folder of its own, "
            f"e.g. outputs/."
        )
    if path.is_dir():
        if not os.access(path, os.W_OK | os.X_OK):
            raise OutputError(
                f"{what} {str(path)!r} cannot be written: this user may not write in it (no "
                f"permission, or a read-only disk). Choose a folder you can write in."
            )
        return
    _check_parent(path, what)


def check_output_file(path: str | Path, what: str, inputs: Iterable[str | None] = ()) -> None:
    """Refuse a file output that is a folder, cannot be written, or is (inside) an input."""
    path = Path(path)
    if path.is_dir() and not path.is_symlink():
        raise OutputError(
            f"{what} {str(path)!r} is a folder; a file path is needed, e.g. "
            f"{str(path / 'scores.parquet')!r}."
        )
    if str(path).endswith(os.sep) or path.name in ("", ".", ".."):
        raise OutputError(f"{what} {str(path)!r} names no file; add a file name.")
    _check_parent(path, what)
    target = path.resolve()
    for given in inputs:
        if not given or any(ch in given for ch in "*?["):
            continue
        source = Path(given).resolve()
        if target == source or (source.is_dir() and source in target.parents):
            raise OutputError(
                f"{what} {str(path)!r} is {'an input' if target == source else 'inside the input'}"
                f" {given!r}: writing there would replace the data or be read back as data. "
                f"Write the output somewhere else."
            )
