"""Real feature specs for tests that build a model by hand: the FeatureSpec code, tiny settings.

A hand-built :class:`~propensity.model.PQLModel` must carry the spec its columns come from (the
bundle checks the spec's hash and columns on load), so test models are trained on every column
of a small spec, the columns a test does not care about held at zero (a constant column never
splits, so the trees are the ones the test's own columns make).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import pandas as pd

from propensity.features import FeatureSpec

__all__ = ["model_spec", "spec_fields", "with_spec_columns"]

_DAY = 86_400


def model_spec(
    events: Sequence[str] = ("doc_shared", "teammate_invited"),
    *,
    key_events: Sequence[str] = ("doc_shared",),
    families: Sequence[str] = ("counts", "recency", "timing", "fit"),
    window_days: Sequence[int] = (7,),
) -> FeatureSpec:
    """A small real spec: ``events`` counted over ``window_days`` and since signup, timing and
    recency of ``key_events``, and the email domain class."""
    return FeatureSpec(
        families=tuple(families),
        events=tuple(events),
        windows_s=tuple(d * _DAY for d in window_days),
        session_gap_s=1800,
        key_events=tuple(key_events),
    )


def spec_fields(spec: FeatureSpec) -> dict[str, Any]:
    """The PQLModel fields that come from ``spec``: its columns, its JSON and its hash."""
    return {
        "feature_columns": list(spec.columns),
        "feature_spec": json.loads(spec.to_json()),
        "feature_spec_hash": spec.hash,
    }


def with_spec_columns(frame: pd.DataFrame, spec: FeatureSpec) -> pd.DataFrame:
    """``frame`` with every column of ``spec`` (those it lacks at 0.0), keys first, then the
    spec's columns in order."""
    extra = {c: 0.0 for c in spec.columns if c not in frame.columns}
    out = frame.assign(**extra)
    keys = [c for c in frame.columns if c not in spec.columns]
    return out[keys + list(spec.columns)]
