"""`outcomes_job(cfg, out_dir)`: what the PQL program turned out to be, once horizons passed.

Reads the CRM history from the sink and the conversions from the data, measures (``crm.outcomes``)
realized precision, recall and calibration per run, PQL rate, time to PQL and PQL-to-paid per
segment and route, and the holdout lift; writes them as tables, logs them to MLflow and returns
them for the report. Training's promise is the champion's test precision at its threshold.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pandas as pd

from propensity.config import Config
from propensity.crm.outcomes import Outcomes, measure_outcomes
from propensity.engines import open_engine
from propensity.errors import DataContractError
from propensity.io import atomic_paths
from propensity.io.atomic import write_frame
from propensity.pipeline.contact import ContactRecord, read_contact
from propensity.pipeline.crm import read_crm_inputs, read_sink_table
from propensity.simulate.expect import expected_conversion, read_truth_world

__all__ = ["OUTCOME_FILES", "OutcomesResult", "outcomes_job", "read_outcomes"]

OUTCOME_FILES = {"runs": "outcomes_runs.csv", "segments": "outcomes_segments.csv"}
OUTCOME_FILES["lift"] = "outcomes_lift.json"


@dataclass(frozen=True, eq=False)
class OutcomesResult:
    outcomes: Outcomes
    promised_precision: float | None
    paths: dict[str, Path]
    run_id: str | None


def outcomes_job(
    cfg: Config,
    out_dir: Path,
    model_uri: str | None = None,
    log: bool = True,
    progress: Callable[[str], None] = lambda message: None,
    truth: Path | None = None,
) -> OutcomesResult:
    """Measure the outcomes of every run in the sink's history whose horizon has passed.

    ``truth``: the folder of a simulated world; each row's exact chance of converting (with the
    world's contact effect, if one was applied) is then measured against too.
    """
    progress("reading the CRM history")
    history = read_sink_table(
        cfg,
        "history",
        "there is nothing to measure. Run 'propensity score --crm' (daily, or a backtest with "
        "--to) first.",
    )
    contact = None
    if truth is not None:
        progress("computing each row's true chance of converting")
        history, contact = _with_truth(history, Path(truth), cfg.crm.outcome_horizon)
    progress("reading the conversions and users")
    engine = open_engine(cfg)
    end = engine.latest()
    inputs = read_crm_inputs(engine, cfg)
    promised = _promise(cfg, model_uri)
    found = measure_outcomes(
        history,
        inputs.converted,
        inputs.segments,
        cfg.crm.outcome_horizon,
        end,
        promised,
        cfg.crm.alert_drop,
        ("domain_class", "size_band"),
    )
    if found.runs.empty:
        raise DataContractError(
            [
                f"No run in the history is older than crm.outcome_horizon "
                f"({cfg.crm.outcome_horizon.days} days) at the data end {end}; wait, or "
                f"shorten the horizon."
            ]
        )
    if contact is not None:
        found.lift["true_lift_contacted"] = contact.true_lift
    paths = _write(found, promised, Path(out_dir))
    run_id = _log(cfg, found, promised) if log else None
    return OutcomesResult(found, promised, paths, run_id)


def summary(found: Outcomes, promised: float | None) -> dict[str, Any]:
    """The numbers a reader wants first (also the MLflow metrics)."""
    runs = found.runs
    hits = (runs["precision"] * runs["pqls"]).sum()
    out = {
        "runs": len(runs),
        "realized_precision": float(hits / runs["pqls"].sum()) if runs["pqls"].sum() else None,
        "expected_precision": float(runs["expected_precision"].mean()),
        "recall": float(runs["recall"].mean()),
        "calibration_gap": float(runs["calibration_gap"].mean()),
        "promised_precision": promised,
    }
    out.update({f"lift.{k}": v for k, v in found.lift.items()})
    return out


def read_outcomes(folder: Path) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, Any]]:
    """The tables an earlier ``outcomes_job`` wrote to ``folder`` (for the report)."""
    folder = Path(folder)
    missing = [n for n in OUTCOME_FILES.values() if not (folder / n).is_file()]
    if missing:
        raise DataContractError(
            [f"--outcomes {folder} lacks {', '.join(missing)}; run 'propensity outcomes' first."]
        )
    lift = json.loads((folder / OUTCOME_FILES["lift"]).read_text())
    runs = pd.read_csv(folder / OUTCOME_FILES["runs"])
    return runs, pd.read_csv(folder / OUTCOME_FILES["segments"]), lift


def _with_truth(
    history: pd.DataFrame, world: Path, horizon: timedelta
) -> tuple[pd.DataFrame, ContactRecord | None]:
    """``history`` with ``truth_expected`` (contact effect included) and ``truth_natural``."""
    known = read_truth_world(world)
    contact = read_contact(world)
    entity, as_of = history["entity_id"].astype(str), history["as_of"]
    natural = expected_conversion(known, entity, as_of, horizon)
    expected = natural
    if contact is not None:
        first = contact.contacts.set_index(contact.contacts["entity_id"].astype(str))
        contacted_at = entity.map(first["contacted_at"])
        expected = expected_conversion(
            known, entity, as_of, horizon, contacted_at, contact.effect, contact.horizon
        )
    return history.assign(truth_expected=expected, truth_natural=natural), contact


def _promise(cfg: Config, model_uri: str | None) -> float | None:
    from propensity.tracking import load_model

    uri = model_uri or f"models:/{cfg.mlflow.registered_model}@champion"
    metrics = load_model(uri, cfg.mlflow).pqlmodel.metadata.get("metrics", {})
    value = metrics.get("precision_at_threshold")
    return None if value is None else float(value)


def _write(found: Outcomes, promised: float | None, folder: Path) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = {k: folder / v for k, v in OUTCOME_FILES.items()}
    lift = {**summary(found, promised), "alerts": found.alerts}
    with atomic_paths(list(paths.values())) as (runs, segs, lift_tmp):
        write_frame(found.runs, runs, "csv")
        write_frame(found.segments, segs, "csv")
        Path(lift_tmp).write_text(json.dumps(lift, indent=2, default=str))
    return paths


def _log(cfg: Config, found: Outcomes, promised: float | None) -> str:
    from propensity.tracking import start_run

    numbers = {k: float(v) for k, v in summary(found, promised).items() if _number(v)}
    with start_run(cfg, "outcomes") as run:
        run.log_metrics({f"outcomes.{k}": v for k, v in numbers.items()})
        run.log_table(found.runs, "outcomes/runs.json")
        run.log_table(found.segments, "outcomes/segments.json")
        run.log_dict({"lift": found.lift, "alerts": found.alerts}, "outcomes/lift.json")
        return run.run_id


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value == value
