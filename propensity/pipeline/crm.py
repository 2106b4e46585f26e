"""The CRM step of a score run: lifecycle, routing and both tables into the configured sink.

``crm_sync(cfg, inputs, scores, as_of, threshold, version)`` reads the sink's current table,
advances it with the run's scores (``inputs``: conversions and segments, read through the
run's engine on either DuckDB or Spark) and writes the new current table and the run's history
rows in one transaction.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Literal

import pandas as pd

from propensity.config import Config
from propensity.crm import crm_fields, segments
from propensity.crm.run import CrmTables, crm_step
from propensity.engines import Engine
from propensity.errors import DataContractError
from propensity.io import write_table
from propensity.io.sinks import Sink, open_sink

__all__ = [
    "CrmInputs",
    "crm_sync",
    "export_current",
    "read_crm_inputs",
    "read_sink_table",
    "write_upsert_file",
]


class CrmInputs:
    """What the CRM step reads from the data once: conversions and segments."""

    def __init__(self, converted: pd.DataFrame, segments: pd.DataFrame):
        self.converted = converted
        self.segments = segments


def read_crm_inputs(engine: Engine, cfg: Config) -> CrmInputs:
    """Each entity's first conversion and its segment columns (no email, only its class).

    The entity follows the task: a user, or an account (its users' columns aggregated as its fit
    features aggregate them); its conversion is the task's target (an account's first payment,
    an expansion), so the CRM marks ``converted`` what the model predicts. Either engine hands
    over these small tables (``Engine.entity_tables``)."""
    tables = engine.entity_tables(cfg.label, cfg.task)
    seg = segments(tables.users, cfg.features.enterprise_domains, cfg.features.free_mail_domains)
    return CrmInputs(tables.converted, seg)


def crm_sync(
    cfg: Config,
    inputs: CrmInputs,
    scores: pd.DataFrame,
    as_of: datetime,
    threshold: float,
    model_version: str,
    sink: Sink | None = None,
) -> CrmTables:
    """Advance the sink's current table with ``scores`` and write both tables (one transaction).

    ``sink`` None opens (and closes) the configured one.
    """
    own = sink is None
    target = open_sink(cfg.crm.sink) if sink is None else sink
    try:
        tables = crm_step(
            target.read_current(),
            scores,
            as_of,
            inputs.converted,
            inputs.segments,
            cfg.crm,
            cfg.scoring,
            threshold,
            model_version,
        )
        target.write(tables.current, tables.history, as_of, model_version)
    finally:
        if own:
            target.close()
    return tables


def read_sink_table(cfg: Config, table: Literal["current", "history"], empty: str) -> pd.DataFrame:
    """The configured sink's current or history table; an empty one is an error that ends in
    ``empty`` (what it means and what to run first)."""
    sink = open_sink(cfg.crm.sink)
    try:
        frame = sink.read_current() if table == "current" else sink.read_history()
    finally:
        sink.close()
    if frame.empty:
        name = "current table" if table == "current" else "history"
        raise DataContractError([f"The CRM {name} is empty, so {empty}"])
    return frame


def write_upsert_file(current: pd.DataFrame, preset: str, path: Path) -> Path:
    """The current table with the preset's field names, as a CSV a bulk upsert takes."""
    write_table(crm_fields(current, preset), path, "csv")
    return path


def export_current(cfg: Config, preset: str, path: Path) -> tuple[pd.DataFrame, Path]:
    """The sink's current table as a bulk-upsert CSV at ``path`` (atomic): one row per entity
    keyed by the preset's external-id field, only the preset's fields (no user attributes)."""
    current = read_sink_table(
        cfg, "current", "there is nothing to export. Run 'propensity score --crm' first."
    )
    key = current["entity_id"]
    if key.isna().any() or key.duplicated().any():
        raise DataContractError(
            [
                f"The CRM current table's entity_id must be unique and never null for an "
                f"upsert; found {int(key.isna().sum())} null and "
                f"{int(key.duplicated().sum())} repeated. Re-run 'propensity score --crm'."
            ]
        )
    fields = crm_fields(current.sort_values("entity_id", kind="stable"), preset)
    return fields, write_table(fields, path, "csv")
