"""The report's "aha moments and a suggested rule" section, from the files discovery writes.

Self-contained: ``load_discovery`` reads ``<run>/discover/`` (written by ``propensity discover``
or by ``train`` with ``baselines.suggested: true``) and ``discover_section`` renders it. When the
folder is missing the section says how to get it, as every section does.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from propensity.report.html import Section, fmt_number, paragraph, table, text
from propensity.report.sections import SECTIONS

__all__ = ["DISCOVER_DIR", "DiscoveryFiles", "discover_section", "load_discovery"]

DISCOVER_DIR = "discover"
SECTION_ID = "discover"
SECTION_TITLE = SECTIONS[SECTION_ID]
_TOP = 15


@dataclass(frozen=True, eq=False)
class DiscoveryFiles:
    """What a discovery wrote: the ranked behaviours, the suggestion, the matched rules."""

    behaviours: pd.DataFrame | None = None
    suggestion: Mapping[str, Any] | None = None
    matched: pd.DataFrame | None = None


def load_discovery(run_dir: Path | str) -> DiscoveryFiles:
    """Read ``run_dir/discover/``; missing files are ``None``."""
    folder = Path(run_dir) / DISCOVER_DIR

    def csv(name: str) -> pd.DataFrame | None:
        path = folder / name
        return pd.read_csv(path, keep_default_na=False, na_values=[""]) if path.is_file() else None

    suggestion = folder / "suggested.json"
    return DiscoveryFiles(
        behaviours=csv("behaviours.csv"),
        suggestion=json.loads(suggestion.read_text(encoding="utf-8"))
        if suggestion.is_file()
        else None,
        matched=csv("matched.csv"),
    )


def discover_section(files: DiscoveryFiles, top: int = _TOP) -> Section:
    """The ranked behaviours, the suggested rule with its test numbers, the matched rules."""
    if files.behaviours is None and files.suggestion is None:
        body = paragraph(
            "Discovery did not run for this run. Run `propensity discover --config C`, or set "
            "'baselines: {suggested: true}' and train again, to rank the behaviours that "
            "separate converters and suggest a rule.",
            "muted",
        )
        return Section(SECTION_ID, SECTION_TITLE, body)
    body = []
    if files.suggestion is not None:
        body += _suggestion(files.suggestion)
    if files.behaviours is not None:
        body += _behaviours(files.behaviours, top)
    if files.matched is not None and not files.matched.empty:
        body += _matched(files.matched)
    return Section(SECTION_ID, SECTION_TITLE, "".join(body))


def _suggestion(s: Mapping[str, Any]) -> list[str]:
    out = [
        "<h3>Suggested rule</h3>",
        f"<pre>{text(s.get('yaml', s.get('expr', '')))}</pre>",
        paragraph(
            f"Learned on the training slice to flag {_pct(s.get('volume'))} of trials; paste it "
            f"under 'baselines:' in the config to judge it in every run."
        ),
    ]
    if s.get("distance"):
        out.append(paragraph(s["distance"], "callout"))
    return out


def _behaviours(b: pd.DataFrame, top: int) -> list[str]:
    rows = b.head(top)
    frame = pd.DataFrame(
        {
            "rank": rows["rank"].map(fmt_number),
            "behaviour": rows["behaviour"].astype(str),
            "as a rule": [
                c
                if isinstance(c, str) and c
                else f"add milestone {m}"
                if isinstance(m, str) and m
                else ""
                for c, m in zip(rows["condition"], rows["milestone"], strict=True)
            ],
            "trials": rows["coverage"].map(_pct),
            "conversion": rows["conversion_rate"].map(_pct),
            "lift": [
                _ci(*v) for v in zip(rows["lift"], rows["lift_low"], rows["lift_high"], strict=True)
            ],
            "adjusted lift": [
                _ci(*v)
                for v in zip(
                    rows["adjusted_lift"], rows["adjusted_low"], rows["adjusted_high"], strict=True
                )
            ],
            "extra converters per 1,000": [
                _ci(*v, digits=2)
                for v in zip(
                    rows["extra_per_1000"], rows["extra_low"], rows["extra_high"], strict=True
                )
            ],
        }
    )
    return [
        f"<h3>What converters did (top {len(rows)} of {len(b)})</h3>",
        table(frame, formats=dict.fromkeys(frame.columns, str)),
        paragraph(
            "Measured on half of the training users that took no part in choosing the "
            "behaviours, thresholds or windows. Lift: conversion rate over the base rate. "
            "Adjusted lift: conversions over what everything else those users did predicts; a "
            "behaviour near 1 only travels with converters (a vanity metric). Ranked by the "
            "evidence of extra converters. Brackets hold for all rows at once (95%).",
            "muted",
        ),
    ]


def _matched(m: pd.DataFrame) -> list[str]:
    frame = pd.DataFrame(
        {
            "your rule": m["rule"].astype(str),
            "its precision": [
                _rate(*v)
                for v in zip(
                    m["rule_precision"],
                    m["rule_precision_low"],
                    m["rule_precision_high"],
                    strict=True,
                )
            ],
            "its PQLs/week": m["rule_per_week"].map(lambda v: fmt_number(v, 3)),
            "rule the data supports, same volume": m["suggested"].astype(str),
            "its precision ": [
                _rate(*v)
                for v in zip(
                    m["suggested_precision"],
                    m["suggested_precision_low"],
                    m["suggested_precision_high"],
                    strict=True,
                )
            ],
            "its PQLs/week ": m["suggested_per_week"].map(lambda v: fmt_number(v, 3)),
            "precision gain": [
                _ci(*v, signed=True)
                for v in zip(
                    m["precision_diff"],
                    m["precision_diff_low"],
                    m["precision_diff_high"],
                    strict=True,
                )
            ],
        }
    )
    return [
        "<h3>Your rules, and a rule the data supports at the same volume</h3>",
        table(frame, formats=dict.fromkeys(frame.columns, str)),
        paragraph(
            "On the later test slice. Each suggested rule was learned on the training slice to "
            "flag as many trials as your rule did there. Gains are paired bootstrap 95% intervals.",
            "muted",
        ),
    ]


def _points(value: Any) -> str:
    v = float(value)
    return "–" if v != v else f"{100 * v:+.1f} pts"


def _pct(value: Any) -> str:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return "–"
    return "–" if v != v else f"{100 * v:.1f}%"


def _rate(value: Any, low: Any, high: Any) -> str:
    return f"{_pct(value)} [{_pct(low)}, {_pct(high)}]"


def _ci(value: Any, low: Any, high: Any, *, digits: int = 3, signed: bool = False) -> str:
    if signed:
        return f"{_points(value)} [{_points(low)}, {_points(high)}]"
    if str(low) in ("nan", "None"):
        return fmt_number(value, digits)
    return f"{fmt_number(value, digits)} [{fmt_number(low, digits)}, {fmt_number(high, digits)}]"
