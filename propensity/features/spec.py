"""The frozen FeatureSpec: everything learned on training rows that fixes the feature columns.

A spec holds the event vocabulary, the chosen transitions, the categorical levels and the settings
copied from :class:`~propensity.config.FeaturesConfig`. From it alone the column list is derived
(:attr:`FeatureSpec.features`), so scoring produces exactly the training columns in the same
order. It round-trips through JSON and carries a stable content hash saved with the model.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass, field
from functools import cached_property
from typing import Any

from propensity.account_plan import account_plan
from propensity.errors import ModelError, shorten

__all__ = [
    "DOMAIN_CLASSES",
    "ENTITY_FAMILIES",
    "FAMILIES",
    "FeatureInfo",
    "FeatureSpec",
    "member_features",
    "slugify",
    "window_label",
]

FAMILIES = (
    "counts", "recency", "activity", "timing", "order",
    "transitions", "diversity", "account", "fit", "properties", "lagged",
)  # fmt: skip
# Families the engine adds for an entity, not chosen in the config: an account's members.
ENTITY_FAMILIES = ("members",)
DOMAIN_CLASSES = ("free_mail", "corporate", "enterprise", "education", "unknown")
SPEC_VERSION = 1
_LAG_KEYS = ("lag_window_s", "lags_s", "lag_recent_s")


@dataclass(frozen=True)
class FeatureInfo:
    """What one feature column means, for reason codes and docs.

    ``kind`` is the exact definition inside the family (e.g. ``count``, ``hours_since_last``);
    ``event``/``event_b`` are original event names, ``window`` a label like ``7d`` or ``all``.
    """

    name: str
    family: str
    kind: str
    event: str | None = None
    event_b: str | None = None
    window: str | None = None
    window_s: int | None = None
    property: str | None = None
    agg: str | None = None
    column: str | None = None
    lag_s: int | None = None  # lagged family: the window ends this many seconds before the cutoff


def slugify(name: str) -> str:
    """Lowercase ``[a-z0-9_]`` form of a name, safe inside a column identifier.

    >>> slugify("Doc Shared!")
    'doc_shared'
    """
    slug = re.sub(r"[^a-z0-9]+", "_", str(name).lower()).strip("_")
    return slug or "x"


def window_label(seconds: int | None) -> str:
    """``7d``, ``48h``, ``30m`` or ``90s``; ``all`` for the since-signup window (None).

    >>> window_label(172800), window_label(None)
    ('2d', 'all')
    """
    if seconds is None:
        return "all"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def member_features() -> list[FeatureInfo]:
    """The ``members`` family: ``account_plan()``'s columns (prefixed ``acct_``), then the seats
    paid before the anchor and the members seen beyond them (from the payments table)."""
    out = []
    for a in account_plan().aggregates:
        wl = None if a.window is None else window_label(int(a.window.total_seconds()))
        out.append(FeatureInfo(f"acct_{a.name}", "members", a.name, a.event, window=wl))
    out.append(FeatureInfo("acct_seats_paid", "members", "seats_paid"))
    out.append(FeatureInfo("acct_excess_seats", "members", "excess_seats"))
    return out


@dataclass(frozen=True)
class FeatureSpec:
    """The learned, frozen definition of every feature column.

    Build it with :func:`propensity.features.learn_spec`; compute with
    :func:`propensity.features.compute_features`.
    """

    families: tuple[str, ...]
    events: tuple[str, ...]
    windows_s: tuple[int, ...]
    session_gap_s: int
    key_events: tuple[str, ...]
    milestones: tuple[tuple[str, str, int | None], ...] = ()
    transitions: tuple[tuple[str, str], ...] = ()
    free_mail_domains: tuple[str, ...] = ()
    enterprise_domains: tuple[str, ...] = ()
    education_suffixes: tuple[str, ...] = ()
    numeric_user_columns: tuple[str, ...] = ()
    categorical_user_columns: tuple[tuple[str, tuple[str, ...]], ...] = ()
    properties: tuple[tuple[str, str, tuple[str, ...]], ...] = ()
    # lagged family: windows of lag_window_s ending lags_s before the cutoff; the trend compares
    # their last lag_recent_s with the rest
    lag_window_s: int = 0
    lags_s: tuple[int, ...] = ()
    lag_recent_s: int = 0
    # lag 0's events and per-event counts are left out where the counts family has a window of
    # the lagged window's length: they are the same numbers under two names, which doubled
    # those signals for feature_fraction and split their SHAP credit. False in specs saved
    # before, which keep both columns (and their hash).
    lag_dedup: bool = False
    version: int = field(default=SPEC_VERSION)

    def __post_init__(self) -> None:
        vocab = set(self.events)
        named = {*self.key_events, *(e for m in self.milestones for e in m[:2])}
        named |= {e for pair in self.transitions for e in pair} | {p[0] for p in self.properties}
        missing = sorted(named - vocab)
        unknown = sorted(set(self.families) - {*FAMILIES, *ENTITY_FAMILIES})
        lagged = "lagged" in self.families
        if lagged and not (self.lags_s and 0 < self.lag_recent_s < self.lag_window_s):
            unknown.append("lagged (needs lags_s and 0 < lag_recent_s < lag_window_s)")
        if missing or unknown:
            raise ModelError(
                f"A feature spec must name only vocabulary events and known families. Got events "
                f"{missing} outside the vocabulary and families {unknown}; build the spec with "
                f"learn_spec rather than by hand."
            )

    # ---- derived -------------------------------------------------------------------------
    @cached_property
    def slugs(self) -> dict[str, str]:
        """Event name -> unique identifier slug (collisions get ``_2``, ``_3`` in name order)."""
        out: dict[str, str] = {}
        # "event"/"events" would collide with hours_since_last_event and n_events_{window}.
        taken: set[str] = {"event", "events"}
        for event in sorted(self.events):
            base = slugify(event)
            slug, k = base, 2
            while slug in taken:
                slug, k = f"{base}_{k}", k + 1
            taken.add(slug)
            out[event] = slug
        return out

    @cached_property
    def features(self) -> tuple[FeatureInfo, ...]:
        """Every feature column, in output order."""
        fams = set(self.families)
        s = self.slugs
        out: list[FeatureInfo] = []
        add = out.append
        wins: list[int | None] = [*self.windows_s, None]
        if "counts" in fams:
            for w in wins:
                wl = window_label(w)
                add(FeatureInfo(f"n_events_{wl}", "counts", "events", window=wl, window_s=w))
                for e in self.events:
                    add(FeatureInfo(f"n_{s[e]}_{wl}", "counts", "count", e, window=wl, window_s=w))
            for e in self.events:
                add(FeatureInfo(f"rate_{s[e]}_per_active_day", "counts", "rate", e, window="all"))
        if "recency" in fams:
            add(FeatureInfo("hours_since_last_event", "recency", "hours_since_last_event"))
            for e in self.key_events:
                add(FeatureInfo(f"hours_since_last_{s[e]}", "recency", "hours_since_last", e))
            add(FeatureInfo("tenure_days", "recency", "tenure_days"))
            add(FeatureInfo("cutoff_age_days", "recency", "cutoff_age_days"))
        if "activity" in fams:
            for kind in ("active_days", "sessions", "events_per_session", "longest_streak_days"):
                add(FeatureInfo(kind, "activity", kind))
            for w in self.windows_s:
                wl = window_label(w)
                add(FeatureInfo(f"trend_events_{wl}", "activity", "trend", window=wl, window_s=w))
            add(FeatureInfo("gap_mean_hours", "activity", "gap_mean_hours"))
            add(FeatureInfo("gap_max_hours", "activity", "gap_max_hours"))
        if "lagged" in fams:
            out += self._lagged()
        if "timing" in fams:
            for e in self.key_events:
                add(FeatureInfo(f"hours_to_first_{s[e]}", "timing", "hours_to_first", e))
        if "order" in fams:
            for a, b, bound in self.milestones:
                add(FeatureInfo(f"order_{s[a]}_before_{s[b]}", "order", "before", a, b))
                if bound is not None:
                    wl = window_label(bound)
                    name = f"within_{s[a]}_then_{s[b]}_{wl}"
                    add(FeatureInfo(name, "order", "within", a, b, window=wl, window_s=bound))
        if "transitions" in fams:
            for a, b in self.transitions:
                add(FeatureInfo(f"tr_{s[a]}__{s[b]}", "transitions", "transition", a, b))
        if "diversity" in fams:
            add(FeatureInfo("distinct_events", "diversity", "distinct_events"))
            add(FeatureInfo("event_entropy", "diversity", "event_entropy"))
        if "account" in fams:
            add(FeatureInfo("account_active_users", "account", "active_users"))
            for w in wins:
                wl = window_label(w)
                add(FeatureInfo(f"account_events_{wl}", "account", "events", window=wl, window_s=w))
        if "fit" in fams:
            add(FeatureInfo("domain_class", "fit", "domain_class", column="email_domain"))
            for col in self.numeric_user_columns:
                add(FeatureInfo(f"user_{slugify(col)}", "fit", "user_numeric", column=col))
            for col, _ in self.categorical_user_columns:
                add(FeatureInfo(f"user_{slugify(col)}", "fit", "user_categorical", column=col))
        if "properties" in fams:
            for e, prop, aggs in self.properties:
                for agg in aggs:
                    name = f"prop_{s[e]}_{slugify(prop)}_{agg}"
                    add(FeatureInfo(name, "properties", "property", e, property=prop, agg=agg))
        if "members" in fams:  # an account entity's members (engines/account.py computes them)
            out += member_features()
        return tuple(out)

    def _lagged(self) -> list[FeatureInfo]:
        s, w, r = self.slugs, self.lag_window_s, self.lag_recent_s
        wl, rl = window_label(w), window_label(r)
        counted = self.lag_dedup and "counts" in self.families and w in self.windows_s
        out = []
        for lag in self.lags_s:
            pre, kw = f"lag{window_label(lag)}", {"lag_s": lag}
            win = {"window": wl, "window_s": w, **kw}
            if not (counted and lag == 0):  # else n_events_{wl} and n_{event}_{wl}
                out.append(FeatureInfo(f"{pre}_events_{wl}", "lagged", "events", **win))
                for e in self.events:
                    out.append(FeatureInfo(f"{pre}_{s[e]}_{wl}", "lagged", "count", e, **win))
            out.append(FeatureInfo(f"{pre}_active_days_{wl}", "lagged", "active_days", **win))
            name = f"{pre}_trend_{rl}_{wl}"
            out.append(FeatureInfo(name, "lagged", "trend", window=rl, window_s=r, **kw))
            out.append(FeatureInfo(f"{pre}_days_since_last_event", "lagged", "days_since", **kw))
            out.append(FeatureInfo(f"{pre}_active_weeks", "lagged", "active_weeks", **kw))
        return out

    @cached_property
    def _by_name(self) -> dict[str, FeatureInfo]:
        return {f.name: f for f in self.features}

    @property
    def columns(self) -> tuple[str, ...]:
        """Feature column names in output order (keys ``user_id``, ``cutoff_at`` not included)."""
        return tuple(f.name for f in self.features)

    @property
    def categorical(self) -> dict[str, tuple[str, ...]]:
        """Categorical column name -> its levels, in order."""
        out: dict[str, tuple[str, ...]] = {}
        if "fit" in self.families:
            out["domain_class"] = DOMAIN_CLASSES
            for col, levels in self.categorical_user_columns:
                out[f"user_{slugify(col)}"] = levels
        return out

    def describe(self, name: str) -> FeatureInfo:
        """What the column ``name`` means (family, event, window, ...)."""
        try:
            return self._by_name[name]
        except KeyError:
            raise ModelError(
                f"Feature {name!r} must be one of the spec's {len(self.columns)} columns. "
                f"Got an unknown name; check the model and the spec come from the same run."
            ) from None

    # ---- serialisation ---------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        out = json.loads(json.dumps(asdict(self)))  # tuples -> lists, a plain JSON-ready structure
        if not self.lags_s:
            # Specs without lagged windows keep the keys (and so the hash) they had before the
            # family existed: a model trained then still loads and hashes the same.
            for key in _LAG_KEYS:
                del out[key]
        if not self.lag_dedup:  # specs saved before the key keep their hash
            del out["lag_dedup"]
        return out

    def to_json(self) -> str:
        """Canonical JSON (sorted keys), with the derived column list for readers."""
        return json.dumps(
            {"spec": self.to_dict(), "columns": list(self.columns), "hash": self.hash},
            sort_keys=True,
            indent=1,
        )

    @classmethod
    def from_json(cls, text: str, source: str = "the spec") -> FeatureSpec:
        """Read a spec written by :meth:`to_json`; checks version, columns and hash.

        ``source`` names where the text came from (a file) in the error messages.
        """
        try:
            doc = json.loads(text)
            raw = doc["spec"]
        except (ValueError, KeyError, TypeError):
            raise ModelError(
                f"A feature spec must be the JSON written by FeatureSpec.to_json(). Got something "
                f"else in {source}; re-train to write a fresh spec."
            ) from None
        if not isinstance(raw, dict) or raw.get("version") != SPEC_VERSION:
            got = raw.get("version") if isinstance(raw, dict) else raw
            raise ModelError(
                f"Feature spec version must be {SPEC_VERSION}. Got {shorten(repr(got), 40)} in "
                f"{source}; re-train the model with this version of propensity."
            )
        spec = cls(
            families=tuple(raw["families"]),
            events=tuple(raw["events"]),
            windows_s=tuple(raw["windows_s"]),
            session_gap_s=raw["session_gap_s"],
            key_events=tuple(raw["key_events"]),
            milestones=tuple((a, b, w) for a, b, w in raw["milestones"]),
            transitions=tuple((a, b) for a, b in raw["transitions"]),
            free_mail_domains=tuple(raw["free_mail_domains"]),
            enterprise_domains=tuple(raw["enterprise_domains"]),
            education_suffixes=tuple(raw["education_suffixes"]),
            numeric_user_columns=tuple(raw["numeric_user_columns"]),
            categorical_user_columns=tuple(
                (c, tuple(levels)) for c, levels in raw["categorical_user_columns"]
            ),
            properties=tuple((e, p, tuple(a)) for e, p, a in raw["properties"]),
            lag_window_s=raw.get("lag_window_s", 0),
            lags_s=tuple(raw.get("lags_s", ())),
            lag_recent_s=raw.get("lag_recent_s", 0),
            lag_dedup=bool(raw.get("lag_dedup", False)),
            version=raw["version"],
        )
        if "hash" in doc and doc["hash"] != spec.hash:
            raise ModelError(
                f"Feature spec hash must match its content ({spec.hash}). Got {doc['hash']!r} in "
                f"{source}; the file was edited or corrupted, re-train to write a fresh spec."
            )
        return spec

    @cached_property
    def hash(self) -> str:
        """Stable content hash (16 hex chars) of the spec; equal specs hash equal."""
        text = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]
