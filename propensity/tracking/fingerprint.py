"""What went in: a fingerprint of the input files and the code version, without mlflow.

A fingerprint names the files, their total size, and one sha256 over them. Files up to
``max_hash_bytes`` are hashed whole; a bigger parquet file is hashed by its footer metadata
(schema, row groups and their statistics), which changes whenever its contents do in practice
and costs a few kilobytes to read; a bigger file of another format is hashed by its size and its
first and last MiB.
"""

from __future__ import annotations

import glob
import hashlib
import subprocess
from collections.abc import Iterable
from pathlib import Path
from typing import Any

__all__ = ["data_fingerprint", "git_commit"]

_CHUNK = 1 << 20


def data_fingerprint(
    paths: Iterable[str | Path], *, max_hash_bytes: int = 256 * _CHUNK
) -> dict[str, Any]:
    """``files``, ``bytes``, ``sha256`` and ``method`` for files, folders or glob patterns.

    >>> data_fingerprint([])["files"]
    0
    """
    files = _expand(paths)
    digest = hashlib.sha256()
    total = 0
    methods = set()
    for file in files:
        size = file.stat().st_size
        total += size
        digest.update(f"{file.name}\0{size}\0".encode())
        if size <= max_hash_bytes:
            methods.add("bytes")
            _update_with_file(digest, file)
        elif file.suffix == ".parquet":
            methods.add("parquet_metadata")
            digest.update(_parquet_metadata(file))
        else:
            methods.add("size_head_tail")
            _update_with_ends(digest, file, size)
    return {
        "files": len(files),
        "bytes": total,
        "sha256": digest.hexdigest(),
        "method": "+".join(sorted(methods)) or "none",
    }


def git_commit(folder: Path | str | None = None) -> str:
    """``git rev-parse HEAD`` of the repository holding ``folder``, else ``"unknown"``."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=folder,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out.stdout.strip() or "unknown"


def _expand(paths: Iterable[str | Path]) -> list[Path]:
    """Files named, found under folders, or matched by globs; sorted so order never matters."""
    found: set[Path] = set()
    for item in paths:
        path = Path(item)
        if path.is_dir():
            found.update(p for p in path.rglob("*") if p.is_file() and not p.name.startswith("."))
        elif path.is_file():
            found.add(path)
        else:
            found.update(Path(p) for p in glob.glob(str(item), recursive=True) if Path(p).is_file())
    return sorted(found)


def _update_with_file(digest: Any, file: Path) -> None:
    with file.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)


def _update_with_ends(digest: Any, file: Path, size: int) -> None:
    with file.open("rb") as handle:
        digest.update(handle.read(_CHUNK))
        handle.seek(max(size - _CHUNK, 0))
        digest.update(handle.read(_CHUNK))


def _parquet_metadata(file: Path) -> bytes:
    import pyarrow.parquet as pq  # only needed for big parquet inputs

    meta = pq.ParquetFile(file).metadata
    # to_dict() holds the row groups with their sizes, offsets and column statistics
    schema = meta.schema.to_arrow_schema().to_string(show_schema_metadata=True)
    return repr((schema, meta.to_dict())).encode()
