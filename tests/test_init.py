"""Tests of `propensity init`: column detection, the data profile and the starter config."""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from propensity.cli import app
from propensity.config import Preset, load_config
from propensity.errors import ConfigError, DataContractError
from propensity.init import detect_mapping, init_config, parse_column_options
from propensity.io import connect
from propensity.simulate import simulate


@pytest.fixture(scope="module")
def export(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """An Amplitude-style CSV export whose users and payments use other column names, a users
    column that records the outcome, and one event renamed (so one rule's event is missing)."""
    tmp = tmp_path_factory.mktemp("export")
    simulate(tmp / "sim", users=1500, seed=8, days=120, preset=Preset.amplitude, format="csv")
    events = pd.read_csv(tmp / "sim" / "events" / "part-00000.csv")
    events["event_type"] = events["event_type"].replace("plan_limit_hit", "quota_reached")
    (tmp / "events").mkdir()
    events.to_csv(tmp / "events" / "part-0.csv", index=False)
    users = pd.read_csv(tmp / "sim" / "users.csv")
    paid = pd.read_csv(tmp / "sim" / "conversions.csv")
    users["plan"] = users["user_id"].isin(paid["user_id"]).map({True: "pro", False: "free"})
    users.rename(columns={"user_id": "id", "signup_at": "created_at"}).to_csv(
        tmp / "users.csv", index=False
    )
    paid.rename(columns={"converted_at": "paid_at"}).to_csv(tmp / "paid.csv", index=False)
    return {
        "events": str(tmp / "events"),
        "users": str(tmp / "users.csv"),
        "conversions": str(tmp / "paid.csv"),
        "dir": str(tmp),
    }


def test_parse_column_options():
    """Check TABLE.COLUMN=SOURCE options, and that a bad one names the expected form."""
    assert parse_column_options(["events.event = name", "users.signup_at=created at"]) == {
        "events": {"event": "name"},
        "users": {"signup_at": "created at"},
    }
    with pytest.raises(DataContractError, match="--column must be TABLE.COLUMN=SOURCE") as info:
        parse_column_options(["event=name", "events.colour=x"])
    assert len(info.value.problems) == 2


def test_detects_the_preset_and_close_names(export):
    """Check the Amplitude preset and the users/payments columns found by their names."""
    mapping = detect_mapping(connect(), export["events"], export["users"], export["conversions"])
    assert mapping.preset == Preset.amplitude
    assert mapping.columns == {
        "users": {"user_id": "id", "signup_at": "created_at"},
        "conversions": {"converted_at": "paid_at"},
    }
    assert mapping.found["events"]["event"] == "event_type"


def test_explicit_choices_win_and_missing_columns_name_the_option(export, tmp_path):
    """Check that --preset/--column win, and an unplaceable column names --column."""
    mapping = detect_mapping(
        connect(),
        export["events"],
        export["users"],
        None,
        columns={"users": {"signup_at": "created_at", "user_id": "id"}},
    )
    assert mapping.columns["users"] == {"user_id": "id", "signup_at": "created_at"}
    pd.DataFrame({"who": ["a"], "what": ["x"], "when_it_was": ["2025-01-01"]}).to_csv(
        tmp_path / "odd.csv", index=False
    )
    with pytest.raises(DataContractError) as info:
        detect_mapping(connect(), str(tmp_path / "odd.csv"), None, None)
    text = str(info.value)
    assert "events: cannot tell which column holds 'user_id' (found who, what, when_it_was)" in text
    assert "--column events.user_id=<source column>" in text
    assert "'timestamp'" in text


def test_validate_detects_the_mapping(export):
    """Check that validate without a config reads a foreign export (the README's first step)."""
    result = CliRunner().invoke(
        app,
        ["validate", "--events", export["events"], "--users", export["users"]]
        + ["--conversions", export["conversions"]],
    )
    assert result.exit_code == 0, result.output
    assert "columns: preset amplitude" in result.stdout
    assert "signup_at <- created_at" in result.stdout
    assert "The data meets the contract." in result.stdout


@pytest.fixture(scope="module")
def starter(export) -> dict:
    out = Path(export["dir"]) / "configs" / "acme.yaml"
    result = init_config(export["events"], export["users"], export["conversions"], out)
    return {"result": result, "out": out}


def test_init_writes_a_config_that_fits_the_data(starter):
    """Check trial windows, vocabulary, milestones, user columns and rules from the data."""
    result, out = starter["result"], starter["out"]
    cfg = load_config(out)
    assert cfg == result.starter.config
    assert (cfg.project, cfg.mlflow.registered_model) == ("acme", "acme-pql")
    assert cfg.data.preset == Preset.amplitude
    assert cfg.label.trial_length == timedelta(days=14)
    assert cfg.label.observation_window == timedelta(days=7)
    assert cfg.label.extra_cutoffs == (timedelta(days=1), timedelta(days=3), timedelta(days=10))
    assert cfg.features.windows == tuple(timedelta(days=d) for d in (1, 3, 7))
    profile = result.profile
    events = set(profile.support)
    assert {m.first for m in cfg.features.milestones} | {m.then for m in cfg.features.milestones}
    assert all({m.first, m.then} <= events for m in cfg.features.milestones)
    assert {(p.event, p.property) for p in cfg.features.properties} == {
        ("doc_created", "doc_size"),
        ("export_done", "rows"),
    }
    assert cfg.features.numeric_user_columns == ("company_size",)
    assert set(cfg.features.categorical_user_columns) == {"role", "channel"}
    assert "plan" in profile.skipped_columns  # it records the outcome
    # plan_limit_hit does not exist here: the rules naming it are left out, the others kept
    assert "plan_limit_hit" not in cfg.baselines.templates
    assert "lead_score" not in cfg.baselines.templates
    assert {"invite_and_message", "share_and_accept"} <= set(cfg.baselines.templates)
    assert result.starter.left_out["plan_limit_hit"] == ["n_plan_limit_hit_all"]
    assert cfg.baselines.rules[0].name == "most_active"
    assert cfg.threshold.policy == "capacity" and 1 <= cfg.threshold.capacity_per_week <= 20
    text = out.read_text(encoding="utf-8")
    assert "# 14-day trial: on a day of their first week" in text
    assert "users column 'plan' left out" in text


def test_init_never_replaces_a_file_unless_forced(starter, export):
    """Check that init refuses an existing --out (and a symlink) and --force replaces it."""
    out = starter["out"]
    before = out.read_text(encoding="utf-8")
    with pytest.raises(ConfigError, match="already exists; init never replaces a config"):
        init_config(export["events"], export["users"], export["conversions"], out)
    assert out.read_text(encoding="utf-8") == before
    target = out.parent / "elsewhere.yaml"
    target.write_text("keep: me\n")
    link = out.parent / "link.yaml"
    os.symlink(target, link)
    with pytest.raises(ConfigError, match="already exists"):
        init_config(export["events"], export["users"], export["conversions"], link)
    init_config(export["events"], export["users"], export["conversions"], link, force=True)
    assert target.read_text() == "keep: me\n" and not link.is_symlink()
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".")]  # no temp left


def test_init_cli_prints_what_it_found(export, tmp_path):
    """Check the init command's summary and exit codes."""
    out = tmp_path / "x.yaml"
    args = ["init", "--events", export["events"], "--users", export["users"]]
    args += ["--conversions", export["conversions"], "--out", str(out)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "columns: preset amplitude" in result.stdout
    assert "- 14-day trial" in result.stdout
    assert "left out plan_limit_hit: names n_plan_limit_hit_all" in result.stdout
    assert f"wrote {out}" in " ".join(result.stdout.split())
    again = CliRunner().invoke(app, args)
    assert again.exit_code == 2 and "Pass --force" in again.stderr
    assert yaml.safe_load(out.read_text())["project"] == "x"


def test_init_reads_a_30_day_trial(tmp_path):
    """Check that a world whose trial lasts 30 days gets a 30-day trial and a 14-day cutoff."""
    simulate(
        tmp_path / "w", users=1500, seed=2, days=150, trial_days=30,
        observation_window=timedelta(days=14),
    )  # fmt: skip
    w = tmp_path / "w"
    result = init_config(
        str(w / "events"), str(w / "users.parquet"), str(w / "conversions.parquet"),
        tmp_path / "c.yaml",
    )  # fmt: skip
    cfg = result.starter.config
    assert cfg.label.trial_length == timedelta(days=30)
    assert cfg.label.observation_window == timedelta(days=14)
    assert cfg.features.windows[-1] == timedelta(days=14)
    assert timedelta(days=22) in cfg.label.extra_cutoffs


@pytest.mark.slow
def test_init_config_trains_with_no_hand_edits(export, tmp_path, monkeypatch):
    """Check that `init` then `train` on a foreign export runs to an honest answer, no warning.

    This small export holds 59 users at the test slice's day-14 cutoff, 1 of whom paid: train
    refuses to report on it (exit 2, counted one row per user), where it used to count every
    cutoff row and print a headline from one payer. `benchmarks/worlds.py` shows `init` +
    `train` running clean on worlds big enough to judge.
    """
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    runner = CliRunner()
    args = ["init", "--events", export["events"], "--users", export["users"]]
    made = runner.invoke(app, [*args, "--conversions", export["conversions"], "--out", "p.yaml"])
    assert made.exit_code == 0, made.output
    trained = runner.invoke(app, ["train", "--config", "p.yaml"])
    assert trained.exit_code == 2, trained.output
    assert "warning:" not in trained.stderr
    assert "Traceback" not in trained.output
    assert "the test slice has 1 positives and 58 negatives" in trained.stderr


def test_init_without_conversions_warns_and_still_writes(export, tmp_path):
    """Check that without payments init says train needs them, and writes a loadable config."""
    from propensity.errors import PropensityWarning

    with pytest.warns(PropensityWarning, match="train needs data.conversions"):
        result = init_config(export["events"], export["users"], None, tmp_path / "n.yaml")
    cfg = load_config(tmp_path / "n.yaml")
    assert cfg.data.conversions is None and cfg.features.milestones == ()
    assert result.profile.converted == 0


def test_property_sample_does_not_depend_on_row_order():
    """The sampled rows are chosen by content: the same events in another order propose the
    same properties (a plain LIMIT took the first rows a scan yielded)."""
    import duckdb

    from propensity.init import profile

    n = 2 * profile.PROPERTY_SAMPLE  # half numeric, half text: the sample must see both
    found = []
    for numeric_first in (True, False):
        con = duckdb.connect()
        con.execute(
            f"""CREATE TABLE events AS SELECT 'u' || i AS user_id, 'a' AS event,
                TIMESTAMP '2026-01-01' + i * INTERVAL 1 SECOND AS timestamp,
                CASE WHEN (i < {n // 2}) = {numeric_first} THEN '{{"x": ' || i || '}}'
                     ELSE '{{"x": "v' || i || '"}}' END AS properties
            FROM range({n}) t(i) ORDER BY i"""
        )
        found.append(profile._properties(con, ("a",), {"a": n}))
    assert found[0] == found[1] == ()
