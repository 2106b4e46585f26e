"""Tests for propensity.model.bundle: column checks, encoding and a pickle-free round trip."""

from __future__ import annotations

import json

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest
from spec_fixtures import model_spec, spec_fields, with_spec_columns

from propensity.errors import ModelError
from propensity.model.boost import Columns
from propensity.model.bundle import PQLModel, align_features, feature_matrix
from propensity.model.calibrate import Calibrator

LEVELS = ["free_mail", "corporate", "enterprise"]
SPEC = model_spec(("doc_shared",), families=("counts", "timing", "fit"))


def _frame(n: int = 400, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "user_id": [f"u{i}" for i in range(n)],
            "cutoff_at": pd.Timestamp("2024-01-01"),
            "n_doc_shared_7d": rng.poisson(2, n).astype(float),
            "hours_to_first_doc_shared": np.where(rng.random(n) < 0.3, np.nan, rng.random(n) * 50),
            "domain_class": pd.Categorical(rng.choice(LEVELS, n), categories=LEVELS),
        }
    )
    return with_spec_columns(frame, SPEC)


@pytest.fixture(scope="module")
def model() -> PQLModel:
    frame = _frame()
    cols = list(SPEC.columns)
    y = (frame["n_doc_shared_7d"] + (frame["domain_class"] == "enterprise") * 2 > 3).astype(int)
    params = {
        "objective": "binary",
        "verbose": -1,
        "seed": 0,
        "deterministic": True,
        "force_row_wise": True,
        "num_threads": 1,
        "min_data_in_leaf": 5,
    }
    booster = lgb.train(params, lgb.Dataset(frame[cols], y), num_boost_round=15)
    calibrator = Calibrator(method="isotonic").fit(booster.predict(frame[cols]), y)
    return PQLModel(
        booster=booster,
        calibrator=calibrator,
        threshold=0.5,
        categorical={"domain_class": LEVELS},
        **spec_fields(SPEC),
        metadata={"metrics": {"auc": np.float64(0.9)}, "when": pd.Timestamp("2024-02-01")},
    )


def test_save_load_round_trip_predicts_identically(model, tmp_path):
    """Check that a saved and reloaded bundle gives the same probabilities to 1e-12."""
    frame = _frame(seed=1)
    path = model.save(tmp_path / "model")
    assert sorted(p.name for p in path.iterdir()) == [
        "booster.txt",
        "bundle.json",
        "calibrator.json",
    ]
    back = PQLModel.load(path)
    assert np.max(np.abs(back.predict_proba(frame) - model.predict_proba(frame))) < 1e-12
    assert back.feature_columns == model.feature_columns
    assert back.categorical == model.categorical
    assert back.feature_spec_hash == SPEC.hash and back.threshold == 0.5
    assert back.metadata == {"metrics": {"auc": 0.9}, "when": "2024-02-01 00:00:00"}


def test_save_overwrites_without_leftovers(model, tmp_path):
    """Check that saving twice to one path leaves exactly that folder and no temp folders."""
    model.save(tmp_path / "model")
    model.save(tmp_path / "model")
    assert [p.name for p in tmp_path.iterdir()] == ["model"]


def test_predict_gives_probability_and_flag(model):
    """Check that predict returns calibrated P(y=1) and is_pql = probability >= threshold."""
    frame = _frame(seed=2)
    out = model.predict(frame)
    assert list(out.columns) == ["probability", "is_pql"]
    assert np.array_equal(out["probability"], model.predict_proba(frame)[:, 1])
    assert np.array_equal(out["is_pql"], out["probability"] >= 0.5)
    proba = model.predict_proba(frame)
    assert np.allclose(proba.sum(axis=1), 1.0)


def test_prepare_reorders_casts_and_drops_unseen_levels(model):
    """Check that prepare orders columns, makes ints float, and maps unknown levels to missing."""
    frame = _frame(n=3)[list(SPEC.columns)[::-1]]
    frame["n_doc_shared_7d"] = [1, 2, 3]
    frame["domain_class"] = ["corporate", "education", None]  # plain strings, one unseen level
    prepared = model.prepare(frame)
    assert list(prepared.columns) == model.feature_columns
    assert prepared["n_doc_shared_7d"].dtype == "float64"
    assert list(prepared["domain_class"].cat.categories) == LEVELS
    assert prepared["domain_class"].isna().tolist() == [False, True, True]


def test_align_features_rows_equal_aligning_the_taken_rows():
    """Check that align_features(rows=) equals aligning frame.iloc[rows], nullable ints too."""
    frame = pd.DataFrame(
        {
            "user_id": ["a", "b", "c", "d"],
            "x": [1.5, np.nan, 3.0, 4.0],
            "n": pd.array([1, None, 3, 4], dtype="Int64"),
            "k": [2, 1, 0, 5],
            "seg": pd.Categorical(["p", None, "q", "p"]),
        },
        index=[10, 11, 12, 13],
    )
    columns, levels, rows = ["k", "x", "n", "seg"], {"seg": ["q", "p"]}, np.array([3, 1, 0])
    taken = align_features(frame, columns, levels, rows=rows)
    pd.testing.assert_frame_equal(taken, align_features(frame.iloc[rows], columns, levels))
    assert taken["n"].tolist()[1] != taken["n"].tolist()[1]  # NA became NaN
    with pytest.raises(ModelError, match="'user_id' must be numeric"):
        align_features(frame, ["user_id"], {}, rows=rows)


def test_align_features_rows_across_chunks_of_a_row_major_frame():
    """Check that rows taken chunk by chunk from strided columns equal the rows' own values."""
    rng = np.random.default_rng(0)
    matrix = rng.random((20_000, 3))  # row-major: the frame's columns are strided views
    matrix[rng.random(matrix.shape) < 0.1] = np.nan
    frame = pd.DataFrame(matrix, columns=["a", "b", "c"], copy=False)
    rows = np.sort(rng.choice(20_000, 17_000, replace=False))
    taken = align_features(frame, ["c", "a", "b"], {}, rows=rows)
    np.testing.assert_array_equal(taken.to_numpy(), matrix[rows][:, [2, 0, 1]])
    assert taken.index.tolist() == rows.tolist()


@pytest.mark.parametrize("layout", ["row_major", "columns"])
def test_feature_matrix_rows_runs_and_scattered_rows_equal_the_rows_values(layout):
    """Check that consecutive rows (sliced) and scattered rows (indexed) both give the rows'
    own values, across chunks, at an offset, with a gap, and a single row."""
    rng = np.random.default_rng(1)
    matrix = rng.random((30_000, 3))
    matrix[rng.random(matrix.shape) < 0.1] = np.nan
    frame = pd.DataFrame(matrix if layout == "row_major" else np.asfortranarray(matrix))
    frame.columns = ["a", "b", "c"]
    frame["n"] = pd.array(rng.integers(0, 9, 30_000), dtype="Int64")  # a converted column
    run = np.arange(1_234, 28_000)
    gap = np.r_[np.arange(5, 9_000), np.arange(9_001, 20_000)]
    for rows in (run, gap, np.array([29_999]), np.arange(0, 30_000)):
        got = feature_matrix(frame, ["c", "n", "a"], {}, rows=rows)
        want = np.column_stack([matrix[rows, 2], frame["n"].to_numpy(float)[rows], matrix[rows, 0]])
        np.testing.assert_array_equal(got, want)
        assert got.flags.f_contiguous


def test_feature_matrix_codes_of_categorical_columns_are_align_features_codes():
    """Check that a pandas categorical column's codes, mapped per category, equal the codes
    align_features gives each row: missing, unseen, unused, non-string and ordered categories."""
    rng = np.random.default_rng(2)
    n = 3_000
    frame = pd.DataFrame(
        {
            "a": pd.Categorical(rng.choice(["x", "y", "z", None], n)),
            "b": pd.Categorical(rng.choice([1, 2, 3], n)),  # never equal to the string levels
            "c": pd.Categorical(rng.choice(["x", "q"], n), categories=["q", "x", "unused"]),
            "d": rng.choice(["x", "y", None], n),  # plain strings: the row-by-row path
            "e": pd.Categorical([np.nan] * n),
            "f": pd.Categorical(rng.choice(["1", "2"], n), ordered=True),
        }
    )
    levels = {"a": ["z", "x"], "b": ["1", "3"], "c": ["x", "unused", "q"], "d": ["y", "x"]}
    levels |= {"e": ["x"], "f": ["2", "1"]}
    columns = list(frame.columns)
    for rows in (None, np.arange(7, 2_900), rng.permutation(n)[:400]):
        got = feature_matrix(frame, columns, levels, rows=rows)
        aligned = align_features(frame, columns, levels, rows=rows)
        for j, col in enumerate(columns):
            codes = aligned[col].cat.codes.to_numpy()
            np.testing.assert_array_equal(got[:, j], np.where(codes < 0, np.nan, codes))


def test_feature_matrix_fits_the_booster_of_the_aligned_frame():
    """Check that a fit on feature_matrix through Columns.dataset is the fit on align_features's
    frame: the same booster text (levels included) and the same scores of a frame."""
    rng = np.random.default_rng(3)
    n = 3_000
    frame = pd.DataFrame(
        {
            "x": np.where(rng.random(n) < 0.2, np.nan, rng.random(n)),
            "n": pd.array(np.where(rng.random(n) < 0.1, None, rng.poisson(3, n)), dtype="Int64"),
            "seg": rng.choice(["p", "q", "r", "unseen", None], n),  # strings, None, a new level
            "plan": pd.Categorical(rng.choice(["a", "b"], n)),
        }
    )
    columns, levels = ["seg", "x", "n", "plan"], {"seg": ["r", "p", "q"], "plan": ["b", "a"]}
    y = (rng.random(n) < 0.3 + 0.3 * (frame["seg"] == "p")).astype(int).to_numpy()
    rows = np.sort(rng.choice(n, 2_500, replace=False))
    matrix = feature_matrix(frame, columns, levels, rows=rows)
    aligned = align_features(frame, columns, levels, rows=rows)
    params = {"objective": "binary", "num_leaves": 7, "min_data_in_leaf": 20, "verbose": -1}
    params |= {"deterministic": True, "num_threads": 1, "seed": 0}
    ours = lgb.train(params, Columns(columns, levels).dataset(matrix, y[rows]), 15)
    theirs = lgb.train(params, lgb.Dataset(aligned, y[rows]), 15)
    assert ours.model_to_string() == theirs.model_to_string()
    np.testing.assert_array_equal(ours.predict(matrix), theirs.predict(aligned))


def test_check_columns_names_missing_and_extra(model):
    """Check that a mismatched table raises ModelError naming each missing and extra column."""
    frame = _frame(n=2).drop(columns=["n_doc_shared_7d"]).assign(n_login_7d=1.0, label=0)
    with pytest.raises(ModelError, match=r"1 missing: n_doc_shared_7d; 1 unexpected: n_login_7d"):
        model.check_columns(frame)
    model.check_columns(_frame(n=2).assign(label=1))  # key columns are allowed


def test_non_numeric_feature_is_refused(model):
    """Check that text in a numeric feature raises ModelError naming the column."""
    frame = _frame(n=2).assign(n_doc_shared_7d=["a", "b"])
    with pytest.raises(ModelError, match="'n_doc_shared_7d' must be numeric"):
        model.predict(frame)


def test_load_errors(tmp_path, model):
    """Check that a missing bundle and a wrong format version raise ModelError with the fix."""
    with pytest.raises(ModelError, match="No model bundle at .*missing booster.txt"):
        PQLModel.load(tmp_path / "nowhere")
    path = model.save(tmp_path / "m")
    meta = json.loads((path / "bundle.json").read_text())
    (path / "bundle.json").write_text(json.dumps({**meta, "format_version": 99}))
    with pytest.raises(ModelError, match="format version 99"):
        PQLModel.load(path)


@pytest.mark.parametrize(
    ("edit", "match"),
    [
        (
            lambda m: m.update(feature_spec_hash="0" * 16),
            r"recorded feature-spec hash 0{16} does not match .* from '.*bundle.json'",
        ),
        (
            lambda m: m["feature_spec"]["spec"].update(session_gap_s=1),
            r"Feature spec hash must match its content .* in '.*bundle.json'; .*re-train",
        ),
        (
            lambda m: m.update(feature_spec={"version": 1}),
            r"must be the JSON written by FeatureSpec.to_json\(\)\. Got something else in "
            r"'.*bundle.json'",
        ),
    ],
)
def test_load_checks_the_spec_hash(tmp_path, model, edit, match):
    """Check that load refuses a bundle whose spec does not match its hash, naming the file."""
    path = model.save(tmp_path / "m")
    meta = json.loads((path / "bundle.json").read_text())
    edit(meta)
    (path / "bundle.json").write_text(json.dumps(meta))
    with pytest.raises(ModelError, match=match) as caught:
        PQLModel.load(path)
    assert caught.value.exit_code == 3
