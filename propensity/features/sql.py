"""Portable SQL for every feature family: written once, run unchanged on DuckDB and Spark SQL.

The SQL is written in the subset :mod:`propensity.features.portable` describes. Beyond it:

- event types become small integer codes ``k`` (their rank in the sorted vocabulary, so
  ordering by ``k`` is ordering by name) in the same scan that filters the vocabulary; every
  later group, sort and pivot works on integers, not strings;
- per-event columns are a pivot: group by (row, k) once into a small table, then
  ``MAX(CASE WHEN k = i THEN ... END)`` per column (about 2x faster than a ``FILTER`` per
  column on DuckDB, and portable);
- counts are ``COUNT(CASE WHEN ... THEN 1 END)`` and pivots ``MAX``, not ``SUM``: DuckDB
  widens a ``SUM`` of integers to 128-bit HUGEINT (2-3x slower aggregates).

A plan's inputs are the relations ``events``, ``users`` and a rows relation (``rid``,
``user_id``, ``account_id``, ``signup_at``, ``cutoff_at``). Only events with
``signup_at <= timestamp < cutoff_at`` and an event type in the spec's vocabulary are seen by
any feature; ``t`` is seconds since signup.
"""

from __future__ import annotations

from propensity.features.account_sql import AccountSteps
from propensity.features.pivot_sql import PerEvent, pivot_step
from propensity.features.portable import DAY, DUCKDB, HOUR, NLOGN_SCALE, Dialect, Plan, Step
from propensity.features.spec import FeatureInfo, FeatureSpec
from propensity.features.vocabulary_sql import names_step

__all__ = ["build_plan"]

# Per-row steps the final select joins, with their aliases.
_ALIASES = (("piv", "p"), ("act", "a"), ("streak", "s"), ("acct", "c"), ("lagd", "g"))


def build_plan(
    spec: FeatureSpec,
    dialect: Dialect,
    rows: str,
    prefix: str,
    codes: dict[str, int] | None = None,
    history: str | None = None,
    narrow: bool = False,
    lean: bool = False,
) -> Plan:
    """The SQL that computes ``spec`` for the label rows in relation ``rows``.

    ``history`` names a relation of each user's first time per event type (``user_id``,
    ``event``, ``first_at``) over the whole history, when ``events`` holds only a window of it
    (``io/window.py``): account active users then read each member's first event from it.

    The final select returns ``rid`` then one column per spec feature, in spec order.

    With ``codes`` (event name -> its code in :func:`names_step`, as learning uses) the plan
    codes every event type by joining the small ``names`` relation instead of a ``CASE`` over
    the vocabulary: ``ev`` then keeps every event type (with ``uid`` and ``learn`` of its row),
    so learning the vocabulary and transitions and computing the features share one scan and
    one join of the events. ``rows`` must then also have ``uid`` (an integer per user) and
    ``learn`` (1 for rows to learn on).

    ``narrow`` (DuckDB): the row-event join ``ev`` holds 32-bit integers, which sorts and groups
    faster; only when every cutoff is less than 2^31 s (68 years) after its signup and there are
    fewer than 2^31 rows, so no value can overflow (:func:`propensity.features.engine` checks).
    ``lean`` (coded plans): every row is a learn row of its own user, so ``ev`` leaves out
    ``uid`` and ``learn`` (``rid`` tells the users apart; :func:`vocabulary_sql` with ``lean``).
    """
    b = _Builder(spec, dialect, rows, prefix, codes, history, narrow, lean)
    return b.plan()


class _Builder(AccountSteps):
    def __init__(
        self,
        spec: FeatureSpec,
        dialect: Dialect,
        rows: str,
        prefix: str,
        codes: dict[str, int] | None,
        history: str | None = None,
        narrow: bool = False,
        lean: bool = False,
    ) -> None:
        self.spec, self.d, self.rows, self.p = spec, dialect, rows, prefix
        self.history = history
        self.narrow = narrow and dialect == DUCKDB
        self.lean = lean
        self.fams = set(spec.families)
        self.coded = codes is not None
        # Column slots are ranks in the sorted vocabulary; codes are what `k` holds. Both
        # order like the names, so ordering by code is ordering by name.
        self.ev_index = {e: i for i, e in enumerate(sorted(spec.events))}
        self.code = dict(self.ev_index) if codes is None else {e: codes[e] for e in spec.events}
        if self.coded:
            listed = ", ".join(str(self.code[e]) for e in sorted(spec.events))
            self.seen = f"k IN ({listed})" if listed else "1 = 0"
        else:
            self.seen = "k >= 0"
        self.lit = dialect.literal

    # ---- helpers ---------------------------------------------------------------------------
    def _in_vocab(self, col: str) -> str:
        if not self.spec.events:
            return "1 = 0"
        return f"{col} IN ({', '.join(self.lit(e) for e in self.spec.events)})"

    def _n(self, name: str) -> str:
        return f"{self.p}{name}"

    def _int(self, expr: str) -> str:
        # 32-bit keys and times in the row-event join: its window sorts and groups ran ~25%
        # faster than on BIGINT at 2M events (half the key bytes); sums and final values are
        # the same (every feature is cast to DOUBLE, every count is BIGINT).
        return f"CAST({expr} AS INTEGER)" if self.narrow else expr

    # ---- steps -----------------------------------------------------------------------------
    def plan(self) -> Plan:
        steps = [self._rows(), *([names_step(self.p)] if self.coded else []), self._ev()]
        steps += [self._re(), self._piv()]
        ordered = bool(self.fams & {"activity", "transitions"})
        if ordered:
            steps += [self._seq(), self._act()]
        if self.fams & {"counts", "activity"}:
            steps += [self._days(ordered), self._streak()]
        if self._lags():
            steps.append(self._lagd(ordered))
        if "account" in self.fams:
            steps += [self._acu(), self._aev(), self._acr(), self._acct()]
        if "fit" in self.fams:
            steps.append(self._fit())
        names = {s.name for s in steps}
        shared = (self._n("rows"), *((self._n("names"),) if self.coded else ()), self._n("ev"))
        return Plan(tuple(steps), self._final(names), self._unseen(), shared)

    def _rows(self) -> Step:
        e = self.d.epoch_seconds
        extra = "".join(f", {c}" for c in self._row_keys())
        sql = (
            f"SELECT rid, user_id, account_id, {e('cutoff_at')} AS cut, {e('signup_at')} AS sig"
            f"{extra} FROM {self.rows}"
        )
        return Step(self._n("rows"), sql)

    def _row_keys(self) -> tuple[str, ...]:
        """The rows' columns beyond the cutoffs: learning's user and learn flags when coded."""
        return ("uid", "learn") if self.coded else ()

    def _ev(self) -> Step:
        props = [
            f"CASE WHEN event = {self.lit(ev)} THEN {self.d.json_number('properties', p)} "
            f"END AS p{k}"
            for k, (ev, p, _) in enumerate(self._props())
        ]
        if self.coded:
            return self._ev_coded(props)
        code = " ".join(f"WHEN {self.lit(e)} THEN {i}" for e, i in self.ev_index.items())
        # Events outside the vocabulary get k = -1 and keep their name in `other`, so the one
        # join of events to rows also yields the unseen-event counts; later steps use k >= 0.
        code = f"CASE event {code} ELSE -1 END" if code else "-1"
        inner = ", ".join([f"{code} AS k", "event", *props])
        outer = "".join(f", e.p{k}" for k in range(len(props)))
        i = self._int
        sql = f"""SELECT {i("r.rid")} AS rid, e.k, {i("e.ts - r.sig")} AS t,
  {i("r.cut - r.sig")} AS age,
  CASE WHEN e.k < 0 THEN COALESCE(e.event, '<null>') END AS other{outer}
FROM (SELECT user_id, {self.d.epoch_seconds("timestamp")} AS ts, {inner} FROM events) e
JOIN {self._n("rows")} r ON e.user_id = r.user_id
WHERE e.ts < r.cut AND e.ts >= r.sig"""
        return Step(self._n("ev"), sql)

    def _ev_coded(self, props: list[str]) -> Step:
        # Every event keeps its type's code (NULL for a NULL type): learning counts all of them,
        # the features read the vocabulary's codes (`seen`), the unseen count the rest.
        inner = ", ".join(["event", *props])
        outer = "".join(f", e.p{k}" for k in range(len(props)))
        i = self._int
        # Without `lean`, learning's user and learn columns ride along (materialising the
        # join's 9M rows at 10M events is most of its cost, so they stay out when not needed).
        who = "" if self.lean else f"{i('r.uid')} AS uid, {i('r.learn')} AS learn, "
        sql = f"""SELECT {i("r.rid")} AS rid, {who}
  {i("n.c")} AS k, {i("e.ts - r.sig")} AS t, {i("r.cut - r.sig")} AS age{outer}
FROM (SELECT user_id, {self.d.epoch_seconds("timestamp")} AS ts, {inner} FROM events) e
JOIN {self._n("rows")} r ON e.user_id = r.user_id
LEFT JOIN {self._n("names")} n ON n.event = e.event
WHERE e.ts < r.cut AND e.ts >= r.sig"""
        return Step(self._n("ev"), sql)

    def _lags(self) -> tuple[int, ...]:
        return self.spec.lags_s if "lagged" in self.fams else ()

    def _lagd(self, ordered: bool) -> Step:
        # Days are counted back from the cutoff (day 0 is [cut - 1d, cut)); with whole-day lags
        # and window, a window is a range of day numbers. Weeks are counted back from each lag's
        # end, so "active weeks" at a lag reads only what came before it.
        def back(expr: str, lag: int, size: int) -> str:
            x = f"(age - {lag} - ({expr}) - 1)"
            return f"CAST(({x} - {x} % {size}) / {size} AS BIGINT)"

        wd = self.spec.lag_window_s // 86400
        if ordered:
            # In the time-ordered sequence a new day (week) starts where the previous event's
            # differs: filters instead of a DISTINCT (or COUNT DISTINCT) over every event.
            def new(lag: int, size: int) -> str:
                return f"(gap IS NULL OR {back('t', lag, size)} <> {back('t - gap', lag, size)})"

            cols = []
            for i, lag in enumerate(self._lags()):
                end, lo = f"t < age - {lag}", f"t >= age - {lag + self.spec.lag_window_s}"
                day = new(0, 86400)
                cols.append(f"COUNT(CASE WHEN {end} AND {lo} AND {day} THEN 1 END) AS ad{i}")
                cols.append(f"COUNT(CASE WHEN {end} AND {new(lag, 604800)} THEN 1 END) AS aw{i}")
            sql = f"SELECT rid, {', '.join(cols)} FROM {self._n('seq')} GROUP BY rid"
            return Step(self._n("lagd"), sql)
        cols = []
        for i, lag in enumerate(self._lags()):
            ld = lag // 86400
            cols.append(f"COUNT(CASE WHEN db >= {ld} AND db < {ld + wd} THEN 1 END) AS ad{i}")
            wk = f"(db - {ld})"
            cols.append(
                f"COUNT(DISTINCT CASE WHEN db >= {ld} THEN CAST(({wk} - {wk} % 7) / 7 AS BIGINT) "
                f"END) AS aw{i}"
            )
        sql = f"""SELECT rid, {", ".join(cols)}
FROM (SELECT DISTINCT rid, {back("t", 0, 86400)} AS db FROM {self._n("ev")} WHERE {self.seen}) d
GROUP BY rid"""
        return Step(self._n("lagd"), sql)

    def _props(self) -> list[tuple[str, str, tuple[str, ...]]]:
        return list(self.spec.properties) if "properties" in self.fams else []

    def _re(self) -> Step:
        # Counts per (row, event type) are 32-bit too when the join is: the pivot keeps one
        # state per event type and column, and halving them made the final statement ~20%
        # faster at 2M events (a row with 2^31 events of one type would raise, never wrap).
        n = self._int
        cols = [f"{n('COUNT(*)')} AS n_all", "MIN(t) AS first_t", "MAX(t) AS last_t"]
        for i, w in enumerate(self.spec.windows_s):
            # COUNT, not SUM(CASE .. 1 ELSE 0): DuckDB sums INTEGER into HUGEINT (slow).
            cols.append(f"{n(f'COUNT(CASE WHEN t >= age - {w} THEN 1 END)')} AS n_w{i}")
        for i, lag in enumerate(self._lags()):
            # [cut - lag - window, cut - lag) and its last `recent`, and the last event before
            # cut - lag; t counts from signup, age is the cutoff's t
            wl, r = self.spec.lag_window_s, self.spec.lag_recent_s
            end = f"t < age - {lag}"
            cols.append(
                f"{n(f'COUNT(CASE WHEN {end} AND t >= age - {lag + wl} THEN 1 END)')} AS nl{i}"
            )
            cols.append(
                f"{n(f'COUNT(CASE WHEN {end} AND t >= age - {lag + r} THEN 1 END)')} AS nr{i}"
            )
            cols.append(f"MAX(CASE WHEN {end} THEN t END) AS ll{i}")
        for k, _ in enumerate(self._props()):
            cols += [
                f"SUM(p{k}) AS ps{k}",
                f"COUNT(p{k}) AS pc{k}",
                f"MAX(p{k}) AS pmax{k}",
                f"MIN(p{k}) AS pmin{k}",
            ]
        sql = (
            f"SELECT rid, k, {', '.join(cols)} FROM {self._n('ev')} WHERE {self.seen} "
            f"GROUP BY rid, k"
        )
        return Step(self._n("re"), sql)

    def _piv(self) -> Step:
        wins = [*(f"n_w{i}" for i in range(len(self.spec.windows_s))), "n_all"]
        cols = [f"SUM({w}) AS ne_{w}" for w in wins]
        cols += [
            "MIN(first_t) AS first_any",
            "MAX(last_t) AS last_any",
            "COUNT(*) AS distinct_events",
            # Summed as integer micro-units: a float SUM depends on the order threads add the
            # rows (1e-15 noise that changed LightGBM's best iteration between two trainings);
            # an integer sum is exact whatever the order. 1e-6 is far below any split LightGBM
            # can tell apart on an entropy.
            f"SUM(CAST(ROUND(n_all * LN(n_all) * {NLOGN_SCALE}) AS BIGINT)) AS nlogn",
        ]
        for i, _ in enumerate(self._lags()):
            cols += [f"SUM(nl{i}) AS ne_nl{i}", f"SUM(nr{i}) AS ne_nr{i}", f"MAX(ll{i}) AS ll{i}"]
        lag_ix = range(len(self._lags()))
        # MAX over each (rid, k)'s one `re` row: MAX keeps BIGINT where SUM widens to HUGEINT
        # on DuckDB (the pivot took 1.3 s with SUM, 0.6 s with MAX at 10M events).
        per: list[PerEvent] = []
        for e, i in self.ev_index.items():
            c = self.code[e]
            if "counts" in self.fams:
                per += [("MAX", c, w, f"c{i}_{w}") for w in wins]
            per += [("MAX", c, f"nl{j}", f"c{i}_nl{j}") for j in lag_ix]
            per += [("MIN", c, "first_t", f"first{i}"), ("MAX", c, "last_t", f"last{i}")]
        tail: list[str] = []
        for k, _ in enumerate(self._props()):
            tail += [f"SUM(ps{k}) AS ps{k}", f"SUM(pc{k}) AS pc{k}"]
            tail += [f"MAX(pmax{k}) AS pmax{k}", f"MIN(pmin{k}) AS pmin{k}"]
        return pivot_step(self._n("piv"), self._n("re"), cols, per, tail, self.d)

    def _seq(self) -> Step:
        over = "OVER (PARTITION BY rid ORDER BY t, k)"
        age = ", age" if self._lags() else ""  # the lagged windows count back from the cutoff
        src = f"FROM {self._n('ev')} WHERE {self.seen}"
        sql = f"SELECT rid, k, t, t - LAG(t) {over} AS gap, LAG(k) {over} AS prev{age} {src}"
        return Step(self._n("seq"), sql, "" if age else f"SELECT rid, k, t {src}")

    def _act(self) -> Step:
        g = self.spec.session_gap_s
        cols = [
            f"COUNT(CASE WHEN gap IS NULL OR gap > {g} THEN 1 END) AS sessions",
            "SUM(gap) AS gap_sum",
            "COUNT(gap) AS gap_n",
            "MAX(gap) AS gap_max",
        ]
        if "transitions" in self.fams:
            cols += [
                f"COUNT(CASE WHEN prev = {self.code[a]} AND k = {self.code[b]} THEN 1 END) AS tr{j}"
                for j, (a, b) in enumerate(self.spec.transitions)
            ]
        sql = f"SELECT rid, {', '.join(cols)} FROM {self._n('seq')} GROUP BY rid"
        return Step(self._n("act"), sql)

    def _days(self, ordered: bool) -> Step:
        # Days are counted from signup (not UTC midnights, which mean nothing to a user abroad).
        day = "CAST((t - t % 86400) / 86400 AS BIGINT)"
        if ordered:
            # In the ordered sequence a new day starts where the previous event's day differs:
            # a filter instead of a DISTINCT over every event.
            pday = "CAST(((t - gap) - (t - gap) % 86400) / 86400 AS BIGINT)"
            distinct = (
                f"SELECT rid, {day} AS dnum FROM {self._n('seq')} "
                f"WHERE gap IS NULL OR {day} <> {pday}"
            )
        else:
            distinct = f"SELECT DISTINCT rid, {day} AS dnum FROM {self._n('ev')} WHERE {self.seen}"
        island = "dnum - ROW_NUMBER() OVER (PARTITION BY rid ORDER BY dnum)"
        sql = f"SELECT rid, dnum, {island} AS island FROM ({distinct}) d"
        return Step(self._n("days"), sql)

    def _streak(self) -> Step:
        sql = f"""SELECT rid, SUM(dlen) AS active_days, MAX(dlen) AS longest
FROM (SELECT rid, island, COUNT(*) AS dlen FROM {self._n("days")} GROUP BY rid, island) s
GROUP BY rid"""
        return Step(self._n("streak"), sql)

    def _fit(self) -> Step:
        s, lit, q = self.spec, self.lit, self.d.quote
        dom = "LOWER(TRIM(u.email_domain))"
        whens = ["WHEN u.email_domain IS NULL OR TRIM(u.email_domain) = '' THEN 'unknown'"]
        if s.enterprise_domains:
            listed = ", ".join(lit(x.lower()) for x in s.enterprise_domains)
            whens.append(f"WHEN {dom} IN ({listed}) THEN 'enterprise'")
        for suffix in s.education_suffixes:
            sfx = suffix.lower()
            whens.append(f"WHEN RIGHT({dom}, {len(sfx)}) = {lit(sfx)} THEN 'education'")
        if s.free_mail_domains:
            listed = ", ".join(lit(x.lower()) for x in s.free_mail_domains)
            whens.append(f"WHEN {dom} IN ({listed}) THEN 'free_mail'")
        cols = [f"CASE {' '.join(whens)} ELSE 'corporate' END AS domain_class"]
        cols += [f"CAST(u.{q(c)} AS DOUBLE) AS un{i}" for i, c in enumerate(s.numeric_user_columns)]
        cols += [
            f"CAST(u.{q(c)} AS STRING) AS uc{i}"
            for i, (c, _) in enumerate(s.categorical_user_columns)
        ]
        sql = f"""SELECT r.rid, {", ".join(cols)}
FROM {self._n("rows")} r LEFT JOIN users u ON u.user_id = r.user_id"""
        return Step(self._n("fit"), sql)

    def _unseen(self) -> str:
        if self.coded:
            return (
                f"SELECT COALESCE(n.event, '<null>') AS event, COUNT(*) AS n "
                f"FROM {self._n('ev')} e LEFT JOIN {self._n('names')} n ON n.c = e.k "
                f"WHERE e.k IS NULL OR NOT ({self.seen.replace('k', 'e.k', 1)}) "
                f"GROUP BY COALESCE(n.event, '<null>')"
            )
        return (
            f"SELECT other AS event, COUNT(*) AS n FROM {self._n('ev')} WHERE k < 0 GROUP BY other"
        )

    # ---- final select ----------------------------------------------------------------------
    def _final(self, names: set[str]) -> str:
        joins = "".join(
            f"\nLEFT JOIN {self._n(step)} {alias} ON {alias}.rid = r.rid"
            for step, alias in _ALIASES
            if self._n(step) in names
        )
        if self._n("fit") in names:
            joins += f"\nLEFT JOIN {self._n('fit')} f ON f.rid = r.rid"
        exprs = [f"{self._expr(info)} AS {info.name}" for info in self.spec.features]
        return f"SELECT r.rid, {', '.join(exprs)}\nFROM {self._n('rows')} r{joins}"

    def _lag_expr(self, f: FeatureInfo) -> str:
        i = self.spec.lags_s.index(f.lag_s)
        n, r = f"COALESCE(p.ne_nl{i}, 0)", f"COALESCE(p.ne_nr{i}, 0)"
        rest = self.spec.lag_window_s - self.spec.lag_recent_s
        return {
            "events": lambda: n,
            "count": lambda: f"COALESCE(p.c{self.ev_index[f.event]}_nl{i}, 0)",
            "active_days": lambda: f"COALESCE(g.ad{i}, 0)",
            "active_weeks": lambda: f"COALESCE(g.aw{i}, 0)",
            # log1p(events in the last `recent`) - log1p(the rest's events per `recent`)
            "trend": lambda: (
                f"LN(1 + CAST({r} AS DOUBLE)) - LN(1 + CAST({n} - {r} AS DOUBLE) * "
                f"{self.spec.lag_recent_s} / CAST({rest} AS DOUBLE))"
            ),
            "days_since": lambda: f"((r.cut - r.sig) - {f.lag_s} - p.ll{i}) / {DAY}",
        }[f.kind]()

    def _win(self, info: FeatureInfo) -> str:
        if info.window_s is None:
            return "n_all"
        return f"n_w{self.spec.windows_s.index(info.window_s)}"

    def _expr(self, f: FeatureInfo) -> str:
        k, idx = f.kind, self.ev_index
        age = "(r.cut - r.sig)"
        if f.family == "fit":
            if k == "domain_class":
                return "f.domain_class"
            if k == "user_numeric":
                return f"f.un{self.spec.numeric_user_columns.index(f.column)}"
            cats = [c for c, _ in self.spec.categorical_user_columns]
            return f"f.uc{cats.index(f.column)}"
        if f.family == "properties":
            j = next(
                j for j, (e, p, _) in enumerate(self._props()) if (e, p) == (f.event, f.property)
            )
            expr = {
                "sum": f"COALESCE(p.ps{j}, 0)",
                "mean": f"p.ps{j} / NULLIF(p.pc{j}, 0)",
                "max": f"p.pmax{j}",
                "min": f"p.pmin{j}",
            }[f.agg]
            return f"CAST({expr} AS DOUBLE)"
        if f.family == "lagged":
            return f"CAST({self._lag_expr(f)} AS DOUBLE)"
        expr = {
            "events": lambda: f"COALESCE(p.ne_{self._win(f)}, 0)",
            "count": lambda: f"COALESCE(p.c{idx.get(f.event)}_{self._win(f)}, 0)",
            "rate": lambda: (
                f"COALESCE(p.c{idx[f.event]}_n_all, 0) / "
                f"CAST(GREATEST(COALESCE(s.active_days, 0), 1) AS DOUBLE)"
            ),
            "hours_since_last_event": lambda: f"({age} - p.last_any) / {HOUR}",
            "hours_since_last": lambda: f"({age} - p.last{idx[f.event]}) / {HOUR}",
            "tenure_days": lambda: f"({age} - p.first_any) / {DAY}",
            "cutoff_age_days": lambda: f"{age} / {DAY}",
            "active_days": lambda: "COALESCE(s.active_days, 0)",
            "sessions": lambda: "COALESCE(a.sessions, 0)",
            "events_per_session": lambda: "p.ne_n_all / CAST(NULLIF(a.sessions, 0) AS DOUBLE)",
            "longest_streak_days": lambda: "COALESCE(s.longest, 0)",
            "trend": lambda: (
                f"CAST(p.ne_{self._win(f)} AS DOUBLE) * {age} / "
                f"NULLIF(LEAST({f.window_s}, {age}) * p.ne_n_all, 0)"
            ),
            "gap_mean_hours": lambda: f"a.gap_sum / CAST(NULLIF(a.gap_n, 0) AS DOUBLE) / {HOUR}",
            "gap_max_hours": lambda: f"a.gap_max / {HOUR}",
            "hours_to_first": lambda: f"p.first{idx[f.event]} / {HOUR}",
            "before": lambda: (
                f"CASE WHEN p.first{idx[f.event]} < p.first{idx[f.event_b]} THEN 1 ELSE 0 END"
            ),
            "within": lambda: (
                f"CASE WHEN p.first{idx[f.event]} < p.first{idx[f.event_b]} AND "
                f"p.first{idx[f.event_b]} - p.first{idx[f.event]} <= {f.window_s} "
                f"THEN 1 ELSE 0 END"
            ),
            "transition": lambda: (
                f"COALESCE(a.tr{self.spec.transitions.index((f.event, f.event_b))}, 0)"
            ),
            "distinct_events": lambda: "COALESCE(p.distinct_events, 0)",
            "event_entropy": lambda: (
                "CASE WHEN p.ne_n_all > 0 THEN "
                f"GREATEST(LN(p.ne_n_all) - p.nlogn / {NLOGN_SCALE} / NULLIF(p.ne_n_all, 0), 0.0) "
                "ELSE 0.0 END"
            ),
            "active_users": lambda: "COALESCE(c.active_users, 0)",
        }
        if f.family == "account" and k == "events":
            win = "ae_all" if f.window_s is None else f"ae_{self._win(f)[2:]}"
            return f"CAST(COALESCE(c.{win}, 0) AS DOUBLE)"
        return f"CAST({expr[k]()} AS DOUBLE)"
