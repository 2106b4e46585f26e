"""Tests for propensity.tracking: store resolution, runs, fingerprints, registry and promotion."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import textwrap
from datetime import timedelta
from pathlib import Path

import lightgbm as lgb
import matplotlib.pyplot as plt
import mlflow
import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import average_precision_score
from spec_fixtures import model_spec, spec_fields, with_spec_columns

from propensity.config import MlflowConfig, config_from_dict
from propensity.errors import ModelError, TrackingError
from propensity.model.bundle import PQLModel
from propensity.model.calibrate import Calibrator
from propensity.pipeline.promotion import metric_value, publish
from propensity.tracking import (
    data_fingerprint,
    flatten_params,
    git_commit,
    load_model,
    local_store_uri,
    model_signature,
    pyfunc_input,
    resolve_tracking_uri,
    start_run,
)

NAME = "pql-test"
LEVELS = ["corporate", "education", "free_mail"]
WIDE = model_spec(("doc_shared",), key_events=(), families=("counts", "recency", "fit"))
NARROW = model_spec(("doc_shared",), key_events=(), families=("counts", "fit"))
RECENCY = [c for c in WIDE.columns if c not in NARROW.columns]  # hours_since_last_event, ...


# -- fixtures: a tiny booster on ~500 synthetic rows ---------------------------------------------


def _frame(n: int, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    shared = rng.poisson(2.0, n).astype(float)
    idle = rng.exponential(24.0, n)
    domain = rng.choice(LEVELS, n)
    logit = 0.9 * shared - 0.05 * idle + 1.2 * (domain == "corporate") - 1.5
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    X = pd.DataFrame(
        {
            "user_id": [f"u{i}" for i in range(n)],
            "n_doc_shared_7d": shared,
            "hours_since_last_event": idle,
            "domain_class": pd.Categorical(domain, categories=LEVELS),
        }
    )
    return with_spec_columns(X, WIDE), y


def _model(
    X: pd.DataFrame, y: np.ndarray, *, rounds: int, shuffle: bool = False, spec=WIDE
) -> PQLModel:
    features = X[list(spec.columns)]
    target = np.random.default_rng(7).permutation(y) if shuffle else y
    params = {
        "objective": "binary",
        "num_leaves": 4,
        "learning_rate": 0.1,
        "min_data_in_leaf": 20,
        "num_threads": 1,
        "seed": 0,
        "deterministic": True,
        "verbose": -1,
    }
    booster = lgb.train(params, lgb.Dataset(features, label=target), num_boost_round=rounds)
    calibrator = Calibrator(method="sigmoid").fit(booster.predict(features), target)
    return PQLModel(
        booster=booster,
        calibrator=calibrator,
        threshold=0.5,
        categorical={"domain_class": LEVELS},
        **spec_fields(spec),
        metadata={"note": "test"},
    )


@pytest.fixture(scope="module")
def data() -> dict:
    X_train, y_train = _frame(500, seed=0)
    X_test, y_test = _frame(300, seed=1)
    return {
        "X_test": X_test,
        "y_test": y_test,
        "good": _model(X_train, y_train, rounds=1),
        "better": _model(X_train, y_train, rounds=30),
        "worse": _model(X_train, y_train, rounds=30, shuffle=True),
    }


def _cfg(**mlflow_section):
    return config_from_dict(
        {
            "data": {
                "events": "events.parquet",
                "users": "users.parquet",
                "exclude": {"user_ids": ["u1", "u2"], "email_domains": ["ourco.com"]},
            },
            "mlflow": {"registered_model": NAME, "experiment": "exp", **mlflow_section},
        }
    )


@pytest.fixture(autouse=True)
def _restore_registry_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Connecting exports MLFLOW_REGISTRY_URI (mlflow's setter does); drop it after each test."""
    monkeypatch.setenv("MLFLOW_REGISTRY_URI", "unset")
    monkeypatch.delenv("MLFLOW_REGISTRY_URI")


@pytest.fixture(scope="module")
def empty_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An initialised SQLite store; creating one runs mlflow's migrations (seconds), copying not."""
    path = tmp_path_factory.mktemp("template") / "mlflow.db"
    mlflow.MlflowClient(tracking_uri=f"sqlite:///{path}").search_experiments()
    return path


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, empty_db: Path) -> str:
    """A fresh SQLite tracking store for one test, named by MLFLOW_TRACKING_URI."""
    shutil.copy(empty_db, tmp_path / "mlflow.db")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    return uri


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# -- store resolution --------------------------------------------------------------------------


def test_tracking_uri_precedence(tmp_path, monkeypatch):
    """Check that the env var beats the config, which beats the local SQLite default."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert resolve_tracking_uri(MlflowConfig(), tmp_path) == f"sqlite:///{tmp_path}/mlflow.db"
    assert local_store_uri(tmp_path).startswith("sqlite:////")  # absolute path
    cfg = MlflowConfig(tracking_uri="http://tracking:5000")
    assert resolve_tracking_uri(cfg, tmp_path) == "http://tracking:5000"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:////elsewhere/m.db")
    assert resolve_tracking_uri(cfg, tmp_path) == "sqlite:////elsewhere/m.db"


def test_unreachable_store_raises_tracking_error(tmp_path, monkeypatch):
    """Check that an unreachable server fails fast with exit 5, the URI, the fix, no password."""
    uri = f"http://alice:s3cret@127.0.0.1:{_free_port()}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    with pytest.raises(TrackingError) as info:
        start_run(_cfg(), "train", project_dir=tmp_path)
    message = str(info.value)
    assert info.value.exit_code == 5
    assert f"http://alice:***@127.0.0.1:{uri.rsplit(':', 1)[1]}" in message
    assert "s3cret" not in message
    assert "mlflow.on_unreachable: local" in message
    assert not (tmp_path / "mlflow.db").exists()


def test_missing_sqlite_folder_is_unreachable(tmp_path, monkeypatch):
    """Check that a SQLite store in a folder that does not exist names that folder."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/nope/mlflow.db")
    with pytest.raises(TrackingError, match=r"folder '.*/nope' does not exist"):
        start_run(_cfg(), "train", project_dir=tmp_path)


def test_unreachable_store_falls_back_to_local(tmp_path, monkeypatch, empty_db):
    """Check that on_unreachable: local logs to <project>/mlflow.db and says so in a note."""
    shutil.copy(empty_db, tmp_path / "mlflow.db")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://127.0.0.1:{_free_port()}")
    with start_run(_cfg(on_unreachable="local"), "train", project_dir=tmp_path) as run:
        run.log_metrics({"x": 1.0})
    assert run.store.uri == f"sqlite:///{tmp_path}/mlflow.db"
    assert "is unreachable" in run.note and "Logged to the local store" in run.note
    got = run.client.get_run(run.run_id)
    assert got.data.metrics == {"x": 1.0}
    assert got.data.tags["tracking.fallback"] == run.note
    # artifacts live beside the database, not in the current folder
    assert run.client.get_experiment(got.info.experiment_id).artifact_location == (
        (tmp_path / "mlruns").as_uri()
    )


# -- params, fingerprints, runs ----------------------------------------------------------------


def test_flatten_params_formats_and_redacts():
    """Check that configs flatten to strings: durations, lists, id counts, redacted emails."""
    flat = flatten_params(_cfg())
    assert flat["label.observation_window"] == "7d"
    assert flat["label.horizon"] == "30d"
    assert flat["features.windows"] == '["1d", "3d", "7d"]'
    assert flat["features.session_gap"] == "30m"
    assert flat["data.exclude.user_ids"] == "<2 ids>"
    assert flat["data.exclude.email_domains"] == '["ourco.com"]'
    assert flat["mlflow.registered_model"] == NAME
    assert flat["model.search.time_budget_s"] == "None"  # no limit: the same model anywhere
    nested = {"owner": "ana@example.com", "rules": [{"a": 1}, {"a": timedelta(hours=36)}]}
    assert flatten_params(nested) == {
        "owner": "<redacted>",
        "rules.0.a": "1",
        "rules.1.a": "36h",
    }


def test_data_fingerprint_hashes_bytes_or_parquet_metadata(tmp_path):
    """Check that the hash covers names, sizes and bytes, and big parquet files by metadata."""
    (tmp_path / "a.csv").write_bytes(b"x,y\n1,2\n")
    (tmp_path / "b.csv").write_bytes(b"x,y\n3,4\n")
    expected = hashlib.sha256(b"a.csv\x008\x00x,y\n1,2\nb.csv\x008\x00x,y\n3,4\n").hexdigest()
    for paths in ([tmp_path], [tmp_path / "b.csv", tmp_path / "a.csv"], [f"{tmp_path}/*.csv"]):
        assert data_fingerprint(paths) == {
            "files": 2,
            "bytes": 16,
            "sha256": expected,
            "method": "bytes",
        }
    pq = tmp_path / "big.parquet"
    pd.DataFrame({"v": [1, 2, 3]}).to_parquet(pq)
    first = data_fingerprint([pq], max_hash_bytes=0)
    assert first["method"] == "parquet_metadata"
    assert data_fingerprint([pq], max_hash_bytes=0) == first
    pd.DataFrame({"v": [1, 2, 4]}).to_parquet(pq)
    assert data_fingerprint([pq], max_hash_bytes=0)["sha256"] != first["sha256"]


def test_git_commit_tag(tmp_path):
    """Check that git_commit is HEAD inside a repo and 'unknown' outside one."""
    assert git_commit(tmp_path) == "unknown"
    here = Path(__file__).parent
    head = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, check=True
    )
    assert git_commit(here) == head.stdout.strip()


def test_run_logs_params_metrics_tags_and_tables(store, tmp_path, capsys):
    """Check that a run records params, metrics, tags, PII-free tables, and ends FINISHED."""
    (tmp_path / "events.csv").write_bytes(b"e\n1\n")
    cfg = _cfg()
    with start_run(cfg, "train", project_dir=tmp_path, tags={"step": "test"}) as run:
        logged = run.log_params(cfg)
        logged.update(run.log_params({"extra": {f"k{i}": i for i in range(20)}}))
        run.log_metrics({"test.average_precision": 0.25, "undefined": float("nan")})
        fingerprint = run.log_data_fingerprint(
            "events", [tmp_path / "events.csv"], rows=1, time_range=("2024-01-01", "2024-02-01")
        )
        table = pd.DataFrame({"user_id": ["u1"], "email": ["ana@example.com"], "note": ["x@y.io"]})
        run.log_table(table, "tables/leads.csv")
        run.log_dict({"a": 1}, "summary.json")
        fig, ax = plt.subplots()
        ax.plot([0, 1], [0, 1])
        run.log_figure(fig, "plots/gains.png")
        plt.close(fig)
    got = run.client.get_run(run.run_id)
    assert got.info.status == "FINISHED"
    assert len(logged) > 100  # params span two mlflow batches
    assert all(got.data.params[k] == v for k, v in logged.items())
    assert got.data.params["label.horizon"] == "30d"
    assert got.data.params["data.events.rows"] == "1"
    assert got.data.params["data.events.min_time"] == "2024-01-01"
    assert got.data.params["data.events.sha256"] == fingerprint["sha256"]
    assert got.data.metrics["test.average_precision"] == 0.25
    assert np.isnan(got.data.metrics["undefined"])
    assert got.data.tags["git_commit"] == "unknown"  # tmp_path is no git repo
    assert got.data.tags["step"] == "test"
    assert got.data.tags["data.events.sha256"] == fingerprint["sha256"]
    folder = mlflow.artifacts.download_artifacts(run_id=run.run_id, dst_path=str(tmp_path / "dl"))
    leads = pd.read_csv(Path(folder) / "tables" / "leads.csv")
    assert list(leads.columns) == ["user_id", "note"]
    assert leads["note"].tolist() == ["<redacted>"]
    assert json.loads((Path(folder) / "summary.json").read_text()) == {"a": 1}
    assert (Path(folder) / "plots" / "gains.png").read_bytes()[:4] == b"\x89PNG"
    assert capsys.readouterr().out == ""  # mlflow stays quiet on stdout


def test_run_ends_failed_on_error(store, tmp_path):
    """Check that an exception inside the run block ends the run as FAILED."""
    with pytest.raises(RuntimeError), start_run(_cfg(), "train", project_dir=tmp_path) as run:
        raise RuntimeError("boom")
    assert run.client.get_run(run.run_id).info.status == "FAILED"


# -- the pyfunc, the registry and promotion -------------------------------------------------------


def test_signature_and_pyfunc_input(data):
    """Check that the signature is double for numbers and string for categoricals."""
    model = data["good"]
    schema = model_signature(model).inputs.to_dict()
    assert schema == [
        {"type": "string" if c == "domain_class" else "double", "name": c, "required": True}
        for c in WIDE.columns
    ]
    assert schema[1] == {"type": "double", "name": "n_doc_shared_7d", "required": True}
    X = pd.DataFrame(
        {
            "n_doc_shared_7d": [1, 2],
            "hours_since_last_event": [0.5, np.nan],
            "domain_class": pd.Categorical(["corporate", None], categories=LEVELS),
        }
    )
    out = pyfunc_input(with_spec_columns(X, WIDE), model)
    assert out.dtypes.astype(str).tolist() == ["float64"] * (len(WIDE.columns) - 1) + ["object"]
    assert out["domain_class"].tolist() == ["corporate", None]


def test_metric_value_by_hand():
    """Check the promotion metrics against hand-computed values (neg_log_loss = -log loss)."""
    y, p = [0, 1, 0, 1], [0.2, 0.6, 0.7, 0.9]
    assert metric_value("roc_auc", y, p) == pytest.approx(0.75)  # 3 of 4 pairs ordered
    # precision at each positive: 1/1 at 0.9, 2/3 at 0.6 -> (1 + 2/3) / 2
    assert metric_value("average_precision", y, p) == pytest.approx(5 / 6)
    log_loss = -(np.log(0.8) + np.log(0.6) + np.log(0.3) + np.log(0.9)) / 4
    assert metric_value("neg_log_loss", y, p) == pytest.approx(-log_loss)


def _ap(model: PQLModel, data: dict) -> float:
    p = model.predict_proba(data["X_test"])[:, 1]
    return float(average_precision_score(data["y_test"], p))


def test_champion_promotion(store, tmp_path, data, capfd):
    """Check promotion: no champion -> promoted, worse -> kept, better -> promoted."""
    cfg = _cfg()
    X, y = data["X_test"], data["y_test"]
    ap = {k: _ap(data[k], data) for k in ("good", "worse", "better")}
    assert ap["worse"] < ap["good"] < ap["better"]  # the premise of the test

    with start_run(cfg, "first", project_dir=tmp_path) as run:
        first = publish(run, data["good"], X, y)
    assert (first.promoted, first.version, first.champion_version) == (True, "1", None)
    assert first.new_value == pytest.approx(ap["good"], abs=1e-12)
    assert first.champion_value is None

    with start_run(cfg, "worse", project_dir=tmp_path) as run:
        second = publish(run, data["worse"], X, y)
    assert (second.promoted, second.version, second.champion_version) == (False, "2", "1")
    assert second.new_value == pytest.approx(ap["worse"], abs=1e-12)
    assert second.champion_value == pytest.approx(ap["good"], abs=1e-12)
    got = run.client.get_run(run.run_id).data
    assert got.tags["promotion.decision"] == "kept_champion"
    assert got.metrics["promotion.champion_average_precision"] == pytest.approx(ap["good"])
    assert got.metrics["promotion.new_average_precision"] == pytest.approx(ap["worse"])
    assert run.client.get_model_version_by_alias(NAME, "champion").version == 1

    with start_run(cfg, "better", project_dir=tmp_path) as run:
        third = publish(run, data["better"], X, y)
    assert (third.promoted, third.version, third.champion_version) == (True, "3", "1")
    assert third.champion_value == pytest.approx(ap["good"], abs=1e-12)
    assert run.client.get_model_version_by_alias(NAME, "champion").version == 3
    assert run.client.get_run(run.run_id).data.tags["promotion.decision"] == "promoted"
    out, err = capfd.readouterr()
    assert out == "" and err == ""  # no progress bars, INFO lines or "registered model" chatter


def test_champion_is_scored_on_its_own_columns(store, tmp_path, data):
    """Check that a champion with fewer features is re-scored on its columns of the same rows."""
    X_train, y_train = _frame(500, seed=0)
    narrow = _model(X_train, y_train, rounds=30, spec=NARROW)
    X, y = data["X_test"], data["y_test"]
    with start_run(_cfg(), "narrow", project_dir=tmp_path) as run:
        publish(run, narrow, X.drop(columns=RECENCY), y)
    with start_run(_cfg(), "wide", project_dir=tmp_path) as run:
        decision = publish(run, data["better"], X, y)
    p_narrow = narrow.predict_proba(X.drop(columns=RECENCY))[:, 1]
    expected = average_precision_score(y, p_narrow)
    assert decision.champion_version == "1"
    assert decision.champion_value == pytest.approx(expected, abs=1e-12)
    assert decision.promoted == (decision.new_value > expected)


@pytest.mark.slow  # a fresh interpreter imports mlflow and lightgbm: ~10 s on 2 busy cores
def test_champion_loads_in_fresh_process(store, tmp_path, data):
    """Check that models:/<name>@champion scores identically in a fresh Python process."""
    X = data["X_test"]
    with start_run(_cfg(), "train", project_dir=tmp_path) as run:
        decision = publish(run, data["better"], X, data["y_test"])
    assert decision.promoted
    X.to_parquet(tmp_path / "X.parquet")
    script = textwrap.dedent(
        f"""
        import mlflow, numpy as np, pandas as pd
        from propensity.tracking import load_model, pyfunc_input
        X = pd.read_parquet({str(tmp_path / "X.parquet")!r})
        loaded = load_model("models:/{NAME}@champion")
        pyfunc = mlflow.pyfunc.load_model("models:/{NAME}@champion")
        out = pyfunc.predict(pyfunc_input(X, loaded.pqlmodel))
        np.save({str(tmp_path / "pyfunc.npy")!r}, out["probability"].to_numpy())
        np.save({str(tmp_path / "direct.npy")!r}, loaded.pqlmodel.predict_proba(X)[:, 1])
        print(loaded.name, loaded.version, loaded.run_id, out["is_pql"].dtype)
        """
    )
    env = {**os.environ, "MLFLOW_TRACKING_URI": store}
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [NAME, "1", run.run_id, "bool"]
    expected = data["better"].predict_proba(X)[:, 1]
    np.testing.assert_allclose(np.load(tmp_path / "pyfunc.npy"), expected, rtol=0, atol=1e-12)
    np.testing.assert_allclose(np.load(tmp_path / "direct.npy"), expected, rtol=0, atol=1e-12)
    assert "WARNING" not in done.stderr, done.stderr


def test_load_by_version_and_run(store, tmp_path, data, monkeypatch):
    """Check that models:/<name>/<version> and runs:/<id>/model load the same model."""
    X = data["X_test"]
    with start_run(_cfg(), "train", project_dir=tmp_path) as run:
        publish(run, data["good"], X, data["y_test"])
    expected = data["good"].predict_proba(X)
    # the store is named by the config alone, and mlflow's globals point somewhere else
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path}/other.db")
    mlflow.set_registry_uri(f"sqlite:///{tmp_path}/other.db")
    monkeypatch.delenv("MLFLOW_TRACKING_URI")  # mlflow's setters export these; undo that
    monkeypatch.delenv("MLFLOW_REGISTRY_URI")
    cfg = MlflowConfig(tracking_uri=store)
    by_version = load_model(f"models:/{NAME}/1", cfg)
    assert (by_version.name, by_version.version, by_version.run_id) == (NAME, "1", run.run_id)
    by_run = load_model(f"runs:/{run.run_id}/model", cfg)
    assert (by_run.name, by_run.version, by_run.run_id) == (None, None, run.run_id)
    for loaded in (by_version, by_run):
        np.testing.assert_array_equal(loaded.pqlmodel.predict_proba(X), expected)


def test_load_local_folder_needs_no_store(tmp_path, monkeypatch, data):
    """Check that a PQLModel.save folder loads with the tracking store unreachable."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://127.0.0.1:{_free_port()}")
    folder = data["good"].save(tmp_path / "model")
    loaded = load_model(folder)
    assert (loaded.name, loaded.version, loaded.run_id) == (None, None, None)
    X = data["X_test"]
    np.testing.assert_array_equal(loaded.pqlmodel.predict_proba(X), data["good"].predict_proba(X))


def test_missing_store_is_a_model_error(tmp_path, monkeypatch):
    """Check that a registry URI with no local store yet raises ModelError and creates none."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/mlflow.db")
    with pytest.raises(ModelError, match="there is no tracking store at"):
        load_model(f"models:/{NAME}@champion")
    assert not (tmp_path / "mlflow.db").exists()


def test_missing_model_names_what_exists(store, tmp_path, data):
    """Check that asking for a missing model raises ModelError naming what does exist."""
    with start_run(_cfg(), "train", project_dir=tmp_path) as run:
        version = run.register_model(run.log_model(data["good"]))  # registered, not promoted
    assert version == "1"
    with pytest.raises(ModelError, match=rf"model '{NAME}' has versions 1 and aliases none"):
        load_model(f"models:/{NAME}@champion")
    with pytest.raises(ModelError, match=rf"model '{NAME}' has versions 1 and aliases none"):
        load_model(f"models:/{NAME}/7")
    with pytest.raises(ModelError, match=rf"no registered model 'other' .*: {NAME}\)"):
        load_model("models:/other@champion")
    with pytest.raises(ModelError) as info:
        load_model("models:/other@champion")
    assert info.value.exit_code == 3


@pytest.mark.parametrize(
    ("source", "match"),
    [
        ("s3://bucket/model", "only models:/<name>@<alias>"),
        ("models:/just-a-name", "expected one of models:/<name>@<alias>"),
        ("no/such/folder", "no such model folder"),
    ],
)
def test_load_model_rejects_other_sources(store, source, match):
    """Check that only the registry, run and local-folder forms are loaded."""
    with pytest.raises(ModelError, match=match):
        load_model(source)


def test_failed_registration_leaves_no_version(store, tmp_path, data, monkeypatch):
    """Check that a registration failing after the version exists deletes the version again."""

    def refuse(*args, **kwargs):
        raise mlflow.exceptions.MlflowException("store refused the tag")

    monkeypatch.setattr(mlflow.MlflowClient, "set_logged_model_tags", refuse)
    with start_run(_cfg(), "train", project_dir=tmp_path) as run:
        logged = run.log_model(data["good"])
        with pytest.raises(TrackingError, match="store refused the tag.*nothing was registered"):
            run.register_model(logged)
    assert run.client.search_model_versions(f"name = '{NAME}'") == []
    assert run.client.search_registered_models() == []


def test_runs_are_named_and_carry_their_config(store, tmp_path):
    """Check the run name (project, task, UTC time) and that the logged config reads back."""
    from propensity.tracking import run_config

    cfg = config_from_dict(
        {
            "project": "acme",
            "data": {"events": "e.parquet", "exclude": {"user_ids": ["u1"]}},
            "label": {"observation_window": "36h", "extra_cutoffs": ["1d"]},
            "features": {"milestones": [{"first": "a", "then": "b", "within": "2d"}]},
            "mlflow": {"registered_model": NAME, "experiment": "exp"},
        }
    )
    with start_run(cfg, "train", project_dir=tmp_path) as run:
        pass
    got = run.client.get_run(run.run_id)
    assert re.fullmatch(r"acme-train-\d{8}-\d{6}", got.info.run_name)
    assert got.data.tags["task"] == "train"
    back = run_config(run.run_id)
    assert back.data.exclude.user_ids == ()  # ids of people are never logged
    expected = cfg.model_copy(
        update={"data": cfg.data.model_copy(update={"exclude": back.data.exclude})}
    )
    assert back == expected


def test_run_without_a_logged_config_names_the_fix(store, tmp_path):
    """Check that reading the config of a run that has none says to pass --config."""
    from propensity.errors import ModelError
    from propensity.tracking import run_config

    client = mlflow.MlflowClient(tracking_uri=store)
    experiment = client.create_experiment("old")
    old = client.create_run(experiment)
    with pytest.raises(ModelError, match="has no logged config .* Pass --config"):
        run_config(old.info.run_id)


def test_a_weak_model_is_never_promoted(store, tmp_path, data):
    """Check that a weak model is registered but not champion, even with no champion yet."""
    X, y = data["X_test"], data["y_test"]
    weak = "ROC AUC 0.530 [95% 0.470, 0.590] on 300 test users, 40 paid: includes chance"
    with start_run(_cfg(), "weak", project_dir=tmp_path) as run:
        decision = publish(run, data["better"], X, y, weak)
    assert (decision.promoted, decision.version, decision.weakness) == (False, "1", weak)
    assert decision.reason == f"not promoted: {weak}"
    tags = run.client.get_run(run.run_id).data.tags
    assert tags["promotion.decision"] == "kept_champion"
    assert tags["promotion.weakness"] == weak
    with pytest.raises(mlflow.exceptions.MlflowException):
        run.client.get_model_version_by_alias(NAME, "champion")
    assert load_model(f"models:/{NAME}/1").pqlmodel.metadata["weakness"] == weak
