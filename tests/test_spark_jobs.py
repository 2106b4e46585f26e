"""Tests for propensity.engines.spark: the jobs handed the Spark engine equal DuckDB's."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from propensity.config import CrmConfig, config_from_dict
from propensity.errors import ConfigError
from propensity.io import load_data
from propensity.io.sinks import open_sink
from propensity.model.train import fit_model
from propensity.pipeline.backtest import backtest_job
from propensity.pipeline.outcomes import outcomes_job
from propensity.pipeline.prepare import prepare
from propensity.pipeline.score import check_score_options, score_job
from propensity.simulate import simulate

pytest.importorskip("pyspark")

from spark_fixtures import SPARK_MARKS, assert_same_prepared, spark  # noqa: E402, F401  (a fixture)

from propensity.engines.spark import open_spark  # noqa: E402
from propensity.pipeline.train import _scoring_like_rows  # noqa: E402
from propensity.tracking import start_run  # noqa: E402

pytestmark = SPARK_MARKS

AS_OF = datetime(2025, 4, 1)


def _config(root: Path, data: dict | None = None) -> object:
    canon = root / "canon"
    return config_from_dict(
        {
            "seed": 3,
            "output_dir": str(root / "outputs"),
            "data": data
            or {
                "events": str(canon / "events.parquet"),
                "users": str(canon / "users.parquet"),
                "conversions": str(canon / "conversions.parquet"),
            },
            "label": {"extra_cutoffs": ["3d"]},
            "features": {
                "milestones": [{"first": "doc_shared", "then": "invite_accepted", "within": "48h"}]
            },
            "model": {
                "n_estimators": 60,
                "early_stopping_rounds": 10,
                "n_jobs": 1,
                "min_positives": 10,
                "min_negatives": 10,
            },  # fmt: skip
            "mlflow": {"registered_model": "sparkjobs"},
            "spark": {"master": "local[2]"},
        }
    )


@pytest.fixture(scope="module")
def world(spark, tmp_path_factory):  # noqa: F811 - the imported fixture
    """2000 simulated users as canonical parquet, prepared by both engines."""
    root = tmp_path_factory.mktemp("spark_jobs")
    simulate(root / "sim", users=2000, seed=5)
    loaded = load_data(
        config_from_dict(
            {
                "data": {
                    "events": str(root / "sim" / "events"),
                    "users": str(root / "sim" / "users.parquet"),
                    "conversions": str(root / "sim" / "conversions.parquet"),
                }
            }
        ).data
    )
    (root / "canon").mkdir()
    for name in ("events", "users", "conversions"):
        loaded.con.execute(f"COPY {name} TO '{root / 'canon' / name}.parquet' (FORMAT parquet)")
    cfg = _config(root)
    duck = prepare(cfg)
    sparked = prepare(cfg, open_spark(cfg, spark))
    return {"root": root, "cfg": cfg, "duck": duck, "spark": sparked}


def test_prepare_spark_equals_duckdb(world):
    """Check labels, split, spec, every feature value and the data report against DuckDB."""
    duck, got = world["duck"], world["spark"]
    assert_same_prepared(got, duck)
    assert any(c.startswith("tr_") for c in got.spec.columns)  # transitions ranked by label
    rows = {t.name: t.rows_kept for t in got.engine.summary.tables}
    assert rows == {t.name: t.rows_kept for t in duck.engine.summary.tables}
    assert got.engine.summary.last_event == duck.engine.summary.last_event
    assert got.engine.summary.event_types == duck.engine.summary.event_types


def _fit(world, prepared):
    spec = prepared.spec
    return fit_model(
        prepared.frame,
        list(spec.columns),
        {k: list(v) for k, v in spec.categorical.items()},
        world["cfg"],
        json.loads(spec.to_json()),
        spec.hash,
        report_rows=prepared.main_rows,
    )


@pytest.fixture(scope="module")
def duck_model(world):
    """The model the DuckDB engine's feature table trains."""
    return _fit(world, world["duck"])


def test_same_model_from_either_engine(world, duck_model):
    """Check that fit_model on the Spark feature table gives the DuckDB model's probabilities."""
    want = duck_model.test_frame["p"].to_numpy()
    got = _fit(world, world["spark"]).test_frame["p"].to_numpy()
    assert len(want) > 50
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)


def test_scoring_like_rows_spark_equal_duckdb(world):
    """Check the drift-reference population's features against the DuckDB ones."""
    from propensity.features import compute_features
    from propensity.labels import scoring_population

    duck = world["duck"]
    got = _scoring_like_rows(world["cfg"], world["spark"])
    as_of = pd.Timestamp(duck.test_rows()["cutoff_at"].max()).to_pydatetime()
    population = scoring_population(duck.engine.con, world["cfg"].label, as_of)
    want = compute_features(duck.engine.con, population, duck.spec).frame
    assert len(got) == len(want) > 20
    pd.testing.assert_frame_equal(got, want, check_exact=False, rtol=0, atol=1e-9)


# the fixture's small world makes a model the promotion gate calls weak; parity is what counts
@pytest.mark.filterwarnings("ignore:WEAK MODEL:propensity.errors.PropensityWarning")
def test_spark_score_job_equals_duckdb_score_job(world, duck_model, tmp_path, monkeypatch):
    """Check the partitioned parquet's scores against the DuckDB score job's, user by user."""
    db = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", db)
    monkeypatch.setenv("MLFLOW_REGISTRY_URI", db)
    cfg = world["cfg"]
    with start_run(cfg, "train", project_dir=tmp_path) as run:
        version = run.register_model(run.log_model(duck_model.model))
    uri = f"models:/sparkjobs/{version}"

    want = score_job(cfg, AS_OF, tmp_path / "duck.parquet", model_uri=uri).scores
    out = tmp_path / "spark_scores"
    cfg = cfg.model_copy(update={"engine": "spark"})
    summary = score_job(cfg, AS_OF, out, model_uri=uri, engine=world["spark"].engine).summary
    parts = [p.name for p in out.iterdir() if p.is_dir()]
    assert parts == ["as_of=2025-04-01 00%3A00%3A00"]
    got = pd.read_parquet(out / parts[0]).sort_values(["score", "user_id"], ascending=[False, True])
    want = want.sort_values(["score", "user_id"], ascending=[False, True])
    assert got["user_id"].tolist() == want["user_id"].tolist() and len(got) > 50
    np.testing.assert_allclose(got["score"], want["score"], rtol=0, atol=1e-9)
    assert got["is_pql"].tolist() == want["is_pql"].tolist() and want["is_pql"].any()
    assert got["holdout"].tolist() == want["holdout"].tolist()
    assert summary["users_scored"] == len(want)
    assert summary["pqls"] == int(want["is_pql"].sum())
    assert summary["as_of"] == "2025-04-01T00:00:00"


# the fixture's small world makes a model the promotion gate calls weak; parity is what counts
@pytest.mark.filterwarnings("ignore:WEAK MODEL:propensity.errors.PropensityWarning")
def test_backtest_crm_and_outcomes_spark_equal_duckdb(world, duck_model, tmp_path, monkeypatch):
    """Check that a backtest with --crm, then a daily score --crm (in place on Spark), give
    DuckDB's stacked scores and CRM tables, and that outcomes then measures the same runs,
    segments and lift on either engine."""
    db = f"sqlite:///{tmp_path / 'mlflow.db'}"  # Spark's UDF loads a registered model
    monkeypatch.setenv("MLFLOW_TRACKING_URI", db)
    monkeypatch.setenv("MLFLOW_REGISTRY_URI", db)
    with start_run(world["cfg"], "train", project_dir=tmp_path) as run:
        uri = f"models:/sparkjobs/{run.register_model(run.log_model(duck_model.model))}"
    rule = {"name": "b2b", "route": "sales",
            "when": [{"column": "domain_class", "in": ["business", "enterprise"]}]}  # fmt: skip
    sinks, results = {}, {}
    for engine in ("duckdb", "spark"):
        crm = CrmConfig.model_validate(
            {"routing": {"rules": [rule]}, "lifecycle": {"min_pql_time": "3d"},
             "sink": {"path": str(tmp_path / f"{engine}.db")}}
        )  # fmt: skip
        scoring = world["cfg"].scoring.model_copy(update={"holdout_fraction": 0.2})
        cfg = world["cfg"].model_copy(update={"engine": engine, "crm": crm, "scoring": scoring})
        out = tmp_path / f"{engine}_bt.parquet"
        check_score_options(cfg, out, None, False, False, backtest=True)  # one file on both
        done = backtest_job(cfg, "2025-03-01", "2025-03-31", timedelta(days=3), out, uri,
                            crm=True)  # fmt: skip
        daily = tmp_path / ("spark_scores" if engine == "spark" else "duck.parquet")
        summary = score_job(cfg, AS_OF, daily, model_uri=uri, crm=True).summary
        sinks[engine] = open_sink(cfg.crm.sink)
        found = outcomes_job(cfg, tmp_path / f"{engine}_outcomes", uri, log=False).outcomes
        results[engine] = (done, summary, found)
    (duck, duck_day, want), (got, got_day, found) = results["duckdb"], results["spark"]
    assert len(duck.scores) > 500 and duck.scores["is_pql"].any()
    pd.testing.assert_frame_equal(
        got.scores.drop(columns="scored_at"), duck.scores.drop(columns="scored_at"),
        check_exact=False, rtol=0, atol=1e-9,
    )  # fmt: skip
    assert got_day["crm_pqls"] == duck_day["crm_pqls"] > 0
    assert got_day["crm_history_rows"] == duck_day["crm_history_rows"]
    try:
        for read in ("read_current", "read_history"):
            a, b = (getattr(sinks[e], read)() for e in ("spark", "duckdb"))
            assert len(b) > 100 and set(b["route"].dropna()) == {"sales", "self_serve"}
            pd.testing.assert_frame_equal(a, b, check_exact=False, rtol=0, atol=1e-9)
    finally:
        for sink in sinks.values():
            sink.close()
    assert len(want.runs) > 5
    pd.testing.assert_frame_equal(found.runs, want.runs, check_exact=False, rtol=0, atol=1e-9)
    pd.testing.assert_frame_equal(found.segments, want.segments)
    assert found.lift["held_out"] > 0 and found.lift["contacted"] > 0
    same = json.dumps(found.lift, sort_keys=True) == json.dumps(want.lift, sort_keys=True)
    assert same and found.alerts == want.alerts  # NaN (too few rows) as NaN


def test_open_spark_refuses_raw_exports(world):
    """Check that a preset, a column mapping or CSV is refused with the fix named."""
    cfg = _config(world["root"], {"events": "x.csv", "users": "u.csv", "preset": "segment",
                                  "format": "csv"})  # fmt: skip
    with pytest.raises(ConfigError, match="preset must be 'canonical'.*Got preset 'segment'"):
        open_spark(cfg)
    cfg = _config(world["root"], {"events": "x.parquet"})
    with pytest.raises(ConfigError, match="data.users must name the users table"):
        open_spark(cfg)
