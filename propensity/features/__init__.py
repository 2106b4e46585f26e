"""Behavioural sequence features computed in SQL, strictly from events before each cutoff.

Decisions every family shares (see ``spec.py`` for column names, ``sql.py`` for the SQL):

- A row sees an event when ``signup_at <= timestamp < cutoff_at``. Events before signup are
  ignored: they are usually anonymous pre-signup traffic stitched later, and "since signup" must
  mean the same for every user. Windows are ``[cutoff - w, cutoff)``; ``all`` is since signup.
- Only event types in the spec's vocabulary are seen by any feature (training and scoring alike);
  the others are counted per type in ``FeatureFrame.unseen_events``.
- Undefined is missing, not zero: hours since / to an event that never happened, tenure,
  events per session, trend and gaps of a user without (enough) events are NaN; counts, rates,
  active days, sessions, flags and entropy are 0.
- Days are days since signup (not UTC calendar days). A new session starts after a gap strictly
  longer than ``session_gap``. Ties in time are ordered by event name.
- ``tenure_days`` is days from the first seen event to the cutoff; ``cutoff_age_days`` is days
  from signup to the cutoff. ``trend_events_{w}`` is the events-per-day rate in the last window
  over the rate since signup (1 = steady, > 1 = accelerating; the window is capped at the age).
- Milestones compare first occurrences: ``order_a_before_b`` is 1 when a's first event is
  strictly before b's; ``within_a_then_b_{bound}`` also needs b's first within ``bound`` of a's.
- Account features count the OTHER users of the user's account (from ``users.account_id``), so
  they add information instead of repeating the user's own counts: ``account_active_users`` is
  how many had a vocabulary event before the cutoff, ``account_events_{w}`` their events in the
  window (``all`` = since this user's signup). No account means 0.
- ``domain_class``: enterprise list first, then education suffixes, then free-mail list, else
  corporate; a missing or empty domain is ``unknown``. Categorical user columns keep the
  ``max_category_levels`` most frequent training levels; other values become missing.

>>> spec = learn_spec(con, train_label_times, cfg.features)  # doctest: +SKIP
>>> ff = compute_features(con, label_times, spec)  # doctest: +SKIP
>>> FeatureSpec.from_json(spec.to_json()).hash == spec.hash  # doctest: +SKIP
True

Training learns and builds in one pass over the events (the same spec and frame as the two calls,
about half the time): ``spec, ff = learn_spec_and_features(con, label_times, cfg.features, mask)``.
"""

from propensity.features.engine import (
    FeatureFrame,
    compute_features,
    learn_spec,
    learn_spec_and_features,
)
from propensity.features.portable import DUCKDB, SPARK, Dialect
from propensity.features.spec import FeatureInfo, FeatureSpec

__all__ = [
    "DUCKDB",
    "SPARK",
    "Dialect",
    "FeatureFrame",
    "FeatureInfo",
    "FeatureSpec",
    "compute_features",
    "learn_spec",
    "learn_spec_and_features",
]
