"""Learning a FeatureSpec from training rows: the vocabulary, transitions, levels, families.

One pass over the events (:class:`Learned`) on any :class:`~propensity.features.rows.SqlRunner`,
so DuckDB and Spark learn the same spec from one definition.
"""

from __future__ import annotations

import re
from typing import Any

import duckdb
import numpy as np
import pandas as pd

from propensity.config import FeaturesConfig
from propensity.errors import ConfigError, DataContractError
from propensity.features.calendar_sql import (
    build_calendar_plan,
    calendar_phase,
    calendar_vocabulary_sql,
)
from propensity.features.portable import DUCKDB, Plan, Step
from propensity.features.rows import DuckRunner, RowsRelation, SqlRunner
from propensity.features.sequence import Sorted, materialise_sequence, sort_sequence
from propensity.features.spec import FAMILIES, FeatureSpec
from propensity.features.sql import build_plan
from propensity.features.type_counts import materialise_type_counts
from propensity.features.vocabulary_sql import (
    counted_vocabulary_sql,
    names_step,
    transitions_sql,
    vocabulary_sql,
)

__all__ = ["Learned", "check_config"]

_RK_NAMES = 1000  # event types beyond which `rk`'s filter lists too many codes to be worth it
_PROPERTY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_NUMERIC = ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "FLOAT", "DOUBLE", "DECIMAL",
            "UTINYINT", "USMALLINT", "UINTEGER", "UBIGINT", "BOOLEAN")  # fmt: skip


def _sec(delta) -> int:  # type: ignore[no-untyped-def]
    return int(round(delta.total_seconds()))


def _fields(spec: FeatureSpec) -> dict:
    return {k: getattr(spec, k) for k in spec.__dataclass_fields__}


def _families(cfg: FeaturesConfig, calendar: bool) -> tuple[str, ...]:
    """The families on in ``cfg``; left unset, ``lagged`` is on for rows at calendar anchors and
    ``timing`` (hours from signup to a first event, a trial-clock measure) only at trial ages."""
    on = {f: bool(getattr(cfg.families, f)) for f in FAMILIES}
    on["timing"] = not calendar if cfg.families.timing is None else cfg.families.timing
    wanted = calendar if cfg.families.lagged is None else cfg.families.lagged
    on["lagged"] = wanted and bool(cfg.lagged.lags)  # no lags listed: nothing to compute
    return tuple(f for f in FAMILIES if on[f])


def _lag_fields(cfg: FeaturesConfig, families: tuple[str, ...]) -> dict[str, Any]:
    if "lagged" not in families:
        return {}
    lag = cfg.lagged
    return {
        "lag_window_s": _sec(lag.window),
        "lags_s": tuple(sorted(_sec(x) for x in lag.lags)),
        "lag_recent_s": _sec(lag.recent),
        "lag_dedup": True,
    }


def check_config(cfg: FeaturesConfig) -> None:
    bad = [p.property for p in cfg.properties if not _PROPERTY.match(p.property)]
    if bad:
        raise ConfigError(
            f"features.properties[].property must be a plain JSON key ([A-Za-z_][A-Za-z0-9_]*). "
            f"Got {bad}; rename the property in the config."
        )
    if any(w.total_seconds() <= 0 for w in cfg.windows) or cfg.session_gap.total_seconds() <= 0:
        raise ConfigError(
            "features.windows and features.session_gap must be positive durations. Got a zero "
            "or negative one; use e.g. '1d' or '30m'."
        )


def _check_user_columns(run: SqlRunner, cfg: FeaturesConfig) -> None:
    types = run.column_types("users")
    problems = []
    for col in (*cfg.numeric_user_columns, *cfg.categorical_user_columns):
        if col not in types:
            problems.append(
                f"Users column {col!r} named in features.*_user_columns must exist. Got columns "
                f"{sorted(types)}; fix the config or the users file."
            )
    for col in cfg.numeric_user_columns:
        if col in types and not types[col].startswith(_NUMERIC):
            problems.append(
                f"Users column {col!r} in features.numeric_user_columns must be numeric. Got "
                f"{types[col]}; list it under categorical_user_columns instead."
            )
    if problems:
        raise DataContractError(problems)


def _levels(run: SqlRunner, rows: str, col: str, cap: int) -> tuple[str, ...]:
    q = run.dialect.quote(col)
    # CAST AS STRING, as the feature plan casts the column (DuckDB reads STRING as VARCHAR).
    found = run.fetch(
        f"""
        SELECT CAST(u.{q} AS STRING) AS v, COUNT(*) AS n
        FROM {rows} r JOIN users u ON u.user_id = r.user_id
        WHERE u.{q} IS NOT NULL GROUP BY v ORDER BY n DESC, v LIMIT {int(cap)}
        """
    )
    return tuple(sorted(v for v, _ in found))


class Learned:
    """Learns a spec from one pass over the events; keeps that pass's tables until exit.

    Steps: the event names with codes, the events of the rows with their type's code (``ev``),
    the vocabulary from ``ev``'s learn rows, then (for transitions) the time-ordered sequence
    of vocabulary events (``seq``) and the pairs ranked against the label. ``materialised``
    names the tables a coded plan of the same prefix can reuse.
    """

    def __init__(
        self,
        run: SqlRunner,
        rows: RowsRelation,
        has_label: bool,
        cfg: FeaturesConfig,
        calendar: bool = False,
        share: bool = False,
    ):
        self.run, self.rows, self.has_label, self.cfg = run, rows, has_label, cfg
        self.calendar = calendar
        # The features come next on the same tables: leave them the per-(row, type) counts.
        self.share = share
        # Spark's rows relation has no `narrow`: its plan keeps 64-bit integers.
        self.narrow = bool(getattr(rows, "narrow", False)) and run.dialect == DUCKDB
        self.lean = bool(getattr(rows, "lean", False)) and run.dialect == DUCKDB
        self.materialised: tuple[str, ...] = ()
        self.sequence: Sorted | None = None  # the sequence's sorted keys, when kept

    def __enter__(self) -> Learned:
        try:
            self._learn()
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        for name in reversed(self.materialised):
            self.run.drop(name)
        self.materialised = ()
        self.sequence = None

    def _materialise(self, plan: Plan, name: str) -> None:
        step = next(s for s in plan.steps if s.name == f"{self.rows.prefix}{name}")
        # DuckDB sorts the time-ordered sequence in numpy (same table, a third of the CPU).
        run = self.run
        made: tuple[str, ...] = ()
        if isinstance(run, DuckRunner):
            made = self._sorted(run.con, step)
        if not made:
            run.materialise(step.name, step.sql)
        self.materialised += made or (step.name,)

    def _sorted(self, con: duckdb.DuckDBPyConnection, step: Step) -> tuple[str, ...]:
        """The tables made from ``step`` sorted in numpy: only the distinct pairs when they
        can be, the sorted keys kept as ``sequence`` (the features' per-row steps read them
        without a sequence table); else the sequence table too."""
        s = sort_sequence(con, step)
        if s is None:
            return ()
        pairs = f"{self.rows.prefix}pairs"
        made = materialise_sequence(con, step, pairs, table=False, done=s)
        if pairs in made:
            self.sequence = s
            return made
        return materialise_sequence(con, step, done=s)

    def _learn(self) -> None:
        run, rows, cfg = self.run, self.rows, self.cfg
        p = rows.prefix
        families = _families(cfg, self.calendar)
        names_sql = names_step(p)
        run.materialise(names_sql.name, names_sql.sql)
        self.materialised += (names_sql.name,)
        names = dict(run.fetch(f"SELECT event, c FROM {names_sql.name}"))
        properties = tuple((pr.event, pr.property, tuple(pr.aggregates)) for pr in cfg.properties)
        # The plan's first steps depend on the properties but not on the vocabulary: build them
        # from a spec without one, materialise, then learn the vocabulary from `ev`.
        prop_events = tuple(sorted({e for e, _, _ in properties}))
        probe = FeatureSpec(
            families=families,
            events=prop_events,
            windows_s=(),
            session_gap_s=1,
            key_events=(),
            properties=properties,
            **_lag_fields(cfg, families),
        )
        plan = build_plan(
            probe,
            run.dialect,
            rows.name,
            p,
            codes=dict.fromkeys(prop_events, 0),
            narrow=self.narrow,
            lean=self.lean,
        )
        self._materialise(plan, "rows")
        # Rows on a weekly grid learn from each user's events read once (`uev`, which the
        # calendar plan reuses) instead of the row-event join, unless transitions are ranked
        # (they read the join's per-row sequence).
        weekly = FeatureSpec(**{**_fields(probe), "windows_s": _windows(cfg)})
        phase = calendar_phase(run, weekly, rows.name)
        if phase is not None and not ("transitions" in families and cfg.top_transitions > 0):
            cal = build_calendar_plan(weekly, rows.name, p, phase, codes={}, narrow=self.narrow)
            self._materialise(cal, "uev")
            found = run.fetch(calendar_vocabulary_sql(p, phase, cfg.min_event_support))
        else:
            self._materialise(plan, "ev")
            found = self._counted(weekly, names)
        events = _vocabulary(found, names, cfg)
        key_events = tuple(sorted(set(cfg.key_events))) if cfg.key_events else events
        milestones = tuple(
            (m.first, m.then, None if m.within is None else _sec(m.within)) for m in cfg.milestones
        )
        _check_user_columns(run, cfg)
        base = FeatureSpec(
            families=families,
            events=events,
            windows_s=_windows(cfg),
            session_gap_s=_sec(cfg.session_gap),
            key_events=key_events,
            milestones=milestones,
            free_mail_domains=tuple(d.lower() for d in cfg.free_mail_domains),
            enterprise_domains=tuple(d.lower() for d in cfg.enterprise_domains),
            education_suffixes=tuple(s.lower() for s in cfg.education_suffixes),
            numeric_user_columns=tuple(cfg.numeric_user_columns),
            categorical_user_columns=tuple(
                (c, _levels(run, rows.name, c, cfg.max_category_levels))
                for c in cfg.categorical_user_columns
            ),
            properties=properties,
            **_lag_fields(cfg, families),
        )
        # Named events that never occur get codes no event has (their order never matters).
        absent = [e for e in events if e not in names]
        self.codes = {e: names[e] for e in events if e in names}
        self.codes |= {e: -2 - i for i, e in enumerate(absent)}
        if f"{p}rk" in self.materialised:
            # The features' `re` is `rk`'s rows of the vocabulary (each (rid, k) group alone).
            listed = ", ".join(str(c) for c in sorted(self.codes.values()) if c >= 0)
            seen = f"k IN ({listed})" if listed else "1 = 0"
            run.materialise(f"{p}re", f"SELECT * FROM {p}rk WHERE {seen}")
            run.drop(f"{p}rk")
            self.materialised = (*(m for m in self.materialised if m != f"{p}rk"), f"{p}re")
        transitions: tuple[tuple[str, str], ...] = ()
        if "transitions" in families and cfg.top_transitions > 0 and events:
            plan = build_plan(
                base,
                run.dialect,
                rows.name,
                p,
                codes=self.codes,
                narrow=self.narrow,
                lean=self.lean,
            )
            self._materialise(plan, "seq")
            transitions = self._top_transitions(base)
        spec = FeatureSpec(**{**_fields(base), "transitions": transitions})
        dupes = sorted({c for c in spec.columns if spec.columns.count(c) > 1})
        if dupes:
            raise ConfigError(
                f"Feature column names must be unique. Got duplicates {dupes}; rename the user "
                f"columns or properties whose sanitised names collide."
            )
        self.spec = spec

    def _counted(self, weekly: FeatureSpec, names: dict[str, int]) -> list[tuple[Any, ...]]:
        """The vocabulary query's rows; with ``share`` and ``lean``, counted from ``rk``.

        ``rk`` is the features' per-(row, type) step over every event type (its columns need
        the windows, lags and properties, not the vocabulary): one group-by of the event join
        serves both, where counting distinct rows per type was a second (0.4 s at 10M events).
        """
        run, p, cfg = self.run, self.rows.prefix, self.cfg
        if not (self.share and self.lean and len(names) <= _RK_NAMES):
            return run.fetch(vocabulary_sql(p, cfg.min_event_support, self.lean))
        every = FeatureSpec(**{**_fields(weekly), "events": tuple(sorted(names))})
        plan = build_plan(
            every, run.dialect, self.rows.name, p, codes=names, narrow=self.narrow, lean=True
        )
        step = next(s for s in plan.steps if s.name == f"{p}re")
        # DuckDB counts from sorted numpy keys (a third of the group-by's CPU)
        listed = ", ".join(str(c) for c in sorted(names.values()))
        source = f"SELECT rid, k, t, age FROM {p}ev WHERE k IN ({listed})"
        ages = f"SELECT rid, cut - sig AS age FROM {p}rows"
        if not (
            isinstance(run, DuckRunner)
            and names
            and not every.lags_s
            and materialise_type_counts(run.con, f"{p}rk", step.sql, source, ages, every.windows_s)
        ):
            run.materialise(f"{p}rk", step.sql)
        self.materialised += (f"{p}rk",)
        return run.fetch(counted_vocabulary_sql(p, cfg.min_event_support))

    def _top_transitions(self, spec: FeatureSpec) -> tuple[tuple[str, str], ...]:
        run, rows, cfg = self.run, self.rows, self.cfg
        pairs = f"{rows.prefix}pairs"
        found = run.fetch(
            transitions_sql(
                rows.prefix,
                rows.name,
                cfg.min_event_support,
                self.has_label,
                pairs if pairs in self.materialised else "",
            )
        )
        label = "label" if self.has_label else "0"
        [(total, positives)] = run.fetch(
            f"SELECT COUNT(*), COALESCE(SUM({label}), 0) FROM {rows.name} WHERE learn = 1"
        )
        name_of = {c: e for e, c in self.codes.items()}
        pairs = pd.DataFrame(found, columns=["prev", "k", "n_with", "pos_with"])
        if pairs.empty:
            return ()
        pairs = pairs.assign(
            prev=[name_of[int(c)] for c in pairs["prev"]],
            event=[name_of[int(c)] for c in pairs["k"]],
        )
        n_with = pairs["n_with"].astype(float)
        if self.has_label:
            pos = pairs["pos_with"].astype(float)
            rate_with = pos / n_with
            n_without = total - n_with
            rate_without = np.where(
                n_without > 0, (positives - pos) / n_without.clip(lower=1), rate_with
            )
            score = (rate_with - rate_without).abs() * n_with
        else:
            score = n_with
        # Rounded so float noise cannot reorder ties; ties then go by name for a stable
        # vocabulary.
        pairs = pairs.assign(score=np.round(score, 9)).sort_values(
            ["score", "prev", "event"], ascending=[False, True, True]
        )
        top = pairs.head(cfg.top_transitions)
        return tuple((str(a), str(b)) for a, b in zip(top["prev"], top["event"], strict=True))


def _windows(cfg: FeaturesConfig) -> tuple[int, ...]:
    return tuple(sorted({_sec(w) for w in cfg.windows}))


def _vocabulary(
    found: list[tuple[Any, ...]], names: dict[str, int], cfg: FeaturesConfig
) -> tuple[str, ...]:
    """Event types seen by ``min_event_support`` users (``found``: code, users, events), the
    ``max_event_types`` most common (ties by name), plus every event type the config names."""
    name_of = {c: e for e, c in names.items()}
    ranked = sorted((-int(users), -int(n), name_of[int(c)]) for c, users, n in found)
    named = {*cfg.key_events, *(p.event for p in cfg.properties)}
    named |= {e for m in cfg.milestones for e in (m.first, m.then)}
    return tuple(sorted({e for _, _, e in ranked[: int(cfg.max_event_types)]} | named))
