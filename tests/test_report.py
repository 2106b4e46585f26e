"""Tests for propensity.report and propensity.pipeline.report: the HTML model report."""

from __future__ import annotations

import base64
import io
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import matplotlib.image as mpimg
import mlflow
import numpy as np
import pandas as pd
import pytest
import yaml

from propensity.config import config_from_dict
from propensity.errors import ModelError
from propensity.report import SECTIONS, build_report, feature_grid, partial_dependence
from propensity.report.html import fmt_number, table, text
from propensity.report.sections import headline_section, promotion_section

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "test-artifacts"
_DATA_URI = re.compile(r"data:image/png;base64,([A-Za-z0-9+/=]+)")


# -- building blocks (fast) ----------------------------------------------------------------------


def test_text_escapes_and_removes_addresses_and_urls():
    """Check that text is HTML-escaped and email addresses and URLs never reach the page."""
    out = text("<b>ann@corp.com</b> see https://x.io/a & more")
    assert out == "&lt;b&gt;[removed]&lt;/b&gt; see [removed] &amp; more"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (0.123456, "0.123"),
        (12.0, "12"),
        (1234.5678, "1,234.57"),
        (float("nan"), "–"),
        (None, "–"),
        (np.int64(3), "3"),
        (np.bool_(True), "yes"),
        ("x", "x"),
    ],
)
def test_fmt_number(value, expected):
    """Check that numbers are shown rounded, integers plain, and missing values as a dash."""
    assert fmt_number(value) == expected


def test_table_formats_cells():
    """Check that a table has one header and one row per record, cells escaped."""
    html = table(pd.DataFrame({"a": ["<x>"], "b": [0.5]}), formats={"a": str})
    assert html == (
        "<table><thead><tr><th>a</th><th>b</th></tr></thead>"
        "<tbody><tr><td>&lt;x&gt;</td><td>0.5</td></tr></tbody></table>"
    )


def test_feature_grid_numeric_and_categorical():
    """Check that the grid is the distinct quantiles, or the levels present, missing left out."""
    assert feature_grid(pd.Series([0.0, 1.0, 1.0, 2.0, np.nan]), size=3) == [0.0, 1.0, 2.0]
    assert feature_grid(pd.Series([5.0, 5.0]), size=4) == [5.0]
    cat = pd.Series(pd.Categorical(["b", None, "b"], categories=["a", "b", "c"]))
    assert feature_grid(cat) == ["b"]
    with pytest.raises(ValueError, match="'size' parameter of feature_grid must be >= 2"):
        feature_grid(pd.Series([1.0]), size=1)


def test_partial_dependence_of_a_linear_model_is_the_line():
    """Check that PDP of p = 0.1 x + 0.02 y is 0.1 v + 0.02 mean(y) at every grid value v."""
    X = pd.DataFrame({"x": [0.0, 1.0, 2.0, 3.0, 4.0], "y": [1.0, 2.0, 3.0, 4.0, 10.0]})
    calls = []

    def predict(frame: pd.DataFrame) -> np.ndarray:
        calls.append(len(frame))
        return 0.1 * frame["x"].to_numpy() + 0.02 * frame["y"].to_numpy()

    curve = partial_dependence(predict, X, "x", grid_size=5)
    assert curve["value"].tolist() == [0.0, 1.0, 2.0, 3.0, 4.0]
    np.testing.assert_allclose(curve["mean_probability"], [0.08, 0.18, 0.28, 0.38, 0.48])
    assert calls == [25]  # every grid point in one call


def test_partial_dependence_of_a_categorical():
    """Check that a categorical feature is swept over its levels and keeps its dtype."""
    X = pd.DataFrame({"c": pd.Categorical(["a", "b", "b"], categories=["a", "b"]), "z": 1.0})

    def predict(frame: pd.DataFrame) -> np.ndarray:
        assert isinstance(frame["c"].dtype, pd.CategoricalDtype)
        return np.where(frame["c"] == "b", 0.6, 0.2)

    curve = partial_dependence(predict, X, "c")
    assert curve["value"].tolist() == ["a", "b"]
    np.testing.assert_allclose(curve["mean_probability"], [0.2, 0.6])


def test_headline_counts_rules_the_model_beats():
    """Check that the headline counts only rules whose precision-gain interval is above zero."""
    row = {
        "kind": "rule",
        "note": "",
        "per_week": 2.0,
        "precision": 0.3,
        "precision_low": 0.1,
        "precision_high": 0.5,
        "model_precision_same_volume": 0.6,
        "conversions_diff": 3.0,
        "conversions_diff_low": 1.0,
        "conversions_diff_high": 5.0,
        "precision_diff": 0.3,
    }
    comparison = pd.DataFrame(
        [
            {"name": "model", "description": ""},
            {
                **row,
                "name": "r1",
                "description": "one",
                "precision_diff_low": 0.05,
                "precision_diff_high": 0.5,
            },
            {
                **row,
                "name": "r2",
                "description": "two",
                "precision_diff_low": -0.1,
                "precision_diff_high": 0.4,
            },
        ]
    )
    body = headline_section(comparison).body
    assert "more precise than 1 of 2 rules" in body
    assert "0.3 [0.05, 0.5]" in body and "3 [1, 5]" in body


def test_promotion_section_both_ways():
    """Check that the promotion section states the new champion or the kept one."""
    promoted = promotion_section(
        {
            "decision": "promoted",
            "version": "2",
            "metric": "ap",
            "new_value": 0.5,
            "champion_value": 0.4,
            "champion_version": "1",
            "reason": "better",
        }
    )
    assert "Version 2 is the new champion." in promoted.body and "0.4" in promoted.body
    kept = promotion_section({"decision": "kept_champion", "champion_version": "1"})
    assert "The champion (version 1) was kept." in kept.body
    assert "No promotion decision" in promotion_section(None).body


def test_build_report_names_missing_files(tmp_path):
    """Check that a folder that is not a run's output is a ModelError naming the files."""
    with pytest.raises(ModelError, match="missing metrics.json, data_summary.json, comparison"):
        build_report(tmp_path)


# -- a real training run (slow, built once) ---------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory):
    """Simulate 4,000 users, train on them with a fresh SQLite store, build the report."""
    from propensity.pipeline.prepare import prepare
    from propensity.pipeline.train import train
    from propensity.simulate import simulate

    tmp = tmp_path_factory.mktemp("report")
    simulate(tmp / "data", users=4000, seed=7)
    raw = yaml.safe_load((ROOT / "configs" / "demo.yaml").read_text(encoding="utf-8"))
    raw["data"].update(
        events=str(tmp / "data" / "events"),
        users=str(tmp / "data" / "users.parquet"),
        conversions=str(tmp / "data" / "conversions.parquet"),
    )
    raw["output_dir"] = str(tmp / "outputs")
    raw["model"].update(n_estimators=300, early_stopping_rounds=30)
    raw["threshold"]["bootstrap"] = 50
    raw["baselines"]["bootstrap"] = 50
    cfg = config_from_dict(raw)
    uri = f"sqlite:///{tmp / 'mlflow.db'}"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLFLOW_TRACKING_URI", uri)
        mp.setenv("MLFLOW_REGISTRY_URI", uri)
        outcome = train(cfg, project_dir=tmp, progress=lambda _: None)
        prepared = prepare(cfg)
        test_rows = prepared.frame.iloc[prepared.split.test]
        promotion = {
            "decision": "promoted",
            "version": outcome.decision.version,
            "metric": outcome.decision.metric,
            "new_value": outcome.decision.new_value,
            "champion_value": None,
            "champion_version": None,
            "reason": outcome.decision.reason,
        }
        report = build_report(outcome.output_dir, features=test_rows, promotion=promotion)
        yield {
            "cfg": cfg,
            "outcome": outcome,
            "report": report,
            "tmp": tmp,
            "uri": uri,
            "test_rows": test_rows,
        }
    mlflow.set_tracking_uri(None)


def _images(html: str) -> list[bytes]:
    return [base64.b64decode(m) for m in _DATA_URI.findall(html)]


def _check_report(html: str, n_images: int) -> None:
    for key, title in SECTIONS.items():
        assert f'<section id="{key}"><h2>{text(title)}</h2>' in html
    images = _images(html)
    assert len(images) == n_images
    for png in images:  # every image decodes as a real PNG with pixels
        assert mpimg.imread(io.BytesIO(png), format="png").shape[0] > 50
    outside = _DATA_URI.sub("", html).lower()  # base64 could spell anything by chance
    for forbidden in ("http", "@", "<script", "<link", 'src="/', "url("):
        assert forbidden not in outside, forbidden


@pytest.mark.slow
def test_report_of_a_training_run(trained):
    """Check every section and image is in the report, and nothing points outside the file."""
    html = trained["report"].read_text(encoding="utf-8")
    # 5 performance plots, SHAP bar and beeswarm, partial dependence, LightGBM gain
    _check_report(html, n_images=9)
    assert "more precise than" in html and "is the new champion" in html
    plots = trained["outcome"].output_dir / "plots"
    assert {"shap_importance.png", "shap_beeswarm.png", "partial_dependence.png"} <= {
        p.name for p in plots.iterdir()
    }
    metrics = json.loads((trained["outcome"].output_dir / "metrics.json").read_text())
    assert f"{metrics['threshold']['per_week']:,.2f}" in html


@pytest.mark.slow
def test_report_job_rebuilds_from_the_store(trained, monkeypatch):
    """Check that a report is rebuilt from MLflow alone (hook, then job) and logged back."""
    from propensity.pipeline.report import report_job, report_training_run
    from propensity.tracking import start_run

    cfg, tmp = trained["cfg"], trained["tmp"]
    monkeypatch.setenv("MLFLOW_TRACKING_URI", trained["uri"])
    # what train's hook does, on a run of its own: feature sample, report and plots logged
    with start_run(cfg, "hook", project_dir=tmp) as run:
        folder = tmp / "hook-run"
        shutil.copytree(trained["outcome"].output_dir, folder)
        (folder / "report.html").unlink()
        report_training_run(run, folder, cfg, trained["test_rows"], trained["outcome"].decision)
        run.log_file(folder / "metrics.json")
        run.log_file(folder / "data_summary.json")
        run.log_file(folder / "comparison.csv")
        for png in (folder / "plots").glob("*.png"):
            run.log_file(png, "plots")
        run.set_tags(
            {
                "model.registered": trained["outcome"].model_version
                and f"{cfg.mlflow.registered_model}/{trained['outcome'].model_version}"
            }
        )
    sample = pd.read_parquet(folder / "report" / "test_features.parquet")
    assert "user_id" not in sample.columns and len(sample) == len(trained["test_rows"])
    drift = pd.DataFrame(
        {
            "feature": ["n_events_7d", "score"],
            "kind": ["feature", "score"],
            "psi": [0.31, 0.02],
            "flag": [True, False],
        }
    )
    rebuilt = report_job(  # no config given: the run's own logged config is read back
        run.run_id,
        None,
        drift=drift,
        out_dir=tmp / "rebuilt",
        project_dir=tmp,
        progress=lambda _: None,
    )
    html = rebuilt.read_text(encoding="utf-8")
    _check_report(html, n_images=9)
    assert "1 of 2 checks drifted above PSI 0.25: n_events_7d" in html
    client = mlflow.MlflowClient(tracking_uri=trained["uri"])
    logged = {a.path for a in client.list_artifacts(run.run_id)}
    assert {"report.html", "report", "plots"} <= logged


@pytest.mark.slow
def test_report_renders_in_headless_chromium(trained):
    """Check the page renders in Chromium with every section, no console error; keep a shot."""
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        pytest.skip("chromium is not installed; run scripts/ensure-chromium.sh (make test does)")
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "report.png"
    flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--enable-logging=stderr",
        "--v=0",
        "--window-size=1280,4000",
    ]
    url = trained["report"].resolve().as_uri()
    outputs = {}
    for mode in (f"--screenshot={shot}", "--dump-dom"):
        with tempfile.TemporaryDirectory() as profile:
            done = subprocess.run(
                [browser, *flags, f"--user-data-dir={profile}", mode, url],
                capture_output=True,
                text=True,
                timeout=120,
            )
        assert done.returncode == 0, done.stderr[-2000:]
        outputs[mode] = done
    console = [line for line in outputs["--dump-dom"].stderr.splitlines() if ":CONSOLE" in line]
    console += [
        line for line in outputs[f"--screenshot={shot}"].stderr.splitlines() if ":CONSOLE" in line
    ]
    assert console == []
    dom = outputs["--dump-dom"].stdout
    for key, title in SECTIONS.items():
        assert f'id="{key}"' in dom and text(title) in dom
    assert dom.count("<img ") == 9
    assert shot.stat().st_size > 50_000
    assert mpimg.imread(shot).shape[1] == 1280


@pytest.mark.slow
def test_mlflow_server_serves_the_run_and_its_report(trained):
    """Check a local `mlflow server` on the store finds the run, its metrics and the report."""
    from propensity.pipeline.report import report_job

    cfg, tmp, run_id = trained["cfg"], trained["tmp"], trained["outcome"].run_id
    env = {**os.environ, "MLFLOW_TRACKING_URI": trained["uri"]}
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLFLOW_TRACKING_URI", trained["uri"])
        report_job(run_id, cfg, out_dir=tmp / "served", project_dir=tmp, progress=lambda _: None)
    port = _free_port()
    log = (tmp / "mlflow-server.log").open("w")
    # its own process group: the server forks a uvicorn worker, and both must stop at the end
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mlflow",
            "server",
            "--backend-store-uri",
            trained["uri"],
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}/api/2.0/mlflow"
    try:
        _wait_for(f"http://127.0.0.1:{port}/health", server, tmp / "mlflow-server.log")
        experiment = _get(f"{base}/experiments/get-by-name?experiment_name={cfg.mlflow.experiment}")
        found = _post(
            f"{base}/runs/search", {"experiment_ids": [experiment["experiment"]["experiment_id"]]}
        )
        runs = {r["info"]["run_id"]: r for r in found["runs"]}
        assert run_id in runs
        metrics = {m["key"]: m["value"] for m in runs[run_id]["data"]["metrics"]}
        headline = trained["outcome"].headline
        assert metrics["test_calibrated.average_precision"] == pytest.approx(
            headline["average_precision"]
        )
        listed = _get(f"{base}/artifacts/list?run_id={run_id}")
        assert "report.html" in {f["path"] for f in listed["files"]}
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
        log.close()


def _wait_for(url: str, server: subprocess.Popen, log: Path, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise AssertionError(f"mlflow server exited: {log.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise AssertionError(f"mlflow server did not answer {url} within {timeout}s")


def _get(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=30) as response:
        return json.loads(response.read())


def _post(url: str, body: dict) -> dict:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())
