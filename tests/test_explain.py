"""Tests for propensity.explain: SHAP values (native, shap, fast), reason codes, importance."""

from __future__ import annotations

import warnings

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from propensity.config import config_from_dict
from propensity.errors import ModelError
from propensity.explain import (
    TreeShapModel,
    fit_reference,
    mean_abs_shap,
    reason_codes,
    sentence,
    shap_values,
    to_matrix,
    top_percent,
    wording,
)
from propensity.features import FeatureInfo, FeatureSpec
from propensity.figures import beeswarm_figure, importance_bar_figure

_DAY = 86_400
# A real spec naming every column the reason tests read: reasons take meaning from the spec.
SPEC = FeatureSpec(
    families=("counts", "recency", "activity", "timing", "order", "transitions", "diversity")
    + ("account", "fit"),
    events=("doc_created", "doc_shared", "invite_accepted", "login", "pricing_viewed")
    + ("teammate_invited",),
    windows_s=(_DAY, 3 * _DAY, 7 * _DAY),
    session_gap_s=1800,
    key_events=("doc_shared", "pricing_viewed"),
    milestones=(
        ("doc_shared", "teammate_invited", None),
        ("doc_shared", "invite_accepted", 2 * _DAY),
    ),
    transitions=(("doc_created", "doc_shared"),),
    numeric_user_columns=("company_size",),
    categorical_user_columns=(("role", ("engineer", "manager")),),
)
LAGGED = FeatureSpec(
    families=("counts", "recency", "lagged"),
    events=("doc_shared", "login"),
    windows_s=(7 * _DAY,),
    session_gap_s=1800,
    key_events=("doc_shared",),
    lag_window_s=28 * _DAY,
    lags_s=(0, 7 * _DAY),
    lag_recent_s=7 * _DAY,
)
FREEMIUM = {"data": {"events": "e"}, "task": {"anchors": {"kind": "calendar"}}}


def _frame(n: int = 1500, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = pd.DataFrame(
        {
            "n_teammate_invited_all": rng.poisson(1.0, n).astype(float),
            "n_doc_shared_7d": rng.poisson(2.0, n).astype(float),
            "hours_to_first_doc_shared": np.where(
                rng.uniform(size=n) < 0.3, np.nan, rng.exponential(20, n)
            ),
            "tenure_days": rng.uniform(0, 14, n),
            "gap_max_hours": np.where(rng.uniform(size=n) < 0.4, 0.0, rng.exponential(5, n)),
            "domain_class": pd.Categorical(
                rng.choice(["free_mail", "corporate", "enterprise", None], n),
                categories=["free_mail", "corporate", "enterprise"],
            ),
        }
    )
    logit = (
        -1.0
        + 0.8 * X["n_teammate_invited_all"]
        + 0.3 * X["n_doc_shared_7d"]
        + 1.0 * (X["domain_class"] == "corporate")
        - 0.05 * X["hours_to_first_doc_shared"].fillna(50)
    )
    y = (rng.uniform(size=n) < 1 / (1 + np.exp(-logit))).astype(int)
    return X, y


def _booster(X: pd.DataFrame, y: np.ndarray, **params) -> lgb.Booster:
    base = {"objective": "binary", "num_leaves": 15, "learning_rate": 0.1, "min_data_in_leaf": 10}
    base.update(verbose=-1, seed=0, num_threads=1, deterministic=True, bagging_freq=1)
    base.update(bagging_fraction=0.8, feature_fraction=0.9, **params)
    return lgb.train(base, lgb.Dataset(X, y), num_boost_round=40)


@pytest.fixture(scope="module")
def fitted() -> tuple[pd.DataFrame, lgb.Booster]:
    X, y = _frame()
    return X, _booster(X, y)


def test_native_and_tree_explainer_agree(fitted):
    """Check that LightGBM's pred_contrib and shap.TreeExplainer agree on the log-odds scale."""
    X, booster = fitted
    native = shap_values(booster, X.iloc[:300], "native")
    explainer = shap_values(booster, X.iloc[:300], "tree_explainer")
    np.testing.assert_allclose(explainer, native, atol=1e-6, rtol=0)
    raw = booster.predict(to_matrix(X.iloc[:300]), raw_score=True)
    np.testing.assert_allclose(native.sum(axis=1), raw, atol=1e-9)


def test_native_agrees_with_shaps_own_tree_shap():
    """Check that pred_contrib equals shap's C TreeSHAP (not LightGBM's) on a numeric model."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PendingDeprecationWarning)  # shap's matplotlib use
        import shap

    X, y = _frame(seed=1)
    X = X.drop(columns="domain_class")  # shap's C extension has no categorical splits
    booster = _booster(X, y)
    explainer = shap.TreeExplainer(booster)
    explainer.model.model_type = "internal"  # skip the shortcut that calls pred_contrib
    own = explainer(X.iloc[:200].to_numpy(), check_additivity=False).values
    native = shap_values(booster, X.iloc[:200], "native")
    np.testing.assert_allclose(own, native[:, :-1], atol=1e-6, rtol=0)


@pytest.mark.parametrize(
    "params",
    [{}, {"zero_as_missing": True}, {"use_missing": False}, {"num_leaves": 40, "max_depth": -1}],
)
def test_fast_equals_native(params):
    """Check that the compiled TreeSHAP equals pred_contrib to 1e-12 (NaN, zero, categories)."""
    X, y = _frame(n=1200, seed=2)
    booster = _booster(X, y, **params)
    M = to_matrix(X)
    M[::13, 5] = 7.0  # a category code the model never saw
    M[::17, 4] = -0.0
    M[::19, 5] = -0.5  # truncates to category 0, as LightGBM's static_cast<int>
    native = booster.predict(M, pred_contrib=True)
    model = TreeShapModel(booster)
    fast = model.shap_values(M, n_threads=2)
    assert fast.shape == native.shape
    assert np.abs(fast - native).max() < 1e-12
    again = model.shap_values(M[::-1])  # answers now come from the memo
    assert np.abs(again - native[::-1]).max() < 1e-12


@pytest.mark.parametrize("n", [1, 500])
def test_fast_equals_native_on_one_and_500_rows(fitted, n):
    """Check that one row and 500 rows (the score job's sizes) match pred_contrib to 1e-12."""
    X, booster = fitted
    M = to_matrix(X.iloc[:n])
    fast = TreeShapModel(booster).shap_values(M)
    assert fast.shape == (n, X.shape[1] + 1)
    assert np.abs(fast - booster.predict(M, pred_contrib=True)).max() < 1e-12


def test_fast_handles_single_leaf_trees_and_missing_values():
    """Check single-leaf trees (bias only), all-NaN rows and a constant feature are exact."""
    rng = np.random.default_rng(3)
    n = 600
    X = np.column_stack(
        [
            np.where(rng.uniform(size=n) < 0.5, np.nan, rng.normal(size=n)),
            rng.integers(0, 4, n).astype(float),
            np.zeros(n),  # never split on
        ]
    )
    y = (np.nan_to_num(X[:, 0]) + 0.5 * X[:, 1] + rng.normal(size=n) > 1).astype(int)
    params = {"objective": "binary", "num_leaves": 4, "verbose": -1, "seed": 0}
    params.update(num_threads=1, deterministic=True, min_data_in_leaf=5)
    booster = lgb.train(params, lgb.Dataset(X, y, categorical_feature=[1]), num_boost_round=15)
    # a tree with one leaf only shifts the bias; LightGBM adds one after training stalls
    stalled = lgb.train({**params, "min_gain_to_split": 1e9}, lgb.Dataset(X, y), num_boost_round=3)
    for model in (booster, stalled):
        M = np.vstack([X[:300], np.full((2, 3), np.nan)])
        native = model.predict(M, pred_contrib=True)
        assert np.abs(TreeShapModel(model).shap_values(M) - native).max() < 1e-12
    assert "num_leaves=1" in stalled.model_to_string()


def test_fast_is_the_default_and_handles_empty_input(fitted):
    """Check that shap_values defaults to the fast path and returns (0, F+1) for no rows."""
    X, booster = fitted
    np.testing.assert_allclose(
        shap_values(booster, X.iloc[:50]), shap_values(booster, X.iloc[:50], "native"), atol=1e-9
    )
    assert shap_values(booster, X.iloc[:0]).shape == (0, X.shape[1] + 1)
    with pytest.raises(ValueError, match="'method' parameter"):
        shap_values(booster, X.iloc[:5], "approx")  # type: ignore[arg-type]


def test_prepared_trees_are_kept_per_booster_and_used_by_shap_values(fitted, monkeypatch):
    """Check that prepared() keeps one model per booster and shap_values' fast path uses it."""
    import propensity.explain._treeshap as treeshap
    import propensity.explain.values as values

    X, booster = fitted
    assert treeshap.prepared(booster) is treeshap.prepared(booster)
    assert treeshap.is_prepared(booster)
    monkeypatch.setattr(values, "FAST_MIN_ROWS", 10)
    built = []
    monkeypatch.setattr(treeshap, "TreeShapModel", lambda b: built.append(b))  # must not run
    fast = shap_values(booster, X.iloc[:60])
    assert not built
    assert np.abs(fast - booster.predict(to_matrix(X.iloc[:60]), pred_contrib=True)).max() < 1e-12


def test_a_booster_prepared_in_the_background_is_explained_fast_and_exactly(monkeypatch):
    """A score job's background preparation makes a small call take the fast path, exactly."""
    import propensity.explain._treeshap as treeshap

    ours = treeshap.TreeShapModel.shap_values
    calls = []

    def spy(self, matrix, **kwargs):
        calls.append(len(matrix))
        return ours(self, matrix, **kwargs)

    monkeypatch.setattr(treeshap.TreeShapModel, "shap_values", spy)
    X, y = _frame(seed=3)
    booster = _booster(X, y)  # its own booster: nothing prepared it yet
    assert not treeshap.is_prepared(booster)
    thread = treeshap.prepare_in_background(booster)
    assert thread is not None and treeshap.is_warming(booster)
    assert treeshap.prepare_in_background(booster) is None  # one preparation per booster
    # 50 rows is below FAST_MIN_ROWS_COLD: without the warm-up this call would go native;
    # with it the call waits for the preparation, if still running, and computes it ours
    fast = shap_values(booster, X.iloc[:50])
    assert calls == [50]
    thread.join()
    assert treeshap.is_prepared(booster)
    native = booster.predict(to_matrix(X.iloc[:50]), pred_contrib=True)
    assert np.abs(fast - native).max() < 1e-12


@pytest.mark.parametrize(
    ("name", "value", "pct", "text"),
    [
        (
            "n_teammate_invited_all",
            4.0,
            5,
            "Teammate invited 4 times since signup (top 5% of trials)",
        ),
        ("n_doc_shared_7d", 1.0, 60, "Doc shared 1 time in the last 7d"),
        ("n_events_3d", 12.0, None, "12 events in the last 3d"),
        ("rate_login_per_active_day", 2.5, None, "Login 2.5 times per active day"),
        (
            "hours_since_last_pricing_viewed",
            3.0,
            None,
            "Last pricing viewed 3 hours before scoring",
        ),
        ("hours_since_last_event", 0.5, None, "Last activity 0.50 hours before scoring"),
        ("tenure_days", 6.0, None, "Signed up 6 days before scoring"),
        ("active_days", 5.0, 10, "Active on 5 days (top 10% of trials)"),
        ("trend_events_1d", 2.0, None, "Activity in the last 1d at 2x the earlier rate"),
        ("hours_to_first_doc_shared", 2.0, None, "First doc shared 2 hours after signup"),
        ("hours_to_first_doc_shared", float("nan"), None, "No doc shared yet"),
        (
            "order_doc_shared_before_teammate_invited",
            1.0,
            None,
            "Doc shared before teammate invited",
        ),
        (
            "within_doc_shared_then_invite_accepted_2d",
            1.0,
            None,
            "Invite accepted within 2d of doc shared",
        ),
        ("tr_doc_created__doc_shared", 3.0, None, "Doc created followed by doc shared 3 times"),
        ("distinct_events", 9.0, None, "Used 9 different kinds of action"),
        ("account_active_users", 4.0, None, "4 active users on the account"),
        ("account_events_7d", 80.0, None, "80 events on the account in the last 7d"),
        ("domain_class", "corporate", None, "Signed up with a corporate email domain"),
        ("user_company_size", 250.0, None, "Company size: 250"),
        ("user_role", "bob@example.com", None, "Role: [redacted]"),
    ],
)
def test_sentence_templates(name, value, pct, text):
    """Check that each feature family's template reads as expected on a hand-made example."""
    assert sentence(SPEC.describe(name), value, pct) == text


@pytest.mark.parametrize(
    ("name", "value", "text"),
    [
        ("lag0d_events_28d", 12.0, "12 events in the last 28d"),
        ("lag7d_doc_shared_28d", 1.0, "Doc shared 1 time in the 28d up to 7d ago"),
        ("lag0d_active_days_28d", 5.0, "Active on 5 days in the last 28d"),
        ("lag0d_trend_7d_28d", np.log(3.0), "Activity in the last 7d at 3.0x the rate before"),
        ("lag7d_trend_7d_28d", 0.0, "Activity in the last 7d at 1x the rate before (as of 7d ago)"),
        ("lag0d_days_since_last_event", 2.0, "Last active 2 days before scoring"),
        ("lag7d_days_since_last_event", 3.0, "7d ago: last active 3 days before"),
        ("lag7d_days_since_last_event", float("nan"), "No activity yet (as of 7d ago)"),
        ("lag0d_active_weeks", 6.0, "Active in 6 different weeks"),
    ],
)
def test_lagged_sentences(name, value, text):
    """Check that the lagged family's sentences say which window they read."""
    assert sentence(LAGGED.describe(name), value) == text


def test_reasons_follow_the_task():
    """Check that calendar tasks compare with active free users (or accounts) and say 'first
    seen', while trial wording (and a trial reference) stay as they were."""
    freemium = wording(config_from_dict(FREEMIUM).task)
    assert freemium == {"population": "active free users", "start": "signup", "anchors": "calendar"}
    no_signup = {**FREEMIUM, "task": {**FREEMIUM["task"], "first_seen": "first_event"}}
    words = wording(config_from_dict(no_signup).task)
    count = SPEC.describe("n_teammate_invited_all")
    assert sentence(count, 4.0, 5, words) == (
        "Teammate invited 4 times since first seen (top 5% of active free users)"
    )
    assert sentence(SPEC.describe("tenure_days"), 40.0, None, words) == "First seen 40 days ago"
    assert sentence(SPEC.describe("tenure_days"), 6.0) == "Signed up 6 days before scoring"
    account = {**FREEMIUM, "task": {**FREEMIUM["task"], "entity": "account"}}
    account_words = wording(config_from_dict(account).task)
    assert account_words["population"] == "active accounts"
    timing = FeatureInfo("hours_to_first_doc_created", "timing", "hours_to_first", "doc_created")
    assert sentence(timing, 455.6, None, account_words) == (
        "First doc created 455.6 hours after the account's first signup"
    )
    frame = pd.DataFrame({"n_teammate_invited_all": np.arange(100.0)})
    assert "words" not in fit_reference(frame, list(frame), wording(None))
    ref = fit_reference(frame, list(frame), freemium)
    X = frame.iloc[[99]]
    out = reason_codes(X, np.array([[1.0]]), 1, SPEC, ref)
    assert out.iloc[0]["reason_1_text"] == (
        "Teammate invited 99 times since signup (top 1% of active free users)"
    )


def test_reason_codes_refuse_a_column_the_spec_does_not_know():
    """Check that a feature the spec lacks is a ModelError (exit 3), never a guess from its name."""
    X = pd.DataFrame({"n_doc_shared_all": [2.0], "n_unknown_event_all": [1.0]})
    with pytest.raises(ModelError, match="'n_unknown_event_all' must be one of the spec's") as got:
        reason_codes(X, np.array([[0.5, 0.9]]), 2, SPEC)
    assert got.value.exit_code == 3


def test_fit_reference_and_top_percent():
    """Check that 'top X%' is the share of training rows at or above the value, rounded up."""
    frame = pd.DataFrame(
        {"n_x_all": np.r_[np.zeros(90), np.arange(1.0, 11.0)], "c": pd.Categorical(["a"] * 100)}
    )
    ref = fit_reference(frame, ["n_x_all", "c"])
    assert list(ref["quantiles"]) == ["n_x_all"]
    # 10 of 100 rows are >= 1; the 101 quantiles put 10 of them at or above 1
    assert top_percent(ref, "n_x_all", 1.0) == 10
    assert top_percent(ref, "n_x_all", 10.0) == 1
    assert top_percent(ref, "n_x_all", 0.0) == 100
    assert top_percent(ref, "unknown", 1.0) is None
    assert top_percent(None, "n_x_all", 1.0) is None


def test_reason_codes_pick_top_positive_contributions():
    """Check that reasons are the top positive SHAP features per row, nulls when too few."""
    X = pd.DataFrame(
        {
            "n_teammate_invited_all": [4.0, 0.0],
            "domain_class": pd.Categorical(["corporate", "free_mail"]),
            "n_doc_shared_all": [3.0, 9.0],
        },
        index=[10, 11],
    )
    phi = np.array([[0.9, 0.4, -0.2], [-0.5, 0.0, 0.3]])
    ref = {"quantiles": {"n_teammate_invited_all": [0.0] * 96 + [4.0] * 5}}
    out = reason_codes(X, phi, 2, SPEC, ref)
    assert list(out.index) == [10, 11]
    row = out.loc[10]
    assert (row.reason_1_feature, row.reason_1_value, row.reason_1_shap) == (
        "n_teammate_invited_all",
        "4",
        0.9,
    )
    assert row.reason_1_text == "Teammate invited 4 times since signup (top 5% of trials)"
    assert (row.reason_2_feature, row.reason_2_text) == (
        "domain_class",
        "Signed up with a corporate email domain",
    )
    other = out.loc[11]
    assert other.reason_1_feature == "n_doc_shared_all" and other.reason_1_value == "9"
    assert other.reason_2_feature is None and np.isnan(other.reason_2_shap)


def test_mean_abs_shap_and_figures(fitted):
    """Check the mean |SHAP| table on hand values and that both figures are Figures."""
    table = mean_abs_shap(np.array([[1.0, -2.0, 0.0], [-3.0, 2.0, 0.0]]), ["a", "b", "c"])
    assert table["feature"].tolist() == ["a", "b", "c"]  # tie at 2.0 broken by name
    assert table["mean_abs_shap"].tolist() == [2.0, 2.0, 0.0]
    assert table["mean_shap"].tolist() == [-1.0, 0.0, 0.0]
    X, booster = fitted
    phi = shap_values(booster, X.iloc[:200])
    assert isinstance(importance_bar_figure(mean_abs_shap(phi, list(X.columns))), Figure)
    assert isinstance(beeswarm_figure(phi, X.iloc[:200], top=4, max_points=100), Figure)


def test_fast_in_row_chunks_equals_native(fitted, monkeypatch):
    """Check that rows split into several chunks (and two threads) give the same values."""
    import propensity.explain._treeshap as treeshap

    monkeypatch.setattr(treeshap, "_CHUNK", 128)
    X, booster = fitted
    M = to_matrix(X.iloc[:300])
    fast = TreeShapModel(booster).shap_values(M, n_threads=2)
    assert np.abs(fast - booster.predict(M, pred_contrib=True)).max() < 1e-12


def test_fast_without_leaf_memo_equals_native(fitted):
    """Check the path for leaves without a memo (long paths: every row solved) is exact too."""
    X, booster = fitted
    M = to_matrix(X.iloc[:400])
    fast = TreeShapModel(booster, memo_bits=0).shap_values(M, n_threads=1)
    assert np.abs(fast - booster.predict(M, pred_contrib=True)).max() < 1e-12


def test_trial_age_is_never_a_reason_and_nothing_prints_nan():
    """Check that cutoff_age_days is never a reason, and unseen levels read as 'other'."""
    X = pd.DataFrame(
        {
            "cutoff_age_days": [1.5, 7.0],
            "user_role": pd.Categorical([None, "manager"], categories=["engineer", "manager"]),
            "user_company_size": [np.nan, 40.0],
            "n_doc_shared_all": [2.0, 0.0],
        }
    )
    phi = np.array([[2.0, 0.8, 0.5, 0.1], [3.0, 0.2, -0.1, -0.3]])
    out = reason_codes(X, phi, 3, SPEC)
    assert "cutoff_age_days" not in set(out.filter(like="_feature").stack())
    first = out.iloc[0]
    assert (first.reason_1_feature, first.reason_1_value, first.reason_1_text) == (
        "user_role",
        "other",
        "Role: other",
    )
    assert first.reason_2_text == "Company size: missing"
    assert out.iloc[1].reason_1_text == "Role: manager"
    assert out.iloc[1].reason_2_feature is None  # trial age is not promoted into an empty slot
    texts = " ".join(str(t) for t in out.filter(like="_text").stack())
    assert "nan" not in texts.lower()


def test_tenure_is_never_a_reason():
    """Check that tenure_days (trial age by another name) never fills a reason slot."""
    X = pd.DataFrame({"tenure_days": [6.5, 1.5], "n_doc_shared_all": [2.0, 0.0]})
    out = reason_codes(X, np.array([[2.0, 0.5], [3.0, -0.1]]), 2, SPEC)
    assert out["reason_1_feature"].tolist() == ["n_doc_shared_all", None]
    texts = " ".join(str(t) for t in out.filter(like="_text").stack())
    assert "days before scoring" not in texts and "into the trial" not in texts
