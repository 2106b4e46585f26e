"""What every feature column means, in one line: for ``propensity features`` and docs/features.md.

One table (:data:`GLOSSARY`) holds, per family and kind, the column's name pattern and its
meaning with placeholders. :func:`meaning` fills them in for one column of a spec;
:func:`markdown` writes the reference page from the same table, so the two cannot disagree (a
test compares the page with the file). Regenerate the page with
``python -m propensity.features.glossary > docs/features.md``.

>>> meaning(FeatureInfo("n_doc_shared_7d", "counts", "count", "doc_shared", window="7d"))
"times 'doc_shared' happened in the 7d before the cutoff"
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from propensity.account_plan import account_plan
from propensity.features.spec import ENTITY_FAMILIES, FAMILIES, FeatureInfo, window_label

__all__ = ["GLOSSARY", "Entry", "markdown", "meaning"]


@dataclass(frozen=True)
class Entry:
    """One kind of column: its family, kind, name pattern and meaning (with placeholders)."""

    family: str
    kind: str
    name: str
    meaning: str


_W = "{window_text}"
GLOSSARY: tuple[Entry, ...] = (
    Entry("counts", "events", "n_events_<window>", f"events of any vocabulary type {_W}"),
    Entry("counts", "count", "n_<event>_<window>", f"times '<event>' happened {_W}"),
    Entry(
        "counts",
        "rate",
        "rate_<event>_per_active_day",
        "times '<event>' happened since signup, per active day",
    ),
    Entry(
        "recency",
        "hours_since_last_event",
        "hours_since_last_event",
        "hours from the last event to the cutoff (missing: no event yet)",
    ),
    Entry(
        "recency",
        "hours_since_last",
        "hours_since_last_<event>",
        "hours from the last '<event>' to the cutoff (missing: never)",
    ),
    Entry(
        "recency",
        "tenure_days",
        "tenure_days",
        "days from the first event after signup to the cutoff",
    ),
    Entry(
        "recency",
        "cutoff_age_days",
        "cutoff_age_days",
        "days from signup to the cutoff: the trial age, context for the other features "
        "(never a reason code)",
    ),
    Entry("activity", "active_days", "active_days", "days since signup with at least one event"),
    Entry(
        "activity",
        "sessions",
        "sessions",
        "sessions since signup (a new one starts after a gap longer than features.session_gap)",
    ),
    Entry(
        "activity",
        "events_per_session",
        "events_per_session",
        "events per session since signup (missing: no session)",
    ),
    Entry(
        "activity",
        "longest_streak_days",
        "longest_streak_days",
        "most consecutive active days since signup",
    ),
    Entry(
        "activity",
        "trend",
        "trend_events_<window>",
        "events per day in the last <window> over events per day since signup "
        "(1 = steady, above 1 = accelerating)",
    ),
    Entry(
        "activity",
        "gap_mean_hours",
        "gap_mean_hours",
        "mean hours between consecutive events (missing: fewer than two events)",
    ),
    Entry(
        "activity",
        "gap_max_hours",
        "gap_max_hours",
        "longest break between consecutive events, in hours",
    ),
    Entry(
        "timing",
        "hours_to_first",
        "hours_to_first_<event>",
        "hours from signup to the first '<event>' (missing: not yet)",
    ),
    Entry(
        "order",
        "before",
        "order_<event>_before_<event_b>",
        "1 when the first '<event>' came before the first '<event_b>'",
    ),
    Entry(
        "order",
        "within",
        "within_<event>_then_<event_b>_<window>",
        "1 when the first '<event_b>' followed the first '<event>' within <window>",
    ),
    Entry(
        "transitions",
        "transition",
        "tr_<event>__<event_b>",
        "times '<event>' was directly followed by '<event_b>' since signup",
    ),
    Entry("diversity", "distinct_events", "distinct_events", "distinct event types since signup"),
    Entry(
        "diversity",
        "event_entropy",
        "event_entropy",
        "entropy of the mix of event types since signup (0 = one type only)",
    ),
    Entry(
        "account",
        "active_users",
        "account_active_users",
        "other users of the same account with an event before the cutoff",
    ),
    Entry(
        "account",
        "events",
        "account_events_<window>",
        f"events of the other users of the same account {_W}",
    ),
    Entry(
        "fit",
        "domain_class",
        "domain_class",
        "email domain class: free_mail, corporate, enterprise, education or unknown",
    ),
    Entry("fit", "user_numeric", "user_<column>", "the users table's numeric column '<column>'"),
    Entry(
        "fit",
        "user_categorical",
        "user_<column>",
        "the users table's column '<column>' (its most frequent training levels; others "
        "are missing)",
    ),
    Entry(
        "properties",
        "property",
        "prop_<event>_<property>_<agg>",
        "<agg> of the numeric property '<property>' of '<event>' since signup",
    ),
    Entry(
        "lagged",
        "events",
        "lag<lag>_events_<window>",
        "events of any vocabulary type in the <window> that end <lag> before the cutoff "
        "(lag 0d: the last <window>)",
    ),
    Entry(
        "lagged",
        "count",
        "lag<lag>_<event>_<window>",
        "times '<event>' happened in the <window> that end <lag> before the cutoff",
    ),
    Entry(
        "lagged",
        "active_days",
        "lag<lag>_active_days_<window>",
        "days (24 hours counted back from the cutoff) with an event in the <window> that end "
        "<lag> before the cutoff",
    ),
    Entry(
        "lagged",
        "trend",
        "lag<lag>_trend_<recent>_<window>",
        "ln(1 + events in the last <recent> of that window) - ln(1 + the rest's events per "
        "<recent>): 0 = steady, above 0 = accelerating",
    ),
    Entry(
        "lagged",
        "days_since",
        "lag<lag>_days_since_last_event",
        "days from the last event to <lag> before the cutoff (missing: no event by then)",
    ),
    Entry(
        "lagged",
        "active_weeks",
        "lag<lag>_active_weeks",
        "weeks (7 days counted back from <lag> before the cutoff) with an event",
    ),
)
GLOSSARY += tuple(
    Entry("members", a.name, f"acct_{a.name}", f"the account's {a.meaning}")
    for a in account_plan().aggregates
) + (
    Entry("members", "seats_paid", "acct_seats_paid", "seats of the account's latest payment "
          "before the cutoff (0 when not paying; from the payments table)"),
    Entry("members", "excess_seats", "acct_excess_seats", "members seen before the cutoff "
          "beyond the seats paid (0 when not paying)"),
)  # fmt: skip
_BY_KIND = {(e.family, e.kind): e for e in GLOSSARY}


def meaning(info: FeatureInfo) -> str:
    """The one-line meaning of the column ``info`` describes (from :data:`GLOSSARY`)."""
    entry = _BY_KIND.get((info.family, info.kind))
    if entry is None:
        return info.name
    window = info.window or ""
    if info.family == "lagged" and info.kind == "trend":
        text = entry.meaning.replace("<recent>", window)
        window = ""  # the lagged window's length is in the column name
    else:
        text = entry.meaning
    text = text.replace(
        _W, "since signup" if window in ("", "all") else f"in the {window} before the cutoff"
    )
    for key, value in (
        ("<event_b>", info.event_b),
        ("<event>", info.event),
        ("<window>", window),
        ("<property>", info.property),
        ("<agg>", info.agg),
        ("<column>", info.column),
        ("<lag>", None if info.lag_s is None else window_label(info.lag_s)),
    ):
        text = text.replace(key, str(value or ""))
    return text


def markdown() -> str:
    """The feature reference page (docs/features.md), from the same table as :func:`meaning`."""
    lines = [
        "# Feature reference",
        "",
        "<!-- Generated from propensity/features/glossary.py; do not edit by hand. Regenerate",
        "     with: python -m propensity.features.glossary > docs/features.md -->",
        "",
        "Every feature column, by family. `<event>` is an event type of the learned vocabulary",
        "(lowercased, other characters as `_`), `<window>` one of `features.windows` (`all` =",
        "since signup). Features see only events in `[signup, cutoff)`. List the columns of a",
        "project, with these meanings filled in, with `propensity features --config C`.",
        "`lagged` is on by default at calendar anchors (`features.lagged`: `<window>` its",
        "window, `<lag>` each of its lags, `<recent>` its recent part); `timing` is on by",
        "default at trial ages only (hours from signup to a first event is a trial-clock",
        "measure). Lag 0d's `events` and `<event>` counts are left out when `features.windows`",
        "has a window of the lagged window's length: they would repeat `n_events_<window>` and",
        "`n_<event>_<window>` under another name (doubling those signals for `feature_fraction`",
        "and splitting their SHAP credit between two reason codes); models saved before keep both.",
        "",
    ]
    for family in (*FAMILIES, *ENTITY_FAMILIES):
        lines += [
            f"## `{family}`",
            "",
            "| column | meaning |",
            "|---|---|",
        ]
        for entry in (e for e in GLOSSARY if e.family == family):
            text = entry.meaning.replace(_W, "in the <window> before the cutoff")
            # placeholders as code: bare <event> would read as an HTML tag
            text = re.sub(r"'?<(\w+)>'?", r"`<\1>`", text)
            lines.append(f"| `{entry.name}` | {text} |")
        lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    print(markdown(), end="")
