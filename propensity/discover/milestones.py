"""Milestones ("A before B, within t") the data supports, for a starter config.

``propose_milestones`` needs only the canonical tables and labelled label times (what ``init``
has before any config exists): it learns a spec on them, builds the count, timing and account
features, ranks the behaviours (:mod:`.rank`) and returns the order behaviours that separate
converters, best first, as ``features.milestones`` entries.

>>> milestones = propose_milestones(con, label_times, FeaturesConfig())  # doctest: +SKIP
>>> milestones[0]  # doctest: +SKIP
MilestoneOrder(first='plan_limit_hit', then='pricing_viewed', within=datetime.timedelta(days=7))
"""

from __future__ import annotations

from datetime import timedelta

import duckdb
import pandas as pd

from propensity.config import FeatureFamilies, FeaturesConfig, MilestoneOrder
from propensity.discover.rank import Behaviours, rank_behaviours
from propensity.errors import InsufficientDataError
from propensity.features import compute_features, learn_spec
from propensity.labels import LabelTimes

__all__ = ["candidate_milestones", "propose_milestones"]

# what ranking needs: counts and first times of every event, teammates, active days
_FAMILIES = FeatureFamilies(
    counts=True, recency=False, activity=True, timing=True, order=False, transitions=False,
    diversity=False, account=True, fit=True, properties=False,
)  # fmt: skip


def candidate_milestones(behaviours: Behaviours, top: int = 5) -> tuple[MilestoneOrder, ...]:
    """The ``top`` order behaviours of a ranking with positive evidence, as milestones."""
    table = behaviours.table
    rows = table[(table["kind"] == "order") & (table["evidence"] > 0)].head(top)
    return tuple(
        MilestoneOrder(
            first=str(r["first"]),
            then=str(r["then"]),
            within=None if pd.isna(r["within_s"]) else timedelta(seconds=int(r["within_s"])),
        )
        for _, r in rows.iterrows()
    )


def propose_milestones(
    con: duckdb.DuckDBPyConnection,
    label_times: LabelTimes,
    features: FeaturesConfig | None = None,
    *,
    top: int = 5,
    seed: int = 0,
) -> tuple[MilestoneOrder, ...]:
    """Milestones for a starter config, from the data alone.

    ``con`` holds the canonical ``events`` and ``users`` tables; ``label_times`` has one labelled
    row per user (e.g. the training slice's main cutoff). ``features`` supplies the vocabulary
    settings (support, windows); its families and milestones are ignored. Returns ``()`` when
    the data is too small to rank behaviours honestly.
    """
    base = features or FeaturesConfig()
    cfg = base.model_copy(update={"families": _FAMILIES, "milestones": (), "key_events": ()})
    spec = learn_spec(con, label_times, cfg)
    frame = compute_features(con, label_times, spec).frame
    frame["label"] = label_times.frame["label"].to_numpy(dtype=int)
    try:
        ranked = rank_behaviours(con, frame, spec, seed=seed)
    except InsufficientDataError:
        return ()
    return candidate_milestones(ranked, top)
