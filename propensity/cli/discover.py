"""Printing a discovery on the terminal (rich tables), for ``propensity discover``."""

from __future__ import annotations

from typing import Any

import pandas as pd
from rich.console import Console
from rich.table import Table

from propensity.features.spec import window_label

__all__ = ["print_discovery"]


def print_discovery(outcome: Any, console: Console, top: int = 15) -> None:
    """The ranked behaviours, the suggested rule with its test numbers, and the matched rules."""
    d = outcome.discovery
    b = d.behaviours
    console.print(_behaviours(b.table.head(top), b))
    s = d.suggestion
    console.print(f"\n[bold]Suggested rule[/] (learned on the training slice for {s.volume:.1%} "
                  f"of trials); paste under 'baselines:' in the config:")  # fmt: skip
    console.print(s.yaml(), markup=False, highlight=False)
    console.print(_comparison(outcome.comparison))
    console.print(outcome.distance)
    if not outcome.matched.empty:
        console.print(_matched(outcome.matched))
    if d.milestones:
        listed = "; ".join(
            f"{m.first} -> {m.then}"
            + (f" within {window_label(int(m.within.total_seconds()))}" if m.within else "")
            for m in d.milestones
        )
        console.print(f"milestones the data supports (features.milestones): {listed}")
    if outcome.note:
        console.print(f"note: {outcome.note}")
    console.print(
        f"{outcome.test_rows:,} test users over {outcome.weeks:.1f} weeks; run id {outcome.run_id}"
    )
    console.print(f"report: {outcome.report}")


def _behaviours(table: pd.DataFrame, b: Any) -> Table:
    out = Table(
        title=(
            f"What converters did: {len(table)} of {len(b.table)} behaviours, measured on "
            f"{b.estimate_users:,} held-out training users (simultaneous 95% intervals)"
        ),
        title_justify="left",
    )
    for col in ("#", "behaviour", "as a rule", "trials", "conv.", "lift", "adjusted lift"):
        out.add_column(col, justify="left" if col in ("behaviour", "as a rule") else "right")
    for r in table.to_dict("records"):
        rule = r["condition"] or (f"add milestone {r['milestone']}" if r["milestone"] else "")
        out.add_row(
            str(r["rank"]),
            str(r["behaviour"]),
            rule,
            f"{r['coverage']:.1%}",
            f"{r['conversion_rate']:.1%}",
            f"{r['lift']:.1f}x [{r['lift_low']:.1f}, {r['lift_high']:.1f}]",
            f"{r['adjusted_lift']:.2f}x [{r['adjusted_low']:.2f}, {r['adjusted_high']:.2f}]"
            + ("" if r["significant"] else " ·"),
        )
    out.caption = (
        "adjusted lift: conversions over what everything else those users did predicts "
        "(near 1: it only travels with converters); · = interval includes 1"
    )
    return out


def _comparison(table: pd.DataFrame) -> Table:
    out = Table(title="On the later test slice (95% bootstrap intervals)", title_justify="left")
    same = "model_precision_same_volume" in table
    cols = ["scorer", "PQLs/week", "precision", "recall"]
    cols += ["model precision at same volume", "model - rule"] if same else []
    for col in cols:
        out.add_column(col, justify="left" if col == "scorer" else "right")
    for r in table.to_dict("records"):
        cells = [
            str(r["name"]),
            f"{r['per_week']:.1f}",
            f"{r['precision']:.1%} [{r['precision_low']:.1%}, {r['precision_high']:.1%}]",
            f"{r['recall']:.1%}",
        ]
        if same:
            model = r["name"] == "model"
            cells.append("" if model else f"{r['model_precision_same_volume']:.1%}")
            cells.append(
                ""
                if model
                else f"{100 * r['precision_diff']:+.1f} pts "
                f"[{100 * r['precision_diff_low']:+.1f}, {100 * r['precision_diff_high']:+.1f}]"
            )
        out.add_row(*cells)
    return out


def _matched(m: pd.DataFrame) -> Table:
    out = Table(
        title="Your rules vs a rule the data supports at the same volume (test slice)",
        title_justify="left",
    )
    for col in ("your rule", "precision", "learned at its volume", "precision ", "gain"):
        out.add_column(
            col, justify="left" if col in ("your rule", "learned at its volume") else "right"
        )
    for r in m.to_dict("records"):
        out.add_row(
            str(r["rule"]),
            f"{r['rule_precision']:.1%} ({r['rule_per_week']:.1f}/wk)",
            str(r["suggested"]),
            f"{r['suggested_precision']:.1%} ({r['suggested_per_week']:.1f}/wk)",
            f"{100 * r['precision_diff']:+.1f} pts "
            f"[{100 * r['precision_diff_low']:+.1f}, {100 * r['precision_diff_high']:+.1f}]",
        )
    return out
