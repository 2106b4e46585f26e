"""Tests for propensity.scoring: the score table, holdout, changes and account roll-up."""

from __future__ import annotations

import dataclasses

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest
from spec_fixtures import model_spec, spec_fields, with_spec_columns

from propensity.config import ScoringConfig
from propensity.errors import DataContractError, PropensityWarning
from propensity.explain import fit_reference
from propensity.model import Calibrator, PQLModel
from propensity.scoring import holdout_mask, score_frame

INFO = {"name": "propensity-pql", "version": "3", "run_id": "abc123"}
AS_OF = pd.Timestamp("2026-01-15")
SCORED_AT = pd.Timestamp("2026-01-15 06:00:00")
SPEC = model_spec(families=("counts", "timing", "fit"))


def _features(n: int = 400, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "user_id": [f"u{i:04d}" for i in range(n)],
            "cutoff_at": pd.Timestamp("2026-01-14"),
            "n_teammate_invited_all": rng.poisson(1.0, n).astype(float),
            "n_doc_shared_7d": rng.poisson(2.0, n).astype(float),
            "hours_to_first_doc_shared": np.where(
                rng.uniform(size=n) < 0.3, np.nan, rng.exponential(20, n)
            ),
            "domain_class": pd.Categorical(
                rng.choice(["free_mail", "corporate"], n), categories=["free_mail", "corporate"]
            ),
        }
    )
    return with_spec_columns(frame, SPEC)


@pytest.fixture(scope="module")
def model() -> PQLModel:
    frame = _features(seed=1)
    cols = list(SPEC.columns)
    X = frame[cols]
    logit = -2 + X["n_teammate_invited_all"] + 1.5 * (X["domain_class"] == "corporate")
    y = (np.random.default_rng(2).uniform(size=len(X)) < 1 / (1 + np.exp(-logit))).astype(int)
    params = {"objective": "binary", "num_leaves": 7, "min_data_in_leaf": 10, "verbose": -1}
    params.update(seed=0, num_threads=1, deterministic=True)
    booster = lgb.train(params, lgb.Dataset(X, y), num_boost_round=20)
    calibrator = Calibrator(method="identity").fit(np.array([0.5]), np.array([1]))
    return PQLModel(
        booster=booster,
        calibrator=calibrator,
        threshold=0.5,
        categorical={"domain_class": ["free_mail", "corporate"]},
        **spec_fields(SPEC),
        metadata={"reason_reference": fit_reference(X, cols)},
    )


def _score(model, features, cfg=None, accounts=None, previous=None):
    cfg = cfg or ScoringConfig()
    return score_frame(model, features, accounts, cfg, INFO, AS_OF, SCORED_AT, None, previous)


def test_score_table_columns_order_and_values(model):
    """Check columns, sort order, scores, percentiles, PQL flags and model metadata."""
    features = _features()
    result = _score(model, features)
    s = result.scores
    assert list(s.columns[:7]) == [
        "user_id", "account_id", "cutoff_at", "score", "percentile", "is_pql", "threshold",
    ]  # fmt: skip
    assert list(s.columns[-8:]) == [
        "holdout", "new_pql", "dropped_pql", "model_name", "model_version", "run_id", "as_of",
        "scored_at",
    ]  # fmt: skip
    assert "reason_3_text" in s.columns and len(s) == len(features)
    expected = model.predict_proba(features)[:, 1]
    by_user = s.set_index("user_id")["score"]
    np.testing.assert_allclose(by_user.loc[features["user_id"]].to_numpy(), expected)
    keys = list(zip(-s["score"], s["user_id"], strict=True))
    assert keys == sorted(keys)
    assert s["percentile"].iloc[0] == 100.0
    assert (s["is_pql"] == (s["score"] >= 0.5)).all()
    assert s.loc[0, "model_version"] == "3" and s.loc[0, "as_of"] == AS_OF
    assert result.summary["users_scored"] == 400
    assert result.summary["pqls"] == int(s["is_pql"].sum())


def test_reason_codes_for_pqls_and_top_fraction(model):
    """Check that PQLs and the top 10% get reasons, others nulls, and reasons add up."""
    result = _score(model, _features())
    s = result.scores
    explained = s["reason_1_feature"].notna()
    top = np.arange(len(s)) < 40  # ceil(0.1 * 400), the table is sorted by score
    assert (explained == (top | s["is_pql"])).all()
    assert result.summary["explained_rows"] == int(explained.sum())
    assert (s.loc[explained, "reason_1_shap"] >= s.loc[explained, "reason_2_shap"].fillna(0)).all()
    assert s.loc[explained, "reason_1_text"].str.len().gt(0).all()


def test_explain_none_and_all(model):
    """Check explain='none' leaves every reason null and 'all' explains each row."""
    none = _score(model, _features(), ScoringConfig(explain="none")).scores
    assert none["reason_1_feature"].isna().all()
    every = _score(model, _features(), ScoringConfig(explain="all", reason_codes=1)).scores
    assert "reason_2_feature" not in every.columns
    # a row has no reason only when no feature pushes its score up
    assert every["reason_1_feature"].notna().mean() > 0.5


def test_holdout_fraction_and_determinism():
    """Check the holdout share is near the fraction, fixed per salt, different across salts."""
    ids = [f"user-{i}" for i in range(20_000)]
    a = holdout_mask(ids, 0.2, "salt-a")
    assert abs(a.mean() - 0.2) < 0.01
    assert (holdout_mask(ids[::-1], 0.2, "salt-a")[::-1] == a).all()
    b = holdout_mask(ids, 0.2, "salt-b")
    assert (a != b).any() and abs(b.mean() - 0.2) < 0.01
    assert not holdout_mask(ids, 0.0, "salt-a").any()


def test_holdout_only_among_pqls(model):
    """Check holdout flags only PQLs and the summary counts them."""
    cfg = ScoringConfig(holdout_fraction=0.5, holdout_salt="x")
    s = _score(model, _features(), cfg).scores
    assert not (s["holdout"] & ~s["is_pql"]).any()
    assert s["holdout"].sum() > 0


def test_new_and_dropped_against_previous(model):
    """Check new/dropped flags and the dropped frame against a hand-made previous run."""
    features = _features()
    now = _score(model, features).scores
    pql = now.loc[now["is_pql"], "user_id"].tolist()
    not_pql = now.loc[~now["is_pql"], "user_id"].tolist()
    previous = pd.DataFrame(
        {
            "user_id": [pql[0], not_pql[0], "gone-user"],
            "is_pql": [True, True, True],
            "score": [0.9, 0.8, 0.7],
        }
    )
    result = _score(model, features, previous=previous)
    s = result.scores.set_index("user_id")
    assert not s.loc[pql[0], "new_pql"] and s.loc[pql[1], "new_pql"]
    assert s.loc[not_pql[0], "dropped_pql"] and s["dropped_pql"].sum() == 1
    dropped = result.dropped
    assert dropped["user_id"].tolist() == sorted([not_pql[0], "gone-user"])
    assert dict(zip(dropped["user_id"], dropped["reason"], strict=True)) == {
        not_pql[0]: "below_threshold",
        "gone-user": "not_scored",
    }
    assert result.summary["new_pqls"] == len(pql) - 1
    assert result.summary["dropped_pqls"] == 2


def test_account_rollup(model):
    """Check per-account users, max/mean score, PQL count and top users on hand numbers."""
    features = _features(n=6)
    accounts = pd.Series(["acc1", "acc1", "acc1", "acc2", None, "acc2"], index=features.index)
    result = _score(model, features, accounts=accounts)
    s = result.scores.set_index("user_id")
    acc = result.accounts.set_index("account_id")
    assert set(acc.index) == {"acc1", "acc2"}
    for account, users in {"acc1": ["u0000", "u0001", "u0002"], "acc2": ["u0003", "u0005"]}.items():
        scores = s.loc[users, "score"]
        assert acc.loc[account, "users"] == len(users)
        assert acc.loc[account, "max_score"] == pytest.approx(scores.max())
        assert acc.loc[account, "mean_score"] == pytest.approx(scores.mean())
        assert acc.loc[account, "pql_users"] == int(s.loc[users, "is_pql"].sum())
        ranked = sorted(users, key=lambda u: (-s.loc[u, "score"], u))[:3]
        assert acc.loc[account, "top_users"] == ",".join(ranked)


def test_deterministic_and_no_email_anywhere(model):
    """Check identical output for shuffled input and that no column holds an '@'."""
    features = _features()
    accounts = pd.Series([f"acc{i % 37}" for i in range(len(features))], index=features.index)
    a = _score(model, features, accounts=accounts)
    shuffled = features.sample(frac=1.0, random_state=3)
    b = _score(model, shuffled, accounts=accounts.loc[shuffled.index])
    pd.testing.assert_frame_equal(a.scores, b.scores)
    pd.testing.assert_frame_equal(a.accounts, b.accounts)
    for frame in (a.scores, a.accounts, a.dropped):
        for col in frame.columns:
            assert not frame[col].astype(str).str.contains("@", regex=False).any(), col


def test_email_user_ids_are_refused(model):
    """Check that user ids that are email addresses are refused before anything is written."""
    features = _features(n=5)
    features.loc[0, "user_id"] = "ann@example.com"
    with pytest.raises(DataContractError, match="user_id must not be an email"):
        _score(model, features)
    dup = _features(n=5)
    dup.loc[1, "user_id"] = "u0000"
    with pytest.raises(DataContractError, match="one row per user"):
        _score(model, dup)


@pytest.mark.parametrize(
    ("metadata", "match"),
    [
        ({"weakness": "the rule r beats the model at its own volume"}, "rule r beats"),
        ({"metrics": {"test_calibrated.roc_auc_ci_low": 0.47}}, "includes chance"),
        ({"metrics": {"threshold.lift_ci_low": 0.9}}, "includes 1"),
    ],
)
def test_score_warns_loudly_on_a_weak_model(model, metadata, match):
    """Check that scoring with a model too weak to act on raises a WEAK MODEL warning."""
    weak = dataclasses.replace(model, metadata={**model.metadata, **metadata})
    with pytest.warns(PropensityWarning, match=f"WEAK MODEL.*{match}"):
        _score(weak, _features(n=50, seed=3))
