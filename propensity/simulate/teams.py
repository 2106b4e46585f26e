"""Who uses the product in the task worlds: accounts whose members join over time.

A freemium world has accounts of one (each user is the entity). In the account and expansion
worlds an account starts with its admin; teammates join later, each one invited by a member a
day or two before joining, at a pace set by the account's hidden growth. Members who would join
after the data end never exist. Intent drifts week by week (``slope``), so behaviour, and with it
the chance to pay, moves over an entity's life.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from propensity.simulate.catalog import (
    CHANNELS,
    CORPORATE_WORDS,
    ENTERPRISE_DOMAINS,
    FREE_MAIL_DOMAINS,
    SEAT_ROLES,
)
from propensity.simulate.population import DAY, KIND_USER, Population

__all__ = ["Members", "make_members"]

_FREE, _CORP, _ENT, _EDU = range(4)
_TYPE_SHARE = np.array([0.40, 0.40, 0.08, 0.12])
_TYPE_INTENT = np.array([-0.25, 0.20, 0.35, -0.45])
# Chance that one more teammate joins, per company type (geometric team sizes).
_GROW = np.array([0.35, 0.70, 0.78, 0.45])
_ROLE_P = np.array([0.35, 0.25, 0.20, 0.10, 0.10])  # engineer, manager, designer, student, founder
_MAX_TEAM = 30


@dataclass(frozen=True)
class Members:
    """The users of a task world (``pop``), their seat roles and weekly intent drift."""

    pop: Population
    seat_role: np.ndarray  # int64 code into SEAT_ROLES
    slope: np.ndarray  # float64 change of intent per week since signup
    inviter: np.ndarray  # int64 user index who invited this member, -1 for an account's first
    n_accounts: int


def make_members(
    rng: np.random.Generator, n_accounts: int, *, teams: bool, start: int, end: int
) -> Members:
    """Draw ``n_accounts`` accounts created in ``[start, end)`` and their members until ``end``.

    >>> m = make_members(np.random.default_rng(1), 50, teams=True, start=0, end=90 * DAY)
    >>> bool((m.pop.signup < 90 * DAY).all()), m.n_accounts
    (True, 50)
    """
    ctype = np.minimum((rng.random(n_accounts)[:, None] > np.cumsum(_TYPE_SHARE)).sum(1), 3)
    created = rng.integers(start, end - min(7 * DAY, (end - start) // 2), n_accounts)
    growth = 0.6 * rng.standard_normal(n_accounts)  # hidden: how fast the team grows
    company_z = 0.5 * growth + 0.85 * rng.standard_normal(n_accounts)
    if teams:
        extra = np.minimum(rng.geometric(1 - _GROW[ctype] * 0.97) - 1, _MAX_TEAM - 1)
    else:
        extra = np.zeros(n_accounts, dtype=np.int64)
    size = 1 + extra
    account = np.repeat(np.arange(n_accounts), size)
    rank = np.arange(len(account)) - np.repeat(np.cumsum(size) - size, size)
    gaps = rng.exponential(12 * DAY / np.exp(growth[account]))
    gaps += 3600  # an invite goes out before its teammate can join
    gaps[rank == 0] = 0
    joined = created[account] + _cumsum_by(gaps, size).astype(np.int64)
    keep = joined < end
    account, rank, joined = account[keep], rank[keep], joined[keep]
    n = len(account)

    seat_role = np.where(rank == 0, 0, np.where(rng.random(n) < 0.8, 1, 2))
    seat_role[(rank > 0) & (rng.random(n) < 0.08)] = SEAT_ROLES.index("admin")
    first = np.flatnonzero(rank == 0)
    inviter = np.where(rank == 0, -1, first[account] if n else 0)
    role = np.minimum((rng.random(n)[:, None] > np.cumsum(_ROLE_P)).sum(1), 4).astype(np.int64)
    ut = ctype[account]
    intent = (
        company_z[account]
        + 0.85 * rng.standard_normal(n)
        + _TYPE_INTENT[ut]
        + 0.3 * (seat_role == 0)
    )
    slope = rng.normal(-0.05, 0.07, n)
    domain = _domains(rng, ctype)
    csize = np.full(n_accounts, np.nan)
    for t, lo, hi, known in ((_CORP, 0.7, 3.0, 0.85), (_ENT, 3.3, 5.0, 0.9), (_FREE, 0, 1.5, 0.3)):
        m = (ctype == t) & (rng.random(n_accounts) < known)
        csize[m] = np.round(10 ** rng.uniform(lo, hi, m.sum()))
    channel = np.where(rank > 0, CHANNELS.index("referral"), rng.integers(0, 4, n))
    index = np.arange(n)
    pop = Population(
        user_id=np.array([f"u{i:08d}" for i in index], dtype=object),
        email=np.array(
            [f"user{i:08d}@{domain[a]}" for i, a in zip(index, account, strict=True)], dtype=object
        ),
        account_id=np.array([f"a{a:07d}" for a in account], dtype=object),
        account=account.astype(np.int64),
        signup=joined,
        domain_class=np.array([0, 1, 2, 3])[ut].astype(np.int64),
        role=role,
        channel=channel.astype(np.int64),
        company_size=csize[account],
        team_size=np.bincount(account, minlength=n_accounts)[account],
        intent=intent,
        kind=np.full(n, KIND_USER, dtype=np.int8),
    )
    return Members(pop, seat_role.astype(np.int64), slope, inviter.astype(np.int64), n_accounts)


def _cumsum_by(values: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    """Cumulative sums restarting at each group of ``sizes`` consecutive values."""
    total = np.cumsum(values)
    base = np.repeat(total[np.cumsum(sizes) - sizes] - values[np.cumsum(sizes) - sizes], sizes)
    return total - base


def _domains(rng: np.random.Generator, ctype: np.ndarray) -> np.ndarray:
    k = len(ctype)
    free = rng.integers(0, len(FREE_MAIL_DOMAINS), k)
    ent = rng.integers(0, len(ENTERPRISE_DOMAINS), k)
    word = rng.integers(0, len(CORPORATE_WORDS), k)
    uni = rng.integers(0, 200, k)
    out = np.empty(k, dtype=object)
    for j in range(k):
        out[j] = (
            FREE_MAIL_DOMAINS[free[j]],
            f"{CORPORATE_WORDS[word[j]]}-{j}.com",
            ENTERPRISE_DOMAINS[ent[j]],
            f"uni-{uni[j]}.edu",
        )[ctype[j]]
    return out
