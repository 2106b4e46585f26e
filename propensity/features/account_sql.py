"""The portable plan's account steps: each row's account activity from its teammates' events.

A mixin of the plan builder (:mod:`propensity.features.sql`): it reads the builder's ``spec``,
dialect ``d``, ``history``, ``_n`` (prefixed step names) and ``_in_vocab``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from propensity.features.portable import Step

__all__ = ["AccountSteps"]


class AccountSteps:
    """Steps ``acu``, ``aev``, ``acr`` and ``acct``: the account features of every row."""

    spec: Any
    d: Any
    history: str | None

    _n: Callable[[str], str]
    _in_vocab: Callable[[str], str]

    def _acu(self) -> Step:
        # Users of the accounts some row belongs to, with integer codes: the account join below
        # compares millions of pairs, and integer keys made it ~2x faster than strings.
        # Only accounts with another member: a row counts the others' events and first events,
        # so a one-user account's are never read (its rows get the 0 a missing account gets),
        # and solo sign-ups are most accounts of a product-led log (78% of the simulated trial
        # world's; all of the freemium world's).
        sql = f"""SELECT user_id, account_id, DENSE_RANK() OVER (ORDER BY account_id) AS acc,
  DENSE_RANK() OVER (ORDER BY user_id) AS uid
FROM users WHERE account_id IN (SELECT DISTINCT account_id FROM {self._n("rows")})
  AND account_id IN (SELECT account_id FROM users GROUP BY account_id HAVING COUNT(*) > 1)"""
        return Step(self._n("acu"), sql)

    def _aev(self) -> Step:
        # Events of every user in those accounts, on the users' account.
        sql = f"""SELECT u.acc, u.uid, {self.d.epoch_seconds("e.timestamp")} AS ts
FROM events e JOIN {self._n("acu")} u ON e.user_id = u.user_id
WHERE {self._in_vocab("e.event")}"""
        return Step(self._n("aev"), sql)

    def _acr(self) -> Step:
        # Each row's account code, its user's code (-1 when the user is in no such account) and
        # the earliest timestamp any account count looks at.
        lo = "r.sig"
        if self.spec.windows_s:
            lo = f"LEAST(r.sig, r.cut - {max(self.spec.windows_s)})"
        sql = f"""SELECT r.rid, r.cut, r.sig, {lo} AS lo, a.acc, COALESCE(u.uid, -1) AS uid
FROM {self._n("rows")} r
JOIN (SELECT DISTINCT account_id, acc FROM {self._n("acu")}) a ON a.account_id = r.account_id
LEFT JOIN (SELECT DISTINCT user_id, uid FROM {self._n("acu")}) u ON u.user_id = r.user_id"""
        return Step(self._n("acr"), sql)

    def _acct(self) -> Step:
        # Active users need only each user's first event, a table of users, not of events. The
        # event counts join each row to the other users' events in [lo, cut) only: bounding the
        # join by the widest window instead of every earlier event cut it from 17M to 3M pairs
        # at 10M events (account steps 6.9 s -> 2.9 s).
        counts = [
            f"COUNT(CASE WHEN a.ts >= r.cut - {w} THEN 1 END) AS ae_w{i}"
            for i, w in enumerate(self.spec.windows_s)
        ]
        counts.append("COUNT(CASE WHEN a.ts >= r.sig THEN 1 END) AS ae_all")
        outer = ", ".join(f"n.ae_w{i}" for i in range(len(self.spec.windows_s)))
        outer = f"{outer}, n.ae_all" if outer else "n.ae_all"
        acr, aev = self._n("acr"), self._n("aev")
        first = f"SELECT acc, uid, MIN(ts) AS first_ts FROM {aev} GROUP BY acc, uid"
        if self.history is not None:
            first = f"""SELECT u.acc, u.uid, MIN({self.d.epoch_seconds("h.first_at")}) AS first_ts
  FROM {self.history} h JOIN {self._n("acu")} u ON h.user_id = u.user_id
  WHERE {self._in_vocab("h.event")} GROUP BY u.acc, u.uid"""
        sql = f"""SELECT r.rid, u.active_users, {outer}
FROM {acr} r
LEFT JOIN (
  SELECT r.rid, COUNT(*) AS active_users
  FROM {acr} r JOIN ({first}) f
    ON f.acc = r.acc AND f.uid <> r.uid AND f.first_ts < r.cut
  GROUP BY r.rid
) u ON u.rid = r.rid
LEFT JOIN (
  SELECT r.rid, {", ".join(counts)}
  FROM {acr} r JOIN {aev} a
    ON a.acc = r.acc AND a.uid <> r.uid AND a.ts < r.cut AND a.ts >= r.lo
  GROUP BY r.rid
) n ON n.rid = r.rid"""
        return Step(self._n("acct"), sql)
