"""`contact_effect_job(cfg, world, effect, seed)`: give a simulated world a known effect of sales
contact, from the contacts the CRM history recorded (``propensity simulate --contact-effect``).

The contacts are each entity's first contacted PQL entry (held-out PQLs are never contacted).
The natural conversions come from the world's ``truth.parquet``, so applying the effect again
(another effect or seed, after more runs) starts from the world without contact and never
compounds. Writes, all or none: the world's conversions file with the effect, ``contact.json``
(effect, seed, horizon, true lift) and ``contacts.parquet`` (entity, contacted_at), which
``propensity outcomes --truth`` reads to add the effect to its truth-based expectation.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pandas as pd

from propensity.config import Config
from propensity.errors import DataContractError
from propensity.io import atomic_paths
from propensity.io.sinks import open_sink
from propensity.simulate.contact import (
    ContactEffect,
    apply_contact_effect,
    conversions_file_table,
    natural_conversions,
)
from propensity.simulate.writer import write_part

__all__ = ["CONTACT_FILES", "ContactRecord", "contact_effect_job", "read_contact"]

CONTACT_FILES = {"record": "contact.json", "contacts": "contacts.parquet"}


@dataclass(frozen=True, eq=False)
class ContactRecord:
    """A world's applied contact effect: who was contacted when, the effect and its window."""

    contacts: pd.DataFrame  # entity_id, contacted_at
    effect: float
    horizon: timedelta
    true_lift: float


def contact_effect_job(
    cfg: Config, world: Path, effect: float, seed: int
) -> tuple[ContactEffect, dict[str, Path]]:
    """Apply ``effect`` to the contacts in the CRM history of ``cfg`` on the world in ``world``."""
    world = Path(world)
    settings = _settings(world)
    sink = open_sink(cfg.crm.sink)
    try:
        history = sink.read_history()
    finally:
        sink.close()
    reached = history[history["entered"] & history["contacted"]] if len(history) else history
    if reached.empty:
        raise DataContractError(
            [
                "The CRM history holds no contacted PQL, so there is no contact to give an "
                "effect. Run 'propensity score --crm' (a backtest with --to) first."
            ]
        )
    first = reached.assign(entity_id=reached["entity_id"].astype(str))
    contacts = first.groupby("entity_id")["as_of"].min().rename("contacted_at").reset_index()
    natural = _natural_conversions(world, settings)
    horizon = cfg.crm.outcome_horizon
    done = apply_contact_effect(natural, contacts, effect, horizon, seed)
    fmt = settings.get("format", "parquet")
    paths = {
        "conversions": world / f"conversions.{fmt}",
        "record": world / CONTACT_FILES["record"],
        "contacts": world / CONTACT_FILES["contacts"],
    }
    record = {
        "effect": effect,
        "seed": seed,
        "horizon_seconds": int(horizon.total_seconds()),
        "contacted": done.contacted,
        "added": done.added,
        "true_lift": done.true_lift,
    }
    with atomic_paths(list(paths.values())) as (conv, rec, cont):
        write_part(conversions_file_table(done.conversions, fmt != "parquet"), conv, fmt)
        Path(rec).write_text(json.dumps(record, indent=2) + "\n")
        contacts.to_parquet(cont, index=False)
    return done, paths


def read_contact(world: Path) -> ContactRecord | None:
    """The contact effect applied to ``world``, or None when none was."""
    world = Path(world)
    files = [world / name for name in CONTACT_FILES.values()]
    if not all(f.is_file() for f in files):
        return None
    record = json.loads(files[0].read_text())
    return ContactRecord(
        pd.read_parquet(files[1]),
        float(record["effect"]),
        timedelta(seconds=int(record["horizon_seconds"])),
        float(record["true_lift"]),
    )


def _settings(world: Path) -> dict:
    oracle = world / "oracle.json"
    truth = world / "truth.parquet"
    if not (oracle.is_file() and truth.is_file()):
        raise DataContractError(
            [
                f"--out {world} holds no simulated world (truth.parquet and oracle.json); give "
                f"the folder an earlier 'propensity simulate --out' wrote."
            ]
        )
    settings = json.loads(oracle.read_text()).get("settings", {})
    if "days" not in settings:
        raise DataContractError(
            [f"--out {world}: its oracle.json is not a trial-clock world's (no settings.days)."]
        )
    return settings


def _natural_conversions(world: Path, settings: dict) -> pd.DataFrame:
    truth = pd.read_parquet(world / "truth.parquet", columns=["user_id", "converted_at"])
    end = pd.Timestamp(settings["start"]) + pd.Timedelta(days=int(settings["days"]))
    return natural_conversions(truth, end)
