"""The feature plan for rows at weekly calendar anchors on DuckDB: each event read once.

The portable plan (:mod:`propensity.features.sql`) joins every row to all of its user's earlier
events; a freemium user seen at many Mondays has her history re-read at each of them (4.7M
row-event pairs from 1M events). When every cutoff sits on one weekly grid (the same instant
modulo a week) and every window and lag is whole weeks, each value a row needs is a difference
of running totals over that grid, so this plan:

1. reads each user's events once (``uev``, those with ``signup_at <= timestamp`` before her
   last cutoff), orders them per user (``useq``: gap and previous type; a row's events are a
   prefix of its user's, so the gap of each event is the same in both);
2. sums them per (user, week) (``uw``: counts per type, first/last times, sessions, gaps, new
   days, transitions; active days and streak positions from the user's days) and runs the sums
   over each user's weeks (``cu``);
3. looks each row up once, at the week before its anchor, where the dense grid also holds the
   totals each window's start needs (``LAG`` by whole weeks), and subtracts.

The result has the portable plan's intermediate columns (``piv``, ``act``, ``streak``,
``lagd``), so the final select, and so every feature's definition, is shared with it;
``tests/test_calendar_sql.py`` checks both plans give the same frame. Account counts run on the
same grid (:mod:`propensity.features.calendar_account_sql`). The plan is DuckDB's (``UNNEST``,
``IGNORE NULLS``, ``EXCLUDE``), so the Spark engine keeps the portable plan (the parity tests
hold the two together).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from propensity.features.calendar_account_sql import WEEK, CalendarAccountSteps
from propensity.features.portable import DUCKDB, NLOGN_SCALE, Plan, Step
from propensity.features.spec import FeatureSpec
from propensity.features.sql import _Builder
from propensity.features.vocabulary_sql import names_step

if TYPE_CHECKING:
    from propensity.features.rows import SqlRunner

__all__ = [
    "WEEK",
    "build_calendar_plan",
    "calendar_phase_sql",
    "calendar_phase",
    "calendar_ready",
    "calendar_vocabulary_sql",
]

# The final select's aliases of the portable plan's `act`, `streak` and `lagd` (features/sql.py).
_OTHER_ALIASES = re.compile(r"\b[asg]\.")
_DAY_S = 86400
# Families whose columns this plan computes (account counts with the portable plan's steps,
# which never read the row-event join); properties need the portable plan (float sums per row).
_FAMILIES = frozenset(
    {"counts", "recency", "activity", "timing", "order", "transitions", "diversity", "fit",
     "lagged", "account"}
)  # fmt: skip


def calendar_ready(spec: FeatureSpec) -> bool:
    """Whether ``spec``'s windows and families let rows on a weekly grid use this plan."""
    spans = [*spec.windows_s, *spec.lags_s, spec.lag_window_s, spec.lag_recent_s]
    fams = set(spec.families) - ({"properties"} if not spec.properties else set())
    return fams <= _FAMILIES and all(s % WEEK == 0 for s in spans)


def calendar_phase_sql(rows: str) -> str:
    """One row: the distinct cutoff phases modulo a week, the smallest, and the users whose rows
    disagree on ``signup_at`` (the plan needs 1, any, 0)."""
    cut, sig = DUCKDB.epoch_seconds("cutoff_at"), DUCKDB.epoch_seconds("signup_at")
    return f"""SELECT COUNT(DISTINCT {_mod(cut, WEEK)}), MIN({_mod(cut, WEEK)}),
  (SELECT COUNT(*) FROM (SELECT user_id FROM {rows} GROUP BY user_id
     HAVING COUNT(DISTINCT {sig}) > 1) x)
FROM {rows}"""


def build_calendar_plan(
    spec: FeatureSpec,
    rows: str,
    prefix: str,
    phase: int,
    codes: dict[str, int] | None = None,
    with_ev: bool = False,
    history: str | None = None,
    narrow: bool = False,
) -> Plan:
    """The plan of :func:`propensity.features.sql.build_plan` for rows whose cutoffs are all
    ``phase`` modulo a week (:func:`calendar_phase_sql`), for a :func:`calendar_ready` spec.

    ``with_ev``: a coded plan whose learning materialised the row-event join ``ev`` (to rank
    transitions) counts the unseen events from it; otherwise they come from ``uev``.
    ``history`` and ``narrow`` are :func:`~propensity.features.sql.build_plan`'s (account
    active users; 32-bit user keys, times from signup and codes in the per-event steps).
    """
    if not calendar_ready(spec):
        raise ValueError(f"spec is not calendar-ready (families {spec.families})")
    return _Calendar(spec, rows, prefix, phase, codes, with_ev, history, narrow).plan()


def calendar_vocabulary_sql(prefix: str, phase: int, min_support: int) -> str:
    """:func:`propensity.features.vocabulary_sql.vocabulary_sql` from a coded calendar plan's
    ``uev`` (materialised) instead of the row-event join: each learn row meets its user's per-week
    counts before its anchor week, which holds the same events."""
    a = f"CAST((r.cut - {phase}) / {WEEK} AS BIGINT)"
    return f"""SELECT q.k, COUNT(DISTINCT r.uid) AS users, SUM(q.n) AS n
FROM {prefix}rows r
JOIN (SELECT uid, w, k, COUNT(*) AS n FROM {prefix}uev WHERE k IS NOT NULL
      GROUP BY uid, w, k) q ON q.uid = r.uid AND q.w < {a}
WHERE r.learn = 1
GROUP BY q.k HAVING COUNT(DISTINCT r.uid) >= {int(min_support)}"""


def _mod(x: str, n: int) -> str:
    """``x`` modulo ``n`` in [0, n) for any sign (DuckDB's % keeps the dividend's sign)."""
    return f"((({x}) % {n} + {n}) % {n})"


def _floor(x: str, n: int) -> str:
    """floor(x / n) exactly, for any sign of the integer ``x``."""
    return f"CAST((({x}) - {_mod(x, n)}) / {n} AS BIGINT)"


class _Calendar(_Builder, CalendarAccountSteps):
    def __init__(
        self,
        spec: FeatureSpec,
        rows: str,
        prefix: str,
        phase: int,
        codes: dict[str, int] | None,
        with_ev: bool = False,
        history: str | None = None,
        narrow: bool = False,
    ) -> None:
        super().__init__(spec, DUCKDB, rows, prefix, codes, history, narrow)
        self.phase = int(phase)
        self.with_ev = with_ev and self.coded
        self.slots = range(len(self.ev_index))

    def plan(self) -> Plan:
        steps = [self._rows(), *([self._names()] if self.coded else [])]
        if self.with_ev:
            steps.append(self._ev())  # learning's join (materialised already): unseen counts
        steps += [self._uev(), self._useq(), self._udays(), self._uw(), self._cu(), self._piv_c()]
        if "account" in self.fams:
            steps += [self._acu(), self._aev_c(), self._acr_c(), self._aw()]
            steps += [self._ag(), self._og(), self._apu(), self._acct_c()]
        if "fit" in self.fams:
            steps.append(self._fit())
        names = {s.name for s in steps}
        # `uev` is a table so that the unseen-event count reads it too.
        shared = (self._n("rows"), *((self._n("names"),) if self.coded else ()))
        shared += (*((self._n("ev"),) if self.with_ev else ()), self._n("uev"))
        unseen = self._unseen() if self.with_ev else self._unseen_c()
        # `piv` (179 columns at 10M events) is read once, by the final select: fused into it
        # instead of materialised (final select 18.4 s -> 14.2 s at 1M events, load ~15).
        return Plan(tuple(steps), self._final(names), unseen, shared, (self._n("piv"),))

    def _names(self) -> Step:
        return names_step(self.p)

    def _row_keys(self) -> tuple[str, ...]:
        # `uid` (an integer per user) keys every per-user step below: partitioning, grouping
        # and joining millions of events on it instead of the user_id string is cheaper.
        return ("uid", "learn") if self.coded else ("uid",)

    def _week(self, ts: str) -> str:
        return _floor(f"{ts} - {self.phase}", WEEK)

    def _uev(self) -> Step:
        # Each user's events from signup to her last cutoff, once; `k` as the portable plan
        # codes it (vocabulary code, or -1 / the names code for the rest).
        ts = self.d.epoch_seconds("timestamp")
        if self.coded:
            k, join = "n.c", f"LEFT JOIN {self._n('names')} n ON n.event = e.event"
        else:
            code = " ".join(f"WHEN {self.lit(e)} THEN {i}" for e, i in self.ev_index.items())
            k, join = (f"CASE e.event {code} ELSE -1 END" if code else "-1"), ""
        # 32-bit keys and times (`narrow`): useq's sort of every event by them is the plan's
        # largest cost, and reads half the key bytes.
        i = self._int
        # A coded `k` names every event (the names table has them all), so the unseen-event
        # count maps codes back to names and `uev` carries no string column.
        event = "" if self.coded else " e.event,"
        sql = f"""SELECT {i("u.uid")} AS uid, e.ts, {i("e.ts - u.sig")} AS t, {i(k)} AS k,{event}
  {i(self._week("e.ts"))} AS w
FROM (SELECT user_id, event, {ts} AS ts FROM events) e
JOIN (SELECT user_id, MIN(uid) AS uid, MIN(sig) AS sig, MAX(cut) AS last_cut
      FROM {self._n("rows")} GROUP BY user_id) u ON e.user_id = u.user_id
{join}
WHERE e.ts >= u.sig AND e.ts < u.last_cut"""
        return Step(self._n("uev"), sql)

    def _useq(self) -> Step:
        # The portable plan's `seq`, per user: a row's events are a prefix of its user's, so
        # the gap and previous type of each event are the same at every anchor after it.
        over = "OVER (PARTITION BY uid ORDER BY t, k)"
        # The previous type only where transitions read it (a second LAG over every event).
        prev = f", LAG(k) {over} AS prev" if self._transitions() else ""
        sql = (
            f"SELECT uid, k, t, ts, w, t - LAG(t) {over} AS gap{prev} "
            f"FROM {self._n('uev')} WHERE {self.seen}"
        )
        return Step(self._n("useq"), sql)

    def _udays(self) -> Step:
        # Days counted from signup, as the portable plan's `days`; each day belongs to the week
        # of its first event (the day counts for an anchor iff that event is before it), and
        # `pos` is its place in its streak, so a row's longest streak is the largest `pos` of
        # its days (a prefix of the user's days cuts at most the last streak).
        day = _floor("t", _DAY_S)
        new = f"gap IS NULL OR {day} <> {_floor('t - gap', _DAY_S)}"
        island = "dnum - ROW_NUMBER() OVER (PARTITION BY uid ORDER BY dnum)"
        sql = f"""SELECT uid, w, COUNT(*) AS days, MAX(pos) AS maxpos
FROM (SELECT uid, w, ROW_NUMBER() OVER (PARTITION BY uid, island ORDER BY dnum) AS pos
  FROM (SELECT uid, w, dnum, {island} AS island
    FROM (SELECT uid, w, {day} AS dnum FROM {self._n("useq")} WHERE {new}) d) i) s
GROUP BY uid, w"""
        return Step(self._n("udays"), sql)

    def _uw(self) -> Step:
        g = self.spec.session_gap_s
        # New days (weeks) on the anchors' grid, as the portable `lagd` counts them back from
        # each cutoff: every cutoff is `phase` modulo a week, so the grid is the same for all.
        dnew = (
            f"gap IS NULL OR {_floor(f'ts - {self.phase}', _DAY_S)} <> "
            f"{_floor(f'ts - gap - {self.phase}', _DAY_S)}"
        )
        cols = [
            "COUNT(*) AS n",
            "MIN(t) AS first_t",
            "MAX(t) AS last_t",
            f"COUNT(CASE WHEN gap IS NULL OR gap > {g} THEN 1 END) AS sessions",
            "SUM(gap) AS gap_sum",
            "COUNT(gap) AS gap_n",
            "MAX(gap) AS gap_max",
            f"COUNT(CASE WHEN {dnew} THEN 1 END) AS nd",
        ]
        for e, i in self.ev_index.items():
            c = self.code[e]
            cols += [
                f"COUNT(CASE WHEN k = {c} THEN 1 END) AS c{i}",
                f"MIN(CASE WHEN k = {c} THEN t END) AS f{i}",
                f"MAX(CASE WHEN k = {c} THEN t END) AS l{i}",
            ]
        for j, (a, b) in enumerate(self._transitions()):
            cols.append(
                f"COUNT(CASE WHEN prev = {self.code[a]} AND k = {self.code[b]} THEN 1 END) AS tr{j}"
            )
        sql = f"""SELECT q.*, COALESCE(d.days, 0) AS days, d.maxpos
FROM (SELECT uid, w, {", ".join(cols)} FROM {self._n("useq")} GROUP BY uid, w) q
LEFT JOIN {self._n("udays")} d ON d.uid = q.uid AND d.w = q.w"""
        return Step(self._n("uw"), sql)

    def _transitions(self) -> tuple[tuple[str, str], ...]:
        return self.spec.transitions if "transitions" in self.fams else ()

    def _cu(self) -> Step:
        # Running totals over every week from each user's first week with events to the week
        # before her last anchor (a dense grid: a row's lookups are then equality joins; it is
        # about as small as the weeks with events, 71k against 46k rows at 1M events).
        r = "OVER (PARTITION BY g.uid ORDER BY g.w ROWS UNBOUNDED PRECEDING)"

        def run(agg: str, col: str) -> str:
            if agg == "SUM":
                return f"CAST(SUM(q.{col}) {r} AS BIGINT) AS {col}"
            if agg in ("FIRST_VALUE", "LAST_VALUE"):
                return f"{agg}(q.{col} IGNORE NULLS) {r} AS {col}"
            return f"{agg}(q.{col}) {r} AS {col}"

        # A week's first and last times rise with the week, so the running MIN of the first
        # times is the first one seen and the running MAX of the last times the latest one:
        # FIRST_/LAST_VALUE give the same values without a segment tree per column (the 30
        # running MIN/MAX columns were ~2 of this step's 3 s at 10M events).
        cols = [run("SUM", "n"), run("FIRST_VALUE", "first_t"), run("LAST_VALUE", "last_t")]
        cols += [run("SUM", c) for c in ("sessions", "gap_sum", "gap_n", "nd", "days")]
        cols += [run("MAX", "gap_max"), run("MAX", "maxpos"), f"COUNT(q.n) {r} AS weeks"]
        for i in self.slots:
            cols += [run("SUM", f"c{i}"), run("FIRST_VALUE", f"f{i}"), run("LAST_VALUE", f"l{i}")]
        cols += [run("SUM", f"tr{j}") for j, _ in enumerate(self._transitions())]
        a = f"CAST((cut - {self.phase}) / {WEEK} AS BIGINT)"
        grid = f"""SELECT f.uid, UNNEST(range(f.w0, l.a)) AS w
  FROM (SELECT uid, MIN(w) AS w0 FROM {self._n("uw")} GROUP BY uid) f
  JOIN (SELECT uid, MAX({a}) AS a FROM {self._n("rows")} GROUP BY uid) l
    ON l.uid = f.uid"""
        sql = f"""SELECT g.uid, g.w, {", ".join(cols)}
FROM ({grid}) g LEFT JOIN {self._n("uw")} q ON q.uid = g.uid AND q.w = g.w"""
        return Step(self._n("cu"), sql)

    def _offsets(self) -> list[int]:
        """Weeks back from the anchor at which rows read the running totals (0: all before)."""
        wk = [s // WEEK for s in self.spec.windows_s]
        if self._lags():
            wl, rc = self.spec.lag_window_s // WEEK, self.spec.lag_recent_s // WEEK
            for lag in self.spec.lags_s:
                wk += [lag // WEEK, lag // WEEK + wl, lag // WEEK + rc]
        return sorted({0, *wk})

    def _look(self) -> str:
        # Row r at anchor week A reads the totals at week A - 1 - o (none before its first week).
        # The grid is dense, so the totals o weeks earlier are LAG(total, o) on the grid: one
        # join of the rows to it instead of one per offset (each rebuilt a hash table of the
        # whole grid), and LAG is NULL exactly where that join found no week.
        # The rows relation of a coded plan is materialised before the phase is known, so the
        # anchor week is computed here (cut - phase is a whole number of weeks).
        counts = ["n", "nd", "weeks", "last_t", *(f"c{i}" for i in self.slots)]
        full = ["first_t", "sessions", "gap_sum", "gap_n", "gap_max", "days", "maxpos"]
        full += [f"{x}{i}" for i in self.slots for x in ("f", "l")]
        full += [f"tr{j}" for j, _ in enumerate(self._transitions())]
        over = "OVER (PARTITION BY uid ORDER BY w)"
        lagged = [f"{c} AS {c}_o0" for c in (*full, *counts)]
        for o in self._offsets():
            if o:
                lagged += [f"LAG({c}, {o}) {over} AS {c}_o{o}" for c in counts]
        grid = f"SELECT uid, w, {', '.join(lagged)} FROM {self._n('cu')}"
        a = f"CAST((cut - {self.phase}) / {WEEK} AS BIGINT) - 1"
        base = f"SELECT rid, uid, cut, sig, {a} AS a FROM {self._n('rows')}"
        return f"""SELECT r.rid, r.cut, r.sig, l.* EXCLUDE (uid, w)
FROM ({base}) r
LEFT JOIN ({grid}) l ON l.uid = r.uid AND l.w = r.a"""

    # ---- the portable plan's per-row relations, from the lookups ----------------------------
    def _between(self, col: str, lo: int, hi: int) -> str:
        """The total of ``col`` over the weeks [A - hi, A - lo) (NULL when the row has no
        events before its anchor, as the portable plan has no row for it)."""
        if hi is None:
            return f"{col}_o{lo}"
        return f"{col}_o{lo} - COALESCE({col}_o{hi}, 0)"

    def _piv_c(self) -> Step:
        wins = [(f"n_w{i}", w // WEEK) for i, w in enumerate(self.spec.windows_s)]
        wins.append(("n_all", None))
        cols = [f"CASE WHEN n_o0 IS NOT NULL THEN {self._between('n', 0, m)} END AS ne_{w}"
                for w, m in wins]  # fmt: skip
        distinct = [f"CASE WHEN c{i}_o0 > 0 THEN 1 ELSE 0 END" for i in self.slots]
        cols += [
            "first_t_o0 AS first_any",
            "last_t_o0 AS last_any",
            f"{' + '.join(['0', *distinct])} AS distinct_events",
        ]
        # As the portable plan: n ln n per event type in integer micro-units (exact sums).
        nlogn = [
            f"CASE WHEN c{i}_o0 > 0 THEN CAST(ROUND(c{i}_o0 * LN(c{i}_o0) * {NLOGN_SCALE}) "
            f"AS BIGINT) ELSE 0 END"
            for i in self.slots
        ]
        cols.append(f"CASE WHEN n_o0 IS NOT NULL THEN {' + '.join(['0', *nlogn])} END AS nlogn")
        lag = self._lag_weeks()
        for j, (lo, rc, wl) in enumerate(lag):
            cols += [
                f"{self._between('n', lo, wl)} AS ne_nl{j}",
                f"{self._between('n', lo, rc)} AS ne_nr{j}",
                f"last_t_o{lo} AS ll{j}",
            ]
        for i in self.slots:
            if "counts" in self.fams:
                cols += [f"{self._between(f'c{i}', 0, m)} AS c{i}_{w}" for w, m in wins]
            cols += [f"{self._between(f'c{i}', lo, wl)} AS c{i}_nl{j}"
                     for j, (lo, _, wl) in enumerate(lag)]  # fmt: skip
            cols += [f"f{i}_o0 AS first{i}", f"l{i}_o0 AS last{i}"]
        cols += self._act_c() + self._streak_c() + self._lagd_c()
        sql = f"SELECT rid, {', '.join(cols)} FROM ({self._look()}) l"
        return Step(self._n("piv"), sql)

    def _lag_weeks(self) -> list[tuple[int, int, int]]:
        wl, rc = self.spec.lag_window_s // WEEK, self.spec.lag_recent_s // WEEK
        return [(lag // WEEK, lag // WEEK + rc, lag // WEEK + wl) for lag in self._lags()]

    def _act_c(self) -> list[str]:
        cols = ["sessions_o0 AS sessions", "gap_sum_o0 AS gap_sum", "gap_n_o0 AS gap_n"]
        cols.append("gap_max_o0 AS gap_max")
        return cols + [f"tr{j}_o0 AS tr{j}" for j, _ in enumerate(self._transitions())]

    def _streak_c(self) -> list[str]:
        return ["days_o0 AS active_days", "maxpos_o0 AS longest"]

    def _lagd_c(self) -> list[str]:
        cols = []
        for j, (lo, _, wl) in enumerate(self._lag_weeks()):
            cols += [f"{self._between('nd', lo, wl)} AS ad{j}", f"weeks_o{lo} AS aw{j}"]
        return cols

    def _final(self, names: set[str]) -> str:
        # `piv` holds the portable plan's `act`, `streak` and `lagd` columns too (no name is
        # shared), so their aliases become `p`: one join of the rows instead of four, and no
        # wide intermediate table materialised four times (it spilled at 10M events).
        return _OTHER_ALIASES.sub("p.", super()._final(names))

    def _unseen_c(self) -> str:
        # Events outside the vocabulary before each row's cutoff, summed over rows, from the
        # per-(user, week) counts (a row counts its user's weeks before its anchor).
        a = f"CAST((r.cut - {self.phase}) / {WEEK} AS BIGINT)"
        if not self.coded:
            other = (
                f"SELECT uid, w, COALESCE(event, '<null>') AS event, COUNT(*) AS n "
                f"FROM {self._n('uev')} WHERE k < 0 GROUP BY ALL"
            )
            return f"""SELECT o.event, SUM(o.n) AS n FROM {self._n("rows")} r
JOIN ({other}) o ON o.uid = r.uid AND o.w < {a}
GROUP BY o.event"""
        other = (
            f"SELECT uid, w, k, COUNT(*) AS n FROM {self._n('uev')} "
            f"WHERE k IS NULL OR NOT ({self.seen}) GROUP BY ALL"
        )
        return f"""SELECT COALESCE(m.event, '<null>') AS event, c.n
FROM (SELECT o.k, SUM(o.n) AS n FROM {self._n("rows")} r
      JOIN ({other}) o ON o.uid = r.uid AND o.w < {a} GROUP BY o.k) c
LEFT JOIN {self._n("names")} m ON m.c = c.k"""


def calendar_phase(run: SqlRunner, spec: FeatureSpec, rows: str) -> int | None:
    """The cutoffs' common instant modulo a week when the calendar plan applies (DuckDB, a
    :func:`calendar_ready` spec, one signup per user), else None."""
    if run.dialect != DUCKDB or not calendar_ready(spec):
        return None
    [(phases, phase, split_users)] = run.fetch(calendar_phase_sql(rows))
    return int(phase) if phases == 1 and split_users == 0 else None
