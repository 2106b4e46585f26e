"""The data contract: the canonical tables every step reads, and the export presets.

Canonical tables, as the readers leave them in DuckDB (timestamps are naive ``TIMESTAMP`` in UTC,
truncated to whole seconds so epoch arithmetic is exact on every engine):

- ``events``: ``user_id`` VARCHAR, ``event`` VARCHAR, ``timestamp`` TIMESTAMP, ``account_id``
  VARCHAR (nullable), ``properties`` VARCHAR holding a JSON object (nullable).
- ``users``: ``user_id`` VARCHAR, ``signup_at`` TIMESTAMP, ``email_domain`` VARCHAR (nullable;
  derived from ``email``, whose address is dropped at the edge), ``account_id`` VARCHAR
  (nullable), then any extra attribute columns as given.
- ``conversions``: ``user_id`` VARCHAR, ``converted_at`` TIMESTAMP (first payment).
- ``lost_users`` (optional): ``user_id`` VARCHAR, ``lost_at`` TIMESTAMP (account deleted or
  otherwise gone; label times exclude users lost before their cutoff).
- ``data_end`` (optional, one row): ``data_end`` TIMESTAMP, the configured end of the observed
  data (``data.end``), which label times right-censor against.

A preset names, for each canonical column, the source columns an export uses for it (the first
one found wins). Presets cover the events table; users and conversions use canonical names
unless the config maps them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Literal

from propensity.config import Preset

__all__ = [
    "CONVERSIONS",
    "EVENTS",
    "EVENT_ID_COLUMNS",
    "LOST_USERS",
    "PRESETS",
    "TABLES",
    "USERS",
    "Column",
    "TableContract",
    "source_candidates",
]

Kind = Literal["string", "timestamp", "json"]


@dataclass(frozen=True)
class Column:
    """One canonical column: its name, its kind, and whether the table may lack it."""

    name: str
    kind: Kind
    required: bool = True


@dataclass(frozen=True)
class TableContract:
    """A named canonical table and its columns, in order."""

    name: str
    columns: tuple[Column, ...]
    key: tuple[str, ...] = field(default_factory=tuple)

    @property
    def required(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns if c.required)

    def column(self, name: str) -> Column:
        return next(c for c in self.columns if c.name == name)


EVENTS = TableContract(
    "events",
    (
        Column("user_id", "string"),
        Column("event", "string"),
        Column("timestamp", "timestamp"),
        Column("account_id", "string", required=False),
        Column("properties", "json", required=False),
    ),
)
USERS = TableContract(
    "users",
    (
        Column("user_id", "string"),
        Column("signup_at", "timestamp"),
        Column("email", "string", required=False),
        Column("email_domain", "string", required=False),
        Column("account_id", "string", required=False),
    ),
    key=("user_id",),
)
CONVERSIONS = TableContract(
    "conversions",
    (Column("user_id", "string"), Column("converted_at", "timestamp")),
)
LOST_USERS = TableContract(
    "lost_users",
    (Column("user_id", "string"), Column("lost_at", "timestamp")),
)
TABLES = MappingProxyType({t.name: t for t in (EVENTS, USERS, CONVERSIONS, LOST_USERS)})

# Source columns that hold a unique id per event, by preset: what a retrying tracker resends
# unchanged, so rows sharing one are one event sent twice (data.dedup: auto uses it).
EVENT_ID_COLUMNS: MappingProxyType[Preset, tuple[str, ...]] = MappingProxyType(
    {
        Preset.canonical: ("event_id",),
        Preset.segment: ("messageId", "message_id"),
        Preset.amplitude: ("$insert_id", "insert_id"),
        Preset.mixpanel: ("$insert_id", "insert_id"),
    }
)

# canonical column -> source column names, tried in order
PRESETS: MappingProxyType[Preset, MappingProxyType[str, tuple[str, ...]]] = MappingProxyType(
    {
        Preset.canonical: MappingProxyType({}),
        Preset.segment: MappingProxyType(
            {
                "user_id": ("userId", "user_id"),
                "event": ("event",),
                "timestamp": ("timestamp",),
                "account_id": ("groupId", "account_id"),
                "properties": ("properties",),
            }
        ),
        Preset.amplitude: MappingProxyType(
            {
                "user_id": ("user_id",),
                "event": ("event_type",),
                "timestamp": ("event_time",),
                "account_id": ("account_id",),
                "properties": ("event_properties",),
            }
        ),
        Preset.mixpanel: MappingProxyType(
            {
                "user_id": ("distinct_id",),
                "event": ("event",),
                "timestamp": ("time",),
                "account_id": ("account_id",),
                "properties": ("properties",),
            }
        ),
    }
)


def source_candidates(
    table: str, column: str, preset: Preset, overrides: dict[str, str] | None = None
) -> tuple[str, ...]:
    """The source column names that may hold a canonical column, most specific first.

    >>> source_candidates("events", "user_id", Preset.segment)
    ('userId', 'user_id')
    """
    if overrides and column in overrides:
        return (overrides[column],)
    if table == "events":
        return PRESETS[preset].get(column, (column,))
    return (column,)
