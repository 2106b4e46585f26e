"""End-to-end tests of a calendar task through the CLI: a simulated freemium world trained and
scored on DuckDB, and the Spark score job's options for account tasks checked in one line."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from propensity.cli import app
from propensity.config import load_config
from propensity.io import load_data
from propensity.pipeline.demo import oracle_on_test
from propensity.task_labels import task_population

ROOT = Path(__file__).parent.parent


def _config(tmp: Path, **update) -> Path:
    cfg = yaml.safe_load((ROOT / "configs" / "freemium.yaml").read_text())
    data = tmp / "data"
    cfg["data"].update(
        events=str(data / "events"),
        users=str(data / "users.parquet"),
        conversions=str(data / "conversions.parquet"),
    )
    cfg["output_dir"] = str(tmp / "outputs")
    cfg["threshold"] = {"policy": "top_fraction", "top_fraction": 0.1, "bootstrap": 20}
    cfg["model"].update(min_positives=20, min_negatives=20, n_estimators=200)
    cfg.update(update)
    path = tmp / "project.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


@pytest.fixture(scope="module")
def freemium(tmp_path_factory):
    """A simulated freemium world, the freemium config pointed at it, a private MLflow store."""
    tmp = tmp_path_factory.mktemp("freemium")
    runner = CliRunner()
    argv = ["simulate", "--task", "freemium", "--out", str(tmp / "data"), "--users", "3000"]
    result = runner.invoke(app, [*argv, "--seed", "3"])
    assert result.exit_code == 0, result.output
    config = _config(tmp)
    old = os.environ.get("MLFLOW_TRACKING_URI")
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{tmp / 'mlflow.db'}"
    trained = runner.invoke(app, ["train", "--config", str(config)])
    yield tmp, config, trained
    if old is None:
        os.environ.pop("MLFLOW_TRACKING_URI", None)
    else:
        os.environ["MLFLOW_TRACKING_URI"] = old


@pytest.mark.slow
def test_freemium_trains_and_scores_active_free_users(freemium):
    """Check that train splits weekly anchors by date and score --as-of meets exactly the active
    unpaid users at that time, one row each."""
    tmp, config, trained = freemium
    assert trained.exit_code == 0, trained.output
    assert "promoted to champion" in trained.output
    run_dir = next((tmp / "outputs").glob("train-*"))
    test = pd.read_parquet(run_dir / "test_scores.parquet")
    assert test["cutoff_at"].dt.dayofweek.eq(0).all()  # Monday anchors
    assert test.duplicated(["user_id", "cutoff_at"]).sum() == 0
    out = tmp / "scores.parquet"
    scored = CliRunner().invoke(
        app, ["score", "--config", str(config), "--as-of", "2025-05-19", "--out", str(out)]
    )
    assert scored.exit_code == 0, scored.output
    scores = pd.read_parquet(out)
    cfg = load_config(config)
    con = load_data(cfg.data).con  # the job's own reader: the same cleaned tables
    want = task_population(con, cfg.label, cfg.task, pd.Timestamp("2025-05-19").to_pydatetime())
    assert sorted(scores["user_id"]) == sorted(want.frame["user_id"])
    assert scores["user_id"].is_unique
    # reasons speak of the task, not of trials; the lagged windows are among the features
    texts = scores.filter(regex=r"^reason_\d+_text$").stack().dropna().astype(str)
    assert len(texts) and not texts.str.contains("trial|Signed up").any(), texts.head()
    assert "lag7d_events_28d" in (run_dir / "feature_spec.json").read_text()


def test_spark_account_score_writes_one_file(tmp_path):
    """Check that score with engine spark on an account task asks for one --out file (its rows
    come to the driver, as on DuckDB): a folder is refused in one line, exit 2, before any work."""
    config = _config(tmp_path, engine="spark")
    raw = yaml.safe_load(config.read_text())
    raw["task"]["entity"] = "account"
    config.write_text(yaml.safe_dump(raw))
    out = tmp_path / "scores"
    argv = ["score", "--config", str(config), "--as-of", "2025-05-19", "--out", str(out)]
    out.mkdir()  # a folder is what the in-place (user) job writes, not this one
    result = CliRunner().invoke(app, argv)
    assert result.exit_code == 2, result.output
    assert "--out" in result.output and "Traceback" not in result.output


def test_oracle_reads_a_task_worlds_truth(tmp_path):
    """Check that the demo's oracle joins a task truth (entity_id, anchor_at) to the test rows."""
    at = pd.Timestamp("2025-03-03")
    truth = pd.DataFrame(
        {
            "entity_id": ["u1", "u2", "u3", "u1"],
            "anchor_at": [at, at, at, at + pd.Timedelta(days=7)],
            "p_true": [0.9, 0.1, 0.2, 0.5],
            "label": [1, 0, 0, 1],
        }
    )
    truth.to_parquet(tmp_path / "truth.parquet")
    test = pd.DataFrame(
        {
            "user_id": ["u1", "u2", "u3"],
            "cutoff_at": [at] * 3,
            "label": [1, 0, 0],
            "p": [0.2, 0.3, 0.1],
        }
    )
    got = oracle_on_test(test, tmp_path / "truth.parquet")
    assert got["oracle_roc_auc"] == 1.0 and got["model_roc_auc"] == 0.5


def test_demo_offers_only_the_wired_tasks():
    """Check that demo --task with an unknown task is refused by the option itself (exit 2)."""
    result = CliRunner().invoke(app, ["demo", "--task", "churn", "--out", "unused"])
    assert result.exit_code == 2
    assert "Traceback" not in result.output
