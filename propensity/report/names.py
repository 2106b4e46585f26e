"""Feature columns as people read them: the glossary's one-line meaning of each column.

The meaning comes from the run's feature spec, never from parsing the column's name.

>>> readable("n_teammate_invited_all", spec)  # doctest: +SKIP
"Times 'teammate_invited' happened since signup"
"""

from __future__ import annotations

from propensity.errors import ModelError
from propensity.features import FeatureSpec
from propensity.features.glossary import meaning

__all__ = ["readable"]


def readable(name: str, spec: FeatureSpec | None) -> str:
    """The meaning of column ``name`` from ``spec``; the bare name when there is no spec or it
    does not know the column (an older run), since a guess from the name could be wrong."""
    if spec is None:
        return name
    try:
        info = spec.describe(name)
    except ModelError:
        return name
    text = meaning(info)
    return text[:1].upper() + text[1:] if text != name else name
