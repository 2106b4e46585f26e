"""Hardening: processes killed mid-job, racing writers, and an unreachable tracking store.

Every test here drives the installed `propensity` command in subprocesses against the shared demo
project (see test_hardening_project.py), so they are slow and marked so; CI runs them.
"""

from __future__ import annotations

import random
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pandas as pd
import pytest
import yaml
from test_hardening_project import PROPENSITY, Project, closed_port, demo_project, run_cli
from typer.testing import CliRunner

from propensity.cli import app
from propensity.config import MlflowConfig
from propensity.tracking import load_model

pytestmark = pytest.mark.slow

KILL_RUNS = 20
TRAIN_KILL_RUNS = 3
# Scores differ between runs only in the wall-clock stamp.
VOLATILE = ["scored_at"]


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Project:
    return demo_project(tmp_path_factory)


def _score_args(project: Project, out: Path, as_of: str = "latest") -> list[str]:
    return [
        "score",
        "--config",
        str(project.config),
        "--as-of",
        as_of,
        "--out",
        str(out),
        "--model",
        str(project.model),
        "--top",
        "0",
    ]


def _stable(path: Path) -> pd.DataFrame:
    return pd.read_parquet(path).drop(columns=VOLATILE)


def _visible(folder: Path) -> list[Path]:
    """Output files a reader would pick up (the atomic writer's temp files are hidden)."""
    return sorted(p for p in folder.iterdir() if not p.name.startswith("."))


def _kill_after(args: list[str], cwd: Path, env: dict, delay: float, after: str | None = None):
    """Start the CLI; SIGKILL it `delay` s after start (or after `after` shows on stderr).

    Returns True when it was killed, False when it finished first.
    """
    proc = subprocess.Popen(
        [PROPENSITY, *args],
        cwd=cwd,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE if after else subprocess.DEVNULL,
        text=True,
    )
    if after is not None:
        for line in proc.stderr:
            if after in line:
                break
    try:
        proc.wait(timeout=delay)
        return False
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        return True
    finally:
        if proc.stderr is not None:
            proc.stderr.close()


def test_scoring_killed_at_random_points_leaves_no_partial_file(project, tmp_path):
    """Check that SIGKILL at random points leaves the scores absent or whole, never partial.

    One complete run gives the reference rows and the job's duration; then 20 runs are killed,
    two at a time (each in its own folder): half at a uniform random time in the run, half at a
    random instant of the write phase (just after the first hidden temp file appears, when a
    non-atomic writer would leave half a file). The tracking store is unreachable throughout: a
    local model folder needs none. Then the next run in a killed run's folder succeeds.
    """
    env = project.env(MLFLOW_TRACKING_URI=f"http://127.0.0.1:{closed_port()}")
    out = tmp_path / "reference" / "scores.parquet"
    began = time.monotonic()
    done = run_cli(_score_args(project, out), project.root, env)
    full = time.monotonic() - began
    assert done.returncode == 0, done.stderr
    expected = _stable(out)
    assert len(expected) > 100
    rng = random.Random(10)
    plans = [
        (tmp_path / f"run{i}" / "scores.parquet", i % 2, rng.random()) for i in range(KILL_RUNS)
    ]

    def attempt(plan: tuple[Path, int, float]) -> bool:
        target, in_write_phase, u = plan
        target.parent.mkdir()
        if in_write_phase:
            return _kill_in_write_phase(project, target, env, 0.4 * u)
        return _kill_after(_score_args(project, target), project.root, env, full * u)

    with ThreadPoolExecutor(max_workers=2) as pool:
        killed = sum(pool.map(attempt, plans))
    assert killed >= KILL_RUNS // 2
    for target, _, _ in plans:
        if target.exists():  # the job got as far as its rename: the file must be whole
            pd.testing.assert_frame_equal(_stable(target), expected)
        for path in _visible(target.parent):  # sidecars too are absent or whole
            frame = pd.read_csv(path) if path.suffix == ".csv" else pd.read_parquet(path)
            assert len(frame) > 0
    again = plans[0][0]
    done = run_cli(_score_args(project, again), project.root, env)
    assert done.returncode == 0, done.stderr
    pd.testing.assert_frame_equal(_stable(again), expected)


def _kill_in_write_phase(project: Project, out: Path, env: dict, delay: float) -> bool:
    proc = subprocess.Popen(
        [PROPENSITY, *_score_args(project, out)],
        cwd=project.root,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 300
    while proc.poll() is None and not any(p.name.endswith(".tmp") for p in out.parent.iterdir()):
        assert time.monotonic() < deadline, "the score job never started writing"
        time.sleep(0.01)
    time.sleep(delay)
    if proc.poll() is not None:
        return False
    proc.kill()
    proc.wait()
    return True


def test_training_killed_leaves_no_version_without_artifacts(project, tmp_path, monkeypatch):
    """Check that training killed while logging and registering leaves every registered version
    loadable, and that the next run, with the store unreachable and on_unreachable: local,
    succeeds, logs to the local store and says so."""
    name = "hardening-kill-pql"
    config = project.write_config(
        tmp_path / "lean.yaml",
        output_dir=str(tmp_path / "outputs"),
        features={"top_transitions": 0},
        model={"n_estimators": 60, "early_stopping_rounds": 20, "min_positives": 20},
        threshold={"policy": "top_fraction", "top_fraction": 0.1, "bootstrap": 0},
        baselines={"templates": [], "bootstrap": 0},
        mlflow={"experiment": "hardening-kill", "registered_model": name},
    )
    rng = random.Random(11)
    for _ in range(TRAIN_KILL_RUNS):
        _kill_after(
            ["train", "--config", str(config)],
            project.root,
            project.env(),
            rng.uniform(0, 4),
            after="registering the model",
        )
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    store = MlflowConfig(tracking_uri=project.store)
    versions_before = _versions(store, name)
    for version in versions_before:  # whatever a kill left registered is whole
        assert load_model(f"models:/{name}/{version}", store).pqlmodel.feature_columns

    raw = yaml.safe_load(config.read_text())
    raw["mlflow"]["on_unreachable"] = "local"
    local = tmp_path / "local.yaml"
    local.write_text(yaml.safe_dump(raw))
    unreachable = project.env(MLFLOW_TRACKING_URI=f"http://127.0.0.1:{closed_port()}")
    done = run_cli(["train", "--config", str(local)], project.root, unreachable)
    assert done.returncode == 0, done.stderr[-2000:]
    said = " ".join(done.stdout.split())
    assert "is unreachable" in said and "Logged to the local store" in said
    versions = _versions(store, name)
    assert len(versions) == len(versions_before) + 1
    assert load_model(f"models:/{name}/{versions[-1]}", store).pqlmodel.feature_columns


def _versions(store: MlflowConfig, name: str) -> list[int]:
    from propensity.tracking.store import probe

    client = probe(store.tracking_uri)
    return sorted(int(v.version) for v in client.search_model_versions(f"name = '{name}'"))


def test_two_scoring_jobs_racing_on_one_path_never_mix(project, tmp_path):
    """Check that two jobs writing the same path at once leave one whole output, not a mix."""
    env = project.env()
    # Two different as-of times give two different score tables.
    runs = {"a": "2025-06-20T00:00:00", "b": "latest"}
    alone = {
        key: subprocess.Popen(
            [PROPENSITY, *_score_args(project, tmp_path / f"{key}.parquet", as_of)],
            cwd=project.root,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        for key, as_of in runs.items()
    }
    for proc in alone.values():
        assert proc.wait(timeout=300) == 0, proc.stderr.read()
        proc.stderr.close()
    refs = {key: _stable(tmp_path / f"{key}.parquet") for key in runs}
    assert not refs["a"].equals(refs["b"])
    shared = tmp_path / "shared" / "scores.parquet"
    racing = [
        subprocess.Popen(
            [PROPENSITY, *_score_args(project, shared, as_of)],
            cwd=project.root,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for as_of in runs.values()
    ]
    assert [proc.wait(timeout=300) for proc in racing] == [0, 0]
    got = _stable(shared)
    assert any(got.equals(ref) for ref in refs.values())
    assert [p.name for p in (tmp_path / "shared").iterdir() if p.name.endswith(".tmp")] == []


def test_unreachable_store_stops_training_with_exit_5(project, tmp_path):
    """Check that training against a closed port stops at once with exit 5 and one clear line."""
    unreachable = project.env(MLFLOW_TRACKING_URI=f"http://127.0.0.1:{closed_port()}")
    config = project.write_config(tmp_path / "p.yaml", output_dir=str(tmp_path / "out"))
    done = run_cli(["train", "--config", str(config)], tmp_path, unreachable, timeout=120)
    assert done.returncode == 5, done.stderr
    assert "The MLflow tracking store at 'http://127.0.0.1:" in done.stderr
    assert "is unreachable" in done.stderr and "on_unreachable: local" in done.stderr
    assert "Traceback" not in done.stderr
    assert "loading data" not in done.stderr  # it stopped before any work
    assert not (tmp_path / "out").exists()


def test_scoring_with_a_local_model_folder_needs_no_store(project, tmp_path, monkeypatch):
    """Check that scoring with --model <folder> works while the tracking store is unreachable."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://127.0.0.1:{closed_port()}")
    out = tmp_path / "scores.parquet"
    result = CliRunner().invoke(app, _score_args(project, out))
    assert result.exit_code == 0, result.output
    assert len(pd.read_parquet(out)) > 100
