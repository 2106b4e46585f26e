"""One chunk of users simulated end to end: population, behaviour, truth, conversions.

The order matters: pre-cutoff behaviour is drawn first, the truth is computed from it, the
conversion is drawn from the truth, and only then the post-cutoff behaviour (which depends on
whether and when the user paid). So nothing after the cutoff can leak into ``p_true``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from propensity.simulate.arrays import order_by
from propensity.simulate.behaviour import (
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
    draw_conversions,
    draw_early_conversions,
    observe,
)
from propensity.simulate.population import DAY, KIND_BOT, KIND_USER, Population, make_population

__all__ = ["Chunk", "Settings", "simulate_chunk"]

_POST_DAYS = 30  # activity simulated beyond the horizon


@dataclass(frozen=True)
class Settings:
    """Times in epoch seconds and durations in seconds."""

    seed: int
    start: int
    end: int
    window: int
    horizon: int
    drift: float


@dataclass(frozen=True)
class Chunk:
    """A simulated chunk: users, their true events (unique, sorted by user then time), truth."""

    pop: Population
    events: Events
    cutoff: np.ndarray
    p_true: np.ndarray
    converted_at: np.ndarray  # NEVER when the user never pays


def simulate_chunk(settings: Settings, chunk: int, n: int, first_index: int) -> Chunk:
    """Simulate ``n`` users; the random stream depends only on (seed, chunk)."""
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
    cutoff = pop.signup + settings.window
    obs_days = -(-settings.window // DAY)
    last_day = obs_days + -(-settings.horizon // DAY) + _POST_DAYS
    intent = np.where(pop.kind == KIND_BOT, -50.0, pop.intent)  # the bot has no human sessions

    early = draw_early_conversions(rng, pop, settings.window)
    active, habit = activity(rng, intent, range(obs_days), np.zeros(n), _day(pop, early))
    active[pop.kind == KIND_BOT] = False
    primary = session_events(rng, pop, active, 0)
    parts = [primary, derived_events(rng, pop, primary)]
    parts += [bot_events(rng, pop, int(b)) for b in np.flatnonzero(pop.kind == KIND_BOT)]
    paid_early = np.flatnonzero(early != NEVER)
    parts.append(post_conversion_events(rng, pop, paid_early, early[paid_early]))
    before = _unique(concat(parts))

    first_ts = np.full(n, NEVER)
    np.minimum.at(first_ts, before.user, before.ts)
    p_true = TRUTH.probability(observe(pop, before, cutoff, first_ts))

    candidates = (pop.kind == KIND_USER) & (early == NEVER)
    later = draw_conversions(rng, p_true, cutoff, settings.horizon, candidates)
    converted_at = np.where(early != NEVER, early, later)

    active, _ = activity(rng, intent, range(obs_days, last_day), habit, _day(pop, converted_at))
    active[pop.kind == KIND_BOT] = False
    primary = session_events(rng, pop, active, obs_days)
    paid_late = np.flatnonzero(later != NEVER)
    after = concat(
        [
            primary,
            derived_events(rng, pop, primary),
            post_conversion_events(rng, pop, paid_late, later[paid_late]),
        ]
    )
    events = _unique(concat([before, after]))
    keep = events.ts < settings.end
    events = Events(*(getattr(events, f)[keep] for f in Events.__annotations__))
    return Chunk(pop, events, cutoff, p_true, converted_at)


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
