"""The report's outcomes section: what the PQLs turned out to be (``propensity outcomes``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd

from propensity.report.html import Section, paragraph, table

__all__ = ["outcomes_section"]


def _pct(value: Any) -> str:
    try:
        return f"{float(value):.1%}"
    except (TypeError, ValueError):
        return "-"


def outcomes_section(
    runs: pd.DataFrame | None, segments: pd.DataFrame | None, lift: Mapping[str, Any] | None
) -> Section:
    """Holdout lift with its interval, realized vs expected precision, and PQL-to-paid by
    segment and route; alerts in red."""
    title = "Outcomes: what the PQLs turned out to be"
    if runs is None or lift is None:
        body = paragraph(
            "No outcomes were given. Run 'propensity outcomes' once the horizon has passed and "
            "rebuild the report with --outcomes to see realized precision and the holdout lift.",
            "muted",
        )
        return Section("outcomes", title, body)
    body = [
        paragraph(
            f"Sales contact lifted conversion by {float(lift['lift.lift']):+.1%} (95% interval "
            f"{float(lift['lift.lift_low']):+.1%} to {float(lift['lift.lift_high']):+.1%}): "
            f"{_pct(lift['lift.rate_contacted'])} of {lift['lift.contacted']} contacted PQLs "
            f"paid, {_pct(lift['lift.rate_held_out'])} of {lift['lift.held_out']} held out.",
            "headline",
        ),
        paragraph(
            f"Realized precision {_pct(lift.get('realized_precision'))} over {lift['runs']} "
            f"runs; the scores expected {_pct(lift.get('expected_precision'))} and training "
            f"promised {_pct(lift.get('promised_precision'))}.",
            "callout",
        ),
    ]
    body += [paragraph(a, "alert") for a in lift.get("alerts", [])]
    if segments is not None and not segments.empty:
        shown = segments[["segment", "value", "route", "pqls", "pql_rate", "days_to_pql"]]
        shown = shown.assign(pql_to_paid=segments["pql_to_paid"])
        body.append(
            table(
                shown,
                formats={
                    "segment": str,
                    "value": str,
                    "route": str,
                    "pqls": str,
                    "pql_rate": _pct,
                    "pql_to_paid": _pct,
                },
                left=("value", "route"),
            )
        )
    tail = runs.tail(10)[["as_of", "pqls", "precision", "expected_precision", "recall"]]
    body.append(
        table(
            tail,
            formats={
                "as_of": str,
                "pqls": str,
                "precision": _pct,
                "expected_precision": _pct,
                "recall": _pct,
            },
        )
    )
    return Section("outcomes", title, "".join(body))
