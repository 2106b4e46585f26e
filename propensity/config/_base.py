"""Durations, instants and the frozen section every config model derives from."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict

from propensity.errors import shorten

__all__ = ["Duration", "Instant", "PositiveDuration", "Section", "parse_duration", "parse_instant"]


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d|w)\s*$")


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d|w)\s*$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_duration(value: Any) -> timedelta:
    """Parse ``"7d"``, ``"48h"``, ``"30m"``, ``"90s"`` or ``"2w"`` into a timedelta.

    >>> parse_duration("36h")
    datetime.timedelta(days=1, seconds=43200)
    """
    if isinstance(value, timedelta):
        return value
    match = _DURATION.match(str(value)[:40])
    if match is None:
        raise ValueError(
            f"a duration must be a number followed by s, m, h, d or w (e.g. '7d', '48h'). "
            f"Got {shorten(repr(value), 40)} instead."
        )
    number, unit = match.groups()
    try:
        return timedelta(**{_UNITS[unit]: float(number)})
    except OverflowError:
        raise ValueError(
            f"a duration must be shorter than a million days. Got {shorten(repr(value), 40)} "
            f"instead."
        ) from None


def _positive(value: timedelta) -> timedelta:
    if value <= timedelta(0):
        raise ValueError("a duration here must be longer than zero (e.g. '1d').")
    return value


Duration = Annotated[timedelta, BeforeValidator(parse_duration)]


# Windows, horizons and trial lengths: zero would label or count nothing, silently.
PositiveDuration = Annotated[timedelta, BeforeValidator(parse_duration), AfterValidator(_positive)]


def parse_instant(value: Any) -> datetime:
    """A date or time from the config as naive UTC (zoned values are converted).

    >>> parse_instant("2025-06-30T02:00:00+02:00")
    datetime.datetime(2025, 6, 30, 0, 0)
    """
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, date):
        moment = datetime(value.year, value.month, value.day)
    else:
        try:
            moment = datetime.fromisoformat(str(value)[:40].strip())
        except ValueError:
            raise ValueError(
                f"a time must be ISO-8601, e.g. 2025-06-30 or 2025-06-30T00:00:00Z. Got "
                f"{shorten(repr(value), 40)} instead."
            ) from None
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC).replace(tzinfo=None)
    return moment


Instant = Annotated[datetime, BeforeValidator(parse_instant)]


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
