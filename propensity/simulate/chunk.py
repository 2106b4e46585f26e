"""One chunk of users simulated end to end: population, behaviour, truth, conversions.

The order matters: pre-cutoff behaviour is drawn first, the truth is computed from it, the
conversion is drawn from the truth, and only then the post-cutoff behaviour (which depends on
whether and when the user paid). So nothing after the cutoff can leak into ``p_true``.

In a day-only world (``Settings.day_only``) signups, events and payments are moved to the
midnight of their day before the truth reads them, so the truth is a function of exactly the
timestamps that are written.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from propensity.simulate.arrays import order_by
from propensity.simulate.behaviour import (
    TRIAL_DAYS,
    Events,
    activity,
    bot_events,
    concat,
    derived_events,
    post_conversion_events,
    session_events,
)
from propensity.simulate.conversion import (
    NEVER,
    TRUTH,
    TruthModel,
    draw_conversions,
    draw_early_conversions,
    observe,
)
from propensity.simulate.population import DAY, KIND_BOT, KIND_USER, Population, make_population

__all__ = ["Chunk", "Settings", "eligible_logits", "on_days", "simulate_chunk"]

_POST_DAYS = 30  # activity simulated beyond the horizon


@dataclass(frozen=True)
class Settings:
    """Times in epoch seconds and durations in seconds; the rest shapes the world."""

    seed: int
    start: int
    end: int
    window: int
    horizon: int
    drift: float
    trial_days: int = TRIAL_DAYS
    day_only: bool = False
    tail_events: int = 0
    truth: TruthModel = TRUTH


@dataclass(frozen=True)
class Chunk:
    """A simulated chunk: users, their true events (unique, sorted by user then time), truth."""

    pop: Population
    events: Events
    cutoff: np.ndarray
    p_true: np.ndarray
    converted_at: np.ndarray  # NEVER when the user never pays


@dataclass(frozen=True)
class _Before:
    """The chunk up to the cutoff: what the truth reads, and the random stream to go on with."""

    rng: np.random.Generator
    pop: Population
    cutoff: np.ndarray
    early: np.ndarray
    habit: np.ndarray
    before: Events
    intent: np.ndarray
    obs_days: int


def simulate_chunk(settings: Settings, chunk: int, n: int, first_index: int) -> Chunk:
    """Simulate ``n`` users; the random stream depends only on (seed, chunk)."""
    b = _before_cutoff(settings, chunk, n, first_index)
    rng, pop, cutoff, early = b.rng, b.pop, b.cutoff, b.early
    p_true = settings.truth.probability(_signals(b, settings))

    candidates = (pop.kind == KIND_USER) & (early == NEVER)
    later = draw_conversions(rng, p_true, cutoff, settings.horizon, candidates)
    if settings.day_only:
        later = on_days(later, cutoff, settings.horizon)
    converted_at = np.where(early != NEVER, early, later)

    last_day = b.obs_days + -(-settings.horizon // DAY) + _POST_DAYS
    active, _ = activity(
        rng,
        b.intent,
        range(b.obs_days, last_day),
        b.habit,
        _day(pop, converted_at),
        settings.trial_days,
    )
    active[pop.kind == KIND_BOT] = False
    primary = session_events(rng, pop, active, b.obs_days, settings.tail_events)
    paid_late = np.flatnonzero(later != NEVER)
    after = concat(
        [
            primary,
            derived_events(rng, pop, primary),
            post_conversion_events(rng, pop, paid_late, later[paid_late]),
        ]
    )
    events = _unique(concat([b.before, after]))
    if settings.day_only:
        events = _midnights(events)
    keep = events.ts < settings.end
    events = Events(*(getattr(events, f)[keep] for f in Events.__annotations__))
    return Chunk(pop, events, cutoff, p_true, converted_at)


def eligible_logits(settings: Settings, chunk: int, n: int, first_index: int) -> np.ndarray:
    """The truth's logits of the users of a chunk who can convert after their cutoff.

    Replays the chunk's random stream up to the cutoff, so a base-rate target can be met by
    shifting the intercept (see ``intercept_for_base_rate``) before any conversion is drawn.
    """
    b = _before_cutoff(settings, chunk, n, first_index)
    logit = settings.truth.logit(_signals(b, settings))
    return logit[(b.pop.kind == KIND_USER) & (b.early == NEVER)]


def on_days(at: np.ndarray, cutoff: np.ndarray, horizon: int) -> np.ndarray:
    """Payment times moved to a midnight, never onto a window's edge.

    Before the cutoff: the midnight of the day. After it: ``cutoff + k days`` with ``k`` the
    days rounded up, and a payment that would land exactly on ``cutoff + horizon`` stays a day
    inside it, so the label means the same on days as on seconds.

    >>> on_days(np.array([100, 86_400 * 10 + 5, NEVER]), np.full(3, 86_400 * 7), 2 * 86_400)
    array([                  0,              950400, 9223372036854775807])
    """
    out = at.copy()
    paid = at != NEVER
    early = paid & (at < cutoff)
    out[early] = at[early] // DAY * DAY
    later = paid & (at >= cutoff)
    k = -(-(at[later] - cutoff[later]) // DAY)
    k = np.where(k == horizon // DAY, k - 1, np.maximum(k, 1))
    out[later] = cutoff[later] + k * DAY
    return out


def _before_cutoff(settings: Settings, chunk: int, n: int, first_index: int) -> _Before:
    rng = np.random.default_rng([settings.seed, chunk])
    pop = make_population(
        rng,
        n,
        first_index=first_index,
        chunk=chunk,
        start=settings.start,
        end=settings.end,
        drift=settings.drift,
    )
    if settings.day_only:
        pop = replace(pop, signup=pop.signup // DAY * DAY)
    cutoff = pop.signup + settings.window
    obs_days = -(-settings.window // DAY)
    intent = np.where(pop.kind == KIND_BOT, -50.0, pop.intent)  # the bot has no human sessions

    early = draw_early_conversions(rng, pop, settings.window)
    if settings.day_only:
        early = on_days(early, cutoff, settings.horizon)
    active, habit = activity(
        rng, intent, range(obs_days), np.zeros(n), _day(pop, early), settings.trial_days
    )
    active[pop.kind == KIND_BOT] = False
    primary = session_events(rng, pop, active, 0, settings.tail_events)
    parts = [primary, derived_events(rng, pop, primary)]
    parts += [bot_events(rng, pop, int(b)) for b in np.flatnonzero(pop.kind == KIND_BOT)]
    paid_early = np.flatnonzero(early != NEVER)
    parts.append(post_conversion_events(rng, pop, paid_early, early[paid_early]))
    before = _unique(concat(parts))
    return _Before(rng, pop, cutoff, early, habit, before, intent, obs_days)


def _signals(b: _Before, settings: Settings):  # type: ignore[no-untyped-def]
    """What the truth reads: the pre-cutoff events as they will be written."""
    seen = _midnights(b.before) if settings.day_only else b.before
    first_ts = np.full(len(b.pop), NEVER)
    np.minimum.at(first_ts, seen.user, seen.ts)
    return observe(b.pop, seen, b.cutoff, first_ts)


def _day(pop: Population, at: np.ndarray) -> np.ndarray:
    """Day index (since signup) of a payment, or a day that never comes."""
    return np.where(at == NEVER, 1 << 40, (at - pop.signup) // DAY)


def _unique(ev: Events) -> Events:
    """Sort by user, time, event and keep one of each (user, time, event)."""
    order = order_by(ev.user, ev.ts, ev.code)
    u, t, c = ev.user[order], ev.ts[order], ev.code[order]
    keep = np.ones(len(u), dtype=bool)
    keep[1:] = (u[1:] != u[:-1]) | (t[1:] != t[:-1]) | (c[1:] != c[:-1])
    return Events(u[keep], c[keep], t[keep], ev.value[order][keep])


def _midnights(ev: Events) -> Events:
    """Every event at the midnight of its day, all rows kept (same-day repeats are real)."""
    ts = ev.ts // DAY * DAY
    order = order_by(ev.user, ts, ev.code)
    return Events(ev.user[order], ev.code[order], ts[order], ev.value[order])
