"""A known effect of sales contact on conversion, so ``propensity outcomes`` can be checked.

The simulated world converts by behaviour alone. :func:`apply_contact_effect` adds the effect
of sales contact on top: each contacted entity that would *not* have paid within ``horizon``
of its contact pays, with probability ``effect``, at a uniform time in that window. Held-out
PQLs are never contacted, so the true lift is known exactly:

    true lift = effect x (share of contacted PQLs that would not have paid in the window)

and a holdout comparison must find it within its interval. Seeded: same inputs, same output.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import numpy as np
import pandas as pd
import pyarrow as pa

__all__ = [
    "ContactEffect",
    "apply_contact_effect",
    "conversions_file_table",
    "natural_conversions",
]


@dataclass(frozen=True)
class ContactEffect:
    """The conversions with the effect applied, and the truth behind it."""

    conversions: pd.DataFrame
    true_lift: float
    contacted: int
    added: int


def apply_contact_effect(
    conversions: pd.DataFrame,
    contacts: pd.DataFrame,
    effect: float,
    horizon: timedelta,
    seed: int,
) -> ContactEffect:
    """Add the conversions sales contact caused.

    - ``conversions``: ``user_id``, ``converted_at`` (the world without contact);
    - ``contacts``: ``entity_id``, ``contacted_at`` (one row per contacted entity).
    """
    if not 0 <= effect <= 1:
        raise ValueError(f"effect must be a probability in [0, 1]. Got {effect!r} instead.")
    rng = np.random.default_rng(seed)
    # the simulator writes UTC-aware times; compare and add in naive UTC, write back as given
    zone = getattr(conversions["converted_at"].dtype, "tz", None)
    naive = pd.to_datetime(conversions["converted_at"], utc=True).dt.tz_convert(None)
    first = naive.groupby(conversions["user_id"].astype(str)).min()
    c = contacts.assign(entity_id=contacts["entity_id"].astype(str))
    c = c.sort_values("entity_id", kind="stable").reset_index(drop=True)
    start = pd.to_datetime(c["contacted_at"])
    paid = pd.to_datetime(c["entity_id"].map(first))
    would = ((paid > start) & (paid <= start + horizon)).to_numpy(dtype=bool)
    draw = rng.random(len(c)) < effect
    offset = rng.random(len(c)) * horizon.total_seconds()
    # after the contact (never at its instant) and at most the horizon later
    when = (start + pd.to_timedelta(np.maximum(offset, 1.0).round(), unit="s")).dt.floor("s")
    added = ~would & draw & ~(paid <= start).to_numpy(dtype=bool)
    at = when[added] if zone is None else when[added].dt.tz_localize("UTC").dt.tz_convert(zone)
    new = pd.DataFrame({"user_id": c.loc[added, "entity_id"], "converted_at": at})
    new = new.astype({"converted_at": conversions["converted_at"].dtype})
    out = pd.concat([conversions, new], ignore_index=True)
    out = out.sort_values(["converted_at", "user_id"], kind="stable").reset_index(drop=True)
    true_lift = float(effect * (1 - would.mean())) if len(c) else float("nan")
    return ContactEffect(out, true_lift, len(c), int(added.sum()))


def natural_conversions(truth: pd.DataFrame, end: pd.Timestamp) -> pd.DataFrame:
    """The world's conversions file without any contact effect, rebuilt from its truth table
    (``user_id``, naive UTC ``converted_at``): first payments before the data ``end``."""
    paid = truth[truth["converted_at"].notna() & (truth["converted_at"] < end)]
    at = pd.to_datetime(paid["converted_at"]).dt.tz_localize("UTC").astype("datetime64[us, UTC]")
    return pd.DataFrame(
        {"user_id": paid["user_id"].astype(str).to_numpy(), "converted_at": at.to_numpy()}
    )


def conversions_file_table(conversions: pd.DataFrame, text_times: bool) -> pa.Table:
    """``conversions`` in the simulator's file shape: UTC timestamps, or ISO-8601 text."""
    at = pd.to_datetime(conversions["converted_at"], utc=True)
    times = (
        pa.array(at.dt.strftime("%Y-%m-%dT%H:%M:%SZ"), pa.string())
        if text_times
        else pa.array(at.astype("datetime64[us, UTC]"), pa.timestamp("us", tz="UTC"))
    )
    return pa.table(
        {"user_id": pa.array(conversions["user_id"].astype(str)), "converted_at": times}
    )
