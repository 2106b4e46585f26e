"""Reading an earlier score run's table (``score --previous``), checked before it is trusted.

The file must be what ``propensity score`` wrote: parquet or CSV with ``user_id``, ``is_pql``
(true/false or 1/0) and, optionally, ``score`` (a probability). Anything else (another file,
bytes cut short, flags that are not flags) is one :class:`DataContractError` naming the file and
the fix, before any work is done.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from propensity.errors import DataContractError, redact, shorten

if TYPE_CHECKING:  # pandas is imported where it is used: reading data needs none of it
    import pandas as pd

__all__ = ["read_previous_scores"]

_TRUE = {"true", "1", "yes", "t", "y"}
_FALSE = {"false", "0", "no", "f", "n", ""}


def _fail(path: Path, what: str) -> DataContractError:
    return DataContractError(
        [
            f"--previous {str(path)!r} {what}. Pass the scores file an earlier 'propensity "
            f"score' run wrote (parquet or CSV), or leave --previous out."
        ]
    )


def read_previous_scores(path: str | Path, key: str = "user_id") -> pd.DataFrame:
    """The previous run's entity ids (column ``key``: ``user_id``, or ``account_id`` for an
    account task) as text in ``user_id``, the key scoring compares on, ``is_pql`` (bool) and
    ``score`` (float, if any)."""
    import pandas as pd

    path = Path(path)
    if path.is_dir():
        raise _fail(path, "is a folder")
    if not path.is_file():
        raise _fail(path, "does not exist")
    try:
        if path.suffix.lower() == ".csv" or path.name.lower().endswith(".csv.gz"):
            frame = pd.read_csv(path, dtype={key: str}, keep_default_na=False)
        else:
            frame = pd.read_parquet(path)
    except (OSError, ValueError, TypeError, NotImplementedError, pd.errors.ParserError) as exc:
        reason = shorten(redact(str(exc).splitlines()[0] if str(exc) else type(exc).__name__))
        raise _fail(path, f"cannot be read as a score table ({reason})") from None
    missing = [c for c in (key, "is_pql") if c not in frame.columns]
    if missing:
        raise _fail(path, f"has no column {', '.join(missing)}")
    flags = _flags(frame["is_pql"])
    if flags is None:
        raise _fail(path, "has is_pql values that are not true/false")
    out = pd.DataFrame({"user_id": frame[key].astype(str), "is_pql": flags})
    if "score" in frame.columns:
        score = pd.to_numeric(frame["score"], errors="coerce")
        if score.isna().any() and not frame["score"].isna().all():
            bad = frame.loc[score.isna(), "score"].head(1).tolist()
            raise _fail(path, f"has scores that are not numbers (e.g. {shorten(repr(bad[0]), 40)})")
        out["score"] = score.astype("float64")
    return out


def _flags(values: pd.Series) -> pd.Series | None:
    """Booleans from bool, 0/1 or true/false text; None when some value is none of those."""
    if values.dtype == bool:
        return values
    text = values.astype(str).str.strip().str.lower()
    if not text.isin(_TRUE | _FALSE).all():
        return None
    return text.isin(_TRUE)
