"""Tests of measured outcomes (propensity.crm.outcomes, intervals), the simulator's contact
effect, and the end-to-end promise: outcomes recovers a known lift."""

from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np
import pandas as pd
import pytest
import yaml

from propensity.config import load_config
from propensity.crm.intervals import newcombe_diff, wilson
from propensity.crm.outcomes import measure_outcomes
from propensity.simulate.contact import apply_contact_effect

T0 = datetime(2025, 3, 3)
H = timedelta(days=30)


def _history(n: int, holdout_every: int = 5) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "entity_id": [f"u{i}" for i in range(n)],
            "as_of": pd.Timestamp(T0),
            "model_version": "1",
            "score": 0.4,
            "is_pql": True,
            "status": "pql",
            "route": "sales",
            "holdout": [i % holdout_every == 0 for i in range(n)],
            "contacted": [i % holdout_every != 0 for i in range(n)],
            "entered": True,
        }
    )


def test_intervals_cover_known_values():
    """Check that Wilson and Newcombe intervals match published values and handle n=0."""
    assert [round(x, 4) for x in wilson(81, 263)] == [0.2553, 0.3662]
    assert [round(x, 4) for x in newcombe_diff(56, 70, 48, 80)] == [0.2, 0.0524, 0.3339]
    assert np.isnan(wilson(0, 0)[0])


def test_outcomes_lift_precision_and_horizon():
    """Check that lift compares contacted with held-out sales PQLs, conversions count only inside
    the horizon, and runs younger than the horizon are left out."""
    hist = _history(100)
    paid_ids = [f"u{i}" for i in range(100) if (i % 5 == 0 and i % 10 == 0) or (i % 5 and i % 2)]
    conv = pd.DataFrame(
        {"entity_id": paid_ids, "converted_at": pd.Timestamp(T0 + timedelta(days=5))}
    )
    late = pd.DataFrame(
        {"entity_id": ["u1"], "converted_at": [pd.Timestamp(T0 + timedelta(days=40))]}
    )
    seg = pd.DataFrame(
        {
            "entity_id": hist["entity_id"],
            "signup_at": pd.Timestamp(T0 - timedelta(days=3)),
            "domain_class": "business",
        }
    )
    young = hist.assign(as_of=pd.Timestamp(T0 + timedelta(days=20)))
    out = measure_outcomes(
        pd.concat([hist, young]), pd.concat([conv, late]), seg, H, T0 + timedelta(days=31), 0.4
    )
    assert len(out.runs) == 1  # the run 20 days later has not matured
    assert out.lift["held_out"] == 20 and out.lift["rate_held_out"] == 0.5
    assert out.lift["contacted"] == 80 and out.lift["rate_contacted"] == 0.5
    assert out.lift["lift_low"] < 0 < out.lift["lift_high"]
    row = out.segments.query("segment == 'domain_class' and route == 'all'").iloc[0]
    assert row["days_to_pql"] == pytest.approx(3.0) and row["pql_to_paid"] == 0.5


def test_outcomes_against_the_truth():
    """Check that, given each row's true chance, outcomes reports realized precision of all
    entries with its Wilson interval, the truth's mean, and the true lift of the contacted."""
    hist = _history(10).assign(
        truth_expected=[0.5] * 5 + [0.3] * 5, truth_natural=[0.5] * 5 + [0.1] * 5
    )
    conv = pd.DataFrame(
        {"entity_id": ["u1", "u2", "u3"], "converted_at": pd.Timestamp(T0 + timedelta(days=1))}
    )
    seg = pd.DataFrame({"entity_id": hist["entity_id"], "signup_at": pd.Timestamp(T0)})
    out = measure_outcomes(hist, conv, seg, H, T0 + H, segment_columns=())
    lift = out.lift
    assert lift["entries"] == 10 and lift["precision"] == 0.3
    assert (lift["precision_low"], lift["precision_high"]) == pytest.approx(wilson(3, 10))
    assert lift["truth_expected"] == pytest.approx(0.4)
    assert lift["truth_expected_uncontacted"] == pytest.approx(0.4)  # u0 and u5, held out
    # contacted sales entries: u1-u4 gain 0, u6-u9 gain 0.2
    assert lift["truth_lift"] == pytest.approx(0.1) and lift["truth_unknown"] == 0
    assert out.runs["truth_expected"].tolist() == pytest.approx([0.4])


def test_alert_when_precision_falls_well_below_the_promise():
    """Check that a realized precision far below training's promise raises one alert."""
    hist = _history(200, holdout_every=1)
    conv = pd.DataFrame(
        {"entity_id": ["u0", "u1"], "converted_at": pd.Timestamp(T0 + timedelta(days=2))}
    )
    seg = pd.DataFrame({"entity_id": hist["entity_id"], "signup_at": pd.Timestamp(T0)})
    out = measure_outcomes(hist, conv, seg, H, T0 + H, promised_precision=0.4, segment_columns=())
    assert len(out.alerts) == 1 and "well below the 40.0% training promised" in out.alerts[0]
    fine = measure_outcomes(
        hist, conv, seg, H, T0 + H, promised_precision=0.012, segment_columns=()
    )
    assert fine.alerts == []


def test_contact_effect_is_seeded_and_known():
    """Check that the contact effect converts about effect x non-payers, reproducibly."""
    n = 4000
    contacts = pd.DataFrame(
        {"entity_id": [f"u{i}" for i in range(n)], "contacted_at": pd.Timestamp(T0)}
    )
    base = pd.DataFrame(
        {
            "user_id": [f"u{i}" for i in range(0, n, 4)],
            "converted_at": pd.Timestamp(T0 + timedelta(days=3)),
        }
    )
    a = apply_contact_effect(base, contacts, 0.2, H, seed=1)
    b = apply_contact_effect(base, contacts, 0.2, H, seed=1)
    pd.testing.assert_frame_equal(a.conversions, b.conversions)
    assert a.true_lift == pytest.approx(0.2 * 0.75)
    assert a.added / n == pytest.approx(0.15, abs=0.02)
    added = a.conversions.iloc[len(base) :]
    assert (added["converted_at"] > pd.Timestamp(T0)).all()


@pytest.mark.slow
def test_outcomes_recover_the_true_lift(trained_world, tmp_path):
    """Check that, on a world with a known contact effect scored daily for 90 days with a 10%
    holdout, outcomes finds the true lift within its 95% interval, and realized precision lies
    within its interval around the truth-based expectation (each flagged row's exact chance of
    converting, contact effect included), all through the CLI."""
    import json
    import shutil

    from typer.testing import CliRunner

    from propensity.cli import app
    from propensity.pipeline.backtest import backtest_job

    tmp, config = trained_world
    raw = yaml.safe_load(config.read_text())
    raw["scoring"]["holdout_fraction"] = 0.1
    raw["crm"] = {
        "sink": {"path": str(tmp_path / "crm.duckdb")},
        "routing": {"default_route": "sales"},
        "lifecycle": {"min_pql_time": "3d", "cooldown": "30d"},
    }
    (tmp_path / "p.yaml").write_text(yaml.safe_dump(raw))
    cfg = load_config(tmp_path / "p.yaml")
    backtest_job(
        cfg, "2025-02-01", "2025-05-01", timedelta(days=1), tmp_path / "bt.parquet", crm=True
    )
    # the effect rewrites the world's conversions: a copy, as the fixture's world is shared
    world = tmp_path / "world"
    world.mkdir()
    for name in ("truth.parquet", "oracle.json", "conversions.parquet"):
        shutil.copy(tmp / "data" / name, world / name)
    runner = CliRunner()
    args = ["-c", str(tmp_path / "p.yaml")]
    made = runner.invoke(
        app, ["simulate", "--out", str(world), *args, "--contact-effect", "0.3", "--seed", "11"]
    )
    assert made.exit_code == 0, made.output
    true_lift = json.loads((world / "contact.json").read_text())["true_lift"]
    raw["data"]["conversions"] = str(world / "conversions.parquet")
    (tmp_path / "p.yaml").write_text(yaml.safe_dump(raw))
    found = runner.invoke(
        app, ["outcomes", *args, "--out", str(tmp_path / "outcomes"), "--truth", str(world)]
    )
    assert found.exit_code == 0, found.output
    lift = json.loads((tmp_path / "outcomes" / "outcomes_lift.json").read_text())
    lift = {k.removeprefix("lift."): v for k, v in lift.items()}
    print(
        f"true lift {true_lift:.3f} (of the measured PQLs {lift['truth_lift']:.3f}); found "
        f"{lift['lift']:.3f} [{lift['lift_low']:.3f}, {lift['lift_high']:.3f}] from "
        f"{lift['contacted']} contacted, {lift['held_out']} held out; realized precision "
        f"{lift['precision']:.3f} [{lift['precision_low']:.3f}, {lift['precision_high']:.3f}] of "
        f"{lift['entries']} entries vs truth {lift['truth_expected']:.3f}; uncontacted "
        f"{lift['precision_uncontacted']:.3f} [{lift['precision_uncontacted_low']:.3f}, "
        f"{lift['precision_uncontacted_high']:.3f}] vs truth "
        f"{lift['truth_expected_uncontacted']:.3f}, scores {lift['expected_uncontacted']:.3f}"
    )
    # how many entries had their truth from the realized day-7 state, or came before a contact
    from propensity.io.sinks import open_sink

    sink = open_sink(load_config(tmp_path / "p.yaml").crm.sink)
    entries = sink.read_history().query("entered")
    sink.close()
    runs = pd.read_csv(tmp_path / "outcomes" / "outcomes_runs.csv", parse_dates=["as_of"])
    truth = pd.read_parquet(world / "truth.parquet").set_index("user_id")
    contacts = pd.read_parquet(world / "contacts.parquet").set_index("entity_id")
    entries = entries[entries["as_of"] <= runs["as_of"].max()]  # the matured ones
    young = entries["as_of"] < entries["entity_id"].map(truth["cutoff_at"])
    before = entries["as_of"] < entries["entity_id"].map(contacts["contacted_at"])
    print(
        f"entries before day 7: {young.sum()} of {len(entries)}; before a contact: {before.sum()}"
    )
    assert lift["held_out"] >= 15 and lift["truth_unknown"] == 0
    assert lift["lift_low"] <= true_lift <= lift["lift_high"]
    assert lift["lift_low"] <= lift["truth_lift"] <= lift["lift_high"]
    assert lift["precision_low"] <= lift["truth_expected"] <= lift["precision_high"]
    low, high = lift["precision_uncontacted_low"], lift["precision_uncontacted_high"]
    assert low <= lift["truth_expected_uncontacted"] <= high
    assert "truth:" in found.output and (tmp_path / "outcomes" / "outcomes_runs.csv").is_file()
    # the upsert file of the real current table: one row per entity, keyed by the external id
    upsert = tmp_path / "upsert.csv"
    exported = runner.invoke(
        app, ["crm", "export", *args, "--preset", "hubspot", "--out", str(upsert)]
    )
    assert exported.exit_code == 0, exported.output
    key = pd.read_csv(upsert)["propensity_external_id"]
    sink = open_sink(load_config(tmp_path / "p.yaml").crm.sink)
    assert key.is_unique and len(key) == len(sink.read_current())
    sink.close()
