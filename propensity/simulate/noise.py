"""What a real export adds on top of the true events: exact duplicates and anonymous events.

Bots and internal test users are part of the population (see ``population``); post-conversion
events are part of behaviour. Noise never touches the true events, so the truth can be
recomputed from the written files by dropping exact duplicates and rows without a user.
"""

from __future__ import annotations

import numpy as np

from propensity.simulate.arrays import order_by
from propensity.simulate.behaviour import Events
from propensity.simulate.catalog import code

__all__ = ["ANONYMOUS", "DUPLICATE_RATE", "MISSING_ID_RATE", "add_noise"]

ANONYMOUS = -1  # user index of an event without a user id
DUPLICATE_RATE = 0.01  # share of events sent twice by a retrying tracker
MISSING_ID_RATE = 0.004  # anonymous visitors, as a share of events


def add_noise(
    rng: np.random.Generator, ev: Events, start: int, end: int, day_only: bool = False
) -> Events:
    """Return the export rows: the events, some twice, plus anonymous ones, ordered by time.

    A day-only export has no retry duplicates (they could not be told from real repeats), and
    its anonymous events sit at midnight too.
    """
    n = len(ev)
    twice = np.flatnonzero(rng.random(n) < (0.0 if day_only else DUPLICATE_RATE))
    k = rng.binomial(n, MISSING_ID_RATE) if n else 0
    anon_codes = rng.choice(
        [code("page_view"), code("pricing_viewed"), code("help_viewed")], k, p=[0.8, 0.1, 0.1]
    )
    anon_ts = rng.integers(start, end, k)
    if day_only:
        anon_ts = anon_ts // 86_400 * 86_400
    rows = Events(
        np.concatenate([ev.user, ev.user[twice], np.full(k, ANONYMOUS)]),
        np.concatenate([ev.code, ev.code[twice], anon_codes]),
        np.concatenate([ev.ts, ev.ts[twice], anon_ts]),
        np.concatenate([ev.value, ev.value[twice], np.full(k, -1)]),
    )
    # Exports come in time order; rows that tie on all three keys are identical.
    order = order_by(rows.ts, rows.user, rows.code)
    return Events(*(getattr(rows, f)[order] for f in Events.__annotations__))
