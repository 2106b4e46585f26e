"""Tests of the terminal rendering: the drift table a scheduled score job prints."""

from __future__ import annotations

import numpy as np
import pandas as pd
from rich.console import Console

from propensity.cli.render import drift_table


def _text(render) -> str:  # type: ignore[no-untyped-def]
    console = Console(record=True, width=120, highlight=False)
    render(console)
    return console.export_text()


def test_drift_is_a_table_with_the_largest_first():
    """Check that drifted checks print as a table, largest PSI first, the rest counted."""
    psi = [0.3 + 0.05 * i for i in range(12)] + [0.1]
    drift = pd.DataFrame(
        {
            "feature": [f"f{i}" for i in range(12)] + ["quiet"],
            "kind": "feature",
            "psi": psi,
            "flag": [True] * 12 + [False],
        }
    )
    vocabulary = {
        "feature": "event_vocabulary",
        "kind": "vocabulary",
        "psi": np.nan,
        "flag": True,
        "detail": "9.0% of 100 scoring events have a type unseen in training",
    }
    drift = pd.concat([drift, pd.DataFrame([vocabulary])], ignore_index=True)
    text = _text(lambda c: drift_table(drift, c, top=5, source="scores.drift.csv"))
    lines = [line.rstrip() for line in text.splitlines()]
    assert lines[0] == "drift above the limit: 13 of 14 checks"
    rows = [line.split("│")[1].strip() for line in lines if line.startswith("│ ")]
    assert rows == ["event_vocabulary", "f11", "f10", "f9", "f8"]
    assert "0.8500" in text and "9.0% of 100 scoring events" in text
    assert "quiet" not in text
    assert lines[-1] == "... and 8 more in scores.drift.csv"


def test_no_drift_prints_nothing():
    """Check that without flagged checks nothing is printed."""
    drift = pd.DataFrame({"feature": ["a"], "kind": ["feature"], "psi": [0.01], "flag": [False]})
    assert _text(lambda c: drift_table(drift, c)) == ""
