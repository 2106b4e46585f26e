"""The candidate behaviours, read off the learned FeatureSpec: nothing here names an event.

Five kinds, each tied to feature columns the spec already defines, so every candidate is a
behaviour of *this* product's vocabulary and most can be written as a rule over the feature table:

- ``count``: did event X at least k times in a window (``n_<x>_<window>``);
- ``order``: did A before B, optionally with B within t of A (first occurrences, read from
  ``hours_to_first_<a>`` and ``hours_to_first_<b>``; the same definition as the milestone
  features ``order_<a>_before_<b>`` and ``within_<a>_then_<b>_<t>``);
- ``team``: at least n other users of the same account active before the cutoff
  (``account_active_users``);
- ``activity``: active on at least k days (``active_days``);
- ``property``: reached value V of a configured event property (``prop_<event>_<prop>_<agg>``).

Each behaviour names the *covariates it owns* (its events, or its own column): its separation is
judged against a model of everything else, with those left out (see ``context.py``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from propensity.features import FeatureSpec
from propensity.features.spec import window_label

__all__ = [
    "ThresholdColumn",
    "event_key",
    "prerequisites",
    "describe_order",
    "describe_threshold",
    "order_condition",
    "threshold_columns",
    "timing_columns",
]

KINDS = ("count", "order", "team", "activity", "property")


@dataclass(frozen=True)
class ThresholdColumn:
    """A feature column whose "at least v" is a candidate behaviour.

    ``behaviour`` groups columns that are one behaviour (an event's counts in every window);
    ``owns`` are the context covariates left out when judging it.
    """

    column: str
    kind: str
    behaviour: str
    owns: tuple[str, ...]
    event: str | None = None
    window: str | None = None  # "all" or a label like "3d"
    property: str | None = None
    agg: str | None = None


def event_key(event: str) -> str:
    """The context covariate key of an event's counts."""
    return f"event:{event}"


def threshold_columns(spec: FeatureSpec) -> list[ThresholdColumn]:
    """Every count, team, activity and property column of ``spec``, as candidate behaviours.

    Count windows are listed since-signup first, so that when two windows hold the same values
    (the 7-day window of a day-7 cutoff) the plainer one wins ties.
    """
    out: list[ThresholdColumn] = []
    infos = spec.features
    counts = [f for f in infos if f.family == "counts" and f.kind == "count"]
    counts.sort(key=lambda f: (f.event or "", f.window_s is not None, f.window_s or 0))
    for f in counts:
        event = str(f.event)  # a count column always names its event
        out.append(
            ThresholdColumn(f.name, "count", f"count:{event}", (event_key(event),), event, f.window)
        )
    for f in infos:
        if f.family == "account" and f.kind == "active_users":
            out.append(ThresholdColumn(f.name, "team", "team", ("team",)))
        elif f.family == "activity" and f.kind == "active_days":
            out.append(ThresholdColumn(f.name, "activity", "activity", ("activity",)))
        elif f.family == "properties" and f.event is not None:
            out.append(
                ThresholdColumn(
                    f.name,
                    "property",
                    f"property:{f.name}",
                    (event_key(f.event),),
                    f.event,
                    property=f.property,
                    agg=f.agg,
                )
            )
    return out


def prerequisites(
    first_hours: dict[str, np.ndarray], *, share: float = 0.95, max_users: float = 0.5
) -> dict[str, tuple[str, ...]]:
    """Per event B, the events A that come before B's first time for nearly all B's users.

    An accepted invite needs an invite: judged against a model that knows the invites, the
    acceptance would look like it adds little. So a behaviour's yardstick leaves out what
    leads to it too. ``first_hours`` maps events to hours to their first occurrence (NaN when
    never). Events more than ``max_users`` of users do (a login) precede everything and are
    nobody's prerequisite.

    >>> nan = float("nan")
    >>> prerequisites({"invite": np.array([1.0, 2.0, nan]), "accept": np.array([3.0, nan, nan])})
    {'accept': ('invite',)}
    """
    out: dict[str, tuple[str, ...]] = {}
    done = {e: ~np.isnan(h) for e, h in first_hours.items()}
    for b, hb in first_hours.items():
        if not done[b].any():
            continue
        before = tuple(
            a
            for a, ha in first_hours.items()
            if a != b
            and done[a].mean() <= max_users
            and np.mean(ha[done[b]] < hb[done[b]]) >= share
        )
        if before:
            out[b] = before
    return out


def timing_columns(spec: FeatureSpec) -> dict[str, str]:
    """Event -> its ``hours_to_first_<event>`` column, for the events that have one."""
    return {
        f.event: f.name
        for f in spec.features
        if f.family == "timing" and f.kind == "hours_to_first" and f.event is not None
    }


def describe_threshold(col: ThresholdColumn, value: float) -> str:
    """A sentence for ``col >= value``, e.g. ``teammate_invited at least 2 times since signup``."""
    v = _number(value)
    if col.kind == "count":
        times = "at least once" if value <= 1 else f"at least {v} times"
        when = "since signup" if col.window in (None, "all") else f"in the last {col.window}"
        return f"{col.event} {times} {when}"
    if col.kind == "team":
        return f"at least {v} teammate{'s' if value > 1 else ''} active"
    if col.kind == "activity":
        return f"active on at least {v} day{'s' if value > 1 else ''}"
    return f"{col.event}.{col.property} ({col.agg}) at least {v}"


def describe_order(first: str, then: str, within_s: int | None) -> str:
    """``plan_limit_hit, then pricing_viewed within 1d`` (first occurrences)."""
    bound = "" if within_s is None else f" within {window_label(within_s)}"
    return f"{first}, then {then}{bound}"


def order_condition(spec: FeatureSpec, first: str, then: str, within_s: int | None) -> str:
    """The rule text for "first before then (within)" if the spec has that milestone, else "".

    Only configured milestones are feature columns; the others are proposed as milestones to add.
    """
    if "order" not in spec.families:
        return ""
    s = spec.slugs
    if within_s is None:
        # every milestone has the plain order column, bounded or not
        if any(m[:2] == (first, then) for m in spec.milestones):
            return f"order_{s[first]}_before_{s[then]} == 1"
        return ""
    if (first, then, within_s) in spec.milestones:
        return f"within_{s[first]}_then_{s[then]}_{window_label(within_s)} == 1"
    return ""


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"
