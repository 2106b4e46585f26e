"""Hardening: bad configs through the CLI, and rules that do not fit the features (exit 2).

Field-level config validation is covered in test_config.py; here each mistake goes through the
commands a scheduler runs, which must print the problem and exit 2 before doing any work.
"""

from __future__ import annotations

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
