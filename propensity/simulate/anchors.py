"""The truth of a task world at its calendar anchors: every Monday, every eligible entity.

An entity is eligible at a Monday ``a`` when it was first seen before ``a``, some member had an
event in the ``lookback`` weeks before ``a``, and it has not reached the target yet (not paid;
for expansion: paying before ``a`` and not yet expanded). Its ``p_true`` is the chance that
the target falls in ``[a, a + horizon)`` (see :mod:`propensity.simulate.hazard`), its label
whether it did. Rows whose horizon passes the data end are kept with reason ``censored`` and no
label.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from propensity.simulate.conversion import NEVER
from propensity.simulate.journey import Journey

__all__ = ["AnchorTruth", "anchor_truth", "anchor_table"]


@dataclass(frozen=True)
class AnchorTruth:
    """One row per (entity, Monday) where the entity is eligible (parallel arrays)."""

    entity: np.ndarray  # int64 entity index
    anchor: np.ndarray  # int64 epoch seconds
    p_true: np.ndarray
    label: np.ndarray  # int8
    reason: np.ndarray  # object: None, or "censored"
    target_at: np.ndarray  # int64, NEVER when the target never happens


def anchor_truth(
    journey: Journey, *, start: int, end: int, horizon_weeks: int, lookback_weeks: int,
    expansion: bool,
) -> AnchorTruth:  # fmt: skip
    """The truth at every Monday from ``start`` to ``end``."""
    grid, bins = journey.grid, journey.bins
    pop = journey.members.pop
    first_ent = np.full(journey.members.n_accounts, NEVER)
    np.minimum.at(first_ent, pop.account, bins.first_seen)
    target = journey.expanded_at if expansion else journey.paid_at
    horizon = horizon_weeks * 7 * 86_400
    parts = []
    for j in range(grid.weeks):
        a = grid.monday(j)
        if a < start or a >= end:
            continue
        ok = (first_ent < a) & bins.active_within(j, lookback_weeks) & (target >= a)
        if expansion:
            ok &= journey.paid_at < a
        e = np.flatnonzero(ok)
        q = 1 / (1 + np.exp(-journey.logits[e, j : j + horizon_weeks]))
        p = 1 - np.prod(1 - q, axis=1)
        label = ((target[e] >= a) & (target[e] < a + horizon)).astype(np.int8)
        reason = np.full(len(e), "censored" if a + horizon > end else None, dtype=object)
        parts.append((e, np.full(len(e), a), p, label, reason, target[e]))
    cols = [np.concatenate(c) for c in zip(*parts, strict=True)]
    return AnchorTruth(*cols)


def anchor_table(truth: AnchorTruth, entity_ids: np.ndarray) -> pa.Table:
    """The truth as written: ``entity_id``, ``anchor_at`` (naive UTC) and the rest."""
    never = truth.target_at == NEVER
    censored = truth.reason != None  # noqa: E711 (elementwise on an object array)
    return pa.table(
        {
            "entity_id": pa.array(entity_ids[truth.entity], pa.string()),
            "anchor_at": pa.array(truth.anchor * 1_000_000, pa.timestamp("us")),
            "p_true": pa.array(truth.p_true, pa.float64()),
            "label": pa.array(truth.label, pa.int8(), mask=censored),
            "reason": pa.array(truth.reason, pa.string()),
            "target_at": pa.array(
                np.where(never, 0, truth.target_at) * 1_000_000, pa.timestamp("us"), mask=never
            ),
        }
    )
