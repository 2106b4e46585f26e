"""Hardening: bad configs through the CLI, and rules that do not fit the features (exit 2).

Field-level config validation is covered in test_config.py; here each mistake goes through the
commands a scheduler runs, which must print the problem and exit 2 before doing any work.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml
from test_hardening_project import Project, demo_project, run_cli
from typer.testing import CliRunner

from propensity.cli import app

BASE = {"data": {"events": "events.parquet"}}


def _invoke(tmp_path: Path, raw: dict, command: str = "train") -> tuple[int, str]:
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(raw))
    args = {
        "train": ["train", "-c", str(path)],
        "compare": ["compare", "-c", str(path)],
        "score": ["score", "-c", str(path), "--as-of", "latest", "--out", str(tmp_path / "s.pq")],
        "validate": ["validate", "-c", str(path)],
    }[command]
    result = CliRunner().invoke(app, args)
    assert isinstance(result.exception, SystemExit), result.exception  # never a traceback
    return result.exit_code, " ".join(result.output.split())


BAD_CONFIGS = [
    (
        {**BASE, "modle": {"n_estimators": 10}},
        "unknown key 'modle'. Did you mean 'model'?",
    ),
    (
        {**BASE, "threshold": {"policy": "capacity", "capacity_per_wek": 10}},
        "unknown key 'threshold.capacity_per_wek'. Did you mean 'capacity_per_week'?",
    ),
    ({**BASE, "seed": "forty-two"}, "bad value for 'seed': Input should be a valid integer"),
    ({**BASE, "label": {"horizon": "30 days"}}, "bad value for 'label.horizon': a duration must"),
    ({**BASE, "model": {"n_estimators": -5}}, "bad value for 'model.n_estimators'"),
    ({**BASE, "features": {"windows": "7d"}}, "bad value for 'features.windows'"),
    ({"label": {}}, "missing required key 'data'."),
    (
        {**BASE, "threshold": {"policy": "precision", "target_precision": 1.5}},
        "bad value for 'threshold.target_precision': Input should be less than or equal to 1",
    ),
    (
        {**BASE, "threshold": {"policy": "capacity", "capacity_per_week": 0}},
        "bad value for 'threshold.capacity_per_week': Input should be greater than 0",
    ),
    (
        {**BASE, "threshold": {"policy": "top_fraction", "top_fraction": 0}},
        "bad value for 'threshold.top_fraction': Input should be greater than 0",
    ),
    (
        {**BASE, "threshold": {"policy": "precision"}},
        "threshold policy 'precision' needs target_precision",
    ),
    ({**BASE, "threshold": {"policy": "most"}}, "bad value for 'threshold.policy'"),
    (
        {**BASE, "split": {"train": 0.9, "validation": 0.15, "calibration": 0.1, "test": 0.15}},
        "must sum to 1. Got 1.300 instead.",
    ),
]


@pytest.mark.parametrize(("raw", "message"), BAD_CONFIGS)
@pytest.mark.parametrize("command", ["train", "score"])
def test_bad_config_is_exit_2_before_any_work(tmp_path, raw, message, command):
    """Check that each config mistake is named with its key and fix, exit 2, for train and score."""
    code, output = _invoke(tmp_path, raw, command)
    assert code == 2
    assert output.startswith("error: Invalid config ")
    assert message in output


@pytest.mark.parametrize(
    "text",
    ["", "- a\n- b\n", "data: [unclosed\n", "!!python/object/apply:os.system ['echo hi']\n"],
)
def test_unusable_yaml_is_exit_2(tmp_path, text):
    """Check that empty, non-mapping, malformed and tagged YAML are each exit 2, never run."""
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    result = CliRunner().invoke(app, ["validate", "-c", str(path)])
    assert result.exit_code == 2
    assert result.output.startswith(f"error: Config file {str(path)!r}")


def test_baseline_template_that_does_not_exist(tmp_path, monkeypatch):
    """Check that an unknown baseline template is exit 2 at train time, before any data is read."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    code, output = _invoke(tmp_path, {**BASE, "baselines": {"templates": ["plan_limit"]}})
    assert code == 2
    assert "plan_limit" in output and "loading data" not in output


# -- rules against the learned features (needs the demo project, slow) -------------------------


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Project:
    return demo_project(tmp_path_factory)


MISSPELT = {"name": "invites", "expr": "n_teammate_invite_7d >= 2"}


@pytest.mark.slow
def test_rule_naming_a_missing_feature_fails_training_before_the_fit(project, tmp_path):
    """Check that train stops with exit 2 and the close feature name, before fitting a model."""
    config = project.write_config(
        tmp_path / "p.yaml",
        output_dir=str(tmp_path / "out"),
        baselines={"templates": [], "rules": [MISSPELT]},
    )
    done = run_cli(["train", "--config", str(config)], tmp_path, project.env())
    assert done.returncode == 2, done.stderr
    said = " ".join(done.stderr.split())
    assert "Rule 'invites' ('n_teammate_invite_7d >= 2') does not fit the feature table" in said
    assert "'n_teammate_invited_7d'" in said  # the suggestion
    assert "fitting LightGBM" not in said
    assert "Traceback" not in said
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_rule_naming_a_missing_feature_fails_compare(project, tmp_path):
    """Check that compare with the champion stops with exit 2 and the close feature name."""
    config = project.write_config(
        tmp_path / "p.yaml",
        output_dir=str(tmp_path / "out"),
        baselines={"templates": [], "rules": [MISSPELT]},
    )
    done = run_cli(["compare", "--config", str(config)], tmp_path, project.env())
    assert done.returncode == 2, done.stderr
    assert "'n_teammate_invited_7d'" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "out" / "comparison.csv").exists()


# -- hostile configs (issue 17) -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("section", "key", "value"),
    [
        ("label", "horizon", "0d"),
        ("label", "horizon", "0s"),
        ("label", "observation_window", "0h"),
        ("label", "trial_length", "0d"),
        ("label", "extra_cutoffs", ["1d", "0d"]),
        ("features", "windows", ["7d", "0d"]),
        ("features", "session_gap", "0m"),
    ],
)
def test_zero_durations_are_refused(tmp_path, section, key, value):
    """Check that a horizon, window or trial of zero length is exit 2 naming the key."""
    code, output = _invoke(tmp_path, {**BASE, section: {key: value}}, "validate")
    assert code == 2
    assert f"bad value for '{section}.{key}" in output
    assert "must be longer than zero" in output


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"data:\n  events: caf\xe9.parquet\n", "is not UTF-8 text (byte 0xe9 on line 2)"),
        (b"\xff\xfed\x00a\x00t\x00a\x00", "is not UTF-8 text (byte 0xff on line 1)"),
        (b"data: {events: e.parquet}\nproject: \x80\n", "is not UTF-8 text (byte 0x80 on line 2)"),
    ],
)
def test_a_config_that_is_not_utf8(tmp_path, raw, message):
    """Check that a config in another encoding is exit 2 naming the byte, the line and the fix."""
    path = tmp_path / "bad.yaml"
    path.write_bytes(raw)
    result = CliRunner().invoke(app, ["validate", "-c", str(path)])
    assert result.exit_code == 2
    assert result.output.startswith(f"error: Config file {str(path)!r} {message}")
    assert "Save it as UTF-8" in result.output


@pytest.mark.parametrize(
    ("zone", "hint"),
    [("Mars/Olympus_Mons", ""), ("Europe/Pari", "Did you mean 'Europe/Paris'?"), ("EST+5", "")],
)
def test_an_unknown_time_zone_is_refused_when_the_config_is_read(tmp_path, zone, hint):
    """Check that an unknown time zone name is exit 2 at load time, with a close name."""
    code, output = _invoke(tmp_path, {"data": {"events": "e.parquet", "timezone": zone}}, "score")
    assert code == 2
    assert "bad value for 'data.timezone': a time zone must be an IANA name" in output
    assert hint in output


@pytest.mark.parametrize("limit", ["1MB", "100MB", "0.1GB", "lots", "3 gigabytes"])
def test_a_memory_limit_too_small_to_run(tmp_path, limit):
    """Check that a memory limit DuckDB cannot run in (or cannot read) is exit 2 naming it."""
    code, output = _invoke(tmp_path, {"data": {"events": "e.parquet", "memory_limit": limit}})
    assert code == 2
    assert "bad value for 'data.memory_limit'" in output


def _bomb(levels: int, key: str = "label: {extra_cutoffs: *l%d}") -> str:
    lines = ['l0: &l0 ["1d","1d","1d","1d","1d","1d","1d","1d","1d"]']
    for i in range(1, levels):
        lines.append(f"l{i}: &l{i} [" + ",".join([f"*l{i - 1}"] * 9) + "]")
    lines.append("data: {events: e.parquet}")
    lines.append(key % (levels - 1))
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize(
    "text",
    [
        _bomb(9),  # 9**9 values (387 million) from 11 lines
        _bomb(6, "model: {n_estimators: *l%d}"),  # 531,441 values, under an int key
        _bomb(5, "modle: *l%d"),  # 59,049 values under a misspelt key
        "data: &d {events: [*d]}\n",  # a value that contains itself
        "label: &x {horizon: *x}\ndata: {events: e.parquet}\n",
    ],
    ids=["billion-laughs", "under-int", "misspelt", "recursive", "recursive-typed"],
)
def test_yaml_alias_bombs_are_bounded(tmp_path, text):
    """Check that aliases expanding past the bound, or into themselves, are exit 2 in well under
    a second of work, and that the message stays short (nothing echoed back)."""
    import time

    path = tmp_path / "bomb.yaml"
    path.write_text(text)
    began = time.monotonic()
    result = CliRunner().invoke(app, ["validate", "-c", str(path)])
    assert time.monotonic() - began < 5
    assert result.exit_code == 2
    assert result.output.startswith(
        f"error: Config file {str(path)!r}"
    ) or result.output.startswith("error: Invalid config")
    assert len(result.output) < 1000


def test_a_huge_config_file_is_not_read(tmp_path):
    """Check that a config file over 1 MB (a data file passed by mistake) is refused unread."""
    path = tmp_path / "big.yaml"
    path.write_text("data: {events: e.parquet}\n" + "# padding\n" * 200_000)
    result = CliRunner().invoke(app, ["validate", "-c", str(path)])
    assert result.exit_code == 2
    assert "is larger than 1,000,000 bytes" in result.output


@pytest.mark.parametrize(
    ("raw", "echo"),
    [
        ({**BASE, "seed": "9" * 900_000}, "9" * 20),
        ({**BASE, "label": {"horizon": "x" * 900_000}}, "x" * 20),
        ({**BASE, "features": {"windows": [{"a": i} for i in range(2_000)]}}, "{'a': 0}"),
        ({**BASE, "z" * 100_000: 1}, "z" * 30),
        ({**BASE, **{f"k{i}": i for i in range(5000)}}, "more problems"),
    ],
    ids=["long-int", "long-duration", "wide-list", "long-key", "many-keys"],
)
def test_bad_values_are_echoed_short(tmp_path, raw, echo):
    """Check that a bad value is quoted by its first characters only: the message of a
    megabyte-long value, key or list is a few hundred characters, still naming the key."""
    code, output = _invoke(tmp_path, raw, "validate")
    assert code == 2
    assert echo in output
    said = output.replace(str(tmp_path), "")  # the config's own path is as long as the user's
    assert len(said) < 4000, len(said)


def test_a_config_path_that_is_a_folder_or_unreadable(tmp_path):
    """Check that --config naming a folder, or a file this user cannot read, is exit 2."""
    from test_hardening_project import run_unprivileged

    result = CliRunner().invoke(app, ["validate", "-c", str(tmp_path)])
    assert result.exit_code == 2  # typer's own check: "... is a directory"
    assert "directory" in result.output
    assert isinstance(result.exception, SystemExit)
    locked = tmp_path / "locked.yaml"
    locked.write_text(yaml.safe_dump(BASE))
    locked.chmod(0o000)
    try:
        done = run_unprivileged(["validate", "-c", str(locked)], tmp_path, dict(os.environ))
    finally:
        locked.chmod(0o644)
    assert done.returncode == 2, done.stderr
    said = " ".join(done.stderr.replace("│", " ").split())
    assert "is not readable" in said or "cannot be read (Permission denied)" in said, said
    assert "Traceback" not in said
