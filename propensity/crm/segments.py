"""Segment columns for routing and outcomes, from the users table (no PII: the domain's class,
never the address)."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd

__all__ = ["domain_class", "segments"]


def domain_class(
    domains: pd.Series, enterprise: Iterable[str], free_mail: Iterable[str]
) -> pd.Series:
    """``enterprise``, ``free_mail``, ``business`` or ``unknown`` per email domain.

    >>> domain_class(pd.Series(["hooli.com", "gmail.com", "acme.io", None]),
    ...              ["hooli.com"], ["gmail.com"]).tolist()
    ['enterprise', 'free_mail', 'business', 'unknown']
    """
    text = domains.astype("string").str.lower()
    ent = text.isin({d.lower() for d in enterprise}).fillna(False).to_numpy(dtype=bool)
    free = text.isin({d.lower() for d in free_mail}).fillna(False).to_numpy(dtype=bool)
    known = text.notna().to_numpy()
    labels = np.select([ent, free, known], ["enterprise", "free_mail", "business"], "unknown")
    return pd.Series(labels, index=domains.index, dtype=object)


def segments(
    users: pd.DataFrame, enterprise: Iterable[str], free_mail: Iterable[str]
) -> pd.DataFrame:
    """One row per ``entity_id``: the users' columns (bar ``email_domain``) and ``domain_class``."""
    out = users.rename(columns={"user_id": "entity_id"}).copy()
    out["entity_id"] = out["entity_id"].astype(str)
    if "email_domain" in out:
        out["domain_class"] = domain_class(out.pop("email_domain"), enterprise, free_mail)
    else:
        out["domain_class"] = "unknown"
    if "company_size" in out:
        size = pd.to_numeric(out["company_size"], errors="coerce").astype("float64")
        bands = np.select(
            [size < 50, size < 200, size >= 200], ["1-49", "50-199", "200+"], "unknown"
        )
        out["size_band"] = bands
    return out.drop_duplicates("entity_id").reset_index(drop=True)
