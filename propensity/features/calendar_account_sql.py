"""The calendar plan's account steps: each row's account activity on the weekly grid.

A mixin of the calendar plan builder (:mod:`propensity.features.calendar_sql`): it reads the
builder's ``spec``, dialect ``d``, ``history``, ``phase``, ``_n`` (prefixed step names),
``_in_vocab`` and ``_week`` (the week of a timestamp column).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from propensity.features.portable import Step

__all__ = ["WEEK", "CalendarAccountSteps"]

WEEK = 604800  # seconds: the grid's step


class CalendarAccountSteps:
    """Steps ``aev``, ``acr``, ``aw``, ``ag``, ``og``, ``apu`` and ``acct`` on the weekly grid."""

    spec: Any
    d: Any
    history: str | None
    phase: int

    _n: Callable[[str], str]
    _in_vocab: Callable[[str], str]
    _week: Callable[[str], str]

    # ---- account counts on the weekly grid ------------------------------------------------
    # The portable plan joins each row to its account's events since signup; here the events
    # are counted once per (account, member, week), run over a dense grid of weeks per account
    # (`ag`) and per member with rows (`og`), and each row reads both at the week before its
    # anchor: the other members' events in the last k weeks are the account's minus her own.
    # Since signup (`ae_all`) subtracts what came before her signup, once per user (`apu`).
    def _aev_c(self) -> Step:
        ts = self.d.epoch_seconds("e.timestamp")
        sql = f"""SELECT u.acc, u.uid, {ts} AS ts, {self._week(ts)} AS w
FROM events e JOIN {self._n("acu")} u ON e.user_id = u.user_id
WHERE {self._in_vocab("e.event")}"""
        return Step(self._n("aev"), sql)

    def _acr_c(self) -> Step:
        # The portable `acr` with the user, the anchor week `aw` and the signup week `sw`.
        a = f"CAST((r.cut - {self.phase}) / {WEEK} AS BIGINT)"
        sql = f"""SELECT r.rid, r.user_id, r.cut, r.sig, a.acc, COALESCE(u.uid, -1) AS uid,
  {a} AS aw, {self._week("r.sig")} AS sw
FROM {self._n("rows")} r
JOIN (SELECT DISTINCT account_id, acc FROM {self._n("acu")}) a ON a.account_id = r.account_id
LEFT JOIN (SELECT DISTINCT user_id, uid FROM {self._n("acu")}) u ON u.user_id = r.user_id"""
        return Step(self._n("acr"), sql)

    def _aw(self) -> Step:
        sql = (
            f"SELECT acc, uid, w, COUNT(*) AS n, MIN(ts) AS first_ts FROM {self._n('aev')} "
            f"GROUP BY acc, uid, w"
        )
        return Step(self._n("aw"), sql)

    def _grid_sums(self, keys: list[str], weeks: str, ends: str) -> str:
        """Running total ``cum`` and the last-k-weeks sums ``s{i}`` (one per window) of ``n`` in
        ``weeks`` over a dense grid of weeks per ``keys``: from the first week with events to
        the week before the last anchor in ``ends`` (its ``aw``)."""
        on = " AND ".join(f"l.{k} = f.{k}" for k in keys)
        part = ", ".join(f"g.{k}" for k in keys)
        fk, gk = ", ".join(f"f.{k}" for k in keys), ", ".join(keys)
        r = f"PARTITION BY {part} ORDER BY g.w ROWS"
        cols = [f"CAST(SUM(q.n) OVER ({r} UNBOUNDED PRECEDING) AS BIGINT) AS cum"]
        cols += [
            f"CAST(SUM(q.n) OVER ({r} BETWEEN {w // WEEK - 1} PRECEDING AND CURRENT ROW) "
            f"AS BIGINT) AS s{i}"
            for i, w in enumerate(self.spec.windows_s)
        ]
        grid = f"""SELECT {fk}, UNNEST(range(f.w0, l.a)) AS w
  FROM (SELECT {gk}, MIN(w) AS w0 FROM {weeks} GROUP BY {gk}) f
  JOIN (SELECT {gk}, MAX(aw) AS a FROM {ends} GROUP BY {gk}) l ON {on}"""
        q_on = " AND ".join(f"q.{k} = g.{k}" for k in [*keys, "w"])
        return f"""SELECT {part}, g.w, {", ".join(cols)}
FROM ({grid}) g
LEFT JOIN (SELECT {gk}, w, SUM(n) AS n FROM {weeks} GROUP BY {gk}, w) q ON {q_on}"""

    def _ag(self) -> Step:
        return Step(self._n("ag"), self._grid_sums(["acc"], self._n("aw"), self._n("acr")))

    def _og(self) -> Step:
        ends = f"(SELECT acc, uid, aw FROM {self._n('acr')} WHERE uid >= 0)"
        return Step(self._n("og"), self._grid_sums(["acc", "uid"], self._n("aw"), ends))

    def _apu(self) -> Step:
        # Per user: the other members' events before her signup (through the week before it
        # from the grids, in its week from the events of that week only).
        who = f"SELECT DISTINCT user_id, acc, uid, sig, sw FROM {self._n('acr')}"
        sql = f"""SELECT s.user_id, s.acc,
  COALESCE(a.cum, 0) - COALESCE(o.cum, 0) + COALESCE(p.n, 0) AS before_sig
FROM ({who}) s
LEFT JOIN {self._n("ag")} a ON a.acc = s.acc AND a.w = s.sw - 1
LEFT JOIN {self._n("og")} o ON o.acc = s.acc AND o.uid = s.uid AND o.w = s.sw - 1
LEFT JOIN (
  SELECT s.user_id, s.acc, COUNT(*) AS n
  FROM ({who}) s JOIN {self._n("aev")} e
    ON e.acc = s.acc AND e.w = s.sw AND e.uid <> s.uid AND e.ts < s.sig
  GROUP BY s.user_id, s.acc
) p ON p.user_id = s.user_id AND p.acc = s.acc"""
        return Step(self._n("apu"), sql)

    def _acct_c(self) -> Step:
        acr = self._n("acr")
        first = f"SELECT acc, uid, MIN(first_ts) AS first_ts FROM {self._n('aw')} GROUP BY acc, uid"
        if self.history is not None:
            first = f"""SELECT u.acc, u.uid, MIN({self.d.epoch_seconds("h.first_at")}) AS first_ts
  FROM {self.history} h JOIN {self._n("acu")} u ON h.user_id = u.user_id
  WHERE {self._in_vocab("h.event")} GROUP BY u.acc, u.uid"""
        cols = [
            f"COALESCE(a.s{i}, 0) - COALESCE(o.s{i}, 0) AS ae_w{i}"
            for i, _ in enumerate(self.spec.windows_s)
        ]
        cols.append("COALESCE(a.cum, 0) - COALESCE(o.cum, 0) - COALESCE(p.before_sig, 0) AS ae_all")
        sql = f"""SELECT r.rid, u.active_users, {", ".join(cols)}
FROM {acr} r
LEFT JOIN {self._n("ag")} a ON a.acc = r.acc AND a.w = r.aw - 1
LEFT JOIN {self._n("og")} o ON o.acc = r.acc AND o.uid = r.uid AND o.w = r.aw - 1
LEFT JOIN {self._n("apu")} p ON p.user_id = r.user_id AND p.acc = r.acc
LEFT JOIN (
  SELECT r.rid, COUNT(*) AS active_users
  FROM {acr} r JOIN ({first}) f
    ON f.acc = r.acc AND f.uid <> r.uid AND f.first_ts < r.cut
  GROUP BY r.rid
) u ON u.rid = r.rid"""
        return Step(self._n("acct"), sql)
