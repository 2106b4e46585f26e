"""The trained project the slow hardening tests share: `propensity demo` run once per session.

The demo simulates 3000 trial users, trains, registers a champion in a private SQLite MLflow store
and scores, all inside one temporary folder (cwd), with stdout and stderr kept as the run's logs.
`test_hardening_faults`, `_safety` and `_input` import :func:`demo_project`; the module-level
cache means the demo runs once however many of those files are collected.
"""

from __future__ import annotations

import ctypes
import os
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
# PROPENSITY_BIN runs the slow suite against another install (e.g. to see a test fail on main)
PROPENSITY = os.environ.get("PROPENSITY_BIN") or str(Path(sys.executable).parent / "propensity")
_PROJECT: Project | None = None


@dataclass(frozen=True)
class Project:
    """A demo run's folder, a config pointing at its data, its store and its model folder."""

    root: Path
    config: Path
    store: str
    model: Path
    stdout: str
    stderr: str

    def env(self, **extra: str) -> dict[str, str]:
        """The environment for a CLI subprocess of this project (its own MLflow store)."""
        env = {**os.environ, "MLFLOW_TRACKING_URI": self.store, "MLFLOW_DISABLE_TELEMETRY": "true"}
        env.update(extra)
        return env

    def write_config(self, path: Path, **sections: dict) -> Path:
        """A copy of the project config with some sections replaced or updated."""
        raw = yaml.safe_load(self.config.read_text())
        for key, value in sections.items():
            if isinstance(raw.get(key), dict) and isinstance(value, dict):
                raw[key] = {**raw[key], **value}
            else:
                raw[key] = value
        path.write_text(yaml.safe_dump(raw))
        return path


def run_cli(args: list[str], cwd: Path, env: dict[str, str], timeout: float = 300):
    """Run the installed `propensity` command; returns the CompletedProcess (text)."""
    return subprocess.run(
        [PROPENSITY, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )


# capabilities that let root ignore permission bits: DAC_OVERRIDE, DAC_READ_SEARCH, FOWNER, FSETID
_DAC_CAPS = (1, 2, 3, 4)
_PR_CAPBSET_DROP = 24


def _drop_privileges() -> None:  # runs in the child, between fork and exec
    if os.geteuid() != 0:
        return  # permission bits already apply
    # Stay uid 0 (the interpreter may live where `nobody` cannot go, e.g. /root/.pyenv) but
    # drop, for this process and what it runs, the capabilities that make root ignore
    # permission bits: the kernel then checks them for root as for anyone.
    libc = ctypes.CDLL(None, use_errno=True)
    for cap in _DAC_CAPS:
        if libc.prctl(_PR_CAPBSET_DROP, cap, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "cannot drop a capability")


def run_unprivileged(args: list[str], cwd: Path, env: dict[str, str], timeout: float = 300):
    """Run the installed `propensity` command without the privileges that read everything.

    As root a permission test would pass for the wrong reason (root reads and writes any file),
    so the command runs without root's permission-overriding capabilities; skipped where even
    that cannot be done.
    """
    try:
        return subprocess.run(
            [PROPENSITY, *args],
            cwd=cwd,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
            preexec_fn=_drop_privileges,
        )
    except subprocess.SubprocessError as exc:  # the preexec step failed: no CAP_SETPCAP here
        pytest.skip(f"cannot drop privileges here: {exc}")


def closed_port() -> int:
    """A local TCP port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def demo_project(tmp_path_factory: pytest.TempPathFactory) -> Project:
    """Run `propensity demo --users 3000` once per session and describe what it left."""
    global _PROJECT
    if _PROJECT is not None:
        return _PROJECT
    root = tmp_path_factory.mktemp("hardening-demo")
    store = f"sqlite:///{root / 'mlflow.db'}"
    env = {**os.environ, "MLFLOW_TRACKING_URI": store, "MLFLOW_DISABLE_TELEMETRY": "true"}
    done = run_cli(
        ["demo", "--users", "3000", "--out", "data", "--config", str(ROOT / "configs/demo.yaml")],
        cwd=root,
        env=env,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    raw = yaml.safe_load((ROOT / "configs" / "demo.yaml").read_text())
    raw["data"].update(
        events=str(root / "data" / "events"),
        users=str(root / "data" / "users.parquet"),
        conversions=str(root / "data" / "conversions.parquet"),
    )
    raw["output_dir"] = str(root / "outputs" / "demo")
    config = root / "project.yaml"
    config.write_text(yaml.safe_dump(raw))
    (model,) = (root / "outputs" / "demo").glob("train-*/model")
    _PROJECT = Project(root, config, store, model, done.stdout, done.stderr)
    return _PROJECT


@pytest.mark.slow
def test_demo_project_is_complete(tmp_path_factory):
    """Check that the shared demo run trained, registered, scored and printed no traceback."""
    project = demo_project(tmp_path_factory)
    assert (project.model / "bundle.json").is_file()
    assert (project.root / "outputs" / "demo" / "scores.parquet").is_file()
    assert "Traceback" not in project.stderr + project.stdout
    assert "promoted to champion" in project.stdout
