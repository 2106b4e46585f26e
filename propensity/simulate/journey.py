"""A task world lived week by week: windows, payments drawn from the hazard, then behaviour.

Each calendar week ``j`` (Monday ``a_j``): the events before ``a_j`` are binned, the hazard's
window at ``a_j`` is read, payments of week ``j`` are drawn from the logits read ``L`` weeks
earlier (see :mod:`propensity.simulate.hazard`), and only then the week's behaviour is drawn
(paying members use the product more). Behaviour never feeds the truth except through binned,
written events, so ``p_true`` depends on nothing a model could not see.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Literal

import numpy as np

from propensity.simulate.arrays import order_by
from propensity.simulate.behaviour import (
    Events,
    concat,
    derived_events,
    draw_codes,
    event_values,
    mix_logits,
)
from propensity.simulate.catalog import SEAT_ROLES, code
from propensity.simulate.conversion import NEVER
from propensity.simulate.hazard import HazardModel
from propensity.simulate.population import DAY, Population
from propensity.simulate.teams import Members, make_members
from propensity.simulate.weeks import WEEK, Grid, WeeklyBins, monday_on_or_before

__all__ = ["Journey", "Task", "TaskSettings", "live"]

Task = Literal["freemium", "account", "expansion"]


@dataclass(frozen=True)
class TaskSettings:
    """Times in epoch seconds; ``first`` drives first payments, ``expansion`` larger ones."""

    seed: int
    task: Task
    entities: int
    start: int
    end: int
    horizon_weeks: int
    first: HazardModel
    expansion: HazardModel | None = None


@dataclass(frozen=True)
class Journey:
    """A lived world: members, unique true events, and the target hazard's logits per Monday.

    ``logits[:, L + j]`` is the target hazard's logit read at Monday ``j`` (``L`` columns for the
    Mondays before the grid come first). Payment times may lie past the data end (not written).
    """

    members: Members
    grid: Grid
    bins: WeeklyBins
    events: Events
    logits: np.ndarray
    paid_at: np.ndarray  # per entity: first payment, NEVER when none
    seats: np.ndarray  # per entity: seats bought at the first payment
    expanded_at: np.ndarray  # per entity: first larger payment, NEVER when none
    expanded_seats: np.ndarray


def live(s: TaskSettings) -> Journey:
    """Simulate the world of ``s``; the random stream depends only on ``s``."""
    rng = np.random.default_rng([s.seed, 14])
    members = make_members(rng, s.entities, teams=s.task != "freemium", start=s.start, end=s.end)
    origin = monday_on_or_before(s.start)
    grid = Grid(origin, math.ceil((s.end - origin) / WEEK))
    lag = s.horizon_weeks - 1
    bins = WeeklyBins(members, grid)
    n_ent, pop = members.n_accounts, members.pop
    first_x = np.zeros((n_ent, lag + grid.weeks))
    target_x = np.zeros((n_ent, lag + grid.weeks))
    paid_at, expanded_at = np.full(n_ent, NEVER), np.full(n_ent, NEVER)
    seats, expanded_seats = np.zeros(n_ent, np.int64), np.zeros(n_ent, np.int64)
    payer = np.flatnonzero(members.inviter < 0)  # each account's first member, in account order
    pending, kept = [_join_events(rng, members)], []
    habit = np.zeros(len(pop))
    for j in range(-lag, grid.weeks):
        a = grid.monday(j)
        if j >= 0:
            batch, pending = _before(pending, a)
            bins.add(batch)
            kept.append(batch)
        w = bins.window(j, np.where(paid_at < a, seats, 0))
        first_x[:, lag + j] = s.first.logit(w)
        target_x[:, lag + j] = (s.expansion or s.first).logit(w)
        if j < 0:
            continue
        first_ent = np.full(n_ent, NEVER)
        np.minimum.at(first_ent, pop.account, bins.first_seen)
        when = a + 60 + (rng.random(n_ent) * (WEEK - 120)).astype(np.int64)
        new = (first_ent < a) & (paid_at == NEVER) & (rng.random(n_ent) < _sigmoid(first_x[:, j]))
        paid_at[new] = when[new]
        seats[new] = _joined_by(members, when)[new]
        bought = [Events(payer[new], np.full(new.sum(), code("subscription_started")),
                         when[new], np.full(new.sum(), -1))]  # fmt: skip
        if s.expansion is not None:
            when = a + 60 + (rng.random(n_ent) * (WEEK - 120)).astype(np.int64)
            risk = (paid_at < a) & (expanded_at == NEVER)
            grow = risk & (rng.random(n_ent) < _sigmoid(target_x[:, j]))
            expanded_at[grow] = when[grow]
            expanded_seats[grow] = np.maximum(_joined_by(members, when), seats + 1)[grow]
            bought.append(
                Events(payer[grow], np.full(grow.sum(), code("seat_added")), when[grow],
                       np.full(grow.sum(), -1))
            )  # fmt: skip
        week, habit = _week(rng, s, members, grid, j, habit, paid_at, seats)
        pending += [*bought, week]
    batch, _ = _before(pending, s.end)  # the last week's tail up to the data end
    bins.add(batch)
    events = concat([*kept, batch])
    return Journey(members, grid, bins, events, target_x, paid_at, seats, expanded_at,
                   expanded_seats)  # fmt: skip


def _week(
    rng: np.random.Generator,
    s: TaskSettings,
    members: Members,
    grid: Grid,
    j: int,
    habit: np.ndarray,
    paid_at: np.ndarray,
    seats: np.ndarray,
) -> tuple[Events, np.ndarray]:
    """Behaviour of the member-days that begin in week ``j`` (a member's day starts at signup)."""
    pop = members.pop
    a = grid.monday(j)
    first_d = np.maximum(-(-(a - pop.signup) // DAY), 0)
    stop_d = -(-(a + WEEK - pop.signup) // DAY)
    cells_u, cells_d = [], []
    habit = habit.copy()
    for k in range(7):
        d = first_d + k
        start = pop.signup + d * DAY
        valid = (d < stop_d) & (start < s.end)
        z = pop.intent + members.slope * d / 7
        paid = paid_at[pop.account] < start
        p = _sigmoid(-2.0 + 0.8 * z + 0.45 * habit + 0.9 * paid)
        on = valid & ((rng.random(len(pop)) < p) | (d == 0))
        habit = np.where(valid, 0.6 * habit + on, habit)
        cells_u.append(np.flatnonzero(on))
        cells_d.append(d[on])
    user, day = np.concatenate(cells_u), np.concatenate(cells_d)
    z_week = pop.intent + members.slope * first_d / 7
    ev, s_user, s_start = _sessions(rng, replace(pop, intent=z_week), user, day)
    parts = [ev, derived_events(rng, replace(pop, intent=z_week), ev)]
    if s.task != "freemium":
        parts[1] = _drop(parts[1], code("invite_accepted"))  # teams: joins make these
        parts.append(_team_signals(rng, members, s_user, s_start, z_week, paid_at, seats))
    return concat(parts), habit


def _sessions(
    rng: np.random.Generator, pop: Population, user: np.ndarray, day: np.ndarray
) -> tuple[Events, np.ndarray, np.ndarray]:
    """1-3 sessions hours apart on each active member-day, events minutes apart.

    Returns the events and each session's member and start.
    """
    z = pop.intent[user]
    n_s = 1 + np.minimum(rng.poisson(np.exp(-1.3 + 0.3 * z)), 2)
    s_user, s_day, s_n = np.repeat(user, n_s), np.repeat(day, n_s), np.repeat(n_s, n_s)
    slot = np.arange(len(s_user)) - np.repeat(np.cumsum(n_s) - n_s, n_s)
    width = DAY // s_n
    offset = slot * width + (rng.random(len(s_user)) * (width // 2)).astype(np.int64)
    first = (s_day == 0) & (slot == 0)
    offset[first] = rng.integers(5, 120, first.sum())
    s_start = pop.signup[s_user] + s_day * DAY + offset
    n_e = 1 + rng.poisson(np.exp(1.0 + 0.2 * pop.intent[s_user]))
    e_user, e_sess = np.repeat(s_user, n_e), np.repeat(np.arange(len(s_user)), n_e)
    pos = np.arange(len(e_user)) - np.repeat(np.cumsum(n_e) - n_e, n_e)
    gap = 1 + rng.exponential(90.0, len(e_user)).astype(np.int64)
    gap[pos == 0] = 0
    csum = np.cumsum(gap)
    ts = s_start[e_sess] + csum - np.repeat(csum[np.cumsum(n_e) - n_e], n_e)
    codes = draw_codes(rng, mix_logits(pop), e_user)
    opener = pos == 0
    codes[opener] = np.where(rng.random(opener.sum()) < 0.7, code("login"), code("page_view"))
    return Events(e_user, codes, ts, event_values(rng, codes)), s_user, s_start


def _team_signals(
    rng: np.random.Generator,
    members: Members,
    u: np.ndarray,
    t: np.ndarray,
    z: np.ndarray,
    paid_at: np.ndarray,
    seats: np.ndarray,
) -> Events:
    """Per session: admins look at billing, more once the team outgrew its seats (then limits
    are hit too)."""
    pop = members.pop
    acct = pop.account[u]
    paying = paid_at[acct] < t
    over = paying & (_joined_by(members, t, acct) > seats[acct])
    admin = members.seat_role[u] == SEAT_ROLES.index("admin")
    big = pop.team_size[u] >= 3
    bill = admin & (rng.random(len(u)) < _sigmoid(-3.6 + 0.5 * z[u] + 1.2 * over + 0.5 * big))
    limit = over & (rng.random(len(u)) < 0.25)
    codes = np.concatenate([np.full(bill.sum(), code("billing_viewed")),
                            np.full(limit.sum(), code("plan_limit_hit"))])  # fmt: skip
    lag = 30 + rng.integers(0, 600, len(codes))
    return Events(np.concatenate([u[bill], u[limit]]), codes,
                  np.concatenate([t[bill], t[limit]]) + lag, np.full(len(codes), -1))  # fmt: skip


def _join_events(rng: np.random.Generator, members: Members) -> Events:
    """Each teammate's invitation (by its inviter, before) and acceptance (at the join)."""
    joiner = np.flatnonzero(members.inviter >= 0)
    by = members.inviter[joiner]
    signup = members.pop.signup
    sent = signup[joiner] - 60 - rng.exponential(1.5 * DAY, len(joiner)).astype(np.int64)
    sent = np.maximum(sent, signup[by] + 150)
    codes = np.repeat([code("teammate_invited"), code("invite_accepted")], len(joiner))
    return Events(np.concatenate([by, by]), codes, np.concatenate([sent, signup[joiner]]),
                  np.full(2 * len(joiner), -1))  # fmt: skip


def _joined_by(members: Members, when: np.ndarray, acct: np.ndarray | None = None) -> np.ndarray:
    """Members of each account (or of ``acct``'s accounts) who joined at or before ``when``."""
    pop = members.pop
    if acct is None:
        return np.bincount(
            pop.account[pop.signup <= when[pop.account]], minlength=members.n_accounts
        )
    order = order_by(pop.account, pop.signup)
    keys = pop.account[order] * (1 << 40) + pop.signup[order]
    first = np.searchsorted(keys, acct * (1 << 40))
    return np.searchsorted(keys, acct * (1 << 40) + when, side="right") - first


def _before(pending: list[Events], t: int) -> tuple[Events, list[Events]]:
    """The unique events earlier than ``t`` (sorted by time, user, event) and the rest."""
    ev = concat(pending)
    early = ev.ts < t
    now = Events(*(getattr(ev, f)[early] for f in Events.__annotations__))
    later = Events(*(getattr(ev, f)[~early] for f in Events.__annotations__))
    order = order_by(now.ts, now.user, now.code)
    u, ts, c, v = now.user[order], now.ts[order], now.code[order], now.value[order]
    keep = np.ones(len(u), dtype=bool)
    keep[1:] = (u[1:] != u[:-1]) | (ts[1:] != ts[:-1]) | (c[1:] != c[:-1])
    return Events(u[keep], c[keep], ts[keep], v[keep]), [later]


def _drop(ev: Events, event_code: int) -> Events:
    keep = ev.code != event_code
    return Events(*(getattr(ev, f)[keep] for f in Events.__annotations__))


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-x))
