"""Who signs up: users grouped into accounts, with attributes and a hidden intent.

Accounts are drawn as companies first (a free-mail or education user is an account of one; a
corporate or enterprise team has several users who sign up over a few days), so every account
lives inside one chunk and account momentum can be computed chunk by chunk.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from propensity.simulate.catalog import (
    CHANNELS,
    CORPORATE_WORDS,
    DOMAIN_CLASSES,
    ENTERPRISE_DOMAINS,
    FREE_MAIL_DOMAINS,
    INTERNAL_DOMAIN,
    ROLES,
)

__all__ = ["KIND_BOT", "KIND_INTERNAL", "KIND_USER", "Population", "make_population"]

KIND_USER, KIND_INTERNAL, KIND_BOT = 0, 1, 2
DAY = 86_400

_FREE, _CORP, _ENT, _EDU, _DRIFT = range(5)
_TYPE_SHARE = np.array([0.40, 0.40, 0.08, 0.12, 0.0])
# Role probabilities (engineer, manager, designer, student, founder) per company type.
_ROLE_P = np.array(
    [
        [0.30, 0.10, 0.22, 0.23, 0.15],
        [0.38, 0.25, 0.20, 0.02, 0.15],
        [0.42, 0.33, 0.22, 0.01, 0.02],
        [0.15, 0.04, 0.08, 0.70, 0.03],
        [0.00, 0.00, 0.00, 1.00, 0.00],
    ]
)
_CHANNEL_P = np.array([0.40, 0.30, 0.15, 0.15])
# Intent offsets: why some users arrive readier to buy than others (never seen directly).
_TYPE_INTENT = np.array([-0.25, 0.20, 0.35, -0.45, -0.60])
_ROLE_INTENT = np.array([0.05, 0.25, 0.0, -0.50, 0.40])
_CHANNEL_INTENT = np.array([0.0, -0.20, 0.30, 0.20])


@dataclass(frozen=True)
class Population:
    """One chunk of users as parallel arrays (codes index the catalog tuples)."""

    user_id: np.ndarray  # str
    email: np.ndarray  # str
    account_id: np.ndarray  # str
    account: np.ndarray  # int64, local account index for grouping within the chunk
    signup: np.ndarray  # int64 epoch seconds
    domain_class: np.ndarray  # int64 code into DOMAIN_CLASSES
    role: np.ndarray  # int64 code into ROLES
    channel: np.ndarray  # int64 code into CHANNELS
    company_size: np.ndarray  # float64, NaN when unknown
    team_size: np.ndarray  # int64, users of the account in the chunk
    intent: np.ndarray  # float64 latent intent; shapes behaviour, never the truth formula
    kind: np.ndarray  # int8: KIND_USER, KIND_INTERNAL or KIND_BOT

    def __len__(self) -> int:
        return len(self.user_id)


def make_population(
    rng: np.random.Generator,
    n: int,
    *,
    first_index: int,
    chunk: int,
    start: int,
    end: int,
    drift: float,
) -> Population:
    """Draw ``n`` users signing up in ``[start, end)`` (epoch seconds), ids from ``first_index``.

    A chunk of 100 or more users holds one bot; about 0.5% of users are internal test accounts.
    """
    n_bot = 1 if n >= 100 else 0
    n_internal = max(1, round(n * 0.005)) if n >= 20 else 0
    n_regular = n - n_bot - n_internal
    parts = [_regular(rng, n_regular, chunk, start, end, drift)]
    if n_internal:
        parts.append(_internal(rng, n_internal, chunk, start, end, offset=parts[0]["n_accounts"]))
    if n_bot:
        parts.append(_bot(rng, chunk, start, end, offset=parts[0]["n_accounts"] + 1))
    cols = {k: np.concatenate([p[k] for p in parts]) for k in parts[0] if k != "n_accounts"}
    index = np.arange(first_index, first_index + n)
    user_id = np.array([f"u{i:08d}" for i in index], dtype=object)
    email = np.array(
        [f"user{i:08d}@{d}" for i, d in zip(index, cols.pop("domain"), strict=True)], dtype=object
    )
    team_size = np.bincount(cols["account"])[cols["account"]]
    return Population(user_id=user_id, email=email, team_size=team_size, **cols)


def _regular(
    rng: np.random.Generator, n: int, chunk: int, start: int, end: int, drift: float
) -> dict[str, np.ndarray]:
    span = end - start
    first = rng.integers(start, end, size=max(n, 1))
    # Drift: later cohorts bring more students from paid search.
    weight = drift * 0.35 * (first - start) / span
    share = (1 - weight)[:, None] * _TYPE_SHARE + weight[:, None] * np.eye(5)[_DRIFT]
    ctype = (rng.random(len(first))[:, None] > np.cumsum(share, axis=1)).sum(axis=1)
    ctype = np.minimum(ctype, _DRIFT)
    size = np.ones(len(first), dtype=np.int64)
    size[ctype == _CORP] = np.minimum(rng.geometric(0.55, (ctype == _CORP).sum()), 12)
    size[ctype == _ENT] = np.minimum(rng.geometric(0.30, (ctype == _ENT).sum()), 15)
    n_comp = int(np.searchsorted(np.cumsum(size), n)) + 1 if n else 0
    size = size[:n_comp].copy()
    if n_comp:
        size[-1] -= size.sum() - n
    first, ctype = first[:n_comp], ctype[:n_comp]

    account = np.repeat(np.arange(n_comp), size)
    rank = np.arange(n) - np.repeat(np.cumsum(size) - size, size)
    ut = ctype[account]
    # Teammates follow the first user within days; wrap inside the data period.
    delay = np.where(rank > 0, rng.exponential(4 * DAY, n).astype(np.int64) + 600, 0)
    signup = first[account] + delay % np.maximum(end - first[account], 1)

    role = _draw(rng, _ROLE_P[ut])
    channel = _draw(rng, np.broadcast_to(_CHANNEL_P, (n, 4)))
    invited = (rank > 0) & (rng.random(n) < 0.7)
    channel[invited] = CHANNELS.index("referral")
    channel[ut == _DRIFT] = CHANNELS.index("paid_search")

    csize = np.full(n_comp, np.nan)
    for t, lo, hi, known in (
        (_CORP, 0.7, 3.0, 0.85),
        (_ENT, 3.3, 5.0, 0.9),
        (_FREE, 0.0, 1.5, 0.3),
        (_EDU, 3.0, 4.5, 0.5),
    ):
        m = (ctype == t) & (rng.random(n_comp) < known)
        csize[m] = np.round(10 ** rng.uniform(lo, hi, m.sum()))

    domain = np.empty(n_comp, dtype=object)
    free_pick = rng.integers(0, len(FREE_MAIL_DOMAINS), n_comp)
    ent_pick = rng.integers(0, len(ENTERPRISE_DOMAINS), n_comp)
    word_pick = rng.integers(0, len(CORPORATE_WORDS), n_comp)
    uni_pick = rng.integers(0, 200, n_comp)
    drift_edu = rng.random(n_comp) < 0.5
    for j in range(n_comp):
        t = ctype[j]
        if t == _FREE or (t == _DRIFT and not drift_edu[j]):
            domain[j] = FREE_MAIL_DOMAINS[free_pick[j]]
        elif t == _CORP:
            domain[j] = f"{CORPORATE_WORDS[word_pick[j]]}-{chunk * 100_000 + j}.com"
        elif t == _ENT:
            domain[j] = ENTERPRISE_DOMAINS[ent_pick[j]]
        else:
            domain[j] = f"uni-{uni_pick[j]}.edu"
    dclass = np.array([0, 1, 2, 3, 0])[ctype]
    dclass[(ctype == _DRIFT) & drift_edu] = DOMAIN_CLASSES.index("education")

    company_z = rng.standard_normal(n_comp)
    intent = (
        0.5 * company_z[account]
        + 0.85 * rng.standard_normal(n)
        + _TYPE_INTENT[ut]
        + _ROLE_INTENT[role]
        + _CHANNEL_INTENT[channel]
    )
    return {
        "account_id": np.array([f"acct-{chunk:04d}-{a:06d}" for a in account], dtype=object),
        "account": account.astype(np.int64),
        "signup": signup.astype(np.int64),
        "domain_class": dclass[account].astype(np.int64),
        "domain": domain[account],
        "role": role,
        "channel": channel,
        "company_size": csize[account],
        "intent": intent,
        "kind": np.full(n, KIND_USER, dtype=np.int8),
        "n_accounts": np.int64(n_comp),
    }


def _internal(
    rng: np.random.Generator, n: int, chunk: int, start: int, end: int, offset: int
) -> dict[str, np.ndarray]:
    return {
        "account_id": np.full(n, f"acct-{chunk:04d}-internal", dtype=object),
        "account": np.full(n, offset, dtype=np.int64),
        "signup": rng.integers(start, end, n).astype(np.int64),
        "domain_class": np.full(n, DOMAIN_CLASSES.index("internal"), dtype=np.int64),
        "domain": np.full(n, INTERNAL_DOMAIN, dtype=object),
        "role": rng.choice([ROLES.index("engineer"), ROLES.index("manager")], n).astype(np.int64),
        "channel": np.full(n, CHANNELS.index("organic"), dtype=np.int64),
        "company_size": np.full(n, 40.0),
        "intent": 1.0 + 0.3 * rng.standard_normal(n),  # testers click everything
        "kind": np.full(n, KIND_INTERNAL, dtype=np.int8),
    }


def _bot(
    rng: np.random.Generator, chunk: int, start: int, end: int, offset: int
) -> dict[str, np.ndarray]:
    return {
        "account_id": np.array([f"acct-{chunk:04d}-bot"], dtype=object),
        "account": np.array([offset], dtype=np.int64),
        "signup": rng.integers(start, start + max((end - start) * 4 // 5, 1), 1).astype(np.int64),
        "domain_class": np.array([DOMAIN_CLASSES.index("free_mail")], dtype=np.int64),
        "domain": np.array(["gmail.com"], dtype=object),
        "role": np.array([ROLES.index("engineer")], dtype=np.int64),
        "channel": np.array([CHANNELS.index("organic")], dtype=np.int64),
        "company_size": np.array([np.nan]),
        "intent": np.array([0.0]),
        "kind": np.array([KIND_BOT], dtype=np.int8),
    }


def _draw(rng: np.random.Generator, probs: np.ndarray) -> np.ndarray:
    """One categorical draw per row of ``probs`` (rows sum to 1), vectorised."""
    cum = np.cumsum(probs, axis=1)
    picks = (rng.random(len(probs))[:, None] > cum).sum(axis=1)
    return np.minimum(picks, probs.shape[1] - 1).astype(np.int64)
