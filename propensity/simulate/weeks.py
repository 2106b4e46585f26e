"""What has been seen, binned by calendar week (Mondays), and the hazard's window read from it.

Events are added in batches that partition time (every event with a timestamp before a Monday
before any later one), so a window at a Monday reads exactly the events strictly before it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from propensity.simulate.behaviour import Events
from propensity.simulate.catalog import ALL_EVENTS, SEAT_ROLES, code
from propensity.simulate.conversion import NEVER
from propensity.simulate.hazard import (
    EMPTY_RECENCY_DAYS,
    HAZARD_EVENTS,
    WINDOW_WEEKS,
    Window,
    hazard_code_columns,
)
from propensity.simulate.population import DAY
from propensity.simulate.teams import Members

__all__ = ["WEEK", "Grid", "WeeklyBins", "monday_on_or_before"]

WEEK = 7 * DAY
_MONDAY_EPOCH = 4 * DAY  # 1970-01-05 was a Monday


def monday_on_or_before(ts: int) -> int:
    """The Monday midnight (UTC epoch seconds) on or before ``ts``.

    >>> monday_on_or_before(1_735_689_600)  # Wed 2025-01-01 -> Mon 2024-12-30
    1735516800
    """
    return ts - (ts - _MONDAY_EPOCH) % WEEK


@dataclass(frozen=True)
class Grid:
    """Calendar weeks from ``origin`` (a Monday); week ``j`` is ``[monday(j), monday(j + 1))``."""

    origin: int
    weeks: int

    def monday(self, j: int) -> int:
        """Epoch seconds of Monday ``j`` (negative ``j``: before the grid)."""
        return self.origin + j * WEEK


class WeeklyBins:
    """Per-entity weekly counts of what was seen, filled batch by batch in time order."""

    def __init__(self, members: Members, grid: Grid) -> None:
        n_ent, n_users = members.n_accounts, len(members.pop)
        self.members = members
        self.grid = grid
        self.counts = np.zeros((n_ent, grid.weeks, len(HAZARD_EVENTS)), dtype=np.int32)
        self.days = np.zeros((n_ent, grid.weeks), dtype=np.int32)
        self.billing = np.zeros((n_ent, grid.weeks), dtype=np.int32)
        self.user_active = np.zeros((n_users, grid.weeks), dtype=bool)
        self.entity_active = np.zeros((n_ent, grid.weeks), dtype=bool)
        self.first_seen = np.full(n_users, NEVER)
        self.last_seen = np.full(n_ent, np.iinfo(np.int64).min)
        self._cols = hazard_code_columns(len(ALL_EVENTS))

    def add(self, ev: Events) -> None:
        """Add a batch of unique events, all later than every event added before."""
        if not len(ev):
            return
        ent = self.members.pop.account[ev.user]
        week = (ev.ts - self.grid.origin) // WEEK
        col = self._cols[ev.code]
        read = col >= 0
        np.add.at(self.counts, (ent[read], week[read], col[read]), 1)
        day = (ev.ts - self.grid.origin) // DAY
        pairs = np.unique(ev.user * (1 << 20) + day)  # one per member-day
        user, day = pairs >> 20, pairs & ((1 << 20) - 1)
        np.add.at(self.days, (self.members.pop.account[user], day // 7), 1)
        admin = self.members.seat_role[ev.user] == SEAT_ROLES.index("admin")
        bill = admin & (ev.code == code("billing_viewed"))
        np.add.at(self.billing, (ent[bill], week[bill]), 1)
        self.user_active[ev.user, week] = True
        self.entity_active[ent, week] = True
        np.minimum.at(self.first_seen, ev.user, ev.ts)
        np.maximum.at(self.last_seen, ent, ev.ts)

    def window(self, j: int, seats: np.ndarray) -> Window:
        """The window at Monday ``j`` (may be before the grid: then nothing is seen yet).

        ``seats``: per entity, the seats paid for before that Monday (0 when not paying).
        """
        m = self.grid.monday(j)
        lo, hi = min(max(j - WINDOW_WEEKS, 0), self.grid.weeks), min(max(j, 0), self.grid.weeks)
        counts = self.counts[:, lo:hi].sum(axis=1)
        total = self.counts[:, lo:hi].sum(axis=2)
        last_week = total[:, -1] if hi > lo and hi == j else np.zeros(len(total), dtype=np.int64)
        pop = self.members.pop
        n_ent = self.members.n_accounts
        seen_user = self.first_seen < m
        first_ent = np.full(n_ent, NEVER)
        np.minimum.at(first_ent, pop.account, self.first_seen)
        seen = first_ent < m
        active_user = self.user_active[:, lo:hi].any(axis=1)
        members = np.bincount(pop.account[seen_user], minlength=n_ent)
        new = seen_user & (self.first_seen >= m - WINDOW_WEEKS * WEEK)
        paying = seats > 0
        acct_cls = np.zeros(n_ent, dtype=np.int64)
        acct_cls[pop.account] = pop.domain_class
        size = np.full(n_ent, np.nan)
        size[pop.account] = pop.company_size
        return Window(
            counts=counts,
            last_week=last_week,
            prior=total.sum(axis=1) - last_week,
            active_days=self.days[:, lo:hi].sum(axis=1),
            active_weeks=self.entity_active[:, :hi].sum(axis=1),
            tenure_weeks=np.where(seen, (m - np.where(seen, first_ent, m)) / WEEK, 0.0),
            days_since_last=np.where(
                seen, (m - np.where(seen, self.last_seen, m)) / DAY, EMPTY_RECENCY_DAYS
            ),
            active_members=np.bincount(pop.account[active_user], minlength=n_ent),
            new_members=np.bincount(pop.account[new], minlength=n_ent),
            admin_billing=self.billing[:, lo:hi].sum(axis=1),
            excess_seats=np.where(paying, np.maximum(members - seats, 0), 0),
            domain_class=acct_cls,
            company_size=size,
        )

    def active_within(self, j: int, lookback_weeks: int) -> np.ndarray:
        """Per entity, whether any member had an event in the ``lookback_weeks`` before Monday j."""
        lo, hi = max(j - lookback_weeks, 0), max(min(j, self.grid.weeks), 0)
        return self.entity_active[:, lo:hi].any(axis=1)
