"""Temporary folders that the next run cleans up when their owner was killed.

Every temporary folder propensity makes (DuckDB's work database and spill files, the CLI's
temporary files) carries an ``owner`` file naming the process that made it: its pid and the
kernel's start time of that pid, so a recycled pid is not mistaken for the owner. A folder is
removed when its process ends normally; a folder whose owner was killed is removed by the next
run that starts, and a folder whose owner still runs is never touched.

>>> folder = work_folder("duckdb")  # doctest: +SKIP
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import tempfile
import time
from pathlib import Path

try:
    import fcntl
except ImportError:  # not on Windows: ownerless folders are then never swept
    fcntl = None  # type: ignore[assignment]

__all__ = [
    "PREFIXES",
    "alive",
    "owner_token",
    "remove",
    "sweep",
    "use_for_temp_files",
    "work_folder",
]

PREFIX = "propensity-"
# only folders of these kinds are ever swept: other tools may use the same prefix
PREFIXES = ("propensity-run-", "propensity-duckdb-")
_OWNER = "owner"
# A folder without an owner file is either being created this instant or was left by a version
# that wrote none (``propensity-duckdb-*``); it is removed only once it is this old, and only
# when no process holds its DuckDB database open (DuckDB locks the file while it is open).
_ORPHAN_AGE_S = 3600.0


def _start_time(pid: int) -> str | None:
    """The kernel's start time of `pid` (clock ticks since boot), or None off Linux."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            stat = handle.read().decode("ascii", "replace")
    except OSError:
        return None
    # the command name (field 2) may hold spaces and parentheses: count from the last ')'
    fields = stat[stat.rfind(")") + 2 :].split()
    return fields[19] if len(fields) > 19 else None


def owner_token(pid: int | None = None) -> str:
    """``<pid>-<start time>`` of a process (this one by default): who holds a temporary file."""
    pid = os.getpid() if pid is None else pid
    return f"{pid}-{_start_time(pid) or 0}"


def alive(token: str) -> bool:
    """Whether the process named by an :func:`owner_token` is still running."""
    pid_text, _, start = token.strip().partition("-")
    if not pid_text.isdigit():
        return False
    pid = int(pid_text)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # another user's live process
    now = _start_time(pid)
    return now is None or start in ("", "0") or now == start


def sweep(root: str | Path | None = None) -> list[Path]:
    """Remove the temporary folders under `root` (default: the system's) whose owner is dead.

    Returns the folders removed. Folders of live processes, and folders being created this
    instant, are left alone; errors (another user's folder) are ignored.
    """
    root = Path(root or tempfile.gettempdir())
    removed = []
    try:
        candidates = [p for p in root.iterdir() if p.name.startswith(PREFIXES)]
    except OSError:
        return removed
    for folder in candidates:
        if not folder.is_dir() or folder.is_symlink():
            continue
        try:
            token = (folder / _OWNER).read_text(encoding="ascii")
        except (OSError, UnicodeDecodeError):
            token = None
        if token is not None and alive(token):
            continue
        if token is None:
            try:
                age = time.time() - folder.stat().st_mtime
            except OSError:
                continue
            if age < _ORPHAN_AGE_S or _in_use(folder):
                continue
        shutil.rmtree(folder, ignore_errors=True)
        removed.append(folder)
    return removed


def _in_use(folder: Path) -> bool:
    """Whether a process holds a DuckDB database in `folder` open (it keeps a lock on it)."""
    if fcntl is None:
        return True
    for db in folder.glob("*.duckdb"):
        try:
            fd = os.open(db, os.O_RDWR)
        except OSError:
            return True  # cannot tell: leave it
        try:
            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return True
        finally:
            os.close(fd)  # closing drops the probe's lock
    return False


def work_folder(kind: str, root: str | Path | None = None) -> Path:
    """A new private temporary folder ``propensity-<kind>-*`` owned by this process.

    Removed at interpreter exit; the owner file lets a later run remove it if this process is
    killed. Stale folders of dead runs are swept first.
    """
    sweep(root)
    folder = Path(tempfile.mkdtemp(prefix=f"{PREFIX}{kind}-", dir=root))
    (folder / _OWNER).write_text(owner_token(), encoding="ascii")
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    return folder


_RUN_FOLDER: Path | None = None


def use_for_temp_files() -> Path:
    """Point this process's temporary files (and its children's, through TMPDIR) into one
    folder owned by it, so that whatever a library leaves there dies with the run.

    Called once by the CLI entry point; library code never changes the global temp folder.
    """
    global _RUN_FOLDER
    if _RUN_FOLDER is None:
        _RUN_FOLDER = work_folder("run")
        tempfile.tempdir = str(_RUN_FOLDER)
        os.environ["TMPDIR"] = str(_RUN_FOLDER)
    return _RUN_FOLDER


def remove(folder: Path) -> None:
    """Remove a work folder now (a connection closed before exit)."""
    with contextlib.suppress(OSError):
        shutil.rmtree(folder)
