"""Hardening: no code in rules, no PII in any output, and only trusted, matching models load.

The slow tests use the shared demo project (test_hardening_project.py): its every output, its
MLflow store and its logs are scanned for email addresses and the users' configured PII values.
"""

from __future__ import annotations

import json
import re
import shutil
import sqlite3
import struct
import zlib
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest
import yaml
from test_hardening_project import Project, demo_project, run_cli
from typer.testing import CliRunner

from propensity.cli import app

EMAIL = re.compile(r"[\w.+-]+@[\w-]+\.[\w.]+")
INJECTION = "__import__('os').system('touch pwned')"


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Project:
    return demo_project(tmp_path_factory)


# -- rules are data, never code ------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("command", ["train", "compare"])
def test_code_in_a_rule_is_rejected(project, tmp_path, command):
    """Check that a rule holding Python is a parse error (exit 2) at train and compare time,
    and runs nothing."""
    config = project.write_config(
        tmp_path / "p.yaml",
        output_dir=str(tmp_path / "out"),
        baselines={"templates": [], "rules": [{"name": "evil", "expr": INJECTION}]},
    )
    done = run_cli([command, "--config", str(config)], tmp_path, project.env())
    assert done.returncode == 2, done.stderr
    said = " ".join(done.stderr.split())
    assert "error: Rule 'evil': Cannot parse rule" in said
    assert "Traceback" not in said
    assert not (tmp_path / "pwned").exists() and not (project.root / "pwned").exists()


def test_points_condition_with_code_is_rejected_before_data(tmp_path, monkeypatch):
    """Check that code in a points condition is refused by the grammar, not evaluated."""
    from propensity.baselines import PointsBaseline
    from propensity.errors import ConfigError

    baseline = PointsBaseline(
        name="evil", conditions=[{"when": INJECTION, "points": 1}], threshold=1
    )
    with pytest.raises(ConfigError, match="Points baseline 'evil', condition 1"):
        baseline.fit(pd.DataFrame({"n_events_7d": [1.0]}))
    assert not Path("pwned").exists()


# -- only trusted, matching models ---------------------------------------------------------------


@pytest.mark.parametrize(
    "model",
    [
        "https://example.com/model.tar.gz",
        "s3://bucket/model",
        "file:///etc",
        "models:/../../etc/passwd",
    ],
)
def test_models_from_elsewhere_are_refused(tmp_path, monkeypatch, model):
    """Check that a model from anywhere but the registry or a local folder is exit 3."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    config = tmp_path / "p.yaml"
    config.write_text(yaml.safe_dump({"data": {"events": str(tmp_path / "events.parquet")}}))
    out = tmp_path / "scores.parquet"
    result = CliRunner().invoke(
        app,
        ["score", "-c", str(config), "--as-of", "latest", "--out", str(out), "--model", model],
    )
    assert result.exit_code == 3, result.output
    assert result.output.startswith(f"error: Cannot load {model!r}")
    assert not out.exists()


@pytest.mark.slow
@pytest.mark.parametrize(
    ("tamper", "message"),
    [
        ("hash", "error: The model's recorded feature-spec hash 0000000000000000 does not match"),
        ("spec", "error: Feature spec hash must match its content"),
    ],
)
def test_model_whose_spec_hash_does_not_match_is_exit_3(project, tmp_path, tamper, message):
    """Check that an edited bundle (recorded hash, or the spec behind it) is refused, exit 3."""
    model = tmp_path / "model"
    shutil.copytree(project.model, model)
    bundle = json.loads((model / "bundle.json").read_text())
    if tamper == "hash":
        bundle["feature_spec_hash"] = "0" * 16
    else:  # sessions cut at 1 s: the spec no longer hashes to its recorded value
        bundle["feature_spec"]["spec"]["session_gap_s"] = 1
    (model / "bundle.json").write_text(json.dumps(bundle))
    out = tmp_path / "scores.parquet"
    done = run_cli(
        ["score", "-c", str(project.config), "--as-of", "latest", "--out", str(out)]
        + ["--model", str(model)],
        tmp_path,
        project.env(),
    )
    assert done.returncode == 3, done.stderr
    assert done.stderr.startswith(message)
    assert len(done.stderr.strip().splitlines()) == 1
    assert not out.exists()


# -- no PII anywhere -----------------------------------------------------------------------------


def _png_text(data: bytes) -> Iterator[str]:
    """The text chunks (tEXt, zTXt, iTXt) of a PNG: where metadata hides."""
    at = 8
    while at + 8 <= len(data):
        (size,) = struct.unpack(">I", data[at : at + 4])
        kind, body = data[at + 4 : at + 8], data[at + 8 : at + 8 + size]
        if kind == b"tEXt":
            yield body.decode("latin-1")
        elif kind == b"zTXt":
            key, _, rest = body.partition(b"\0")
            yield key.decode("latin-1") + zlib.decompress(rest[1:]).decode("latin-1")
        elif kind == b"iTXt":
            key, _, rest = body.partition(b"\0")
            compressed, text = rest[0], rest[2:].split(b"\0", 2)[-1]
            yield key.decode() + (zlib.decompress(text) if compressed else text).decode()
        at += 12 + size


def _texts(path: Path) -> Iterator[str]:
    """Every readable text a file holds: its text, or its decoded tables, metadata and chunks.

    Compressed bytes (parquet pages, PNG image data) are not scanned raw: random bytes match a
    loose email pattern by chance (e.g. ``Q@fffff.c``) about once per few megabytes.
    """
    data = path.read_bytes()
    if path.suffix not in (".parquet", ".png", ".db"):
        yield data.decode("utf-8", errors="replace")
    elif path.suffix == ".parquet":
        yield pd.read_parquet(path).astype(str).to_csv()
        meta = pq.read_metadata(path).metadata or {}
        yield " ".join(v.decode("latin-1") for v in meta.values())
    elif path.suffix == ".png":
        yield from _png_text(data)
    elif path.suffix == ".db":
        with sqlite3.connect(path) as con:
            tables = [
                t for (t,) in con.execute("SELECT name FROM sqlite_master WHERE type='table'")
            ]
            for table in tables:
                yield repr(con.execute(f'SELECT * FROM "{table}"').fetchall())


@pytest.mark.slow
def test_no_pii_in_any_output_store_or_log(project):
    """Check that no email address, nor any user's email or its local part, appears in the
    demo's scores, reports, plots, model files, MLflow store and artifacts, or its logs."""
    users = pd.read_parquet(project.root / "data" / "users.parquet")
    emails = set(users["email"].dropna())
    local_parts = {e.split("@")[0] for e in emails}
    assert len(emails) > 1000
    files = [
        p
        for p in project.root.rglob("*")
        if p.is_file() and project.root / "data" not in p.parents  # the inputs hold the PII
    ]
    kinds = {p.suffix for p in files}
    assert {".parquet", ".csv", ".json", ".png", ".db"} <= kinds, kinds
    leaks = []
    for path in files:
        for text in _texts(path):
            found = set(EMAIL.findall(text))
            words = set(re.findall(r"user\d{8}", text))
            if found or words & local_parts:
                leaks.append((path.relative_to(project.root), sorted(found)[:3]))
                break
    for name, log in (("stdout", project.stdout), ("stderr", project.stderr)):
        if EMAIL.search(log) or set(re.findall(r"user\d{8}", log)) & local_parts:
            leaks.append((name, EMAIL.findall(log)[:3]))
    assert leaks == []
    # the scan can see an address: the inputs it skipped do hold them
    assert EMAIL.search(next(_texts(project.root / "data" / "users.parquet")))
