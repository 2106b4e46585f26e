"""Learn a FeatureSpec on training rows and compute feature tables on DuckDB.

The event log never leaves DuckDB: intermediate relations are temp tables with a per-call prefix
(so two calls on one connection do not collide) and only the final feature table comes back, via
Arrow. Memory limits and spilling are the connection's settings (``memory_limit``,
``temp_directory``), which the caller owns.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa

from propensity.config import FeaturesConfig
from propensity.errors import DataContractError
from propensity.features.calendar_sql import build_calendar_plan, calendar_phase
from propensity.features.learn import Learned, check_config
from propensity.features.memory import Share, memory_share
from propensity.features.portable import DUCKDB, Plan, Step
from propensity.features.rows import (
    DuckRows,
    DuckRunner,
    SqlRunner,
)
from propensity.features.sequence import Sorted, materialise_sequence, sort_sequence
from propensity.features.sequence_stats import materialise_row_stats
from propensity.features.spec import FeatureSpec
from propensity.features.sql import build_plan
from propensity.labels import LabelTimes

__all__ = [
    "BATCH_ROWS",
    "FeatureFrame",
    "SqlRunner",
    "assemble_features",
    "compute_features",
    "learn_spec",
    "learn_spec_and_features",
]


BATCH_ROWS = 65_536  # rows per slice of the result: ~60 MB at 120 columns


@dataclass(frozen=True, eq=False)
class FeatureFrame:
    """A feature table: ``user_id``, ``cutoff_at``, then the spec's columns in order.

    ``unseen_events`` counts events before the cutoffs whose type is outside the spec's
    vocabulary (ignored by every feature), by event type.
    """

    frame: pd.DataFrame
    unseen_events: dict[str, int] = field(default_factory=dict)


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
    check_config(cfg)
    if isinstance(con, duckdb.DuckDBPyConnection):
        with memory_share(con):
            return learn_spec(DuckRunner(con), label_times, cfg)
    with (
        con.rows(label_times) as rows,
        Learned(con, rows, label_times.has_label, cfg, label_times.calendar) as learned,
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
    check_config(cfg)
    run = DuckRunner(con)
    with (
        memory_share(con) as share,
        DuckRows(con, label_times, learn) as rows,
        Learned(run, rows, label_times.has_label, cfg, label_times.calendar, True) as learned,
    ):
        spec = learned.spec
        plan = _plan(
            con, spec, rows, learned.codes, with_ev=f"{rows.prefix}ev" in learned.materialised
        )
        # handed over in a list the build empties: nothing else keeps the keys alive
        keys, learned.sequence = [learned.sequence] if learned.sequence else [], None
        done = learned.materialised
        return spec, _run_plan(con, plan, label_times, spec, done, share, learned.codes, keys)


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
    with memory_share(con) as share, DuckRows(con, label_times) as rows:
        plan = _plan(con, spec, rows, None, history)
        return _run_plan(con, plan, label_times, spec, (), share)


def _plan(
    con: duckdb.DuckDBPyConnection,
    spec: FeatureSpec,
    rows: DuckRows,
    codes: dict[str, int] | None,
    history: str | None = None,
    with_ev: bool = False,
) -> Plan:
    """The calendar plan when every cutoff sits on one weekly grid (each event read once),
    else the portable plan; both give the same values."""
    phase = calendar_phase(DuckRunner(con), spec, rows.name)
    if phase is not None:
        return build_calendar_plan(
            spec, rows.name, rows.prefix, phase, codes, with_ev, history, rows.narrow
        )
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


def _run_plan(
    con: duckdb.DuckDBPyConnection,
    plan: Plan,
    label_times: LabelTimes,
    spec: FeatureSpec,
    done: tuple[str, ...],
    share: Share,
    codes: dict[str, int] | None = None,
    ordered: list[Sorted] | None = None,
) -> FeatureFrame:
    """Run ``plan`` (its steps named in ``done`` already exist as tables) into a FeatureFrame;
    ``share`` leaves room within data.memory_limit for the frame it fills. ``codes``: the
    plan's event codes (default: ranks); ``ordered``: its sequence's keys, already sorted
    (the list is emptied before the final select)."""
    # Steps both selects read are temp tables; the rest is one statement, so DuckDB plans
    # the whole DAG and materialises each CTE once.
    shared = [s.name for s in plan.steps if s.name in plan.shared and s.name not in done]
    into = _Assembler(label_times, spec)
    try:
        share(into.block.nbytes)  # the block is allocated, not yet touched: not resident
        for name in shared:
            con.execute(f"CREATE OR REPLACE TEMP TABLE {name} AS {_sql(plan, name)}")
        done = (*done, *shared)
        # A time-ordered sequence sorted in numpy (a third of the window's CPU) becomes a table,
        # or directly the per-row steps that read it.
        for step in plan.steps:
            if step.name not in done and step.ordered:
                keys = ordered[0] if ordered else None
                made, covered = _sequence(con, plan, step, spec, codes, keys)
                del keys
                shared += made
                done = (*done, *covered)
        if ordered:  # the keys live outside DuckDB's limit: free them before the big select
            ordered.clear()
        ctes = _ctes(plan, done)
        head = f"WITH {ctes}\n" if ctes else ""
        # Unordered: each row lands at its rid. Streamed a slice of rows at a time into the
        # frame's one float block: the whole table as Arrow, then as pandas, then in the block
        # were three copies of the result at peak (~1 GB each at 1M rows x 120 columns).
        reader = con.sql(f"{head}{plan.final}").to_arrow_reader(BATCH_ROWS)
        try:
            for batch in reader:
                into.add(batch)
        finally:
            reader.close()  # an open result would refuse the drops below and hide the error
        unseen = dict(con.execute(plan.unseen).fetchall())
    except duckdb.BinderException as exc:
        raise _binder_error(exc) from None
    finally:
        for name in reversed(shared):
            con.execute(f"DROP TABLE IF EXISTS {name}")
    return into.finish(unseen)


def _sql(plan: Plan, name: str) -> str:
    return next(s.sql for s in plan.steps if s.name == name)


def _sequence(
    con: duckdb.DuckDBPyConnection,
    plan: Plan,
    step: Step,
    spec: FeatureSpec,
    codes: dict[str, int] | None,
    ordered: Sorted | None,
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The tables made from sequence ``step`` sorted in numpy, and the steps they stand for:
    ``act`` and ``days`` + ``streak`` when those alone read it, else the sequence table."""
    s = ordered if ordered is not None and ordered.ordered == step.ordered else None
    s = s or sort_sequence(con, step)
    if s is None:
        return (), ()
    prefix = step.name.removesuffix("seq")  # the plan's steps share its prefix
    names = {x.name for x in plan.steps}
    act, days, streak = (f"{prefix}{x}" for x in ("act", "days", "streak"))
    readers = {x.name for x in plan.steps if step.name in x.sql and x.name != step.name}
    if (
        step.name not in plan.final
        and readers <= {act, days}
        and (days in names) == (streak in names)
    ):
        code = codes or {e: i for i, e in enumerate(sorted(spec.events))}
        pairs = tuple((code[a], code[b]) for a, b in spec.transitions) if act in names else ()
        made = materialise_row_stats(
            con,
            s,
            act if act in names else "",
            streak if streak in names else "",
            spec.session_gap_s,
            pairs,
        )
        return made, (*made, step.name, *((days,) if days in names else ()))
    made = materialise_sequence(con, step, done=s)
    return made, made


def _ctes(plan: Plan, done: tuple[str, ...]) -> str:
    """The steps neither shared nor in ``done``, as the final statement's CTEs."""
    return ",\n".join(
        f"{s.name} AS {'NOT ' if s.name in plan.inline else ''}MATERIALIZED ({s.sql})"
        for s in plan.steps
        if s.name not in plan.shared and s.name not in done
    )


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
    """The FeatureFrame from an engine's result (``rid`` then the spec's columns, rows in any
    order: each lands at position ``rid``).

    Shared by every engine so the dtypes (float64, categoricals with the spec's levels) and the
    one-row-per-label-row check are one definition.
    """
    into = _Assembler(label_times, spec)
    into.place(
        feats["rid"].to_numpy(),
        lambda name: feats[name].to_numpy(dtype="float64", na_value=np.nan),
        lambda name: feats[name].to_numpy(dtype=object),
    )
    return into.finish(unseen)


class _Assembler:
    """Fills a FeatureFrame from slices of an engine's result, each row at position ``rid``.

    One float block holds every numeric column (an ORDER BY of 677k rows x 191 columns, then a
    cast per column and pandas' consolidation, were three copies); categoricals gather as
    objects and become the spec's categoricals at the end.
    """

    def __init__(self, label_times: LabelTimes, spec: FeatureSpec):
        self.label_times, self.spec = label_times, spec
        self.n = len(label_times.frame)
        self.numeric = [c for c in spec.columns if c not in spec.categorical]
        self.block = np.empty((len(self.numeric), self.n), dtype="float64")
        self.cats = {name: np.full(self.n, None, dtype=object) for name in spec.categorical}
        self.rids: list[np.ndarray] = []

    def add(self, batch: pa.RecordBatch) -> None:
        """Place one slice of an Arrow result (``rid`` and the spec's columns)."""
        self.place(
            batch.column("rid").to_numpy(zero_copy_only=False),
            lambda name: (
                batch.column(name)
                .cast(pa.float64())
                .fill_null(np.nan)
                .to_numpy(zero_copy_only=False)
            ),
            lambda name: batch.column(name).to_numpy(zero_copy_only=False),
        )

    def place(
        self,
        rid: np.ndarray,
        numbers: Callable[[str], np.ndarray],
        objects: Callable[[str], np.ndarray],
    ) -> None:
        """Place rows at positions ``rid``; ``numbers``/``objects`` give a column's values."""
        rid = np.asarray(rid, dtype="int64")
        self.rids.append(rid)
        if len(rid) and (rid.min() < 0 or rid.max() >= self.n):
            self._mismatch()
        for j, name in enumerate(self.numeric):
            self.block[j, rid] = numbers(name)
        for name, values in self.cats.items():
            values[rid] = objects(name)

    def finish(self, unseen: dict) -> FeatureFrame:
        """The frame, once every row arrived exactly once."""
        rid = np.concatenate(self.rids) if self.rids else np.empty(0, dtype="int64")
        if not _is_permutation(rid, self.n):
            self._mismatch()
        spec = self.spec
        out = self.label_times.frame[["user_id", "cutoff_at"]].reset_index(drop=True).copy()
        frame = pd.concat(
            [out, pd.DataFrame(self.block.T, columns=self.numeric, index=out.index, copy=False)],
            axis=1,
            copy=False,
        )
        # In column order, so each lands at its place (insert copies no block).
        for name in sorted(self.cats, key=spec.columns.index):
            col = pd.Series(self.cats[name])
            values = pd.Categorical(
                col.where(col.notna(), None), categories=list(spec.categorical[name])
            )
            frame.insert(2 + spec.columns.index(name), name, values)
        return FeatureFrame(frame, {str(k): int(v) for k, v in sorted(unseen.items())})

    def _mismatch(self) -> None:
        got = sum(len(r) for r in self.rids)
        raise DataContractError(
            [
                f"Feature rows must match label rows one to one ({self.n}). Got {got}; the "
                f"users table probably repeats a user_id, make it unique."
            ]
        )


def _is_permutation(rid: np.ndarray, n: int) -> bool:
    """Whether ``rid`` holds each of 0..n-1 exactly once."""
    if len(rid) != n or n == 0:
        return len(rid) == n
    if rid.min() < 0 or rid.max() >= n:
        return False
    return bool(np.bincount(rid, minlength=n).max() == 1)
