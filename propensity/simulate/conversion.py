"""The known truth: a conversion probability that is a function of pre-cutoff observables only.

The formula, written out so a test can recompute it from the written files (``TRUTH`` holds the
weights). For a user with signup ``s`` and cutoff ``c``, using their events with ``t < c``
(exact duplicates counted once; every event type, post-conversion ones included):

``logit = intercept``
  ``+ sum(log_counts[e] * log1p(n_e))`` over ``log_counts``
  ``+ invite_accepted * min(n_invite_accepted, invite_accepted_cap)``
  ``+ sum(any_event[e] * [n_e > 0])`` over ``any_event``
  ``+ active_days * #distinct floor((t - s) / 1 day)``
  ``+ recency * log1p(hours from the last event to c)`` (the window's hours if none)
  ``+ limit_then_pricing * [a pricing_viewed strictly after the first plan_limit_hit]``
  ``+ share_then_accept * [an invite_accepted at t2 and a doc_shared at t1, 0 < t2 - t1 <= 48h]``
  ``+ account_active * log1p(other users of the account with any event before c)``
  ``+ domain[domain_class(email domain)]``
  ``+ log_company_size * log10(company_size)`` (or ``company_size_missing`` when unknown)
  ``+ role[role] + channel[channel]``
  ``+ sum(w * [role == r] * [n_e > 0])`` over ``role_any_event`` ``(r, e, w)``
  ``+ role_limit_then_pricing[role] * [limit then pricing]``

``p_true = 1 / (1 + exp(-logit))``. The vanity ``message_sent``, ``page_view`` and the latent
intent have no weight: they only travel with the behaviours that do.

Other world shapes use the same formula with other weights (:func:`world_truth`): a shifted
intercept for another base rate, and small ``log_counts`` weights on a few long-tail events. In
a day-only world every timestamp is a midnight and every written row counts (there are no
retry duplicates to drop: a day-only export cannot tell them from real repeats).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from types import MappingProxyType

import numpy as np

from propensity.simulate.behaviour import Events
from propensity.simulate.catalog import CHANNELS, DOMAIN_CLASSES, EVENTS, ROLES, TAIL_EVENTS, code
from propensity.simulate.population import DAY, KIND_INTERNAL, KIND_USER, Population

__all__ = [
    "EDGE",
    "LATE_MEAN",
    "LATE_SHARE",
    "NEVER",
    "SHARE_ACCEPT_WINDOW",
    "TAIL_TRUTH",
    "TRUTH",
    "Signals",
    "TruthModel",
    "WITHIN_BETA",
    "draw_conversions",
    "draw_early_conversions",
    "intercept_for_base_rate",
    "observe",
    "world_truth",
]

NEVER = np.iinfo(np.int64).max  # converted_at of a user who never pays
# When a candidate pays (draw_conversions; propensity.simulate.expect reads the same numbers):
# within the horizon at cutoff + EDGE + Beta(WITHIN_BETA) x (horizon - 2 EDGE); otherwise, with
# probability LATE_SHARE x p_true, at cutoff + horizon + EDGE + Exponential(LATE_MEAN).
EDGE = 60
WITHIN_BETA = (1.1, 2.2)
LATE_SHARE = 0.4
LATE_MEAN = 20 * DAY
SHARE_ACCEPT_WINDOW = 48 * 3600


def _ro(**weights: float) -> MappingProxyType[str, float]:
    return MappingProxyType(weights)


@dataclass(frozen=True)
class TruthModel:
    """The weights of the conversion formula (see the module docstring)."""

    intercept: float = -5.0
    log_counts: MappingProxyType[str, float] = field(
        default_factory=lambda: _ro(
            doc_created=0.25,
            doc_shared=0.35,
            comment_added=0.15,
            teammate_invited=0.5,
            export_done=0.3,
        )
    )
    invite_accepted: float = 0.35
    invite_accepted_cap: int = 3
    any_event: MappingProxyType[str, float] = field(
        default_factory=lambda: _ro(
            integration_connected=0.6, plan_limit_hit=0.3, pricing_viewed=0.5
        )
    )
    active_days: float = 0.22
    recency: float = -0.25
    limit_then_pricing: float = 0.9
    share_then_accept: float = 0.7
    account_active: float = 0.45
    domain: MappingProxyType[str, float] = field(
        default_factory=lambda: _ro(
            free_mail=-0.4, corporate=0.2, enterprise=0.5, education=-0.6, internal=0.0
        )
    )
    log_company_size: float = 0.12
    company_size_missing: float = -0.15
    role: MappingProxyType[str, float] = field(
        default_factory=lambda: _ro(
            engineer=0.0, manager=0.15, designer=-0.1, student=-0.6, founder=0.3
        )
    )
    channel: MappingProxyType[str, float] = field(
        default_factory=lambda: _ro(organic=0.0, paid_search=-0.2, referral=0.25, partner=0.15)
    )
    role_any_event: tuple[tuple[str, str, float], ...] = (
        ("manager", "teammate_invited", 0.4),
        ("engineer", "integration_connected", 0.4),
        ("student", "pricing_viewed", -0.5),
    )
    role_limit_then_pricing: MappingProxyType[str, float] = field(
        default_factory=lambda: _ro(founder=0.5)
    )

    def logit(self, s: Signals) -> np.ndarray:
        """The formula's logit for every user of ``s``."""
        n = s.counts
        x = np.full(len(n), self.intercept)
        for e, w in self.log_counts.items():
            x += w * np.log1p(n[:, code(e)])
        accepted = np.minimum(n[:, code("invite_accepted")], self.invite_accepted_cap)
        x += self.invite_accepted * accepted
        for e, w in self.any_event.items():
            x += w * (n[:, code(e)] > 0)
        x += self.active_days * s.active_days
        x += self.recency * np.log1p(s.hours_since_last)
        x += self.limit_then_pricing * s.limit_then_pricing
        x += self.share_then_accept * s.share_then_accept
        x += self.account_active * np.log1p(s.account_active)
        x += np.array([self.domain[d] for d in DOMAIN_CLASSES])[s.domain_class]
        known = ~np.isnan(s.company_size)
        size = np.log10(np.where(known, s.company_size, 1.0))
        x += np.where(known, self.log_company_size * size, 0.0)
        x += np.where(known, 0.0, self.company_size_missing)
        x += np.array([self.role[r] for r in ROLES])[s.role]
        x += np.array([self.channel[c] for c in CHANNELS])[s.channel]
        for r, e, w in self.role_any_event:
            x += w * ((s.role == ROLES.index(r)) & (n[:, code(e)] > 0))
        for r, w in self.role_limit_then_pricing.items():
            x += w * ((s.role == ROLES.index(r)) & s.limit_then_pricing)
        return x

    def probability(self, s: Signals) -> np.ndarray:
        """``p_true`` for every user of ``s``."""
        return 1 / (1 + np.exp(-self.logit(s)))


TRUTH = TruthModel()
# Popularity rank of a tail event -> its (small) weight on log1p(count); every other is vanity.
TAIL_TRUTH: MappingProxyType[int, float] = MappingProxyType(
    {2: 0.15, 5: 0.12, 9: 0.1, 14: 0.1, 25: 0.08, 40: 0.12}
)


def world_truth(tail_events: int = 0, intercept: float | None = None) -> TruthModel:
    """The formula of a world: ``TRUTH`` plus weak tail weights and, if given, an intercept.

    >>> world_truth() == TRUTH, world_truth(10).log_counts["theme_exported"]
    (True, 0.12)
    """
    tail = {TAIL_EVENTS[r]: w for r, w in TAIL_TRUTH.items() if r < tail_events}
    model = replace(TRUTH, log_counts=MappingProxyType({**TRUTH.log_counts, **tail}))
    if intercept is not None:
        model = replace(model, intercept=intercept)
    return model if (tail or intercept is not None) else TRUTH


def intercept_for_base_rate(logits: np.ndarray, intercept: float, base_rate: float) -> float:
    """The intercept that makes the mean ``p_true`` of ``logits`` equal ``base_rate``.

    ``logits`` were computed with ``intercept``; bisection on the shift, rounded to 4 decimals
    (the truth then uses exactly that rounded number).
    """
    lo, hi = -15.0, 15.0
    for _ in range(80):
        mid = (lo + hi) / 2
        if np.mean(1 / (1 + np.exp(-(logits + mid)))) < base_rate:
            lo = mid
        else:
            hi = mid
    return round(intercept + (lo + hi) / 2, 4)


@dataclass(frozen=True)
class Signals:
    """What the formula reads, per user of a chunk (arrays in population order)."""

    counts: np.ndarray  # int64 users x EVENTS, pre-cutoff
    active_days: np.ndarray
    hours_since_last: np.ndarray
    limit_then_pricing: np.ndarray  # bool
    share_then_accept: np.ndarray  # bool
    account_active: np.ndarray  # other users of the account active before the cutoff
    domain_class: np.ndarray
    company_size: np.ndarray
    role: np.ndarray
    channel: np.ndarray


def observe(pop: Population, ev: Events, cutoff: np.ndarray, first_ts: np.ndarray) -> Signals:
    """Compute the formula's signals from the events strictly before each user's cutoff.

    ``ev`` must hold no exact duplicates; ``first_ts`` is each user's first event time.
    """
    # the core vocabulary, widened when a world logs long-tail events (codes after EVENTS)
    n_codes = max(len(EVENTS), int(ev.code.max()) + 1 if len(ev) else 0)
    n_users = len(pop)
    pre = ev.ts < cutoff[ev.user]
    u, c, t = ev.user[pre], ev.code[pre], ev.ts[pre]
    counts = np.bincount(u * n_codes + c, minlength=n_users * n_codes).reshape(n_users, n_codes)
    day_key = np.unique(u * 1_000_000 + (t - pop.signup[u]) // DAY)
    active_days = np.bincount(day_key // 1_000_000, minlength=n_users)
    last = np.full(n_users, np.iinfo(np.int64).min)
    np.maximum.at(last, u, t)
    window_hours = (cutoff - pop.signup) / 3600
    hours_since_last = np.where(counts.sum(axis=1) > 0, (cutoff - last) / 3600, window_hours)

    is_limit = c == code("plan_limit_hit")
    first_limit = np.full(n_users, NEVER)
    np.minimum.at(first_limit, u[is_limit], t[is_limit])
    is_pricing = c == code("pricing_viewed")
    after = is_pricing & (t > first_limit[u])
    limit_then_pricing = np.bincount(u[after], minlength=n_users) > 0

    shared = np.sort(_key(u, t)[c == code("doc_shared")])
    acc = c == code("invite_accepted")
    lo = np.searchsorted(shared, _key(u[acc], t[acc] - SHARE_ACCEPT_WINDOW), side="left")
    hi = np.searchsorted(shared, _key(u[acc], t[acc]), side="left")
    share_then_accept = np.bincount(u[acc][hi > lo], minlength=n_users) > 0

    return Signals(
        counts=counts,
        active_days=active_days,
        hours_since_last=hours_since_last,
        limit_then_pricing=limit_then_pricing,
        share_then_accept=share_then_accept,
        account_active=_account_active(pop.account, first_ts, cutoff),
        domain_class=pop.domain_class,
        company_size=pop.company_size,
        role=pop.role,
        channel=pop.channel,
    )


def draw_early_conversions(rng: np.random.Generator, pop: Population, window: int) -> np.ndarray:
    """Who pays before the cutoff (already customers, internal test purchases), else NEVER."""
    n = len(pop)
    at = np.full(n, NEVER)
    lo, hi = min(6 * 3600, window // 4), window - min(3600, window // 4)
    early = (pop.kind == KIND_USER) & (rng.random(n) < 1 / (1 + np.exp(5.2 - 0.9 * pop.intent)))
    at[early] = pop.signup[early] + rng.integers(lo, max(hi, lo + 1), early.sum())
    test = (pop.kind == KIND_INTERNAL) & (rng.random(n) < 0.3)
    at[test] = pop.signup[test] + rng.integers(3600, 20 * DAY, test.sum())
    return at


def draw_conversions(
    rng: np.random.Generator,
    p_true: np.ndarray,
    cutoff: np.ndarray,
    horizon: int,
    candidates: np.ndarray,
) -> np.ndarray:
    """Payment times of ``candidates``: within the horizon with probability ``p_true``, else
    sometimes later (after the horizon), else NEVER. Never exactly on a window's edge."""
    n = len(p_true)
    u = rng.random(n)
    within = candidates & (u < p_true)
    late = candidates & ~within & (rng.random(n) < LATE_SHARE * p_true)
    span = max(horizon - 2 * EDGE, 1)
    at = np.full(n, NEVER)
    delay = (rng.beta(*WITHIN_BETA, within.sum()) * span).astype(np.int64)
    at[within] = cutoff[within] + EDGE + delay
    late_delay = rng.exponential(LATE_MEAN, late.sum()).astype(np.int64)
    at[late] = cutoff[late] + horizon + EDGE + late_delay
    return at


def _key(user: np.ndarray, ts: np.ndarray) -> np.ndarray:
    return user.astype(np.int64) * (1 << 32) + ts


def _account_active(account: np.ndarray, first_ts: np.ndarray, cutoff: np.ndarray) -> np.ndarray:
    """Per user, the other users of the same account whose first event is before its cutoff."""
    order = np.argsort(account, kind="stable")
    sizes = np.bincount(account)
    starts = np.cumsum(sizes) - sizes
    own = sizes[account[order]]
    me = np.repeat(order, own)
    pos = np.arange(len(me)) - np.repeat(np.cumsum(own) - own, own)
    other = order[np.repeat(starts[account[order]], own) + pos]
    hit = (other != me) & (first_ts[other] < cutoff[me])
    return np.bincount(me[hit], minlength=len(account))
