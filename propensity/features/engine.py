"""Learn a FeatureSpec on training rows and compute feature tables on DuckDB.

The event log never leaves DuckDB: intermediate relations are temp tables with a per-call prefix
(so two calls on one connection do not collide) and only the final feature table comes back, via
Arrow. Memory limits and spilling are the connection's settings (``memory_limit``,
``temp_directory``), which the caller owns.
"""

from __future__ import annotations

import itertools
import re
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any, Protocol

import duckdb
import numpy as np
import pandas as pd

from propensity.config import FeaturesConfig
from propensity.contract import LABEL_TIMES, PLAN_KEYS
from propensity.errors import ConfigError, DataContractError
from propensity.features.calendar_sql import (
    build_calendar_plan,
    calendar_phase_sql,
    calendar_ready,
    calendar_vocabulary_sql,
)
from propensity.features.spec import FAMILIES, FeatureSpec
from propensity.features.sql import (
    DUCKDB,
    Dialect,
    Plan,
    build_plan,
    names_step,
    transitions_sql,
    vocabulary_sql,
)
from propensity.labels import LabelTimes

__all__ = [
    "FeatureFrame",
    "SqlRunner",
    "assemble_features",
    "compute_features",
    "learn_spec",
    "learn_spec_and_features",
]

_PROPERTY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_NUMERIC = ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "FLOAT", "DOUBLE", "DECIMAL",
            "UTINYINT", "USMALLINT", "UINTEGER", "UBIGINT", "BOOLEAN")  # fmt: skip
_calls = itertools.count()


@dataclass(frozen=True, eq=False)
class FeatureFrame:
    """A feature table: ``user_id``, ``cutoff_at``, then the spec's columns in order.

    ``unseen_events`` counts events before the cutoffs whose type is outside the spec's
    vocabulary (ignored by every feature), by event type.
    """

    frame: pd.DataFrame
    unseen_events: dict[str, int] = field(default_factory=dict)


class RowsRelation(Protocol):
    """Label rows registered as relation ``name`` (with ``rid`` and, if known, ``label``)."""

    name: str
    prefix: str


class SqlRunner(Protocol):
    """What :func:`learn_spec` needs from an engine: a few queries over ``events``/``users``.

    DuckDB connections are wrapped automatically; the Spark engine passes its own
    (:func:`propensity.engines._spark.learn_spec_spark`), so one definition learns the spec on both.
    """

    dialect: Dialect

    def rows(self, label_times: LabelTimes) -> AbstractContextManager[RowsRelation]: ...
    def fetch(self, sql: str) -> list[tuple[Any, ...]]: ...
    def materialise(self, name: str, sql: str) -> None: ...
    def drop(self, name: str) -> None: ...
    def column_types(self, table: str) -> dict[str, str]: ...  # DuckDB type names


def learn_spec(
    con: duckdb.DuckDBPyConnection | SqlRunner, label_times: LabelTimes, cfg: FeaturesConfig
) -> FeatureSpec:
    """Learn the vocabulary, transitions and categorical levels on training rows.

    Event types seen (before the cutoffs) by at least ``min_event_support`` users are kept, the
    ``max_event_types`` most common of them; event types named in the config (key events,
    milestones, properties) are always kept. Transitions are ranked by
    ``|P(label | pair) - P(label | no pair)| * rows_with_pair`` (by support alone without
    labels), ties broken by name.
    """
    _check_config(cfg)
    run: SqlRunner = _DuckRunner(con) if isinstance(con, duckdb.DuckDBPyConnection) else con
    with (
        run.rows(label_times) as rows,
        _Learned(run, rows, label_times.has_label, cfg, label_times.calendar) as learned,
    ):
        return learned.spec


def learn_spec_and_features(
    con: duckdb.DuckDBPyConnection,
    label_times: LabelTimes,
    cfg: FeaturesConfig,
    learn: np.ndarray | None = None,
) -> tuple[FeatureSpec, FeatureFrame]:
    """:func:`learn_spec` on the rows ``learn`` (a boolean mask; default all) and
    :func:`compute_features` of every row, from one scan and one join of the events.

    The spec is the one ``learn_spec`` learns on those rows, and the frame the one
    ``compute_features`` computes with it: learning keeps its event join and its time-ordered
    sequence, and the features read them instead of joining and sorting the events again.

    >>> spec, ff = learn_spec_and_features(con, labels, cfg.features, train_mask)  # doctest: +SKIP
    """
    _check_config(cfg)
    run = _DuckRunner(con)
    with (
        _Rows(con, label_times, learn) as rows,
        _Learned(run, rows, label_times.has_label, cfg, label_times.calendar) as learned,
    ):
        spec = learned.spec
        plan = _plan(
            con, spec, rows, learned.codes, with_ev=f"{rows.prefix}ev" in learned.materialised
        )
        return spec, _run_plan(con, plan, label_times, spec, learned.materialised)


def compute_features(
    con: duckdb.DuckDBPyConnection,
    label_times: LabelTimes,
    spec: FeatureSpec,
    history: str | None = None,
) -> FeatureFrame:
    """Compute ``spec``'s columns for every row of ``label_times``, in the rows' order.

    ``history``: the whole history's first times per user and event type, when ``events``
    holds only a window (see :func:`propensity.features.sql.build_plan`).

    >>> ff = compute_features(con, label_times, spec)  # doctest: +SKIP
    >>> list(ff.frame.columns[:2]), tuple(ff.frame.columns[2:]) == spec.columns  # doctest: +SKIP
    (['user_id', 'cutoff_at'], True)
    """
    with _Rows(con, label_times) as rows:
        plan = _plan(con, spec, rows, None, history)
        return _run_plan(con, plan, label_times, spec, ())


def _plan(
    con: duckdb.DuckDBPyConnection,
    spec: FeatureSpec,
    rows: _Rows,
    codes: dict[str, int] | None,
    history: str | None = None,
    with_ev: bool = False,
) -> Plan:
    """The calendar plan when every cutoff sits on one weekly grid (each event read once),
    else the portable plan; both give the same values."""
    phase = _calendar_phase(_DuckRunner(con), spec, rows.name)
    if phase is not None:
        return build_calendar_plan(spec, rows.name, rows.prefix, phase, codes, with_ev, history)
    return build_plan(
        spec,
        DUCKDB,
        rows.name,
        rows.prefix,
        codes=codes,
        history=history,
        narrow=rows.narrow,
        lean=rows.lean,
    )


def _calendar_phase(run: SqlRunner, spec: FeatureSpec, rows: str) -> int | None:
    """The cutoffs' common instant modulo a week when the calendar plan applies (DuckDB, a
    :func:`calendar_ready` spec, one signup per user), else None."""
    if run.dialect != DUCKDB or not calendar_ready(spec):
        return None
    [(phases, phase, split_users)] = run.fetch(calendar_phase_sql(rows))
    return int(phase) if phases == 1 and split_users == 0 else None


def _run_plan(
    con: duckdb.DuckDBPyConnection,
    plan: Plan,
    label_times: LabelTimes,
    spec: FeatureSpec,
    done: tuple[str, ...],
) -> FeatureFrame:
    """Run ``plan`` (its steps named in ``done`` already exist as tables) into a FeatureFrame."""
    # Steps both selects read are temp tables; the rest is one statement, so DuckDB plans
    # the whole DAG and materialises each CTE once.
    shared = [s for s in plan.steps if s.name in plan.shared and s.name not in done]
    ctes = ",\n".join(
        f"{s.name} AS MATERIALIZED ({s.sql})"
        for s in plan.steps
        if s.name not in plan.shared and s.name not in done
    )
    try:
        for step in shared:
            con.execute(f"CREATE OR REPLACE TEMP TABLE {step.name} AS {step.sql}")
        head = f"WITH {ctes}\n" if ctes else ""
        table = con.sql(f"{head}{plan.final} ORDER BY rid").to_arrow_table()
        unseen = dict(con.execute(plan.unseen).fetchall())
    except duckdb.BinderException as exc:
        raise _binder_error(exc) from None
    finally:
        for step in reversed(shared):
            con.execute(f"DROP TABLE IF EXISTS {step.name}")
    # Arrow buffers are freed column by column as pandas takes them, and the result is not
    # consolidated into one block: at 1M rows each of those would be another ~1 GB at peak.
    feats = table.to_pandas(self_destruct=True, split_blocks=True)
    del table
    return assemble_features(label_times, feats, spec, unseen)


def _binder_error(exc: Exception) -> DataContractError:
    return DataContractError(
        [
            f"The events/users tables must have the columns the feature spec needs. "
            f"DuckDB said: {exc}. Check the reader's output against the data contract."
        ]
    )


def assemble_features(
    label_times: LabelTimes, feats: pd.DataFrame, spec: FeatureSpec, unseen: dict
) -> FeatureFrame:
    """The FeatureFrame from an engine's result (``rid`` then the spec's columns, by ``rid``).

    Shared by every engine so the dtypes (float64, categoricals with the spec's levels) and the
    one-row-per-label-row check are one definition.
    """
    n = len(label_times.frame)
    if len(feats) != n or not np.array_equal(feats["rid"].to_numpy(), np.arange(n)):
        raise DataContractError(
            [
                f"Feature rows must match label rows one to one ({n}). Got {len(feats)}; the "
                f"users table probably repeats a user_id, make it unique."
            ]
        )
    out = label_times.frame[["user_id", "cutoff_at"]].reset_index(drop=True).copy()
    cats = spec.categorical
    data = {}
    for name in spec.columns:
        col = feats[name]
        if name in cats:
            data[name] = pd.Categorical(col.where(col.notna(), None), categories=list(cats[name]))
        else:
            data[name] = col.astype("float64")
    frame = pd.concat([out, pd.DataFrame(data, index=out.index)], axis=1)
    return FeatureFrame(frame, {str(k): int(v) for k, v in sorted(unseen.items())})


# ---- helpers -------------------------------------------------------------------------------
def require_row_keys(frame: pd.DataFrame) -> None:
    """Raise a contract error unless label rows carry the keys every engine's plan needs."""
    LABEL_TIMES.validate(frame, keys=PLAN_KEYS)


def row_table(frame: pd.DataFrame, learn: np.ndarray | None = None) -> pd.DataFrame:
    """The label rows as every engine registers them: the keys, ``rid`` (the position),
    ``uid`` (an integer per user, for counting distinct users cheaply), ``learn`` (1 for the
    rows a spec is learned on) and ``label`` when the rows have one."""
    rows = frame[list(PLAN_KEYS)].reset_index(drop=True)
    n = len(rows)
    learn_flag = np.ones(n, dtype="int64") if learn is None else np.asarray(learn, dtype="int64")
    if learn_flag.shape != (n,):
        raise ValueError(f"learn must mask the {n} label rows; got shape {learn_flag.shape}")
    rows = rows.assign(
        rid=np.arange(n, dtype="int64"),
        uid=pd.factorize(rows["user_id"])[0].astype("int64"),
        learn=learn_flag,
    )
    if "label" in frame.columns:
        rows["label"] = frame["label"].to_numpy()
    return rows


def fits_int32(rows: pd.DataFrame) -> bool:
    """Whether a plan of these rows may hold its row-event join in 32-bit integers: fewer than
    2^31 rows and every cutoff under 2^31 s after its signup (then ``t`` and ``age`` fit)."""
    if len(rows) >= 2**31 - 1:
        return False
    try:
        span = (pd.to_datetime(rows["cutoff_at"]) - pd.to_datetime(rows["signup_at"])).max()
    except (TypeError, ValueError):  # e.g. one column zoned and the other naive: stay 64-bit
        return False
    # Epoch seconds are floored, so a difference may exceed the span by a second.
    return bool(pd.isna(span) or span.total_seconds() < 2**31 - 4)


class _Rows:
    """Registers the label rows (with an integer ``rid``) for the duration of a ``with``."""

    def __init__(
        self,
        con: duckdb.DuckDBPyConnection,
        label_times: LabelTimes,
        learn: np.ndarray | None = None,
    ) -> None:
        frame = label_times.frame
        require_row_keys(frame)
        self.con = con
        self.prefix = f"_pf{next(_calls)}_"
        self.name = f"{self.prefix}input"
        self.frame = row_table(frame, learn)
        self.narrow = fits_int32(self.frame)
        # Every row a learn row of its own user (learn_spec, one cutoff per user): the event
        # join needs no user or learn column.
        f = self.frame
        self.lean = (
            bool(f["learn"].all()) and int(f["uid"].to_numpy().max(initial=-1)) == len(f) - 1
        )

    def __enter__(self) -> _Rows:
        self.con.register(f"{self.name}_df", self.frame)
        # A real temp table (not a view of the pandas frame) so joins see proper statistics.
        self.con.execute(
            f"CREATE OR REPLACE TEMP TABLE {self.name} AS SELECT * FROM {self.name}_df"
        )
        self.con.unregister(f"{self.name}_df")
        return self

    def __exit__(self, *exc: object) -> None:
        self.con.execute(f"DROP TABLE IF EXISTS {self.name}")


class _DuckRunner:
    """:class:`SqlRunner` on a DuckDB connection (temp tables)."""

    dialect = DUCKDB

    def __init__(self, con: duckdb.DuckDBPyConnection) -> None:
        self.con = con

    def rows(self, label_times: LabelTimes) -> _Rows:
        return _Rows(self.con, label_times)

    def fetch(self, sql: str) -> list[tuple[Any, ...]]:
        return self.con.execute(sql).fetchall()

    def materialise(self, name: str, sql: str) -> None:
        self.con.execute(f"CREATE OR REPLACE TEMP TABLE {name} AS {sql}")

    def drop(self, name: str) -> None:
        self.con.execute(f"DROP TABLE IF EXISTS {name}")

    def column_types(self, table: str) -> dict[str, str]:
        return {r[0]: r[1] for r in self.con.execute(f"DESCRIBE {table}").fetchall()}


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
    }


def _check_config(cfg: FeaturesConfig) -> None:
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


class _Learned:
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
    ):
        self.run, self.rows, self.has_label, self.cfg = run, rows, has_label, cfg
        self.calendar = calendar
        # Spark's rows relation has no `narrow`: its plan keeps 64-bit integers.
        self.narrow = bool(getattr(rows, "narrow", False)) and run.dialect == DUCKDB
        self.lean = bool(getattr(rows, "lean", False)) and run.dialect == DUCKDB
        self.materialised: tuple[str, ...] = ()

    def __enter__(self) -> _Learned:
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

    def _materialise(self, plan: Plan, name: str) -> None:
        step = next(s for s in plan.steps if s.name == f"{self.rows.prefix}{name}")
        self.run.materialise(step.name, step.sql)
        self.materialised += (step.name,)

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
        phase = _calendar_phase(run, weekly, rows.name)
        if phase is not None and not ("transitions" in families and cfg.top_transitions > 0):
            cal = build_calendar_plan(weekly, rows.name, p, phase, codes={})
            self._materialise(cal, "uev")
            found = run.fetch(calendar_vocabulary_sql(p, phase, cfg.min_event_support))
        else:
            self._materialise(plan, "ev")
            found = run.fetch(vocabulary_sql(p, cfg.min_event_support, self.lean))
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

    def _top_transitions(self, spec: FeatureSpec) -> tuple[tuple[str, str], ...]:
        run, rows, cfg = self.run, self.rows, self.cfg
        found = run.fetch(
            transitions_sql(rows.prefix, rows.name, cfg.min_event_support, self.has_label)
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
