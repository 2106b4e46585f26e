"""Feature columns as people read them: the glossary's one-line meaning of each column.

>>> readable("n_teammate_invited_all")
"Times 'teammate_invited' happened since signup"
"""

from __future__ import annotations

from propensity.explain import describe_name
from propensity.features import FeatureSpec
from propensity.features.glossary import meaning

__all__ = ["readable"]


def readable(name: str, spec: FeatureSpec | None = None) -> str:
    """The meaning of column ``name`` (from ``spec`` when given, else from its name)."""
    try:
        info = spec.describe(name) if spec is not None else describe_name(name)
    except Exception:  # a column the spec does not know (an older run): its name parsed
        info = describe_name(name)
    if info.family == "fit" and info.kind == "user":  # parsed from a name: type unknown
        return f"The users table's column '{info.column}'"
    text = meaning(info)
    return text[:1].upper() + text[1:] if text != name else name
