"""Reason codes: the top features pushing each user's score up, in sentences a rep can read.

A sentence comes from a template per feature family (counts, recency, activity, timing, order,
transitions, diversity, account, fit, properties). What a column means comes from the model's
spec (``FeatureSpec.describe``), never from parsing its name: a column the spec does not know is
a :class:`ModelError`. "Top X% of trials" comes from reference quantiles of each feature on the
training rows (:func:`fit_reference`), stored in the model's metadata by the pipeline with the
task's words (:func:`wording`): "of active free users" and "since first seen" at calendar
anchors.

Reasons are things the user did or is. How far into the trial the score was taken and tenure
(:data:`CONTEXT_FEATURES`) help the model read the rest but are never a reason a rep can act on,
so they are never given as one. A categorical value never seen in training (missing to the
model) reads as "other", and no reason ever prints ``nan``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from propensity.config import TaskConfig
from propensity.explain.members import member_sentence
from propensity.features import FeatureInfo, FeatureSpec
from propensity.features.spec import window_label

__all__ = [
    "CONTEXT_FEATURES",
    "fit_reference",
    "reason_codes",
    "reason_columns",
    "sentence",
    "top_percent",
    "wording",
]

REFERENCE_VERSION = 1
# Model inputs that are context for the other features, not reasons: the trial age at scoring,
# and tenure (days from the first event to scoring), which is the trial age but for the delay
# before a user's first event; neither is something a rep can act on.
CONTEXT_FEATURES = frozenset({"cutoff_age_days", "tenure_days"})
_QUANTILES = np.linspace(0.0, 1.0, 101)
_REDACTED = "[redacted]"
_DOMAIN_CLASS = {
    "free_mail": "Signed up with a free email domain",
    "corporate": "Signed up with a corporate email domain",
    "enterprise": "Signed up with an enterprise email domain",
    "education": "Signed up with an education email domain",
    "unknown": "Signed up without a known email domain",
}


def wording(task: TaskConfig | None) -> dict[str, str]:
    """Who a "top X%" compares against and where an entity's life starts, for ``task``.

    >>> wording(None)
    {'population': 'trials', 'start': 'signup', 'anchors': 'trial'}
    """
    if task is None or task.anchors.kind == "trial":
        return {"population": "trials", "start": "signup", "anchors": "trial"}
    # Windows "since ..." start at signup, or at the first event for logs without signups.
    start = "signup" if task.first_seen == "signup" else "first_seen"
    population = "active free users"  # a user at a calendar anchor: active, not paid
    if task.entity == "account":
        paying = task.target.kind == "expansion_payment"
        population = "paying accounts" if paying else "active accounts"
        start = f"account_{start}"  # an account starts at its earliest member
    return {"population": population, "start": start, "anchors": "calendar"}


def fit_reference(
    train_frame: pd.DataFrame, columns: Sequence[str], words: dict[str, str] | None = None
) -> dict[str, Any]:
    """JSON-able reference quantiles (0, 1, ..., 100th) of each numeric column on training rows,
    with the task's ``words`` (:func:`wording`; default the trial's) for the sentences.

    >>> ref = fit_reference(pd.DataFrame({"n_x_all": [0.0, 1.0, 2.0]}), ["n_x_all"])
    >>> ref["quantiles"]["n_x_all"][50]
    1.0
    """
    quantiles: dict[str, list[float]] = {}
    for name in columns:
        col = train_frame[name]
        if isinstance(col.dtype, pd.CategoricalDtype) or not pd.api.types.is_numeric_dtype(col):
            continue
        values = col.to_numpy(dtype=np.float64, na_value=np.nan)
        values = values[~np.isnan(values)]
        if len(values):
            quantiles[name] = [float(q) for q in np.quantile(values, _QUANTILES)]
    out: dict[str, Any] = {"version": REFERENCE_VERSION, "quantiles": quantiles}
    if words is not None and words != wording(None):
        out["words"] = dict(words)  # a trial reference stays as it was
    return out


def top_percent(reference: dict[str, Any] | None, feature: str, value: float) -> int | None:
    """Share of training rows at or above ``value``, as a whole percent (at least 1), or None."""
    q = (reference or {}).get("quantiles", {}).get(feature)
    if q is None or value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    share = float(np.mean(np.asarray(q) >= value))
    return max(1, math.ceil(100 * share))


def sentence(
    info: FeatureInfo, value: Any, top_pct: int | None = None, words: dict[str, str] | None = None
) -> str:
    """A short sentence for one reason, from the template of the feature's family, in the
    task's ``words`` (:func:`wording`; default the trial's).

    >>> info = FeatureInfo("n_teammate_invited_all", "counts", "count", "teammate_invited")
    >>> sentence(info, 4.0, 5)
    'Teammate invited 4 times since signup (top 5% of trials)'
    >>> words = {"population": "active free users", "start": "first_seen", "anchors": "calendar"}
    >>> sentence(info, 4.0, 5, words)
    'Teammate invited 4 times since first seen (top 5% of active free users)'
    """
    words = {**wording(None), **(words or {})}
    text = _template(info, value, words["start"], words["anchors"] == "calendar")
    if top_pct is not None and top_pct <= 50 and _is_number(value):
        text += f" (top {top_pct}% of {words['population']})"
    return _scrub(text)


_STARTS = {
    "signup": "signup",
    "first_seen": "first seen",
    "account_signup": "the account's first signup",
    "account_first_seen": "the account was first seen",
}


def _template(
    info: FeatureInfo, value: Any, start_key: str = "signup", calendar: bool = False
) -> str:
    kind, v = info.kind, _fmt(value)
    ev, ev_b = _pretty(info.event), _pretty(info.event_b)
    start = _STARTS.get(start_key, "signup")
    window = f"since {start}" if info.window in (None, "all") else f"in the last {info.window}"
    missing = value is None or (isinstance(value, float) and math.isnan(value))
    if info.family == "lagged":
        return _lagged(info, value, missing)
    if info.family == "counts":
        if kind == "events":
            return f"{v} events {window}"
        if kind == "rate":
            return f"{ev.capitalize()} {v} times per active day"
        return f"{ev.capitalize()} {v} {_times(value)} {window}"
    if info.family == "recency":
        # tenure counts from the first event: "first seen" wherever there is no trial clock
        if kind == "tenure_days":
            return f"First seen {v} days ago" if calendar else f"Signed up {v} days before scoring"
        if kind == "cutoff_age_days":
            if calendar:
                return f"Scored {v} days after {start}"
            return f"Scored {v} days into the trial"
        if missing:
            return f"No {ev or 'activity'} yet"
        return f"Last {ev or 'activity'} {v} hours before scoring"
    if info.family == "activity":
        return {
            "active_days": f"Active on {v} days",
            "sessions": f"{v} sessions",
            "events_per_session": f"{v} events per session",
            "longest_streak_days": f"Active {v} days in a row",
            "trend": f"Activity in the last {info.window} at {v}x the earlier rate",
            "gap_mean_hours": f"{v} hours between events on average",
            "gap_max_hours": f"Longest break between events {v} hours",
        }.get(kind, f"{info.name} = {v}")
    if info.family == "timing":
        return f"No {ev} yet" if missing else f"First {ev} {v} hours after {start}"
    if info.family == "order":
        happened = _is_number(value) and float(value) >= 0.5
        if kind == "within":
            return f"{ev_b.capitalize()} within {info.window} of {ev}" + (
                "" if happened else ": no"
            )
        return f"{ev.capitalize()} {'before' if happened else 'not before'} {ev_b}"
    if info.family == "transitions":
        return f"{ev.capitalize()} followed by {ev_b} {v} {_times(value)}"
    if info.family == "diversity":
        if kind == "distinct_events":
            return f"Used {v} different kinds of action"
        return f"Varied usage (entropy {v})"
    if info.family == "account":
        if kind == "active_users":
            return f"{v} active users on the account"
        return f"{v} events on the account {window}"
    if info.family == "fit":
        if kind == "domain_class":
            return _DOMAIN_CLASS.get(str(value), f"Email domain class: {value}")
        column = _pretty(info.column) or info.name
        return f"{column.capitalize()}: {v}"
    if info.family == "members":
        return member_sentence(info, value)
    if info.family == "properties":
        what = _pretty(info.property) or ""
        return f"{(info.agg or '').capitalize()} {what} of {ev}: {v}".replace("  ", " ")
    return f"{info.name} = {v}"


def _lagged(info: FeatureInfo, value: Any, missing: bool) -> str:
    """Lagged windows: "in the last 28d", or "in the 28d up to 7d ago" for a window that ends
    before scoring."""
    kind, v, lag = info.kind, _fmt(value), info.lag_s or 0
    ago = f"{window_label(lag)} ago"
    span = f"in the last {info.window}" if not lag else f"in the {info.window} up to {ago}"
    as_of = "" if not lag else f" (as of {ago})"
    if kind == "events":
        return f"{v} events {span}"
    if kind == "count":
        return f"{_pretty(info.event).capitalize()} {v} {_times(value)} {span}"
    if kind == "active_days":
        return f"Active on {v} days {span}"
    if kind == "trend":
        if missing:
            return f"No activity trend{as_of}"
        rate = _fmt(math.exp(float(value)))
        return f"Activity in the last {info.window} at {rate}x the rate before{as_of}"
    if kind == "days_since":
        if missing:
            return f"No activity yet{as_of}"
        if lag:
            return f"{ago.capitalize()}: last active {v} days before"
        return f"Last active {v} days before scoring"
    if kind == "active_weeks":
        return f"Active in {v} different weeks{as_of}"
    return f"{info.name} = {v}"


def reason_codes(
    X: pd.DataFrame,
    contributions: np.ndarray,
    k: int,
    spec: FeatureSpec,
    reference: dict[str, Any] | None = None,
) -> pd.DataFrame:
    """Top ``k`` features by positive SHAP contribution per row, with value and sentence.

    ``X`` holds the feature values (columns in model order), ``contributions`` the SHAP values
    ``(n, n_features)`` without the bias column, ``spec`` the model's feature spec (what each
    column means; a column it does not know is a :class:`ModelError`). Returns
    ``reason_{i}_feature``, ``_value`` (the value as text), ``_shap`` and ``_text`` for
    i = 1..k, indexed like ``X``; a row with fewer than ``k`` positive contributions has nulls in
    the remaining slots.
    """
    columns = list(X.columns)
    infos = [spec.describe(c) for c in columns]
    n = len(X)
    phi = np.asarray(contributions, dtype=np.float64)
    if phi.shape != (n, len(columns)):
        raise ValueError(f"contributions must have shape {(n, len(columns))}; got {phi.shape}")
    context = [j for j, c in enumerate(columns) if c in CONTEXT_FEATURES]
    if context:
        phi = phi.copy()
        phi[:, context] = -np.inf  # ranked last and never positive: never a reason
    categorical = [isinstance(X[c].dtype, pd.CategoricalDtype) for c in columns]
    out: dict[str, Any] = {}
    k_eff = min(k, len(columns))
    if n and k_eff:
        # argsort on the negated values is stable, so ties keep column order (deterministic)
        order = np.argsort(-phi, axis=1, kind="stable")[:, :k_eff]
        top = np.take_along_axis(phi, order, axis=1)
    words = (reference or {}).get("words")
    cache: dict[tuple[int, str], str] = {}
    for slot in range(k):
        feats = np.full(n, None, dtype=object)
        vals = np.full(n, None, dtype=object)
        shaps = np.full(n, np.nan)
        texts = np.full(n, None, dtype=object)
        if slot < k_eff and n:
            for row in np.flatnonzero(top[:, slot] > 0):
                j = int(order[row, slot])
                value = X.iat[row, j]
                if categorical[j] and _missing(value):
                    value = "other"  # a level unseen in training, which the model saw as missing
                shown = _value_text(value)
                key = (j, shown)
                if key not in cache:
                    pct = top_percent(reference, columns[j], value) if _is_number(value) else None
                    cache[key] = sentence(infos[j], value, pct, words)
                feats[row], vals[row], shaps[row] = columns[j], shown, top[row, slot]
                texts[row] = cache[key]
        i = slot + 1
        out[f"reason_{i}_feature"] = feats
        out[f"reason_{i}_value"] = vals
        out[f"reason_{i}_shap"] = shaps
        out[f"reason_{i}_text"] = texts
    return pd.DataFrame(out, index=X.index, columns=reason_columns(k))


def reason_columns(k: int) -> list[str]:
    """Column names of ``k`` reason codes, in order."""
    return [
        f"reason_{i}_{part}"
        for i in range(1, k + 1)
        for part in ("feature", "value", "shap", "text")
    ]


def _missing(value: Any) -> bool:
    return value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value))


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float | np.integer | np.floating) and not (
        isinstance(value, float | np.floating) and math.isnan(value)
    )


def _fmt(value: Any) -> str:
    if not _is_number(value):
        return "missing" if _missing(value) else _scrub(str(value))
    v = float(value)
    if v.is_integer():
        return str(int(v))
    return f"{v:.1f}" if abs(v) >= 1 else f"{v:.2f}"


def _value_text(value: Any) -> str | None:
    return None if _missing(value) else _fmt(value)


def _times(value: Any) -> str:
    return "time" if _is_number(value) and float(value) == 1 else "times"


def _pretty(slug: str | None) -> str:
    return "" if not slug else str(slug).replace("_", " ").strip()


def _scrub(text: str) -> str:
    """Never let an email address (or anything with an ``@``) into an output sentence."""
    if "@" not in text:
        return text
    return " ".join(_REDACTED if "@" in word else word for word in text.split(" "))
