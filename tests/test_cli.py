"""Tests of the CLI commands owned here: --version, simulate's world options, features."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from propensity import __version__
from propensity.cli import app

ROOT = Path(__file__).resolve().parents[1]


def test_version_option():
    """Check that `propensity --version` prints the version and exits 0."""
    result = CliRunner().invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.stdout.strip() == f"propensity {__version__}"


def test_simulate_world_options(tmp_path: Path):
    """Check that simulate's shape options reach the world (recorded in oracle.json)."""
    args = ["simulate", "--out", str(tmp_path), "--users", "300", "--days", "60", "--day-only"]
    args += ["--tail-events", "40", "--trial-days", "21", "--base-rate", "0.05"]
    args += ["--observation-window", "14d", "--horizon", "28d"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    settings = json.loads((tmp_path / "oracle.json").read_text())["settings"]
    assert settings["observation_window_seconds"] == 14 * 86_400
    assert settings["horizon_seconds"] == 28 * 86_400
    world = settings["world"]
    assert (world["trial_days"], world["day_only"], world["tail_events"]) == (21, True, 40)
    assert world["base_rate"] == 0.05


def test_simulate_refuses_a_bad_duration(tmp_path: Path):
    """Check that a bad --horizon is one clear line and exit 2."""
    result = CliRunner().invoke(app, ["simulate", "--out", str(tmp_path), "--horizon", "soon"])
    assert result.exit_code == 2
    assert "--horizon: a duration must be" in result.stderr
    assert "Got 'soon' instead. See" in result.stderr
    assert "Traceback" not in result.output


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small simulated world and the demo config pointed at it (one milestone made up)."""
    from propensity.simulate import simulate

    tmp = tmp_path_factory.mktemp("cli")
    simulate(tmp / "data", users=1500, seed=4, days=120)
    raw = yaml.safe_load((ROOT / "configs" / "demo.yaml").read_text(encoding="utf-8"))
    raw["data"].update(
        events=str(tmp / "data" / "events"),
        users=str(tmp / "data" / "users.parquet"),
        conversions=str(tmp / "data" / "conversions.parquet"),
    )
    raw["features"]["milestones"].append({"first": "report_built", "then": "pricing_viewed"})
    config = tmp / "project.yaml"
    config.write_text(yaml.safe_dump(raw), encoding="utf-8")
    return config


def test_features_lists_each_column_with_its_meaning(project: Path):
    """Check `features` prints every learned column with a meaning, and one warning line."""
    result = CliRunner().invoke(app, ["features", "--config", str(project)])
    assert result.exit_code == 0, result.output
    rows = {
        cells[0]: cells[1:]
        for line in result.stdout.splitlines()
        if len(cells := [c.strip() for c in line.strip("│ ").split("│")]) == 3
    }
    assert rows["n_doc_shared_7d"] == [
        "counts",
        "times 'doc_shared' happened in the 7d before the cutoff",
    ]
    assert "order_plan_limit_hit_before_pricing_viewed" in rows
    assert "features (spec " in result.stdout and "report_built" not in result.stdout
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1
    assert "milestone report_built -> pricing_viewed" in warnings[0]
