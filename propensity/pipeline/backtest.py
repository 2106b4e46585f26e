"""`backtest_job(cfg, start, end, every, out)`: score a range of as-of dates in one process.

The data are read and cleaned once, the model loaded once, and the features of every date's
population computed in one pass (the engine takes many cutoffs per user, as in training); each
date is then scored exactly as a separate ``propensity score`` run would score it (the same
population, features, scores, flags and reasons; ``tests/test_backtest.py`` holds them equal).
Drift checks are left to the daily job. With ``crm=True`` each date also runs the CRM step in
date order, as daily syncs would have. On Spark the populations and features run on Spark and
the rest on the driver, as an account task's score job does.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd

from propensity.config import Config
from propensity.engines import ScoreScope, open_engine
from propensity.errors import DataContractError
from propensity.io import write_table
from propensity.labels import LabelTimes
from propensity.pipeline.score import resolve_as_of
from propensity.scoring import score_frame

__all__ = ["BacktestOutcome", "as_of_dates", "backtest_job"]

MAX_DATES = 1000


@dataclass(frozen=True, eq=False)
class BacktestOutcome:
    """All dates' score tables stacked (``as_of`` tells them apart) and a summary per date."""

    scores: pd.DataFrame
    per_date: pd.DataFrame
    path: Path
    seconds: float


def as_of_dates(start: datetime, end: datetime, every: timedelta) -> list[datetime]:
    """``start``, ``start + every``, ... up to ``end`` inclusive.

    >>> len(as_of_dates(datetime(2025, 1, 1), datetime(2025, 1, 30), timedelta(days=1)))
    30
    """
    if end < start or every <= timedelta(0):
        raise DataContractError(
            [
                f"--to must not be before --as-of and --every must be positive. Got {start} to "
                f"{end} every {every}; pass an --as-of before --to."
            ]
        )
    count = int((end - start) / every) + 1
    if count > MAX_DATES:
        raise DataContractError(
            [f"A backtest scores at most {MAX_DATES} dates. Got {count}; widen --every."]
        )
    return [start + i * every for i in range(count)]


def backtest_job(
    cfg: Config,
    start: str | datetime,
    end: str | datetime,
    every: timedelta,
    out: Path,
    model_uri: str | None = None,
    crm: bool = False,
    progress: Callable[[str], None] = lambda message: None,
) -> BacktestOutcome:
    """Score every date from ``start`` to ``end`` (inclusive) and write the stacked scores."""
    from propensity.tracking import load_model

    began = time.perf_counter()
    uri = model_uri or f"models:/{cfg.mlflow.registered_model}@champion"
    progress(f"loading the model {uri}")
    loaded = load_model(uri, cfg.mlflow)
    model = loaded.pqlmodel
    spec = model.spec
    progress("reading and checking the data (once)")
    # the events of the union of the dates' windows, read once (io/window.py)
    dates_of = lambda latest: (resolve_as_of(start, latest), resolve_as_of(end, latest))  # noqa: E731
    engine = open_engine(cfg, ScoreScope(spec, dates_of))
    latest = engine.latest()
    dates = as_of_dates(resolve_as_of(start, latest), resolve_as_of(end, latest), every)
    pops = [engine.population(cfg.label, when, cfg.task) for when in dates]
    frames = [p.frame.assign(_date=i) for i, p in enumerate(pops) if len(p)]
    if not frames:
        raise DataContractError(
            [f"No user is in trial at any date from {dates[0]} to {dates[-1]}; check the range."]
        )
    stacked = pd.concat(frames, ignore_index=True)
    progress(f"computing features for {len(stacked):,} (user, date) rows in one pass")
    rows = LabelTimes(stacked.drop(columns="_date"), {}, {"kind": "scoring", "backtest": True})
    # On every engine the features come to the driver and each date runs score_job's
    # single-machine body, even for a Spark user task, whose daily job scores in place (Spark's
    # UDF, a parquet part per as_of): a backtest's output is one stacked file that the CRM
    # steps then read date by date in order, so its rows end on the driver anyway, and the
    # one scoring body keeps it equal to DuckDB's backtest and to daily runs (reason codes,
    # holdout, flags). Its rows are the populations of the dates, as in a score job.
    features = engine.features(rows, spec).frame
    info = {"name": loaded.name, "version": loaded.version, "run_id": loaded.run_id}
    inputs = sink = None
    if crm:
        from propensity.io.sinks import open_sink
        from propensity.pipeline.crm import read_crm_inputs

        inputs, sink = read_crm_inputs(engine, cfg), open_sink(cfg.crm.sink)
    tables, summaries = [], []
    try:
        for i, when in enumerate(dates):
            take = (stacked["_date"] == i).to_numpy()
            if not take.any():
                summaries.append({"as_of": when, "users_scored": 0, "pqls": 0})
                continue
            result = _score_date(model, features[take], stacked[take], cfg, info, when)
            tables.append(result.scores)
            summaries.append({"as_of": when, **_counts(result.summary)})
            if crm:
                from propensity.pipeline.crm import crm_sync

                crm_sync(
                    cfg, inputs, result.scores, when, model.threshold, str(info["version"]), sink
                )
            progress(f"scored {when:%Y-%m-%d %H:%M} ({i + 1}/{len(dates)})")
    finally:
        if sink is not None:
            sink.close()
    scores = pd.concat(tables, ignore_index=True)
    write_table(scores, Path(out), cfg.scoring.output_format)
    return BacktestOutcome(
        scores, pd.DataFrame(summaries), Path(out), round(time.perf_counter() - began, 2)
    )


def _score_date(
    model: Any, features: pd.DataFrame, pop: pd.DataFrame, cfg: Config, info: dict, when: datetime
) -> Any:
    """One date's score table, as ``score_job`` computes it."""
    features = features.reset_index(drop=True)
    accounts = pop["account_id"].reset_index(drop=True)
    return score_frame(
        model,
        features,
        accounts,
        cfg.scoring,
        info,
        as_of=when,
        scored_at=datetime.now().replace(microsecond=0),
        reference=model.metadata.get("reason_reference"),
    )


def _counts(summary: dict[str, Any]) -> dict[str, Any]:
    return {k: summary[k] for k in ("users_scored", "pqls", "holdout")}
