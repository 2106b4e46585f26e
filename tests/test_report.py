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
    # rates as percentages, gains in percentage points, counts as counts
    assert "+30.0 pts [+5.0, +50.0]" in body and "3 [1, 5]" in body
    assert "30.0% [10.0%, 50.0%]" in body and "60.0%" in body


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
        from propensity.pipeline.score import score_job

        scored = score_job(cfg, "latest", tmp / "scores.parquet")
        report = build_report(
            outcome.output_dir, features=test_rows, promotion=promotion, scores=scored.scores
        )
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
    # it opens with the summary line and lists the current PQLs with their reasons
    assert html.index('id="summary"') < html.index('id="pqls"') < html.index('id="data"')
    assert re.search(r'<p class="headline">The model flags [\d.]+ PQLs a week; ', html)
    pqls = re.search(r'<section id="pqls">(.*?)</section>', html).group(1)
    assert "PQLs among" in pqls and pqls.count("<tr><td>u") >= 5 and "nan" not in pqls
    assert "rows in the reported numbers" in html
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
    # the summary opens the page; the PQL table and the time-ordered split render as tables
    assert re.findall(r'<section id="(\w+)"', dom)[:3] == ["summary", "pqls", "data"]
    assert re.search(r'<section id="pqls">.*?<table>.*?</table>', dom, re.DOTALL)
    split = dom[dom.index("Out-of-time split") :]
    assert re.findall(r"<tr><td>(\w+)</td>", split)[:4] == [
        "train",
        "validation",
        "calibration",
        "test",
    ]
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


# -- the analyst's view: summary line, warnings in red, PQLs, split in time order --------------


def _metrics(auc: float = 0.85, lift: float = 4.0, test_users: int = 900) -> dict:
    return {
        "split": {  # written with sorted keys, as metrics.json is
            "calibration": {"start": "2025-04-23", "end": "2025-05-17", "rows": 1664, "users": 419,
                            "positives": 109},
            "test": {"start": "2025-05-08", "end": "2025-05-30", "rows": 1900,
                     "users": test_users, "positives": 141},
            "train": {"start": "2025-01-02", "end": "2025-04-10", "rows": 9415, "users": 2372,
                      "positives": 678},
            "validation": {"start": "2025-04-01", "end": "2025-05-02", "rows": 2676,
                           "users": 680, "positives": 219},
        },
        "test_calibrated": {"roc_auc": auc},
        "threshold": {
            "per_week": 15.0, "precision": 0.3125, "weeks": 3.2, "conversions_captured": 15.0,
            "lift": lift, "base_rate": 0.078,
            "ci": {"precision": [0.196, 0.448]},
        },
    }  # fmt: skip


def _comparison(diff_high: float = 0.4) -> pd.DataFrame:
    rule = {"kind": "rule", "per_week": 2.8, "precision": 0.667, "precision_low": 0.333,
            "precision_high": 1.0, "model_precision_same_volume": 0.556,
            "precision_diff": -0.111, "precision_diff_low": -0.517,
            "precision_diff_high": diff_high}  # fmt: skip
    weaker = {**rule, "name": "weaker", "precision": 0.2}
    return pd.DataFrame([{"name": "model", "precision": 0.31}, {**rule, "name": "best"}, weaker])


def test_summary_is_one_line_against_the_best_rule():
    """Check the opening line: PQLs a week, precision with interval, payers a week, best rule."""
    from propensity.report.sections import summary_section

    body = summary_section(_metrics(), _comparison(), {"rows": 900, "positives": 70}).body
    assert body.count("<p") == 1 and 'class="alert"' not in body
    assert (
        "The model flags 15.0 PQLs a week; 31.2% [19.6%, 44.8%] of them pay (95% interval), about "
        "4.7 paying customers a week, 4.0x the base rate of 7.8%. The best rule, best, flags 2.8 a "
        "week at 66.7% [33.3%, 100.0%]; at that volume the model is at 55.6% (-11.1 pts [-51.7, "
        "+40.0])."
    ) in body


@pytest.mark.parametrize(
    ("metrics", "used", "diff_high", "said"),
    [
        (_metrics(), {"rows": 120, "positives": 9}, 0.4, "Small test slice: 120 users, 9 of whom"),
        (_metrics(auc=0.53), {"rows": 900, "positives": 70}, 0.4, "Weak model: ROC AUC 0.53"),
        (_metrics(lift=0.98), {"rows": 900, "positives": 70}, 0.4, "pay at 0.98x the base rate"),
        (_metrics(), {"rows": 900, "positives": 70}, -0.02, "The rule best beats the model"),
    ],
)
def test_summary_warns_in_red(metrics, used, diff_high, said):
    """Check each weakness is a red alert under the summary line."""
    from propensity.report.sections import summary_section

    body = summary_section(metrics, _comparison(diff_high), used).body
    alerts = re.findall(r'<p class="alert">(.*?)</p>', body)
    assert len(alerts) == 1 and said in alerts[0]


def test_split_table_is_in_time_order_with_the_rows_used():
    """Check the split rows follow time, and the test row shows the rows behind the numbers."""
    from propensity.report.sections import split_table

    html = split_table(_metrics()["split"], {"rows": 606, "positives": 44})
    cells = re.findall(r"<tr><td>(\w+)</td>", html)
    assert cells == ["train", "validation", "calibration", "test"]
    test_row = re.search(r"<tr><td>test</td>(.*?)</tr>", html).group(1)
    assert "<td>606</td><td>44</td>" in test_row
    assert "rows in the reported numbers" in html


def test_pqls_are_listed_with_their_reasons():
    """Check the current PQLs table: highest first, reasons joined, hold-outs marked."""
    from propensity.report.sections import pqls_section

    scores = pd.DataFrame(
        {
            "user_id": ["u1", "u2", "u3"],
            "account_id": ["a1", None, "a3"],
            "score": [0.41, 0.62, 0.02],
            "is_pql": [True, True, False],
            "holdout": [False, True, False],
            "as_of": pd.Timestamp("2025-06-30"),
            "reason_1_text": ["Teammate invited 4 times since signup", "Role: other", None],
            "reason_2_text": ["Active on 5 days", None, None],
        }
    )
    body = pqls_section(scores).body
    assert "2 PQLs among 3 users in trial at 2025-06-30 00:00 UTC" in body
    rows = re.findall(r"<tr><td>(u\d)</td>", body)
    assert rows == ["u2", "u1"]
    assert "Teammate invited 4 times since signup; Active on 5 days" in body
    assert "62.0%" in body and "<td>yes</td>" in body and "nan" not in body.lower()
    assert "No score run was given" in pqls_section(None).body


def test_drivers_read_as_words_and_trial_age_is_context():
    """Check the drivers table names features in words and says trial age is context."""
    from propensity.features import FeatureSpec
    from propensity.report.sections import drivers_section

    importance = pd.DataFrame(
        {
            "feature": ["cutoff_age_days", "n_teammate_invited_all"],
            "mean_abs_shap": [0.5, 0.3],
            "mean_shap": [0.0, 0.1],
        }
    )
    spec = FeatureSpec(
        families=("counts", "recency"),
        events=("teammate_invited",),
        windows_s=(),
        session_gap_s=1800,
        key_events=(),
    )
    body = drivers_section(importance, {}, {}, spec).body
    assert "Times &#x27;teammate_invited&#x27; happened since signup" in body
    assert "(context)" in body
    assert "It is the largest driver here" in body and "never given as a reason code" in body
