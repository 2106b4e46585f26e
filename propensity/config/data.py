"""The data section: where the tables are, how they are read, cleaned and bounded."""

from __future__ import annotations

import difflib
import re
import zoneinfo
from datetime import timedelta
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, field_validator, model_validator

from propensity.config._base import Duration, Instant, Section
from propensity.errors import shorten

__all__ = ["BotsConfig", "DataConfig", "DedupConfig", "ExcludeConfig", "InputTable", "Preset"]


class Preset(StrEnum):
    """Column layouts of the common event exports."""

    canonical = "canonical"
    segment = "segment"
    amplitude = "amplitude"
    mixpanel = "mixpanel"


class ExcludeConfig(Section):
    """Internal and test users to drop before anything else."""

    email_domains: tuple[str, ...] = ()
    user_ids: tuple[str, ...] = ()


class DedupConfig(Section):
    """Which repeated events are one event sent twice, and so removed.

    ``auto`` removes events sharing an event id when the export has one (``column``, or the
    preset's: Segment ``messageId``, Amplitude and Mixpanel ``$insert_id``, canonical
    ``event_id``); otherwise exact duplicates, except on day-only exports (every timestamp at
    midnight), where two identical rows are two real events on the same day and nothing is
    removed. The data summary says which ran and what it removed.
    """

    mode: Literal["auto", "exact", "event_id", "none"] = "auto"
    column: str | None = None  # source column holding a unique event id

    @model_validator(mode="after")
    def _event_id_has_a_column(self) -> DedupConfig:
        if self.mode == "event_id" and not self.column:
            raise ValueError(
                "dedup mode 'event_id' needs the event id's source column; add "
                "'column: <name>' under data.dedup."
            )
        return self


class BotsConfig(Section):
    """Bots and scripted accounts: users whose events no person could have made.

    A user is a bot when, on some day, it sends more than ``max_events_per_hour`` events in one
    clock hour or ``max_events_per_day`` in the day, or more than ``busiest_day_factor`` times
    what the busiest 1% of users send on their busiest day (and over 500), or is active in more
    than ``max_active_hours_per_day`` of the day's 24 clock hours (people sleep); or when at
    least ``regular_min_gaps`` gaps between its events are near-identical (their coefficient of
    variation below ``regular_gap_cv``: a metronome, not a person). The hour and gap rules need
    times of day, so on day-only exports only the per-day rules apply.
    """

    exclude: bool = True
    max_events_per_hour: int = Field(default=1000, ge=1)
    max_events_per_day: int = Field(default=10_000, ge=1)
    busiest_day_factor: float = Field(default=20.0, ge=0)  # 0 turns this rule off
    max_active_hours_per_day: int = Field(default=21, ge=1, le=24)
    regular_gap_cv: float = Field(default=0.1, ge=0)
    regular_min_gaps: int = Field(default=50, ge=2)


InputTable = Literal["events", "users", "conversions", "lost_users", "payments"]


InputTable = Literal["events", "users", "conversions", "lost_users", "payments"]
_MEMORY = re.compile(r"^(\d+(?:\.\d+)?)\s*(MB|GB|TB)$")


_MEMORY = re.compile(r"^(\d+(?:\.\d+)?)\s*(MB|GB|TB)$")
_MIN_MEMORY_MB = 128  # below this DuckDB cannot hold its own buffers for the reader's queries


# The DuckDB variable holding data.memory_limit as given on propensity's connections (DuckDB
# reports its own limit rounded): the feature build lowers DuckDB's share by the size of the
# table it returns, then restores this.
MEMORY_VARIABLE = "propensity_memory_limit"


def memory_bytes(value: str) -> int | None:
    """Bytes of a limit written as data.memory_limit is (``'3GB'``, ``'512MB'``), else None.

    >>> memory_bytes("3GB"), memory_bytes("1.5GB"), memory_bytes("lots")
    (3000000000, 1500000000, None)
    """
    match = _MEMORY.match(value)
    if match is None:
        return None
    return int(float(match[1]) * {"MB": 10**6, "GB": 10**9, "TB": 10**12}[match[2]])


def _memory_limit(value: str) -> str:
    match = _MEMORY.match(value)
    if match is None:
        raise ValueError(
            f"a memory limit is a number and MB, GB or TB (e.g. '3GB'). Got "
            f"{shorten(repr(value), 40)} instead."
        )
    number, unit = float(match[1]), match[2]
    megabytes = number * {"MB": 1, "GB": 1000, "TB": 1_000_000}[unit]
    if megabytes < _MIN_MEMORY_MB:
        raise ValueError(
            f"a memory limit below {_MIN_MEMORY_MB}MB is too small for DuckDB to run the "
            f"reader's queries. Got {value!r}; give at least {_MIN_MEMORY_MB}MB (e.g. '1GB')."
        )
    return value


class DataConfig(Section):
    """Where the data is and how its columns map onto the contract."""

    events: str
    users: str | None = None  # without it, signup is each user's first event (validate only)
    conversions: str | None = None
    # Users lost before their cutoff (deleted accounts): a table of user_id, lost_at.
    lost_users: str | None = None
    # Every payment of an account (account_id, paid_at, seats): account and expansion tasks.
    payments: str | None = None
    format: Literal["auto", "parquet", "csv", "jsonl"] = "auto"
    preset: Preset = Preset.canonical
    # Per table, canonical column -> source column; wins over the preset.
    columns: dict[InputTable, dict[str, str]] = Field(default_factory=dict)
    timezone: str = "UTC"  # zone of naive timestamps
    epoch_unit: Literal["auto", "s", "ms"] = "auto"
    exclude: ExcludeConfig = ExcludeConfig()
    dedup: DedupConfig = DedupConfig()
    bots: BotsConfig = BotsConfig()
    unknown_user_events: Literal["drop", "fail"] = "drop"
    # The end of the observed data (the export time): later rows are dropped, labels are
    # right-censored against it and `--as-of latest` means it. None: the last event.
    end: Instant | None = None
    max_future: Duration = timedelta(days=1)  # tolerance past "now" before a timestamp is bad
    pii_columns: tuple[str, ...] = ("email",)  # never written to any output
    # DuckDB's memory cap; past it DuckDB spills to a temporary folder instead of growing
    memory_limit: Annotated[str, AfterValidator(_memory_limit)] = "3GB"

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        if value.upper() == "UTC":
            return value
        try:
            zoneinfo.ZoneInfo(value)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
            close = difflib.get_close_matches(value, sorted(zoneinfo.available_timezones()), n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise ValueError(
                f"a time zone must be an IANA name such as 'Europe/Paris' or 'UTC'. Got "
                f"{shorten(repr(value), 40)} instead.{hint}"
            ) from None
        return value
