"""`score_job(cfg, as_of, out)`: the daily batch job that turns events into a PQL list.

Boring on purpose: the same inputs and as-of give identical scores; every output file is written
to a temporary file and renamed, so a killed job leaves nothing half-written; a model whose
feature spec does not match this code exits 3; drift above the limit warns, or exits 4 with
``fail_on_drift`` (the drift table is written either way so the reason can be read).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import pandas as pd

from propensity.config import Config
from propensity.drift import psi_table, vocabulary_drift
from propensity.engines import Engine, ScoreScope, open_engine, scores_in_place
from propensity.errors import DataContractError, DriftError, PropensityError
from propensity.explain import prepare_in_background
from propensity.io import atomic_paths, read_previous_scores, write_table
from propensity.io.atomic import write_frame
from propensity.io.outputs import check_output_dir, check_output_file
from propensity.pipeline.accounts import account_scores, is_account_task
from propensity.scoring import score_frame

__all__ = ["ScoreOutcome", "check_score_options", "resolve_as_of", "score_job"]


@dataclass(frozen=True, eq=False)
class ScoreOutcome:
    """Where the outputs went and what the job saw."""

    scores: pd.DataFrame | None  # None when the engine wrote the scores where the data is
    summary: dict[str, Any]
    drift: pd.DataFrame | None
    paths: dict[str, Path]
    as_of: datetime
    model: str


def resolve_as_of(as_of: str | datetime, latest: datetime | None) -> datetime:
    """Parse ``--as-of`` (ISO-8601, naive = UTC) or ``latest`` (``data.end``, else the newest
    event)."""
    if isinstance(as_of, datetime):
        value = as_of
    elif as_of == "latest":
        if latest is None:
            raise DataContractError(["events: no events, so --as-of latest has no meaning."])
        return latest
    else:
        try:
            value = datetime.fromisoformat(as_of)
        except ValueError:
            raise DataContractError(
                [
                    f"--as-of must be an ISO-8601 time such as 2025-06-30T00:00:00 or 'latest'. "
                    f"Got {as_of!r} instead."
                ]
            ) from None
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    return value


def _paths(out: Path, fmt: str) -> dict[str, Path]:
    stem = out.name.removesuffix(out.suffix) if out.suffix else out.name
    return {
        "scores": out,
        "accounts": out.with_name(f"{stem}.accounts.{fmt}"),
        "dropped": out.with_name(f"{stem}.dropped.{fmt}"),
        "drift": out.with_name(f"{stem}.drift.csv"),
    }


def check_score_options(
    cfg: Config,
    out: Path,
    previous: Path | None,
    fail_on_drift: bool,
    csv: bool,
    *,
    backtest: bool = False,
) -> None:
    """Refuse, before any work, an ``--out`` or option the configured engine cannot honour.

    A job that scores in place writes a folder of parquet parts and makes none of the
    single-machine outputs; the others write one file, never over an input (an account task on
    Spark too: its rows come to the driver; and a ``backtest``, on any engine: one stacked file).
    """
    in_place = scores_in_place(cfg) and not backtest
    if in_place:
        check_output_dir(out, "--out")
    else:
        d = cfg.data
        inputs = (d.events, d.users, d.conversions, d.lost_users, d.payments)
        check_output_file(out, "--out", inputs)
    unsupported = [
        name
        for name, given in (
            ("--previous", in_place and previous is not None),
            ("--fail-on-drift", in_place and fail_on_drift),
            ("a .csv --out", in_place and csv),
        )
        if given
    ]
    if unsupported:
        raise PropensityError(
            f"{', '.join(unsupported)} is not supported with engine {cfg.engine} yet; use "
            f"engine duckdb for it. See 'propensity COMMAND --help'."
        )


def score_job(
    cfg: Config,
    as_of: str | datetime,
    out: Path,
    model_uri: str | None = None,
    previous: Path | None = None,
    fail_on_drift: bool = False,
    fmt: Literal["parquet", "csv"] | None = None,
    progress: Callable[[str], None] = lambda message: None,
    crm: bool = False,
    *,
    engine: Engine | None = None,
) -> ScoreOutcome:
    """Score every user in trial and not converted at ``as_of`` with the registered model.

    The model is loaded once, before the data (a missing model exits 3 before any work).
    ``crm``: also advance the CRM tables in ``cfg.crm.sink`` (after the files are written).
    """
    from propensity.tracking import load_model

    began = time.perf_counter()
    # bad input is found before the model is fetched: a garbage --previous costs no download
    key = "account_id" if is_account_task(cfg.task) else "user_id"
    previous_scores = None if previous is None else read_previous_scores(previous, key)
    uri = model_uri or f"models:/{cfg.mlflow.registered_model}@champion"
    progress(f"loading the model {uri}")
    loaded = load_model(uri, cfg.mlflow)
    model = loaded.pqlmodel
    spec = model.spec
    fmt = fmt or cfg.scoring.output_format
    if cfg.scoring.reason_codes and not scores_in_place(cfg):
        # numba's start-up and the trees' preparation (~0.6 s) overlap the data read
        prepare_in_background(model.booster)

    progress("reading and checking the data")
    # only the events this as-of and the model's spec need are read (DuckDB: io/window.py)
    scope = ScoreScope(spec, lambda latest: (resolve_as_of(as_of, latest),) * 2)
    engine = engine or open_engine(cfg, scope)
    latest = engine.latest()
    when = resolve_as_of(as_of, latest)
    population = engine.population(cfg.label, when, cfg.task)
    if len(population) == 0:
        who, knob = "user is in trial and unconverted", "label.trial_length"
        if cfg.task is not None and cfg.task.anchors.kind == "calendar":
            who, knob = f"{cfg.task.entity} is eligible", "task.eligibility.lookback"
        raise DataContractError(
            [
                f"No {who} at {when:%Y-%m-%d %H:%M} UTC, so there is nobody to score. Check "
                f"--as-of against the data range ({engine.summary.first_event} to {latest}) "
                f"and {knob}."
            ]
        )
    if scores_in_place(cfg):
        progress(f"scoring {len(population):,} users in trial where the data is")
        place = engine.score_in_place  # type: ignore[attr-defined]
        summary = place(population, loaded, uri, spec, cfg, when, out)
        if crm:  # the partition just written, as the CRM step reads any score table
            written = engine.written_scores(out, when)  # type: ignore[attr-defined]
            summary.update(_sync_crm(cfg, engine, written, when, model.threshold, loaded, progress))
        summary["seconds"] = round(time.perf_counter() - began, 2)
        return ScoreOutcome(None, summary, None, {"scores": Path(out)}, when, uri)
    progress(f"computing {len(spec.columns)} features for {len(population):,} users in trial")
    features = engine.features(population, spec)
    progress("scoring, explaining the top scores and checking drift")
    accounts = population.frame["account_id"].reset_index(drop=True)
    result = score_frame(
        model,
        features.frame,
        accounts,
        cfg.scoring,
        {"name": loaded.name, "version": loaded.version, "run_id": loaded.run_id},
        as_of=when,
        scored_at=datetime.now(UTC).replace(tzinfo=None, microsecond=0),
        reference=model.metadata.get("reason_reference"),
        previous=previous_scores,
    )
    drift = _drift(
        engine,
        model.metadata.get("drift_reference"),
        features,
        result.scores,
        spec,
        cfg.scoring.drift_psi_limit,
    )
    scores = result.scores
    if is_account_task(cfg.task):  # keyed on the account; each PQL names its users
        k = cfg.scoring.reason_codes
        scores = account_scores(engine, population, features.frame, model, scores, k)
    paths = _paths(Path(out), fmt)
    flagged = drift[drift["flag"]]
    if fail_on_drift and len(flagged):
        write_table(drift, paths["drift"], "csv")  # alone: the reason can be read
        raise DriftError(
            f"Drift above the limit {cfg.scoring.drift_psi_limit} in {len(flagged)} of "
            f"{len(drift)} checks ({', '.join(flagged['feature'].astype(str).head(5))}); see "
            f"{paths['drift']}. No scores were written. Retrain on recent data, or rerun without "
            f"--fail-on-drift."
        )
    # every output of the run is written whole to a temp file first and renamed together, so a
    # failure (a full disk) leaves the previous run's files, not a mix of old and new
    tables = [(drift, paths["drift"], "csv"), (scores, paths["scores"], fmt)]
    if cfg.scoring.account_rollup and not is_account_task(cfg.task):
        tables.append((result.accounts, paths["accounts"], fmt))
    if previous_scores is not None:
        dropped = result.dropped.rename(columns={"user_id": key})
        tables.append((dropped, paths["dropped"], fmt))
    with atomic_paths([target for _, target, _ in tables]) as tmps:
        for (frame, _, kind), tmp in zip(tables, tmps, strict=True):
            write_frame(frame, tmp, kind)  # type: ignore[arg-type]
    summary = {
        **result.summary,
        "as_of": when.isoformat(),
        "drift_flags": int(len(flagged)),
        "unseen_event_types": len(features.unseen_events),
        "seconds": round(time.perf_counter() - began, 2),
    }
    if crm:
        threshold = model.threshold
        summary.update(_sync_crm(cfg, engine, result.scores, when, threshold, loaded, progress))
    written = {k: v for k, v in paths.items() if v.exists() or k == "scores"}
    return ScoreOutcome(scores, summary, drift, written, when, uri)


def _sync_crm(
    cfg: Config,
    engine: Engine,
    scores: pd.DataFrame,
    when: datetime,
    threshold: float,
    loaded: Any,
    progress: Callable[[str], None],
) -> dict[str, int]:
    """Advance the CRM tables with the run's ``scores``; the counts for the summary."""
    from propensity.pipeline.crm import crm_sync, read_crm_inputs

    progress("updating the CRM tables")
    inputs = read_crm_inputs(engine, cfg)
    tables = crm_sync(cfg, inputs, scores, when, threshold, str(loaded.version))
    return {
        "crm_pqls": int(tables.current["is_pql"].sum()),
        "crm_history_rows": len(tables.history),
    }


def _drift(
    engine: Engine,
    reference: dict | None,
    features: Any,
    scores: pd.DataFrame,
    spec: Any,
    limit: float,
) -> pd.DataFrame:
    """PSI per feature and of the scores against the model's reference, plus event vocabulary."""
    tables = []
    if reference is not None:
        frame = features.frame
        aligned = scores.set_index("user_id").loc[frame["user_id"].astype(str), "score"]
        tables.append(psi_table(reference, frame, aligned.to_numpy(), limit=limit))
    known = engine.known_events(features.frame, spec.events)
    tables.append(pd.DataFrame([vocabulary_drift(features.unseen_events, known)]))
    return pd.concat(tables, ignore_index=True)
