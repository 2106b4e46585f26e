"""How users behave: day-by-day activity that builds habits and decays, sessions, events.

Everything is vectorised over the users of a chunk; the only Python loop runs over days.
Latent intent shapes how often a user comes back, how long sessions last and which events they
produce; the conversion formula never sees it, only the events it leads to.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from propensity.simulate.catalog import EVENTS, ROLES, TRIAL_EVENTS, code
from propensity.simulate.population import DAY, Population

__all__ = [
    "TAIL_SHARE",
    "TAIL_ZIPF",
    "TRIAL_DAYS",
    "Events",
    "activity",
    "bot_events",
    "concat",
    "derived_events",
    "draw_codes",
    "event_values",
    "mix_logits",
    "post_conversion_events",
    "session_events",
    "tail_weights",
]

TRIAL_DAYS = 14  # activity of users who do not pay fades after the trial (the default world)
TAIL_SHARE = 0.5  # with a long tail, this share of in-session page views become tail events
TAIL_ZIPF = 1.1  # popularity of the k-th tail event is proportional to 1 / (k + 3) ** TAIL_ZIPF
INTEGRATIONS = ("slack", "github", "jira", "gdrive")

# Per trial event: (base logit, slope on intent) of being drawn inside a session.
_MIX = {
    "page_view": (2.0, 0.0),
    "login": (-2.5, 0.0),
    "doc_created": (0.3, 0.35),
    "doc_shared": (-1.0, 0.45),
    "comment_added": (-0.4, 0.3),
    "message_sent": (1.3, 0.6),  # vanity: follows intent, causes nothing
    "teammate_invited": (-3.2, 0.5),
    "invite_accepted": (-np.inf, 0.0),  # only ever a consequence of an invite
    "integration_connected": (-3.8, 0.4),
    "plan_limit_hit": (-4.0, 0.4),
    "pricing_viewed": (-3.6, 0.45),
    "export_done": (-2.4, 0.3),
    "help_viewed": (-2.0, -0.25),
}


@dataclass(frozen=True)
class Events:
    """Events as parallel arrays: local user index, event code, epoch second, property value."""

    user: np.ndarray  # int64
    code: np.ndarray  # int64 code into EVENTS
    ts: np.ndarray  # int64 epoch seconds
    value: np.ndarray  # int64 property value (meaning per event type), -1 when none

    def __len__(self) -> int:
        return len(self.user)


def concat(parts: list[Events]) -> Events:
    """Concatenate event batches."""
    return Events(*(np.concatenate([getattr(p, f) for p in parts]) for f in Events.__annotations__))


def activity(
    rng: np.random.Generator,
    intent: np.ndarray,
    days: range,
    habit: np.ndarray,
    converted_day: np.ndarray,
    trial_days: int = TRIAL_DAYS,
) -> tuple[np.ndarray, np.ndarray]:
    """Which users are active on which days (bool users x days), and the habit after them.

    Habit grows with each active day and decays by 40% a day; after the trial (``trial_days``)
    the pull fades, except for users who have paid (``converted_day``: day index of payment, or
    a huge number).
    """
    active = np.zeros((len(intent), len(days)), dtype=bool)
    habit = habit.copy()
    for j, d in enumerate(days):
        paid = d > converted_day
        fade = np.where(paid, 0.0, 0.3 * max(d - trial_days + 1, 0))
        logit = -0.9 + 0.8 * intent + 0.45 * habit - fade + np.where(paid, 0.8, 0.0)
        on = rng.random(len(intent)) < 1 / (1 + np.exp(-logit))
        if d == 0:
            on[:] = True  # the signup day always has the first session
        active[:, j] = on
        habit = 0.6 * habit + on
    return active, habit


def session_events(
    rng: np.random.Generator,
    pop: Population,
    active: np.ndarray,
    first_day: int,
    tail_events: int = 0,
) -> Events:
    """Events of the active user-days: 1-4 sessions hours apart, events minutes apart.

    With ``tail_events`` > 0, some page views become one of that many long-tail event types.
    """
    cell_user, cell_col = np.nonzero(active)
    day = cell_col + first_day
    z = pop.intent[cell_user]
    n_sessions = 1 + np.minimum(rng.poisson(np.exp(-1.0 + 0.3 * z)), 3)
    s_user = np.repeat(cell_user, n_sessions)
    s_day = np.repeat(day, n_sessions)
    s_count = np.repeat(n_sessions, n_sessions)
    s_slot = np.arange(len(s_user)) - np.repeat(np.cumsum(n_sessions) - n_sessions, n_sessions)
    width = DAY // s_count
    # Each session starts in the first half of its slot, so sessions sit hours apart.
    offset = s_slot * width + (rng.random(len(s_user)) * (width // 2)).astype(np.int64)
    first = (s_day == 0) & (s_slot == 0)
    offset[first] = rng.integers(5, 120, first.sum())
    s_start = pop.signup[s_user] + s_day * DAY + offset

    n_events = 1 + rng.poisson(np.exp(1.5 + 0.2 * pop.intent[s_user]))
    e_user = np.repeat(s_user, n_events)
    e_session = np.repeat(np.arange(len(s_user)), n_events)
    pos = np.arange(len(e_user)) - np.repeat(np.cumsum(n_events) - n_events, n_events)
    gap = 1 + rng.exponential(90.0, len(e_user)).astype(np.int64)
    gap[pos == 0] = 0
    csum = np.cumsum(gap)
    ts = s_start[e_session] + csum - np.repeat(csum[np.cumsum(n_events) - n_events], n_events)

    codes = draw_codes(rng, mix_logits(pop), e_user)
    opener = pos == 0
    codes[opener] = np.where(rng.random(opener.sum()) < 0.7, code("login"), code("page_view"))
    if tail_events:
        _tail(rng, codes, opener, tail_events)
    return Events(e_user, codes, ts, event_values(rng, codes))


def tail_weights(n: int) -> np.ndarray:
    """Zipf-like popularity of the first ``n`` tail events (sums to 1): a few common, most rare.

    >>> w = tail_weights(300); bool(w[0] > 50 * w[-1]), round(float(w.sum()), 6)
    (True, 1.0)
    """
    w = 1.0 / (np.arange(n) + 3.0) ** TAIL_ZIPF
    return w / w.sum()


def _tail(rng: np.random.Generator, codes: np.ndarray, opener: np.ndarray, n: int) -> None:
    """Turn ``TAIL_SHARE`` of the non-opening page views into tail events, in place."""
    swap = (codes == code("page_view")) & ~opener & (rng.random(len(codes)) < TAIL_SHARE)
    cum = np.cumsum(tail_weights(n))
    picks = np.minimum(np.searchsorted(cum, rng.random(int(swap.sum())) * cum[-1]), n - 1)
    codes[swap] = len(EVENTS) + picks


def derived_events(rng: np.random.Generator, pop: Population, ev: Events) -> Events:
    """Consequences of events: accepted invites (hours later), pricing after a plan limit."""
    z = pop.intent[ev.user]
    team = np.isin(pop.domain_class[ev.user], (1, 2))
    invited = (ev.code == code("teammate_invited")) & (
        rng.random(len(ev)) < _sigmoid(-0.4 + 0.5 * z + 0.6 * team)
    )
    limit = (ev.code == code("plan_limit_hit")) & (rng.random(len(ev)) < _sigmoid(-0.3 + 0.6 * z))
    delay = np.where(
        invited,
        60 + rng.exponential(20 * 3600.0, len(ev)).astype(np.int64),
        30 + rng.exponential(900.0, len(ev)).astype(np.int64),
    )
    keep = invited | limit
    codes = np.where(invited, code("invite_accepted"), code("pricing_viewed"))[keep]
    return Events(ev.user[keep], codes, ev.ts[keep] + delay[keep], np.full(keep.sum(), -1))


def post_conversion_events(
    rng: np.random.Generator, pop: Population, users: np.ndarray, converted_at: np.ndarray
) -> Events:
    """What a paying customer leaves behind: subscription, monthly invoices, added seats."""
    k = len(users)
    seats = rng.poisson(0.3 + 0.4 * (pop.team_size[users] - 1))
    seat_user = np.repeat(users, seats)
    seat_ts = np.repeat(converted_at, seats) + 3600
    seat_ts += rng.exponential(7 * DAY, len(seat_user)).astype(np.int64)
    paid = converted_at + rng.integers(2, 30, k)
    return Events(
        np.concatenate([users, users, users, users, seat_user]),
        np.concatenate(
            [
                np.full(k, code("subscription_started")),
                np.full(3 * k, code("invoice_paid")),
                np.full(len(seat_user), code("seat_added")),
            ]
        ),
        np.concatenate([converted_at, paid, paid + 30 * DAY, paid + 60 * DAY, seat_ts]),
        np.full(4 * k + len(seat_user), -1),
    )


def bot_events(rng: np.random.Generator, pop: Population, bot: int) -> Events:
    """A crawler on one account: thousands of events every minute or two for days."""
    n = int(rng.integers(3_000, 6_000))
    ts = pop.signup[bot] + 30 + np.cumsum(rng.integers(20, 150, n))
    codes = rng.choice(
        [code("page_view"), code("message_sent"), code("export_done")], n, p=[0.7, 0.25, 0.05]
    )
    return Events(np.full(n, bot), codes, ts, event_values(rng, codes))


def mix_logits(pop: Population) -> np.ndarray:
    base = np.array([_MIX[e][0] for e in TRIAL_EVENTS])
    slope = np.array([_MIX[e][1] for e in TRIAL_EVENTS])
    logits = base + slope * pop.intent[:, None]
    team = np.isin(pop.domain_class, (1, 2))
    logits[:, code("teammate_invited")] += np.where(team, 0.6, -0.6)
    logits[:, code("teammate_invited")] += 0.4 * (pop.role == ROLES.index("manager"))
    logits[:, code("integration_connected")] += 0.9 * (pop.role == ROLES.index("engineer"))
    logits[:, code("pricing_viewed")] += 0.5 * (pop.role == ROLES.index("founder"))
    return logits


def draw_codes(rng: np.random.Generator, logits: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """One categorical draw per entry of ``rows`` from that user's row of ``logits``."""
    weights = np.exp(logits - logits.max(axis=1, keepdims=True))
    cum = np.cumsum(weights, axis=1)
    cum /= cum[:, -1:]
    u = rng.random(len(rows))
    picks = np.zeros(len(rows), dtype=np.int64)
    # One column at a time keeps memory at a few arrays of events, not events x vocabulary.
    for j in range(cum.shape[1] - 1):
        picks += u > cum[rows, j]
    return picks


def event_values(rng: np.random.Generator, codes: np.ndarray) -> np.ndarray:
    """Property values: document size in bytes, exported rows, or an integration's index."""
    value = np.full(len(codes), -1, dtype=np.int64)
    for name, draw in (
        ("doc_created", lambda k: np.round(rng.lognormal(7.0, 1.0, k))),
        ("export_done", lambda k: np.round(rng.lognormal(3.5, 1.2, k))),
        ("integration_connected", lambda k: rng.integers(0, len(INTEGRATIONS), k)),
    ):
        m = codes == code(name)
        value[m] = draw(int(m.sum())).astype(np.int64)
    return value


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-x))
