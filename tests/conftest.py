"""Shared test settings: quiet, offline MLflow and a non-interactive matplotlib backend."""

import os

import pytest

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("MPLBACKEND", "Agg")
# as the CLI's main() does: spinning OpenMP waits make LightGBM ~3x slower on busy cores
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def _start_postgres() -> tuple[str | None, str]:
    """A DSN of a running PostgreSQL server: PROPENSITY_TEST_PG_DSN, else the one
    scripts/ensure-postgres.sh starts (or finds running); None with the reason otherwise."""
    import subprocess
    from pathlib import Path

    dsn = os.environ.get("PROPENSITY_TEST_PG_DSN")
    if dsn:
        return dsn, ""
    script = Path(__file__).parent.parent / "scripts" / "ensure-postgres.sh"
    try:
        done = subprocess.run(
            ["sh", str(script)], capture_output=True, text=True, timeout=180, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return None, f"scripts/ensure-postgres.sh failed: {exc}"
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines or not lines[-1].startswith("postgresql://"):
        why = (done.stderr.strip().splitlines() or ["no DSN printed"])[-1]
        return None, f"no PostgreSQL server could be started: {why}"
    return lines[-1], ""


@pytest.fixture(scope="session")
def postgres_dsn() -> str:
    """The DSN of a real PostgreSQL server for the sink tests (skips only when none can run)."""
    dsn, why = _start_postgres()
    if dsn is None:
        pytest.skip(why)
    return dsn


@pytest.fixture(scope="session")
def trained_world(tmp_path_factory):
    """A small simulated product (3000 users, 150 days), its config and a trained champion in a
    private MLflow store: shared by the slow backtest and outcomes tests."""
    from pathlib import Path

    import yaml
    from typer.testing import CliRunner

    from propensity.cli import app

    tmp = tmp_path_factory.mktemp("world")
    runner = CliRunner()
    made = runner.invoke(
        app,
        ["simulate", "--out", str(tmp / "data"), "--users", "3000", "--seed", "5", "--days", "150"],
    )
    assert made.exit_code == 0, made.output
    cfg = yaml.safe_load((Path(__file__).parent.parent / "configs" / "demo.yaml").read_text())
    cfg["data"].update(
        events=str(tmp / "data" / "events"),
        users=str(tmp / "data" / "users.parquet"),
        conversions=str(tmp / "data" / "conversions.parquet"),
    )
    cfg["output_dir"] = str(tmp / "outputs")
    cfg["threshold"] = {"policy": "top_fraction", "top_fraction": 0.1, "bootstrap": 20}
    cfg["baselines"]["bootstrap"] = 20
    cfg["model"].update(min_positives=20, min_negatives=20)
    cfg["mlflow"]["tracking_uri"] = f"sqlite:///{tmp / 'mlflow.db'}"
    cfg["crm"] = {"sink": {"path": str(tmp / "crm.duckdb")}}
    config = tmp / "project.yaml"
    config.write_text(yaml.safe_dump(cfg))
    # MLFLOW_TRACKING_URI wins over the config, and mlflow.set_tracking_uri writes it into this
    # process's environment: whatever store an earlier test of this worker used (the checkout's
    # ./mlflow.db, under pytest-xdist) would get this world's model. Point it here, for the
    # tests that use the world too.
    os.environ["MLFLOW_TRACKING_URI"] = cfg["mlflow"]["tracking_uri"]
    trained = runner.invoke(app, ["train", "--config", str(config)])
    assert trained.exit_code == 0, trained.output
    return tmp, config
