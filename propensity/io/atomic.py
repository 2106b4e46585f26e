"""Writing outputs so that a reader never sees half a file.

Everything is written to a temporary file in the target's own folder (same filesystem), flushed to
disk, then renamed over the target in one step. A process killed mid-write leaves at most a hidden
``.<name>.<owner>.<random>.tmp`` file, never a partial output, and the next write of the same
output removes it once its owner (pid and start time) is gone; two writers racing on one path
each rename a whole file, so the result is one of them, never a mix. A rename replaces a symlink
at the target, it never writes through it onto another file.

Any failure to write (a full disk, no permission, a folder where a file should be) is an
:class:`OutputError` naming the output, and leaves the old output, if any, as it was.
"""

from __future__ import annotations

import contextlib
import errno
import glob
import os
import re
import shutil
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from propensity.errors import OutputError
from propensity.io.workspace import alive, owner_token

if TYPE_CHECKING:  # only frames handed in are written: reading data imports no pandas
    import pandas as pd

__all__ = ["atomic_path", "atomic_paths", "output_error", "run_folder", "write_table"]

_TOKEN = re.compile(r"^\d+-\d+$")
_ORPHAN_AGE_S = 3600.0  # temp files of versions that wrote no owner token


@contextlib.contextmanager
def atomic_path(target: str | Path) -> Iterator[Path]:
    """Yield a temporary path next to `target`; on success it replaces `target` atomically.

    >>> with atomic_path("out/scores.csv") as tmp:  # doctest: +SKIP
    ...     df.to_csv(tmp)
    """
    with atomic_paths([target]) as (tmp,):
        yield tmp


@contextlib.contextmanager
def atomic_paths(targets: Sequence[str | Path]) -> Iterator[list[Path]]:
    """Temporary paths for several outputs, renamed into place only when the block succeeds.

    A failure anywhere in the block writes none of them, so a job's outputs are all new or all
    old (a kill between two of the final renames, microseconds apart, is the only exception).
    """
    paths = [Path(t) for t in targets]
    tmps: list[Path] = []
    current = paths[0]
    try:
        for target in paths:
            current = target
            if target.is_dir() and not target.is_symlink():
                raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), str(target))
            target.parent.mkdir(parents=True, exist_ok=True)
            _sweep_stale(target)
            fd, name = tempfile.mkstemp(
                prefix=f".{target.name}.{owner_token()}.", suffix=".tmp", dir=target.parent
            )
            # mkstemp makes the file private (0600); an output gets the mode any new file gets
            os.fchmod(fd, 0o666 & ~_umask())
            os.close(fd)
            tmps.append(Path(name))
        current = paths[0] if len(paths) == 1 else paths[0].parent
        yield tmps
        for tmp, target in zip(tmps, paths, strict=True):
            current = target
            with open(tmp, "rb+") as handle:
                os.fsync(handle.fileno())
        for tmp, target in zip(tmps, paths, strict=True):
            current = target
            os.replace(tmp, target)
    except OSError as exc:
        raise output_error(exc, current) from None
    finally:
        for tmp in tmps:
            with contextlib.suppress(OSError):
                tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def run_folder(target: str | Path) -> Iterator[Path]:
    """Yield a hidden folder beside `target`, renamed to `target` only when the block succeeds.

    A job's output folder (``train-<run id>``) is whole or absent: a failure removes it, and a
    folder whose owner was killed is removed by the next run writing beside it. Paths written
    inside the block live under the yielded folder; map them to ``target`` afterwards.

    >>> with run_folder("outputs/demo/train-abc") as tmp:  # doctest: +SKIP
    ...     (tmp / "metrics.json").write_text("{}")
    """
    target = Path(target)
    try:
        if target.exists() or target.is_symlink():
            raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), str(target))
        target.parent.mkdir(parents=True, exist_ok=True)
        _sweep_stale_folders(target.parent)
        tmp = Path(
            tempfile.mkdtemp(prefix=f".{target.name}.{owner_token()}.", suffix=".partial",
                             dir=target.parent)
        )  # fmt: skip
        os.chmod(tmp, 0o777 & ~_umask())
    except OSError as exc:
        raise output_error(exc, target) from None
    try:
        yield tmp
        os.replace(tmp, target)
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        raise output_error(exc, target) from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _sweep_stale_folders(parent: Path) -> None:
    """Remove hidden run folders in `parent` whose writer was killed (never a live one's)."""
    for path in parent.glob(".*.partial"):
        token = path.name[: -len(".partial")].rsplit(".", 2)
        if len(token) == 3 and _TOKEN.match(token[1]) and not alive(token[1]):
            shutil.rmtree(path, ignore_errors=True)


def write_table(
    frame: pd.DataFrame, target: str | Path, fmt: Literal["parquet", "csv"] = "parquet"
) -> Path:
    """Write `frame` to `target` atomically as parquet or CSV; returns the target path."""
    with atomic_path(target) as tmp:
        write_frame(frame, tmp, fmt)
    return Path(target)


def write_frame(frame: pd.DataFrame, path: Path, fmt: Literal["parquet", "csv"]) -> None:
    """Write `frame` to a (temporary) path as parquet or CSV."""
    if fmt == "parquet":
        frame.to_parquet(path, index=False)
    else:
        frame.to_csv(path, index=False)


_FULL = (errno.ENOSPC, errno.EFBIG, errno.EDQUOT)


def output_error(exc: OSError, target: str | Path) -> OutputError:
    """One clear message for an output that could not be written, naming it and the fix."""
    reason = exc.strerror or str(exc) or type(exc).__name__
    where = repr(str(target))
    text = str(exc)
    if exc.errno in _FULL or "No space left" in text or "File too large" in text:
        fix = "Free disk space (or raise the file size limit) and run again, or write elsewhere"
    elif exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        fix = "Write somewhere this user may write, or fix the folder's permissions"
    elif exc.errno in (errno.ENOTDIR, errno.EEXIST):
        fix = "A file stands where a folder is needed on that path; choose another path"
    elif exc.errno == errno.EISDIR:
        fix = "A folder stands where the file should go; give a file path"
    else:
        fix = "Check the path and the disk"
    return OutputError(f"Cannot write {where}: {reason}. {fix}. Nothing was written there.")


def _umask() -> int:
    """This process's umask, read without changing it where the system allows."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)  # elsewhere: set and restore
    os.umask(mask)
    return mask


def _sweep_stale(target: Path) -> None:
    """Remove temp files of this output left by writers that were killed."""
    pattern = f".{glob.escape(target.name)}.*.tmp"
    for path in target.parent.glob(pattern):
        token = path.name[len(target.name) + 2 :].split(".", 1)[0]
        with contextlib.suppress(OSError):
            if _TOKEN.match(token):
                if not alive(token):
                    path.unlink()
            elif time.time() - path.stat().st_mtime > _ORPHAN_AGE_S:
                path.unlink()
