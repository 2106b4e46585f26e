"""The known truth of the task worlds: a weekly hazard read from what was seen weeks earlier.

Time runs on a grid of calendar weeks starting on Mondays (:mod:`propensity.simulate.calendar`).
An entity (a user, or an account and its members) that has not yet reached the target converts
in week ``j`` with probability ``q_j = sigmoid(logit(window at Monday j - L))``, at a uniform time
inside that week, where ``L = horizon_weeks - 1``. So the hazard moves with behaviour, a few
weeks late, and every hazard inside ``[a, a + horizon)`` is already known at the anchor ``a``:

``p_true(entity, a) = 1 - prod(1 - q_j for the horizon's weeks)``

exactly, and it is a function of the events strictly before ``a`` (no hidden state). The
window at a Monday ``m`` reads the entity's events in ``[m - 28 days, m)`` (members summed):

``logit = intercept``
  ``+ sum(log_counts[e] * log1p(n_e))`` and ``sum(any_event[e] * [n_e > 0])``
  ``+ trend * (log1p(events in the last 7 days) - log1p(events in the 21 days before / 3))``
  ``+ active_days * log1p(member-days with an event)``
  ``+ active_weeks * log1p(weeks with an event since first seen, before m)``
  ``+ tenure * log1p(weeks since first seen)`` ``+ recency * log1p(days since the last event)``
  ``+ active_members * log1p(members with an event)`` ``+ new_members * log1p(members first
  seen in the window)`` ``+ admin_billing * [an admin viewed billing]``
  ``+ excess_seats * log1p(members seen minus seats paid, when paying)``
  ``+ domain[domain class] + log_company_size * log10(size)`` (or ``company_size_missing``)

An entity never seen before ``m`` has an empty window (tenure 0, recency as 28 days). Events
count once per (user, time, event); post-payment events (subscription, invoices, seats) are not
read. First seen is the first event, so a world without signup dates has the same truth.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType

import numpy as np

from propensity.simulate.catalog import DOMAIN_CLASSES, TEAM_EVENTS, TRIAL_EVENTS, code

__all__ = ["ACCOUNT", "EXPANSION", "FREEMIUM", "HAZARD_EVENTS", "HazardModel", "Window"]

# The events a window counts: the product's own, never the post-payment ones.
HAZARD_EVENTS: tuple[str, ...] = TRIAL_EVENTS + TEAM_EVENTS
WINDOW_WEEKS = 4
EMPTY_RECENCY_DAYS = 28.0


@dataclass(frozen=True)
class Window:
    """What the hazard reads per entity at one Monday (arrays over entities)."""

    counts: np.ndarray  # entities x HAZARD_EVENTS, last 4 weeks
    last_week: np.ndarray  # counted events in the last 7 days
    prior: np.ndarray  # counted events in the 21 days before those
    active_days: np.ndarray  # member-days with an event, last 4 weeks
    active_weeks: np.ndarray  # weeks with an event, lifetime
    tenure_weeks: np.ndarray  # since first seen (0 when never seen)
    days_since_last: np.ndarray  # EMPTY_RECENCY_DAYS when never seen
    active_members: np.ndarray
    new_members: np.ndarray
    admin_billing: np.ndarray  # billing_viewed by an admin, last 4 weeks
    excess_seats: np.ndarray  # members seen beyond the seats paid for; 0 when not paying
    domain_class: np.ndarray
    company_size: np.ndarray  # NaN when unknown


def _ro(**weights: float) -> MappingProxyType[str, float]:
    return MappingProxyType(weights)


@dataclass(frozen=True)
class HazardModel:
    """Weights of the weekly hazard (see the module docstring); zero weights read nothing."""

    intercept: float
    log_counts: MappingProxyType[str, float] = field(default_factory=_ro)
    any_event: MappingProxyType[str, float] = field(default_factory=_ro)
    trend: float = 0.0
    active_days: float = 0.0
    active_weeks: float = 0.0
    tenure: float = 0.0
    recency: float = 0.0
    active_members: float = 0.0
    new_members: float = 0.0
    admin_billing: float = 0.0
    excess_seats: float = 0.0
    domain: MappingProxyType[str, float] = field(
        default_factory=lambda: _ro(
            free_mail=-0.4, corporate=0.2, enterprise=0.5, education=-0.6, internal=0.0
        )
    )
    log_company_size: float = 0.12
    company_size_missing: float = -0.15

    def logit(self, w: Window) -> np.ndarray:
        """The weekly hazard's logit for every entity of ``w``."""
        x = np.full(len(w.tenure_weeks), self.intercept)
        for e, wt in self.log_counts.items():
            x += wt * np.log1p(w.counts[:, HAZARD_EVENTS.index(e)])
        for e, wt in self.any_event.items():
            x += wt * (w.counts[:, HAZARD_EVENTS.index(e)] > 0)
        x += self.trend * (np.log1p(w.last_week) - np.log1p(w.prior / 3))
        x += self.active_days * np.log1p(w.active_days)
        x += self.active_weeks * np.log1p(w.active_weeks)
        x += self.tenure * np.log1p(w.tenure_weeks)
        x += self.recency * np.log1p(w.days_since_last)
        x += self.active_members * np.log1p(w.active_members)
        x += self.new_members * np.log1p(w.new_members)
        x += self.admin_billing * (w.admin_billing > 0)
        x += self.excess_seats * np.log1p(w.excess_seats)
        x += np.array([self.domain[d] for d in DOMAIN_CLASSES])[w.domain_class]
        known = ~np.isnan(w.company_size)
        size = np.log10(np.where(known, w.company_size, 1.0))
        return x + np.where(known, self.log_company_size * size, self.company_size_missing)


# Free users: depth of use, its trend, and buying signals; long-idle free users rarely pay.
FREEMIUM = HazardModel(
    intercept=-6.4,
    log_counts=_ro(doc_created=0.25, doc_shared=0.35, export_done=0.3, teammate_invited=0.4),
    any_event=_ro(pricing_viewed=0.7, plan_limit_hit=0.4, integration_connected=0.5),
    trend=0.35,
    active_days=0.35,
    active_weeks=0.2,
    tenure=-0.3,
    recency=-0.3,
)
# Teams: adoption across members and an admin looking at billing.
ACCOUNT = HazardModel(
    intercept=-6.6,
    log_counts=_ro(doc_shared=0.25, export_done=0.2, invite_accepted=0.35),
    any_event=_ro(pricing_viewed=0.5, plan_limit_hit=0.3, integration_connected=0.4),
    trend=0.3,
    active_days=0.2,
    tenure=-0.25,
    recency=-0.3,
    active_members=0.6,
    new_members=0.4,
    admin_billing=0.9,
)
# Paying teams outgrowing their plan: seats beyond the plan, limits hit, billing viewed.
EXPANSION = HazardModel(
    intercept=-5.6,
    log_counts=_ro(invite_accepted=0.3),
    any_event=_ro(plan_limit_hit=0.6),
    trend=0.3,
    active_days=0.1,
    recency=-0.25,
    active_members=0.3,
    new_members=0.35,
    admin_billing=0.7,
    excess_seats=0.9,
)


def hazard_code_columns(n_codes: int) -> np.ndarray:
    """Column of each event code in ``Window.counts`` (-1 for events the hazard never reads)."""
    cols = np.full(n_codes, -1, dtype=np.int64)
    for i, e in enumerate(HAZARD_EVENTS):
        cols[code(e)] = i
    return cols
