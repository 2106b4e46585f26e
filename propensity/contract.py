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
- ``payments`` (optional): ``account_id`` VARCHAR, ``paid_at`` TIMESTAMP, ``seats`` DOUBLE (every
  payment of an account: the first, then larger ones; account and expansion tasks read it).
- ``data_end`` (optional, one row): ``data_end`` TIMESTAMP, the configured end of the observed
  data (``data.end``), which label times right-censor against.

Tables that cross module boundaries as pandas frames are named contracts too
(:class:`FrameContract`): ``LABEL_TIMES`` (one row per user and cutoff), ``FEATURES`` (the keys,
then the spec's columns), ``TRAINING`` (the features with their 0/1 label) and ``SCORES`` (the
score table's leading columns). Each is checked
where it enters a step, every problem at once, the error carrying the failing rows.

A preset names, for each canonical column, the source columns an export uses for it (the first
one found wins). Presets cover the events table; users and conversions use canonical names
unless the config maps them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Literal

from propensity.config import Preset
from propensity.errors import DataContractError

if TYPE_CHECKING:  # imported where frames are checked: reading the data needs no pandas
    import pandas as pd

__all__ = [
    "CONVERSIONS",
    "EVENTS",
    "EVENT_ID_COLUMNS",
    "FEATURES",
    "LABEL_TIMES",
    "LOST_USERS",
    "PAYMENTS",
    "PRESETS",
    "SCORES",
    "TABLES",
    "TRAINING",
    "USERS",
    "Column",
    "FrameContract",
    "TableContract",
    "source_candidates",
]

Kind = Literal["string", "timestamp", "json", "number"]


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
PAYMENTS = TableContract(
    "payments",
    (Column("account_id", "string"), Column("paid_at", "timestamp"), Column("seats", "number")),
)
TABLES = MappingProxyType({t.name: t for t in (EVENTS, USERS, CONVERSIONS, LOST_USERS, PAYMENTS)})

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


@dataclass(frozen=True)
class FrameContract:
    """A table passed between steps as a pandas frame: its name, its key columns (first, in
    order), the other non-feature columns it may carry, and the function that makes one."""

    name: str
    keys: tuple[str, ...]
    made_by: str
    carried: tuple[str, ...] = ()

    @property
    def non_features(self) -> tuple[str, ...]:
        """Every column that is not a feature: the keys, then the carried columns."""
        return self.keys + tuple(c for c in self.carried if c not in self.keys)

    def validate(
        self,
        frame: pd.DataFrame,
        *,
        keys: Sequence[str] | None = None,
        columns: Sequence[str] = (),
        binary: Sequence[str] = (),
        one_row_per: str | None = None,
        no_email: Sequence[str] = (),
    ) -> None:
        """Check ``frame`` lazily: one :class:`DataContractError` naming every problem, its
        ``failure_cases`` the failing rows.

        ``keys`` narrows the required keys (a step may need only some); ``columns`` names
        further columns the step reads (a model's features); ``binary`` names columns that must
        hold only 0 and 1 (a label); ``one_row_per`` names a column whose values must be
        unique; ``no_email`` names id columns that are written to outputs, so must never hold an
        email address.

        >>> LABEL_TIMES.validate(frame, one_row_per="user_id")  # doctest: +SKIP
        """
        import pandas as pd

        if not isinstance(frame, pd.DataFrame):
            raise DataContractError(
                [
                    f"The {self.name} must be a pandas DataFrame. Got {type(frame).__name__} "
                    f"instead; pass the frame {self.made_by} returns, not a numpy array."
                ]
            )
        problems, failing = [], pd.Series(False, index=frame.index)
        required = list(self.keys if keys is None else keys)
        missing = [c for c in required if c not in frame.columns]
        if missing:
            problems.append(
                f"The {self.name} must have columns {required}. Got {list(frame.columns)} "
                f"(missing {missing}); build them with {self.made_by}."
            )
        problems += [f"the {self.name} lacks column {c!r}." for c in columns if c not in frame]
        for column in (c for c in binary if c in frame.columns):
            bad = ~frame[column].isin([0, 1])
            if bad.any():
                problems.append(
                    f"column {column!r} must hold only 0 and 1 (no nulls); found other values."
                )
                failing |= bad
        if one_row_per is not None and one_row_per in frame.columns:
            ids = frame[one_row_per].astype(str)
            dup = ids.duplicated(keep=False)
            if dup.any():
                problems.append(
                    f"The {self.name} must have one row per {one_row_per.removesuffix('_id')} to "
                    f"score. Got {one_row_per} {ids[dup].iloc[0]!r} more than once; build "
                    f"scoring label times with a single cutoff per user."
                )
                failing |= dup
        for column in (c for c in no_email if c in frame.columns):
            email = frame[column].astype(str).str.contains("@", regex=False)
            if email.any():
                problems.append(
                    f"{column} must not be an email address (it is written to every output). "
                    f"Got ids containing '@'; map them to a non-email id before scoring."
                )
                failing |= email
        if problems:
            raise DataContractError(problems, failure_cases=frame[failing])


LABEL_TIMES = FrameContract(
    "label times",
    ("user_id", "account_id", "signup_at", "cutoff_at", "cutoff_age_days"),
    "build_label_times or scoring_population",
    carried=("label",),
)
# the label times' keys a feature plan reads
PLAN_KEYS = LABEL_TIMES.keys[:4]
FEATURES = FrameContract(
    "feature table",
    ("user_id", "cutoff_at"),
    "compute_features()",
    carried=("label", "account_id", "signup_at"),
)
# the feature table with its labels, as training reads it
TRAINING = FrameContract(
    "training table",
    ("user_id", "cutoff_at", "label"),
    "compute_features() on labelled label times",
    carried=("account_id", "signup_at"),
)
SCORES = FrameContract(
    "score table",
    ("user_id", "account_id", "cutoff_at", "score", "percentile", "is_pql", "threshold"),
    "score_frame()",
)
