"""Tests of the CRM commands' user errors and the report's outcomes section."""

from __future__ import annotations

import pandas as pd
import yaml
from typer.testing import CliRunner

from propensity.cli import app
from propensity.report.outcomes import outcomes_section


def _config(tmp_path):
    path = tmp_path / "p.yaml"
    raw = {
        "data": {"events": str(tmp_path / "e.parquet"), "users": str(tmp_path / "u.parquet")},
        "crm": {"sink": {"path": str(tmp_path / "crm.duckdb")}},
    }
    path.write_text(yaml.safe_dump(raw))
    return path


def test_outcomes_on_an_empty_history_is_one_clear_error(tmp_path):
    """Check that outcomes before any --crm run exits 2 with one line naming the fix."""
    result = CliRunner().invoke(
        app, ["outcomes", "-c", str(_config(tmp_path)), "--out", str(tmp_path / "o")]
    )
    assert result.exit_code == 2
    assert "CRM history is empty" in result.output and "score --crm" in result.output
    assert "Traceback" not in result.output


def test_backtest_bad_step_is_one_clear_error(tmp_path):
    """Check that a bad --every is a usage error, not a traceback."""
    result = CliRunner().invoke(
        app,
        [
            "score",
            "-c",
            str(_config(tmp_path)),
            "--as-of",
            "2025-01-01",
            "--to",
            "2025-01-05",
            "--every",
            "daily",
            "--out",
            str(tmp_path / "s.parquet"),
        ],
    )
    assert result.exit_code == 2 and "--every" in result.output


def test_outcomes_section_shows_lift_and_alerts():
    """Check that the report's outcomes section states the lift with its interval and alerts."""
    runs = pd.DataFrame(
        {
            "as_of": ["2025-03-01"],
            "pqls": [10],
            "precision": [0.3],
            "expected_precision": [0.35],
            "recall": [0.5],
        }
    )
    segs = pd.DataFrame(
        {
            "segment": ["domain_class"],
            "value": ["enterprise"],
            "route": ["sales"],
            "pqls": [4],
            "pql_rate": [0.2],
            "days_to_pql": [3.5],
            "pql_to_paid": [0.5],
        }
    )
    lift = {
        "lift.lift": 0.12,
        "lift.lift_low": 0.01,
        "lift.lift_high": 0.2,
        "lift.rate_contacted": 0.4,
        "lift.contacted": 90,
        "lift.rate_held_out": 0.28,
        "lift.held_out": 10,
        "runs": 1,
        "realized_precision": 0.3,
        "expected_precision": 0.35,
        "promised_precision": 0.4,
        "alerts": ["too low"],
    }
    body = outcomes_section(runs, segs, lift).body
    assert "+12.0%" in body and "+1.0% to +20.0%" in body and "too low" in body
    assert "enterprise" in body
    assert "No outcomes" in outcomes_section(None, None, None).body
