"""`propensity init`: a starter config written from the data itself.

Reads the inputs once (the same reader as every job), detects the column mapping, profiles
the data (:mod:`propensity.init.profile`) and writes a config that trains with no hand edits:
windows that fit the observed trial, the event vocabulary, milestones and properties that
exist, rules baselines whose features will exist, a capacity that fits the volume.

>>> result = init_config("exports/events/", "users.csv", "paid.csv", Path("configs/acme.yaml"))
... # doctest: +SKIP
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from propensity.config import DataConfig, Preset
from propensity.errors import PropensityWarning
from propensity.init.columns import ColumnMapping, detect_mapping, parse_column_options
from propensity.init.profile import Profile, profile_data
from propensity.init.starter import Starter, refuse_existing, starter_config, write_new
from propensity.io import DataSummary, connect, load_data

__all__ = [
    "ColumnMapping",
    "InitResult",
    "Profile",
    "data_config",
    "detect_mapping",
    "init_config",
    "parse_column_options",
]


@dataclass(frozen=True, eq=False)
class InitResult:
    """What init found and wrote."""

    path: Path
    mapping: ColumnMapping
    profile: Profile
    starter: Starter
    report: DataSummary


def data_config(
    events: str,
    users: str | None,
    conversions: str | None,
    *,
    preset: Preset | None = None,
    columns: Mapping[str, Mapping[str, str]] | None = None,
) -> tuple[DataConfig, ColumnMapping]:
    """The data section for these inputs, the mapping detected (explicit choices win)."""
    mapping = detect_mapping(connect(), events, users, conversions, preset=preset, columns=columns)
    cfg = DataConfig(
        events=events,
        users=users,
        conversions=conversions,
        preset=mapping.preset,
        columns=mapping.columns,  # type: ignore[arg-type]
    )
    return cfg, mapping


def init_config(
    events: str,
    users: str,
    conversions: str | None,
    out: Path,
    *,
    project: str | None = None,
    preset: Preset | None = None,
    columns: Mapping[str, Mapping[str, str]] | None = None,
    force: bool = False,
) -> InitResult:
    """Detect, profile and write a starter config to ``out`` (never over a file unless force)."""
    out = Path(out)
    name = project or out.stem
    refuse_existing(out, force)  # before reading anything: the answer will not change
    if conversions is None:
        warnings.warn(
            "init: no --conversions given, so nothing in the data says who paid; the config "
            "is written, but train needs data.conversions (the first payment per user).",
            PropensityWarning,
            stacklevel=2,
        )
    data, mapping = data_config(events, users, conversions, preset=preset, columns=columns)
    loaded = load_data(data)
    profile = profile_data(loaded.con)
    paths = {"events": events, "users": users, "conversions": conversions}
    starter = starter_config(profile, mapping, paths, name)
    path = write_new(starter.text, out, force=force)
    return InitResult(path, mapping, profile, starter, loaded.report)
