"""Shared test settings: quiet, offline MLflow and a non-interactive matplotlib backend."""

import os

import pytest

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("MPLBACKEND", "Agg")


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
