"""Tests for propensity.model.train: a known logistic truth, determinism and honest refusals."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from propensity.config import Config, config_from_dict
from propensity.errors import DataContractError, InsufficientDataError, PropensityWarning
from propensity.evaluate import expected_calibration_error, ranking_metrics
from propensity.model.split import split_out_of_time
from propensity.model.train import fit_model

FEATURES = ["x0", "x1", "x2", "x3", "segment"]
COEF = np.array([1.2, -0.8, 0.6, 0.0])


def _truth(n: int, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    """Rows over 120 days with P(y=1) = sigmoid(-2.5 + x @ COEF + 1.0 * [segment == c])."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 4))
    segment = rng.choice(["a", "b", "c"], n, p=[0.5, 0.3, 0.2])
    p = 1 / (1 + np.exp(-(-2.5 + x @ COEF + np.where(segment == "c", 1.0, 0.0))))
    days = np.sort(rng.uniform(0, 120, n))
    frame = pd.DataFrame(
        {
            "user_id": [f"s{seed}u{i}" for i in range(n)],
            "cutoff_at": pd.Timestamp("2024-01-01") + pd.to_timedelta(days, unit="D"),
            **{f"x{j}": x[:, j] for j in range(4)},
            "segment": pd.Categorical(segment, categories=["a", "b", "c"]),
            "label": (rng.random(n) < p).astype(int),
        }
    )
    return frame, p


def _cfg(**model) -> Config:
    return config_from_dict(
        {
            "data": {"events": "e.parquet", "users": "u.parquet"},
            "seed": 7,
            "model": {"learning_rate": 0.1, "min_child_samples": 100, "n_jobs": 1, **model},
            "threshold": {"policy": "capacity", "capacity_per_week": 30, "bootstrap": 200},
        }
    )


def _fit(frame, cfg=None):
    return fit_model(frame, FEATURES, ["segment"], cfg or _cfg(), {"v": 1}, "hash1")


@pytest.fixture(scope="module")
def truth_fit():
    frame, p = _truth(20_000, seed=0)
    return frame, p, _fit(frame)


def test_model_approaches_the_known_truth(truth_fit):
    """Check that test AUC is within 0.02 of the true probabilities' AUC and ECE is < 0.02."""
    frame, p, result = truth_fit
    test = result.split.test
    truth_auc = ranking_metrics(frame["label"].iloc[test], p[test])["roc_auc"]
    assert result.metrics["test_calibrated"]["roc_auc"] == pytest.approx(truth_auc, abs=0.02)
    # ECE of a 3k-row test slice is mostly sampling noise (~0.02 even for the truth), so judge
    # calibration on a large fresh sample from the same process
    fresh, _ = _truth(100_000, seed=1)
    p_fresh = result.model.predict_proba(fresh)[:, 1]
    assert expected_calibration_error(fresh["label"], p_fresh) < 0.02


def test_result_contents(truth_fit):
    """Check that the result carries the test frame, metrics before/after and the threshold."""
    frame, _, result = truth_fit
    tf = result.test_frame
    assert list(tf.columns) == ["user_id", "cutoff_at", "label", "p_raw", "p"]
    assert len(tf) == result.split.test.size
    assert tf["user_id"].tolist() == frame["user_id"].iloc[result.split.test].tolist()
    m = result.metrics
    assert set(m["test_raw"]) == {"roc_auc", "average_precision", "log_loss", "brier", "ece"}
    # raw LightGBM on log loss is calibrated already: auto keeps a map only if it beats it
    assert m["calibration"]["method"] in ("identity", "sigmoid", "isotonic")
    # ~300 calibration positives: too few alone, so the train slice's out-of-fold scores join
    assert m["calibration"]["cross_fitted"] is True
    assert m["calibration"]["rows"] == result.split.train.size + result.split.calibration.size
    assert "isotonic" in m["calibration"]["held_out_log_loss"]  # >= 500 positives to fit on
    assert m["test_slice"] == {"rows": len(tf), "positives": int(tf["label"].sum())}
    assert m["threshold"]["per_week"] == pytest.approx(30, abs=1)
    assert result.model.threshold == m["threshold"]["threshold"]
    assert result.model.booster.num_trees() == result.best_iteration
    assert result.model.metadata["metrics"]["threshold.per_week"] == m["threshold"]["per_week"]
    assert result.params["seed"] == 7 and result.params["deterministic"] is True
    json.dumps(m)  # metrics are plain JSON-able values, ready for metrics.json


def test_two_fits_are_identical():
    """Check that the same frame and config give the same trees, threshold and metrics."""
    frame, _ = _truth(4_000, seed=3)
    cfg = _cfg(min_positives=20, min_child_samples=20)
    a, b = _fit(frame, cfg), _fit(frame, cfg)
    assert a.model.booster.model_to_string() == b.model.booster.model_to_string()
    assert a.model.calibrator.to_dict() == b.model.calibrator.to_dict()
    assert a.metrics == b.metrics
    pd.testing.assert_frame_equal(a.test_frame, b.test_frame)


def test_search_is_seeded_and_keeps_the_best():
    """Check that a 2-trial search records 3 fits and refits the best at the configured rate."""
    frame, _ = _truth(4_000, seed=4)
    cfg = _cfg(min_positives=20, min_child_samples=20, learning_rate=0.05, search={"trials": 2})
    a, b = _fit(frame, cfg), _fit(frame, cfg)
    assert [t["trial"] for t in a.search] == [0, 1, 2]
    assert a.search == b.search
    best = min(a.search, key=lambda t: t["log_loss"])  # judged on validation log loss
    assert {k: a.params[k] for k in ("num_leaves", "min_data_in_leaf", "lambda_l2")} == {
        k: best[k] for k in ("num_leaves", "min_data_in_leaf", "lambda_l2")
    }
    assert a.params["learning_rate"] == 0.05  # trials ran at 0.1; the refit at the configured rate
    assert a.model.booster.num_trees() == a.best_iteration


def test_a_search_cut_short_by_its_time_budget_warns_and_says_so():
    """Check that the search has no time limit by default, and that a budget that stops it warns
    and is recorded (a search cut short by time depends on machine speed)."""
    frame, _ = _truth(4_000, seed=4)
    cfg = _cfg(min_positives=20, min_child_samples=20, search={"trials": 2})
    assert cfg.model.search.time_budget_s is None
    whole = _fit(frame, cfg)
    assert whole.metrics["search"] == {"trials_planned": 3, "trials_run": 3}
    tight = _cfg(
        min_positives=20, min_child_samples=20, search={"trials": 2, "time_budget_s": 1e-9}
    )
    with pytest.warns(PropensityWarning, match=r"time budget .* after 1 of 3 trials"):
        cut = _fit(frame, tight)
    # the config's own settings always run; optuna found the budget spent before its first
    assert cut.metrics["search"] == {"trials_planned": 3, "trials_run": 1}


def test_search_prunes_hopeless_trials_repeatably(monkeypatch):
    """Check that trials worse than the finished trials' median at the same round are pruned,
    recorded as such and never chosen, and that two runs prune and choose the same."""
    import propensity.model.search as search

    # these small fits stop before the 100-round warm-up; a shorter one lets pruning happen
    monkeypatch.setattr(search, "PRUNE_WARMUP_ROUNDS", 30)
    frame, _ = _truth(6_000, seed=6)
    cfg = _cfg(min_positives=20, min_child_samples=20, search={"trials": 12})
    a, b = _fit(frame, cfg), _fit(frame, cfg)
    assert a.search == b.search
    assert a.model.booster.model_to_string() == b.model.booster.model_to_string()
    pruned = [t for t in a.search if t["pruned"]]
    finished = [t for t in a.search if not t["pruned"]]
    assert pruned and len(finished) >= 6  # the config's trial and the first 5 always finish
    assert not any(t["pruned"] for t in a.search[:6])
    for trial in pruned:
        assert trial["average_precision"] is None and trial["best_iteration"] >= 1
        assert np.isfinite(trial["log_loss"])
    best = min(finished, key=lambda t: t["log_loss"])
    assert a.params["num_leaves"] == best["num_leaves"]
    assert a.params["lambda_l2"] == best["lambda_l2"]
    assert a.metrics["search"] == {"trials_planned": 13, "trials_run": 13}


def test_search_runs_only_when_no_setting_is_given():
    """Check that a config without LightGBM settings searches (seeded), and one with them not."""
    from propensity.config import AUTO_SEARCH_TRIALS

    bare = config_from_dict({"data": {"events": "e.parquet", "users": "u.parquet"}})
    assert bare.model.search_trials(train_rows=3_000) == AUTO_SEARCH_TRIALS
    assert _cfg(num_leaves=7).model.search_trials(train_rows=3_000) == 0
    assert _cfg(num_leaves=7, search={"trials": 3}).model.search_trials(train_rows=3_000) == 3
    frame, _ = _truth(3_000, seed=10)
    cfg = config_from_dict(
        {
            "data": {"events": "e.parquet", "users": "u.parquet"},
            "seed": 3,
            "model": {"min_positives": 20, "n_jobs": 1, "learning_rate": 0.2},
            "threshold": {"policy": "top_fraction", "top_fraction": 0.1, "bootstrap": 20},
        }
    )
    a, b = _fit(frame, cfg), _fit(frame, cfg)
    assert len(a.search) == 1 + AUTO_SEARCH_TRIALS
    assert a.search == b.search
    assert a.model.booster.model_to_string() == b.model.booster.model_to_string()
    assert len({t["num_leaves"] for t in a.search}) > 3  # it explored


def test_the_automatic_search_runs_only_up_to_its_row_limit():
    """Check that an unset search.trials searches up to search.auto_max_rows train rows and not
    above, that set trials or no limit search at any size, and that fit_model follows it."""
    from propensity.config import AUTO_SEARCH_MAX_ROWS, AUTO_SEARCH_TRIALS

    bare = config_from_dict({"data": {"events": "e.parquet", "users": "u.parquet"}}).model
    assert bare.search.auto_max_rows == AUTO_SEARCH_MAX_ROWS
    assert bare.search_trials(train_rows=AUTO_SEARCH_MAX_ROWS) == AUTO_SEARCH_TRIALS
    assert bare.search_trials(train_rows=AUTO_SEARCH_MAX_ROWS + 1) == 0
    set_trials = _cfg(search={"trials": 3}).model
    assert set_trials.search_trials(train_rows=10 * AUTO_SEARCH_MAX_ROWS) == 3
    no_limit = config_from_dict(
        {"data": {"events": "e", "users": "u"}, "model": {"search": {"auto_max_rows": None}}}
    ).model
    assert no_limit.search_trials(train_rows=10 * AUTO_SEARCH_MAX_ROWS) == AUTO_SEARCH_TRIALS
    frame, _ = _truth(3_000, seed=10)
    cfg = config_from_dict(
        {
            "data": {"events": "e.parquet", "users": "u.parquet"},
            "model": {"min_positives": 20, "n_jobs": 1, "search": {"auto_max_rows": 1_000}},
            "threshold": {"policy": "top_fraction", "top_fraction": 0.1, "bootstrap": 20},
        }
    )
    result = _fit(frame, cfg)  # ~1,800 train rows: above the limit, the config's settings
    assert result.split.train.size > 1_000
    assert len(result.search) == 1 and result.params["num_leaves"] == cfg.model.num_leaves
    assert result.metrics["search"] == {"trials_planned": 1, "trials_run": 1}


def test_search_trials_are_capped_and_the_refit_uses_every_row(monkeypatch):
    """Check that every trial sees at most ~SEARCH_MAX_ROWS train and validation rows (whole
    users), and that the chosen settings are refit on the whole train slice."""
    import propensity.model.search as search

    monkeypatch.setattr(search, "SEARCH_MAX_ROWS", 400)
    frame, _ = _truth(6_000, seed=5)
    cfg = _cfg(min_positives=20, min_child_samples=20, search={"trials": 2})
    result = _fit(frame, cfg)
    split = result.split
    for trial in result.search:
        assert 300 < trial["train_rows"] < 520 < split.train.size
        assert 300 < trial["validation_rows"] < 520 < split.validation.size
    # the refit saw every train row: its first tree's root counts the bagged share of them all
    root = result.model.booster.dump_model()["tree_info"][0]["tree_structure"]
    bagged = result.params["bagging_fraction"] * split.train.size
    assert root["internal_count"] == pytest.approx(bagged, rel=0.05)


def test_search_samples_whole_users():
    """Check that the search's row sample keeps every cutoff of a kept user and no other."""
    from propensity.model.search import user_sample

    users = np.repeat(np.arange(1_000), 3)
    X, y = pd.DataFrame({"u": users}), np.zeros(users.size)
    Xs, ys = user_sample((X, y), users, 1_500, seed=7)
    counts = Xs["u"].value_counts()
    assert (counts == 3).all() and 400 < counts.size < 600 and ys.size == Xs.shape[0]
    assert user_sample((X, y), users, 1_500, seed=7)[0].equals(Xs)
    assert user_sample((X, y), users, 5_000, seed=7)[0] is X


def test_too_few_positives_names_counts_and_config_key():
    """Check that a small train slice raises InsufficientDataError with found/needed counts."""
    frame, _ = _truth(600, seed=5)
    cfg = _cfg(min_positives=500)
    positives = int(frame["label"].iloc[split_out_of_time(frame, cfg.split).train].sum())
    assert 40 < positives < 120  # about 12% of the ~360 train rows
    with pytest.raises(InsufficientDataError) as info:
        _fit(frame, cfg)
    assert (
        f"the train slice has {positives} positives; at least 500 are needed "
        f"(lower model.min_positives, raise split.train, or load more data)"
    ) in str(info.value)


def test_too_few_in_an_evaluation_slice():
    """Check that a test slice with no positives is refused, naming the slice and the fix."""
    frame, _ = _truth(3_000, seed=6)
    late = frame["cutoff_at"] >= frame["cutoff_at"].quantile(0.8)
    frame.loc[late, "label"] = 0
    with pytest.raises(InsufficientDataError, match=r"the test slice has 0 positives .*split.test"):
        _fit(frame, _cfg(min_positives=20))


def test_missing_columns_and_bad_labels_are_reported_together():
    """Check that a missing feature and a non-0/1 label are both named in one error."""
    frame, _ = _truth(100, seed=7)
    frame = frame.drop(columns=["x3"]).assign(label=2)
    with pytest.raises(DataContractError) as info:
        _fit(frame)
    assert info.value.problems == [
        "the training table lacks column 'x3'.",
        "column 'label' must hold only 0 and 1 (no nulls); found other values.",
    ]


def test_report_rows_limit_every_reported_number():
    """Check that report_rows restricts test metrics and test_frame to the masked rows only."""
    frame, _ = _truth(6_000, seed=3)
    mask = np.zeros(len(frame), dtype=bool)
    mask[::2] = True
    result = fit_model(frame, FEATURES, ["segment"], _cfg(), {"v": 1}, "hash1", report_rows=mask)
    split = split_out_of_time(frame, _cfg().split)
    expected = frame.iloc[split.test[mask[split.test]]]
    assert list(result.test_frame["user_id"]) == list(expected["user_id"])
    auc = ranking_metrics(expected["label"], result.test_frame["p"])["roc_auc"]
    assert result.metrics["test_calibrated"]["roc_auc"] == pytest.approx(auc)


def test_fit_one_validation_scores_are_the_trimmed_boosters():
    """Check that the validation scores fit_one keeps from training are bit for bit the
    trimmed booster's predictions (NaN, zero, unseen and missing categories included)."""
    import lightgbm as lgb

    from propensity.model.boost import Columns, base_params, fit_one
    from propensity.model.bundle import feature_matrix

    rng = np.random.default_rng(5)
    n = 6_000
    frame = pd.DataFrame(
        {
            "x": np.where(rng.random(n) < 0.2, np.nan, rng.normal(size=n)),
            "z": np.where(rng.random(n) < 0.3, 0.0, rng.exponential(size=n)),
            "seg": rng.choice(["a", "b", "c", None], n),
        }
    )
    frame.loc[4_500:, "seg"] = rng.choice(["a", "new", None], n - 4_500)  # unseen in training
    y = (rng.random(n) < 1 / (1 + np.exp(-frame["x"].fillna(0) - (frame["seg"] == "a")))).astype(
        float
    )
    columns = Columns(["x", "z", "seg"], {"seg": ["a", "b", "c"]})
    rows = {"train": np.arange(4_000), "validation": np.arange(4_000, n)}
    parts = {
        name: (feature_matrix(frame, columns.names, columns.levels, rows=r), y.to_numpy()[r])
        for name, r in rows.items()
    }
    cfg = _cfg()
    params = base_params(cfg.model, cfg.seed) | {"num_leaves": 7, "learning_rate": 0.3}
    trimmed, best, _, _, p_valid = fit_one(params, parts, cfg, columns)
    assert best > 1
    np.testing.assert_array_equal(p_valid, trimmed.predict(parts["validation"][0]))
    assert isinstance(trimmed, lgb.Booster)


def _stopped_at(losses: list[float], ceiling: int) -> tuple[int, int]:
    """(iteration the callback stopped at, best iteration it reported) for these losses."""
    import lightgbm as lgb

    from propensity.model.boost import EarlyStopping

    callback = EarlyStopping(ceiling)
    for i, loss in enumerate(losses):
        env = lgb.callback.CallbackEnv(None, {}, i, 0, len(losses), [("valid", "l", loss, False)])
        try:
            callback(env)
        except lgb.callback.EarlyStopException as stop:
            return i, stop.best_iteration
    raise AssertionError("the callback never stopped")


@pytest.mark.parametrize(
    ("best_round", "ceiling", "waited"), [(10, 200, 20), (300, 200, 60), (1000, 100, 100)]
)
def test_early_stopping_waits_a_fifth_of_the_best_round(best_round, ceiling, waited):
    """Check that training stops max(20, best/5) rounds (at most the ceiling) past the best."""
    from propensity.model.boost import patience

    losses = [1.0 / (i + 1) for i in range(best_round)] + [1.0] * 2000
    stopped, best = _stopped_at(losses, ceiling)
    assert best == best_round - 1  # 0-based, as LightGBM reports it
    assert stopped - best == waited == patience(best_round, ceiling)


def test_early_stopping_reports_the_best_round_when_it_never_stops():
    """Check that a run still improving at its last round reports that round as the best."""
    losses = [1.0 / (i + 1) for i in range(50)]
    assert _stopped_at(losses, 100) == (49, 49)


def test_headline_is_what_score_writes(truth_fit):
    """Check that the test slice's calibrated scores are exactly what score_frame writes."""
    from propensity.config import ScoringConfig
    from propensity.scoring import score_frame

    frame, _, result = truth_fit
    rows = frame.iloc[result.split.test][["user_id", "cutoff_at", *FEATURES]]
    written = score_frame(
        result.model, rows, None, ScoringConfig(reason_codes=0), {}, "2024-06-01", "2024-06-01"
    ).scores.set_index("user_id")["score"]
    p = result.test_frame.set_index("user_id")["p"]
    assert np.array_equal(written.loc[p.index].to_numpy(), p.to_numpy())
    auc = ranking_metrics(result.test_frame["label"], written.loc[p.index])["roc_auc"]
    assert result.metrics["test_calibrated"]["roc_auc"] == auc


def test_an_inverting_calibration_never_becomes_the_headline():
    """Check that a model whose scores rank backwards on later data is reported backwards.

    The features' meaning flips after the train slice, so the calibration data says "higher
    raw score, lower outcome": the old Platt fit took slope -6 and printed ROC AUC 0.65 for a
    raw 0.35.
    """
    frame, _ = _truth(6_000, seed=8)
    late = frame["cutoff_at"] >= frame["cutoff_at"].quantile(0.6)
    for column in ("x0", "x1", "x2"):
        frame.loc[late, column] = -frame.loc[late, column]
    result = _fit(frame, _cfg(min_positives=20))
    m = result.metrics
    assert m["test_calibrated"]["roc_auc"] < 0.5
    assert m["test_calibrated"]["roc_auc"] == pytest.approx(m["test_raw"]["roc_auc"], abs=1e-9)


def test_minimum_positives_count_one_row_per_user():
    """Check that extra cutoffs of the same users do not pass the minimum-positives check."""
    frame, _ = _truth(2_000, seed=9)
    main = np.zeros(len(frame), dtype=bool)
    main[::4] = True  # every fourth row is a user's main cutoff, the rest are extra cutoffs
    cfg = _cfg(min_positives=100)
    split = split_out_of_time(frame, cfg.split)
    all_rows = int(frame["label"].iloc[split.train].sum())
    per_user = int(frame["label"].iloc[split.train[main[split.train]]].sum())
    assert per_user < 100 <= all_rows
    with pytest.raises(InsufficientDataError, match=f"the train slice has {per_user} positives"):
        fit_model(frame, FEATURES, ["segment"], cfg, {"v": 1}, "hash1", report_rows=main)


def test_a_large_calibration_slice_is_calibrated_on_alone(monkeypatch):
    """Check that with enough calibration positives no out-of-fold fits run, deterministically.

    At the threshold itself the calibration slice is enough; one positive short, the train
    slice's cross-fitted scores are added.
    """
    import propensity.model.train as train_module

    frame, _ = _truth(4_000, seed=3)
    cfg = _cfg(min_positives=20, min_child_samples=20)
    split = split_out_of_time(frame, cfg.split)
    positives = int(frame["label"].iloc[split.calibration].sum())
    monkeypatch.setattr(train_module, "CROSS_FIT_BELOW_POSITIVES", positives)
    monkeypatch.setattr(train_module, "_out_of_fold", None)  # calling it would fail the test
    a, b = _fit(frame, cfg), _fit(frame, cfg)
    calibration = a.metrics["calibration"]
    assert calibration["cross_fitted"] is False
    assert (calibration["rows"], calibration["positives"]) == (split.calibration.size, positives)
    assert a.model.calibrator.to_dict() == b.model.calibrator.to_dict()
    assert a.metrics == b.metrics

    monkeypatch.undo()
    monkeypatch.setattr(train_module, "CROSS_FIT_BELOW_POSITIVES", positives + 1)
    crossed = _fit(frame, cfg).metrics["calibration"]
    assert crossed["cross_fitted"] is True
    assert crossed["rows"] == split.train.size + split.calibration.size
