"""Checking every baseline against the feature columns at once, before the model is fitted.

A config copied from another product names features this data does not have. Checked one at a
time, that is one error per training run; checked here against the learned spec (an empty table
with its columns and levels), it is every problem of every rule in one message.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Sequence

import pandas as pd

from propensity.baselines.grammar import RuleError
from propensity.baselines.templates import Baseline

__all__ = ["check_baselines"]


def check_baselines(
    baselines: Sequence[Baseline],
    frame: pd.DataFrame,
    explain: Callable[[str], str | None] | None = None,
) -> None:
    """Fit every baseline on ``frame``; raise one :class:`RuleError` listing every problem.

    ``explain(feature)`` says why a named feature is not a column (e.g. its event is below
    ``features.min_event_support``), or None to fall back to suggesting close column names.
    Values outside a categorical's levels are allowed and warned about by ``fit``.
    """
    problems: list[str] = []
    known = [str(c) for c in frame.columns]
    for baseline in baselines:
        try:
            missing = [f for f in baseline.named_features() if f not in frame.columns]
            if not missing:
                baseline.fit(frame)
                continue
        except RuleError as exc:
            problems.append(str(exc))
            continue
        owner = (
            f"Points baseline {baseline.label!r}"
            if baseline.kind == "points"
            else f"Rule {baseline.label!r} ({baseline.expr!r})"
        )
        for feature in missing:
            why = (explain(feature) if explain is not None else None) or "no such feature"
            close = difflib.get_close_matches(feature, known, n=3, cutoff=0.6)
            if close:
                why += f"; did you mean {', '.join(map(repr, close))}?"
            problems.append(
                f"{owner} does not fit the feature table: feature {feature!r}: {why}"
                + ("" if why.endswith("?") else ".")
            )
    if not problems:
        return
    if len(problems) == 1:
        message = problems[0]
    else:
        lines = "\n".join(f"  - {p}" for p in problems)
        message = f"{len(problems)} problems with the baselines under 'baselines:':\n{lines}"
    raise RuleError(message, expression=", ".join(b.label for b in baselines))
