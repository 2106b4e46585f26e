"""Tests of the CRM commands' user errors and the report's outcomes section."""

from __future__ import annotations

import pandas as pd
import pytest
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


def _sink_with_current(tmp_path, n=5):
    """A DuckDB sink holding a current table of ``n`` entities (one a PQL) and its history."""
    from propensity.crm import CURRENT_COLUMNS, HISTORY_COLUMNS
    from propensity.io.sinks.duckdb import DuckDBSink

    at = pd.Timestamp("2025-03-03")
    current = pd.DataFrame({c: pd.Series([None] * n, dtype=object) for c in CURRENT_COLUMNS})
    current = current.assign(
        entity_id=[f"u{i}" for i in reversed(range(n))],
        account_id="a1",
        score=0.25,
        percentile=pd.array([50] * n, dtype="Int64"),
        is_pql=[i == 0 for i in range(n)],
        status="not_pql",
        holdout=False,
        contacted=False,
        reason_1="Invited 3 teammates, \u201cquoted\u201d",
        pql_since=pd.NaT,
        status_changed_at=at,
        last_exit_at=pd.NaT,
        converted_at=pd.NaT,
        routed_at=pd.NaT,
        model_version="3",
        updated_at=at,
    ).astype(CURRENT_COLUMNS)
    history = current.assign(as_of=at, entered=False)[list(HISTORY_COLUMNS)]
    sink = DuckDBSink(tmp_path / "crm.duckdb")
    sink.write(current, history.astype(HISTORY_COLUMNS), at.to_pydatetime(), "3")
    sink.close()


def test_crm_export_writes_an_upsert_file_per_preset(tmp_path):
    """Check that 'crm export' writes one row per entity keyed by the preset's external id,
    only the preset's fields, ISO-8601 UTC times, and refuses an empty current table."""
    from propensity.crm import PRESETS

    config = _config(tmp_path)
    runner = CliRunner()
    empty = runner.invoke(app, ["crm", "export", "-c", str(config), "--out", "x.csv"])
    assert empty.exit_code == 2 and "score --crm" in empty.output
    assert "Traceback" not in empty.output
    _sink_with_current(tmp_path)
    for preset, key in (("salesforce", "Propensity_External_Id__c"), ("hubspot", "pql_score")):
        out_file = tmp_path / f"{preset}.csv"
        args = ["crm", "export", "-c", str(config), "--preset", preset, "--out", str(out_file)]
        result = runner.invoke(app, args)
        assert result.exit_code == 0, result.output
        got = pd.read_csv(out_file)
        assert list(got.columns) == list(PRESETS[preset].values()) and key in got.columns
        ident = got.iloc[:, 0]
        assert ident.tolist() == [f"u{i}" for i in range(5)] and ident.is_unique
        changed = got[PRESETS[preset]["status_changed_at"]]
        assert (changed == "2025-03-03T00:00:00Z").all()
        assert not [c for c in got.columns if "mail" in c.lower()]
    assert sorted(p.name for p in tmp_path.iterdir() if p.suffix == ".csv") == [
        "hubspot.csv",
        "salesforce.csv",
    ]  # no temporary file left behind
    plain = runner.invoke(app, ["crm", "export", "-c", str(config), "--out", str(tmp_path)])
    assert plain.exit_code != 0 and "is a folder" in plain.output


def test_simulate_contact_effect_from_the_crm_history(tmp_path):
    """Check that 'simulate --contact-effect' gives the contacted PQLs of the CRM history the
    known effect (all of them at effect 1), records it, and starts from the world without
    contact each time (effect 0 gives back the simulator's conversions)."""
    import json

    from propensity.crm import HISTORY_COLUMNS
    from propensity.io.sinks.duckdb import DuckDBSink

    runner = CliRunner()
    world = tmp_path / "world"
    made = runner.invoke(
        app, ["simulate", "--out", str(world), "--users", "400", "--seed", "3", "--days", "60"]
    )
    assert made.exit_code == 0, made.output
    natural = pd.read_parquet(world / "conversions.parquet")
    users = pd.read_parquet(world / "users.parquet")["user_id"].head(40).tolist()
    at = pd.Timestamp("2025-01-20")
    history = pd.DataFrame(
        {
            "entity_id": users,
            "as_of": at,
            "model_version": "1",
            "score": 0.3,
            "is_pql": True,
            "status": "pql",
            "route": "sales",
            "holdout": [i % 4 == 0 for i in range(40)],
            "contacted": [i % 4 != 0 for i in range(40)],
            "entered": True,
        }
    )
    history = history.reindex(columns=list(HISTORY_COLUMNS)).astype(HISTORY_COLUMNS)
    sink = DuckDBSink(tmp_path / "crm.duckdb")
    sink.write(history.iloc[:0].reindex(columns=[]), history, at.to_pydatetime(), "1")
    sink.close()
    config = _config(tmp_path)
    no_config = runner.invoke(app, ["simulate", "--out", str(world), "--contact-effect", "1"])
    assert no_config.exit_code == 2 and "--contact-effect needs --config" in no_config.output
    args = ["simulate", "--out", str(world), "-c", str(config), "--seed", "4"]
    done = runner.invoke(app, [*args, "--contact-effect", "1"])
    assert done.exit_code == 0, done.output
    record = json.loads((world / "contact.json").read_text())
    assert record["effect"] == 1 and record["contacted"] == 30
    paid = pd.read_parquet(world / "conversions.parquet").groupby("user_id")["converted_at"].min()
    contacted = [u for i, u in enumerate(users) if i % 4]
    start = at.tz_localize("UTC")
    before = natural.groupby("user_id")["converted_at"].min().reindex(contacted)
    first = paid.reindex(contacted)
    already = before <= start
    assert ((first > start) & (first <= start + pd.Timedelta(days=30)))[~already].all()
    would = ((before > start) & (before <= start + pd.Timedelta(days=30))).mean()
    assert record["true_lift"] == pytest.approx(1 - would)
    held = [u for i, u in enumerate(users) if i % 4 == 0]
    pd.testing.assert_series_equal(
        paid.reindex(held), natural.groupby("user_id")["converted_at"].min().reindex(held)
    )
    again = runner.invoke(app, [*args, "--contact-effect", "0"])
    assert again.exit_code == 0, again.output
    back = pd.read_parquet(world / "conversions.parquet")
    key = ["user_id", "converted_at"]
    pd.testing.assert_frame_equal(
        back.sort_values(key).reset_index(drop=True),
        natural.sort_values(key).reset_index(drop=True),
    )
