"""Event types a config names, checked against the data before any feature is built.

A config copied from another product names events this data may not have: milestones,
property aggregates and key events of an event that never happens would be features of
constants. :func:`drop_missing_named` removes them (the caller warns once, listing them), and
:func:`why_missing` tells a rule author why a feature they named is not in the table: the
event does not occur, is below ``features.min_event_support``, or fell past
``features.max_event_types``.

>>> support = {"login": 300, "plan_limit_hit": 7}
>>> cfg = FeaturesConfig(milestones=[{"first": "export_done", "then": "login"}])
>>> drop_missing_named(cfg, support)[1]
['milestone export_done -> login']
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import pandas as pd

from propensity.config import FeaturesConfig
from propensity.features.spec import FeatureSpec, slugify

__all__ = [
    "SUPPORT_SQL",
    "drop_missing_named",
    "event_support",
    "named_events",
    "spec_frame",
    "why_missing",
]

# Users per event type on label rows (the relation {rows}), counted as the vocabulary counts them.
SUPPORT_SQL = """
SELECT e.event, COUNT(DISTINCT e.user_id) AS users
FROM events e JOIN {rows} r ON e.user_id = r.user_id
WHERE e.event IS NOT NULL AND e.timestamp < r.cutoff_at AND e.timestamp >= r.signup_at{only}
GROUP BY e.event
"""
_PLAIN = re.compile(r"^[^'\\]*$")  # names that need no escaping in any SQL dialect

# Feature names that carry one event's slug (the rest of the name is the family's pattern).
_ONE_EVENT = (
    re.compile(r"^n_(?P<slug>.+)_(?:\d+[smhdw]|all)$"),
    re.compile(r"^rate_(?P<slug>.+)_per_active_day$"),
    re.compile(r"^hours_since_last_(?P<slug>.+)$"),
    re.compile(r"^hours_to_first_(?P<slug>.+)$"),
)


def event_support(
    fetch: Callable[[str], list[tuple[Any, ...]]], rows: str, events: Iterable[str] | None = None
) -> dict[str, int]:
    """Users per event type before their cutoffs on the label rows registered as ``rows``.

    ``fetch`` runs SQL on the engine holding ``events`` (DuckDB or Spark). With ``events``,
    only those types are counted (a filter the engine pushes into its scan).
    """
    only = ""
    if events is not None:
        names = sorted(set(events))
        if not names:
            return {}
        if all(_PLAIN.match(n) for n in names):
            only = " AND e.event IN (" + ", ".join(f"'{n}'" for n in names) + ")"
    found = fetch(SUPPORT_SQL.format(rows=rows, only=only))
    keep = None if events is None else set(events)
    return {str(e): int(n) for e, n in found if keep is None or str(e) in keep}


def named_events(cfg: FeaturesConfig) -> set[str]:
    """The event types a features config names (key events, milestones, properties)."""
    named = {*cfg.key_events, *(p.event for p in cfg.properties)}
    return named | {e for m in cfg.milestones for e in (m.first, m.then)}


def drop_missing_named(
    cfg: FeaturesConfig, support: Mapping[str, int]
) -> tuple[FeaturesConfig, list[str]]:
    """``cfg`` without key events, milestones and properties whose events never occur.

    Returns the new config and a description of each dropped entry (empty: nothing changed).
    """
    present = {e for e, n in support.items() if n > 0}
    dropped: list[str] = []
    keys = tuple(e for e in cfg.key_events if e in present)
    dropped += [f"key event {e}" for e in cfg.key_events if e not in present]
    milestones = tuple(m for m in cfg.milestones if {m.first, m.then} <= present)
    dropped += [
        f"milestone {m.first} -> {m.then}"
        for m in cfg.milestones
        if not {m.first, m.then} <= present
    ]
    properties = tuple(p for p in cfg.properties if p.event in present)
    dropped += [
        f"property {p.event}.{p.property}" for p in cfg.properties if p.event not in present
    ]
    if not dropped:
        return cfg, []
    # every named key event gone: empty means "the whole vocabulary", which is what remains
    changed = {"key_events": keys, "milestones": milestones, "properties": properties}
    return cfg.model_copy(update=changed), dropped


def why_missing(
    feature: str, spec: FeatureSpec, support: Mapping[str, int], cfg: FeaturesConfig
) -> str | None:
    """Why a per-event feature a rule names is not a column, and the setting that changes it.

    None when ``feature`` is not a per-event name (the caller then suggests close names).
    """
    slug = next((m["slug"] for p in _ONE_EVENT if (m := p.match(feature))), None)
    if slug is None:
        return None
    by_slug = {slugify(e): e for e in sorted(support, key=lambda e: (-support[e], e))}
    event = by_slug.get(slug)
    if event is None:
        close = difflib.get_close_matches(slug, list(by_slug), n=3, cutoff=0.6)
        hint = f"; close names in the data: {', '.join(by_slug[c] for c in close)}" if close else ""
        return (
            f"no event named like {slug!r} occurs before any training cutoff in this data{hint}. "
            f"Remove the rule, or name an event this data has"
        )
    n = support[event]
    if n < cfg.min_event_support:
        return (
            f"event {event!r} is done by only {n} users in the training rows, below "
            f"features.min_event_support ({cfg.min_event_support}); lower "
            f"features.min_event_support to {n} or list {event!r} in features.key_events"
        )
    if event not in spec.events:
        return (
            f"event {event!r} ({n} users) is not among the features.max_event_types "
            f"({cfg.max_event_types}) most common event types; raise features.max_event_types "
            f"or list {event!r} in features.key_events"
        )
    if feature.startswith("hours_"):
        return (
            f"recency and timing features exist only for features.key_events, which does not "
            f"list {event!r}; add it there (or leave key_events empty for every event)"
        )
    return (
        f"event {event!r} is in the vocabulary but not with this window; features.windows "
        f"are {', '.join(_window(w) for w in spec.windows_s)} plus 'all'"
    )


def _window(seconds: int) -> str:
    from propensity.features.spec import window_label

    return window_label(seconds)


def spec_frame(spec: FeatureSpec) -> pd.DataFrame:
    """An empty feature table with the spec's columns and dtypes (for checking rules early)."""
    cats = spec.categorical
    return pd.DataFrame(
        {
            c: pd.Series(pd.Categorical([], categories=list(cats[c])))
            if c in cats
            else pd.Series([], dtype="float64")
            for c in spec.columns
        }
    )
