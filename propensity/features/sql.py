"""Portable SQL for every feature family: written once, run unchanged on DuckDB and Spark SQL.

Why not write DuckDB SQL and transpile it? A trial with sqlglot showed silent differences
(``date_diff`` in seconds, day-of-week numbering, ordered list aggregation dropped) and
constructs that do not port at all (ordered collect/first, ``mode``, ASOF join, timestamp
buckets). So the feature SQL is written in a small subset both engines run identically, with
Spark's ANSI mode on:

- timestamps become integer epoch seconds once, in the first relations (``rows`` and ``ev``);
  that conversion, string literals, identifier quoting and JSON extraction are the only
  dialect-specific pieces and live behind :class:`Dialect`;
- after that only integer arithmetic, ``CASE WHEN``, ``SUM/COUNT/MIN/MAX/COUNT(DISTINCT)``,
  ``LAG``/``ROW_NUMBER`` windows ordered by ``(t, event)`` so ties are deterministic, ``LN``,
  ``GREATEST``/``LEAST``, ``COALESCE``, ``NULLIF``-guarded division (Spark ANSI raises on /0) and
  ``CAST(... AS DOUBLE/BIGINT)``; no ``FILTER``, ``QUALIFY``, ``//`` or engine-only functions;
- integer division is never needed: day keys are ``t - t % 86400`` (exact multiples), so
  ``/ 86400`` is exact before the cast;
- per-event columns are a pivot: group by (row, event) once into a small table, then
  ``SUM(CASE WHEN event = '...' THEN ... END)`` per column (about 2x faster than a ``FILTER``
  per column on DuckDB, and portable).

A plan is a list of :class:`Step` (name + one ``SELECT``) and a final ``SELECT``; each engine
decides how to materialise steps (DuckDB: temp tables; Spark: cached temp views). Inputs are the
relations ``events``, ``users`` and a rows relation (``rid``, ``user_id``, ``account_id``,
``signup_at``, ``cutoff_at``). Only events with ``signup_at <= timestamp < cutoff_at`` and an
event type in the spec's vocabulary are seen by any feature; ``t`` is seconds since signup.
"""

from __future__ import annotations

from dataclasses import dataclass

from propensity.features.spec import FeatureInfo, FeatureSpec

__all__ = ["DUCKDB", "SPARK", "Dialect", "Plan", "Step", "build_plan"]


@dataclass(frozen=True)
class Dialect:
    """The few expressions that differ between engines."""

    name: str

    def epoch_seconds(self, col: str) -> str:
        """Integer seconds since 1970 of a naive UTC ``TIMESTAMP``."""
        if self.name == "duckdb":
            return f"(epoch_ms({col}) // 1000)"
        # Spark reads naive timestamps in the session zone; the Spark engine pins it to UTC.
        return f"unix_seconds(CAST({col} AS TIMESTAMP))"

    def literal(self, value: str) -> str:
        """A string literal that holds ``value`` verbatim (event names come from user data)."""
        if self.name == "duckdb":
            return "'" + value.replace("'", "''") + "'"
        # Spark treats backslash as an escape and concatenates adjacent literals ('a''b' = 'ab').
        return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"

    def quote(self, ident: str) -> str:
        """A quoted identifier (user attribute columns may hold any character)."""
        if self.name == "duckdb":
            return '"' + ident.replace('"', '""') + '"'
        return "`" + ident.replace("`", "``") + "`"

    def json_number(self, col: str, key: str) -> str:
        """A numeric JSON property as DOUBLE, NULL when absent or not a number."""
        if self.name == "duckdb":
            return f"TRY_CAST(json_extract_string({col}, '$.{key}') AS DOUBLE)"
        return f"TRY_CAST(get_json_object({col}, '$.{key}') AS DOUBLE)"


DUCKDB = Dialect("duckdb")
SPARK = Dialect("spark")


@dataclass(frozen=True)
class Step:
    """One named intermediate relation."""

    name: str
    sql: str


@dataclass(frozen=True)
class Plan:
    """Steps in dependency order, the final feature select, and the unseen-event count."""

    steps: tuple[Step, ...]
    final: str
    unseen: str


def build_plan(spec: FeatureSpec, dialect: Dialect, rows: str, prefix: str) -> Plan:
    """The SQL that computes ``spec`` for the label rows in relation ``rows``.

    The final select returns ``rid`` then one column per spec feature, in spec order.
    """
    b = _Builder(spec, dialect, rows, prefix)
    return b.plan()


class _Builder:
    def __init__(self, spec: FeatureSpec, dialect: Dialect, rows: str, prefix: str) -> None:
        self.spec, self.d, self.rows, self.p = spec, dialect, rows, prefix
        self.fams = set(spec.families)
        self.ev_index = {e: i for i, e in enumerate(spec.events)}
        self.lit = dialect.literal

    # ---- helpers ---------------------------------------------------------------------------
    def _in_vocab(self, col: str) -> str:
        if not self.spec.events:
            return "1 = 0"
        return f"{col} IN ({', '.join(self.lit(e) for e in self.spec.events)})"

    def _n(self, name: str) -> str:
        return f"{self.p}{name}"

    # ---- steps -----------------------------------------------------------------------------
    def plan(self) -> Plan:
        steps = [self._rows(), self._ev(), self._re(), self._piv()]
        if self.fams & {"activity", "transitions"}:
            steps += [self._seq(), self._act()]
        if self.fams & {"counts", "activity"}:
            steps += [self._days(), self._streak()]
        if "account" in self.fams:
            steps += [self._aev(), self._acct()]
        if "fit" in self.fams:
            steps.append(self._fit())
        names = {s.name for s in steps}
        return Plan(tuple(steps), self._final(names), self._unseen())

    def _rows(self) -> Step:
        e = self.d.epoch_seconds
        sql = (
            f"SELECT rid, user_id, account_id, {e('cutoff_at')} AS cut, {e('signup_at')} AS sig "
            f"FROM {self.rows}"
        )
        return Step(self._n("rows"), sql)

    def _ev(self) -> Step:
        props = "".join(
            f", CASE WHEN e.event = {self.lit(ev)} THEN {self.d.json_number('e.properties', p)} "
            f"END AS p{k}"
            for k, (ev, p, _) in enumerate(self._props())
        )
        sql = f"""SELECT r.rid, e.event, e.ts - r.sig AS t, r.cut - r.sig AS age{props}
FROM (SELECT user_id, event, {self.d.epoch_seconds("timestamp")} AS ts
      {", properties" if props else ""}
      FROM events WHERE {self._in_vocab("event")}) e
JOIN {self._n("rows")} r ON e.user_id = r.user_id
WHERE e.ts < r.cut AND e.ts >= r.sig"""
        return Step(self._n("ev"), sql)

    def _props(self) -> list[tuple[str, str, tuple[str, ...]]]:
        return list(self.spec.properties) if "properties" in self.fams else []

    def _re(self) -> Step:
        cols = ["COUNT(*) AS n_all", "MIN(t) AS first_t", "MAX(t) AS last_t"]
        for i, w in enumerate(self.spec.windows_s):
            cols.append(f"SUM(CASE WHEN t >= age - {w} THEN 1 ELSE 0 END) AS n_w{i}")
        for k, _ in enumerate(self._props()):
            cols += [
                f"SUM(p{k}) AS ps{k}",
                f"COUNT(p{k}) AS pc{k}",
                f"MAX(p{k}) AS pmax{k}",
                f"MIN(p{k}) AS pmin{k}",
            ]
        sql = f"SELECT rid, event, {', '.join(cols)} FROM {self._n('ev')} GROUP BY rid, event"
        return Step(self._n("re"), sql)

    def _piv(self) -> Step:
        wins = [*(f"n_w{i}" for i in range(len(self.spec.windows_s))), "n_all"]
        cols = [f"SUM({w}) AS ne_{w}" for w in wins]
        cols += [
            "MIN(first_t) AS first_any",
            "MAX(last_t) AS last_any",
            "COUNT(*) AS distinct_events",
            "SUM(n_all * LN(n_all)) AS nlogn",
        ]
        for ev, i in self.ev_index.items():
            lit = self.lit(ev)
            if "counts" in self.fams:
                cols += [
                    f"SUM(CASE WHEN event = {lit} THEN {w} ELSE 0 END) AS c{i}_{w}" for w in wins
                ]
            cols.append(f"MIN(CASE WHEN event = {lit} THEN first_t END) AS first{i}")
            cols.append(f"MAX(CASE WHEN event = {lit} THEN last_t END) AS last{i}")
        for k, _ in enumerate(self._props()):
            cols += [f"SUM(ps{k}) AS ps{k}", f"SUM(pc{k}) AS pc{k}"]
            cols += [f"MAX(pmax{k}) AS pmax{k}", f"MIN(pmin{k}) AS pmin{k}"]
        sql = f"SELECT rid, {', '.join(cols)} FROM {self._n('re')} GROUP BY rid"
        return Step(self._n("piv"), sql)

    def _seq(self) -> Step:
        over = "OVER (PARTITION BY rid ORDER BY t, event)"
        sql = (
            f"SELECT rid, event, t, t - LAG(t) {over} AS gap, LAG(event) {over} AS prev "
            f"FROM {self._n('ev')}"
        )
        return Step(self._n("seq"), sql)

    def _act(self) -> Step:
        g = self.spec.session_gap_s
        cols = [
            f"SUM(CASE WHEN gap IS NULL OR gap > {g} THEN 1 ELSE 0 END) AS sessions",
            "SUM(gap) AS gap_sum",
            "COUNT(gap) AS gap_n",
            "MAX(gap) AS gap_max",
        ]
        if "transitions" in self.fams:
            cols += [
                f"SUM(CASE WHEN prev = {self.lit(a)} AND event = {self.lit(b)} THEN 1 ELSE 0 END)"
                f" AS tr{j}"
                for j, (a, b) in enumerate(self.spec.transitions)
            ]
        sql = f"SELECT rid, {', '.join(cols)} FROM {self._n('seq')} GROUP BY rid"
        return Step(self._n("act"), sql)

    def _days(self) -> Step:
        # Days are counted from signup (not UTC midnights, which mean nothing to a user abroad).
        sql = f"""SELECT rid, day, day - ROW_NUMBER() OVER (PARTITION BY rid ORDER BY day) AS island
FROM (SELECT DISTINCT rid, CAST((t - t % 86400) / 86400 AS BIGINT) AS day
      FROM {self._n("ev")}) d"""
        return Step(self._n("days"), sql)

    def _streak(self) -> Step:
        sql = f"""SELECT rid, SUM(len) AS active_days, MAX(len) AS longest
FROM (SELECT rid, island, COUNT(*) AS len FROM {self._n("days")} GROUP BY rid, island) s
GROUP BY rid"""
        return Step(self._n("streak"), sql)

    def _aev(self) -> Step:
        # Events of every user in an account that some row belongs to, on the users' account.
        sql = f"""SELECT u.account_id, e.user_id, {self.d.epoch_seconds("e.timestamp")} AS ts
FROM events e JOIN users u ON e.user_id = u.user_id
WHERE {self._in_vocab("e.event")}
  AND u.account_id IN (SELECT DISTINCT account_id FROM {self._n("rows")})"""
        return Step(self._n("aev"), sql)

    def _acct(self) -> Step:
        cols = ["COUNT(DISTINCT a.user_id) AS active_users"]
        cols += [
            f"SUM(CASE WHEN a.ts >= r.cut - {w} THEN 1 ELSE 0 END) AS ae_w{i}"
            for i, w in enumerate(self.spec.windows_s)
        ]
        cols.append("SUM(CASE WHEN a.ts >= r.sig THEN 1 ELSE 0 END) AS ae_all")
        sql = f"""SELECT r.rid, {", ".join(cols)}
FROM {self._n("rows")} r JOIN {self._n("aev")} a
  ON a.account_id = r.account_id AND a.user_id <> r.user_id AND a.ts < r.cut
GROUP BY r.rid"""
        return Step(self._n("acct"), sql)

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
        e = self.d.epoch_seconds
        not_in = "1 = 1" if not self.spec.events else f"NOT {self._in_vocab('e.event')}"
        return f"""SELECT COALESCE(e.event, '<null>') AS event, COUNT(*) AS n
FROM events e JOIN {self._n("rows")} r ON e.user_id = r.user_id
WHERE {e("e.timestamp")} < r.cut AND {e("e.timestamp")} >= r.sig
  AND (e.event IS NULL OR {not_in})
GROUP BY COALESCE(e.event, '<null>')"""

    # ---- final select ----------------------------------------------------------------------
    def _final(self, names: set[str]) -> str:
        joins = "".join(
            f"\nLEFT JOIN {self._n(step)} {alias} ON {alias}.rid = r.rid"
            for step, alias in (("piv", "p"), ("act", "a"), ("streak", "s"), ("acct", "c"))
            if self._n(step) in names
        )
        if self._n("fit") in names:
            joins += f"\nLEFT JOIN {self._n('fit')} f ON f.rid = r.rid"
        exprs = [f"{self._expr(info)} AS {info.name}" for info in self.spec.features]
        return f"SELECT r.rid, {', '.join(exprs)}\nFROM {self._n('rows')} r{joins}"

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
        expr = {
            "events": lambda: f"COALESCE(p.ne_{self._win(f)}, 0)",
            "count": lambda: f"COALESCE(p.c{idx.get(f.event)}_{self._win(f)}, 0)",
            "rate": lambda: (
                f"COALESCE(p.c{idx[f.event]}_n_all, 0) / "
                f"CAST(GREATEST(COALESCE(s.active_days, 0), 1) AS DOUBLE)"
            ),
            "hours_since_last_event": lambda: f"({age} - p.last_any) / 3600.0",
            "hours_since_last": lambda: f"({age} - p.last{idx[f.event]}) / 3600.0",
            "tenure_days": lambda: f"({age} - p.first_any) / 86400.0",
            "cutoff_age_days": lambda: f"{age} / 86400.0",
            "active_days": lambda: "COALESCE(s.active_days, 0)",
            "sessions": lambda: "COALESCE(a.sessions, 0)",
            "events_per_session": lambda: "p.ne_n_all / CAST(NULLIF(a.sessions, 0) AS DOUBLE)",
            "longest_streak_days": lambda: "COALESCE(s.longest, 0)",
            "trend": lambda: (
                f"CAST(p.ne_{self._win(f)} AS DOUBLE) * {age} / "
                f"NULLIF(LEAST({f.window_s}, {age}) * p.ne_n_all, 0)"
            ),
            "gap_mean_hours": lambda: "a.gap_sum / CAST(NULLIF(a.gap_n, 0) AS DOUBLE) / 3600.0",
            "gap_max_hours": lambda: "a.gap_max / 3600.0",
            "hours_to_first": lambda: f"p.first{idx[f.event]} / 3600.0",
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
                "GREATEST(LN(p.ne_n_all) - p.nlogn / p.ne_n_all, 0.0) ELSE 0.0 END"
            ),
            "active_users": lambda: "COALESCE(c.active_users, 0)",
        }
        if f.family == "account" and k == "events":
            win = "ae_all" if f.window_s is None else f"ae_{self._win(f)[2:]}"
            return f"CAST(COALESCE(c.{win}, 0) AS DOUBLE)"
        return f"CAST({expr[k]()} AS DOUBLE)"
