"""Tests of the product-led SaaS simulator: determinism, plausible rates, noise, and a truth that
is a function of the written pre-cutoff events only (recomputed here independently)."""

from __future__ import annotations

import hashlib
import json
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score

from propensity.errors import ConfigError
from propensity.simulate import (
    ENTERPRISE_DOMAINS,
    FREE_MAIL_DOMAINS,
    TRUTH,
    TruthModel,
    simulate,
)
from propensity.simulate.arrays import order_by
from propensity.simulate.catalog import INTERNAL_DOMAIN
from propensity.simulate.population import make_population

START = date(2025, 1, 1)
DAYS = 150
END = pd.Timestamp("2025-01-01") + pd.Timedelta(days=DAYS)


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory):
    out = tmp_path_factory.mktemp("sim")
    summary = simulate(out, users=4000, seed=11, days=DAYS, chunk_users=2000)
    events = pd.read_parquet(out / "events")
    users = pd.read_parquet(out / "users.parquet")
    conversions = pd.read_parquet(out / "conversions.parquet")
    truth = pd.read_parquet(out / "truth.parquet")
    return summary, events, users, conversions, truth


def _digest(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def test_same_seed_gives_identical_files(tmp_path: Path):
    """Check that the same seed writes byte-identical files and another seed does not."""
    for name, seed in (("a", 5), ("b", 5), ("c", 6)):
        simulate(tmp_path / name, users=600, seed=seed, days=60, chunk_users=300)
    a, b, c = (_digest(tmp_path / name) for name in "abc")
    assert len(a) == 6  # two event parts, users, conversions, truth, oracle
    assert a == b
    assert a.keys() == c.keys()
    assert all(a[k] != c[k] for k in a if k != "oracle.json")


def test_rates_and_volumes_are_realistic(run):
    """Check that base rate, oracle AUC and events per user fall in the promised ranges."""
    summary, events, users, _, truth = run
    oracle = summary.oracle
    assert 0.05 <= oracle.base_rate <= 0.12
    assert 0.85 <= oracle.roc_auc <= 0.93
    assert 60 <= summary.events / summary.users <= 130
    assert summary.rows["users"] == len(users) == len(truth) == 4000
    assert summary.rows["events"] == len(events)
    reasons = truth["reason"].value_counts()
    assert reasons["bot"] == 2  # one per chunk
    assert reasons["internal"] == 20  # 0.5% of each chunk
    assert 0.003 < reasons["already_customer"] / len(truth) < 0.03
    # signups spread over the whole period; those whose horizon outlives the data are censored
    late = truth["cutoff_at"] + pd.Timedelta(days=30) > END
    censored = truth["reason"] == "censored"
    assert (late[censored]).all() and censored.sum() > 0.15 * len(truth)
    assert truth.loc[late, "label"].isna().all()
    # free-mail users are their own account; teams share one
    team = users.groupby("account_id")["user_id"].transform("size")
    free = users["email"].str.split("@").str[1].isin(FREE_MAIL_DOMAINS)
    assert (team[free & ~users["account_id"].str.endswith("-bot")] == 1).all()
    assert team.max() > 3


def test_oracle_json_matches_truth(run, tmp_path: Path):
    """Check that oracle.json reports AUC and AP of p_true on the eligible users of truth."""
    summary, *_, truth = run
    record = json.loads((summary.paths["oracle"]).read_text())
    eligible = truth[truth["eligible"]]
    assert eligible["reason"].isna().all() and eligible["label"].notna().all()
    y, p = eligible["label"].astype(int), eligible["p_true"]
    assert record["oracle"]["roc_auc"] == pytest.approx(roc_auc_score(y, p), abs=1e-12)
    assert record["oracle"]["average_precision"] == pytest.approx(
        average_precision_score(y, p), abs=1e-12
    )
    assert record["oracle"]["n_positive"] == y.sum()
    assert record["settings"]["seed"] == 11


def test_labels_agree_with_conversions(run):
    """Check that label is 1 exactly when the first payment falls in (cutoff, cutoff + 30d]."""
    _, _, _, conversions, truth = run
    assert conversions["user_id"].is_unique
    paid = conversions.assign(converted_at=conversions["converted_at"].dt.tz_convert(None))
    assert (paid["converted_at"] < END).all()
    t = truth.merge(paid, on="user_id", how="left", suffixes=("_true", ""))
    known = t["label"].notna()
    in_window = (t["converted_at"] > t["cutoff_at"]) & (
        t["converted_at"] <= t["cutoff_at"] + pd.Timedelta(days=30)
    )
    assert (t.loc[known, "label"] == in_window[known].astype(int)).all()
    already = (t["reason"] == "already_customer") & (t["cutoff_at"] <= END)
    assert already.sum() > 0
    assert (t.loc[already, "converted_at"] < t.loc[already, "cutoff_at"]).all()
    late = t["converted_at"] > t["cutoff_at"] + pd.Timedelta(days=30)
    assert late.sum() > 0  # some pay after the horizon


def test_every_noise_kind_is_present(run):
    """Check duplicates, a bot, internal users, missing ids and post-conversion events."""
    _, events, users, conversions, truth = run
    assert events.duplicated().sum() > 0.005 * len(events)
    assert events["user_id"].isna().sum() > 0
    per_user = events["user_id"].value_counts()
    bots = truth.loc[truth["reason"] == "bot", "user_id"]
    assert (per_user[bots] > 2500).all()
    internal = users["email"].str.endswith("@" + INTERNAL_DOMAIN)
    assert set(users.loc[internal, "user_id"]) == set(
        truth.loc[truth["reason"] == "internal", "user_id"]
    )
    post = events[events["event"].isin(["subscription_started", "invoice_paid", "seat_added"])]
    assert set(post["event"]) == {"subscription_started", "invoice_paid", "seat_added"}
    # post-conversion events belong to payers and never precede the payment
    first = post.merge(conversions, on="user_id", how="left")
    assert first["converted_at"].notna().all()
    assert (first["timestamp"] >= first["converted_at"]).all()
    assert (events["event"] == "message_sent").mean() > 0.15  # the vanity event is loud
    props = events.loc[events["event"] == "doc_created", "properties"].map(json.loads)
    assert props.map(lambda p: p["doc_size"] > 0).all()


def _domain_class(email: str) -> str:
    domain = email.split("@")[1]
    if domain == INTERNAL_DOMAIN:
        return "internal"
    if domain in FREE_MAIL_DOMAINS:
        return "free_mail"
    if domain in ENTERPRISE_DOMAINS:
        return "enterprise"
    return "education" if domain.endswith(".edu") else "corporate"


def _recompute_p_true(
    events: pd.DataFrame,
    users: pd.DataFrame,
    truth: pd.DataFrame,
    model: TruthModel = TRUTH,
    end: pd.Timestamp = END,
    dedup: bool = True,
) -> pd.Series:
    """The truth formula, written independently over the written files with pandas.

    ``dedup`` drops exact duplicate rows first (retries); a day-only world keeps every row.
    """
    TRUTH = model  # noqa: N806 - the same formula with this world's weights
    END = end  # noqa: N806
    ev = events.dropna(subset=["user_id"])
    ev = ev.drop_duplicates() if dedup else ev
    ev = ev.assign(timestamp=ev["timestamp"].dt.tz_convert(None))
    first_seen = ev.groupby("user_id")["timestamp"].min()
    t = truth.set_index("user_id")[["signup_at", "cutoff_at"]]
    ev = ev.join(t, on="user_id")
    pre = ev[ev["timestamp"] < ev["cutoff_at"]]
    sample = t.index[t["cutoff_at"] <= END]
    counts = pre.groupby(["user_id", "event"]).size().unstack(fill_value=0)
    counts = counts.reindex(index=sample, fill_value=0)

    def n(event: str) -> pd.Series:
        return counts[event] if event in counts else pd.Series(0, index=sample)

    logit = pd.Series(TRUTH.intercept, index=sample)
    for event, w in TRUTH.log_counts.items():
        logit += w * np.log1p(n(event))
    logit += TRUTH.invite_accepted * n("invite_accepted").clip(upper=TRUTH.invite_accepted_cap)
    for event, w in TRUTH.any_event.items():
        logit += w * (n(event) > 0)
    day = (pre["timestamp"] - pre["signup_at"]) // pd.Timedelta(days=1)
    active_days = day.groupby(pre["user_id"]).nunique().reindex(sample, fill_value=0)
    logit += TRUTH.active_days * active_days
    last = pre.groupby("user_id")["timestamp"].max().reindex(sample)
    hours = (t.loc[sample, "cutoff_at"] - last).dt.total_seconds() / 3600
    logit += TRUTH.recency * np.log1p(hours)

    first_limit = pre[pre["event"] == "plan_limit_hit"].groupby("user_id")["timestamp"].min()
    pricing = pre[pre["event"] == "pricing_viewed"].join(first_limit.rename("lim"), on="user_id")
    ltp = pd.Series(
        sample.isin(pricing.loc[pricing["timestamp"] > pricing["lim"], "user_id"]), sample
    )
    logit += TRUTH.limit_then_pricing * ltp

    shared = pre.loc[pre["event"] == "doc_shared", ["user_id", "timestamp"]]
    accepted = pre.loc[pre["event"] == "invite_accepted", ["user_id", "timestamp"]]
    pairs = accepted.merge(shared, on="user_id", suffixes=("_acc", "_sh"))
    gap = pairs["timestamp_acc"] - pairs["timestamp_sh"]
    ok = (gap > pd.Timedelta(0)) & (gap <= pd.Timedelta(hours=48))
    sta = pd.Series(sample.isin(pairs.loc[ok, "user_id"]), sample)
    logit += TRUTH.share_then_accept * sta

    mates = users[["user_id", "account_id"]].merge(
        users[["user_id", "account_id"]], on="account_id", suffixes=("", "_other")
    )
    mates = mates[mates["user_id"] != mates["user_id_other"]]
    mates = mates.join(t["cutoff_at"], on="user_id").join(
        first_seen.rename("other_first"), on="user_id_other"
    )
    active_mates = (mates["other_first"] < mates["cutoff_at"]).groupby(mates["user_id"]).sum()
    logit += TRUTH.account_active * np.log1p(active_mates.reindex(sample, fill_value=0))

    u = users.set_index("user_id").loc[sample]
    logit += u["email"].map(_domain_class).map(TRUTH.domain)
    size = u["company_size"].astype(float)
    logit += np.where(
        size.notna(), TRUTH.log_company_size * np.log10(size.fillna(1)), TRUTH.company_size_missing
    )
    logit += u["role"].map(TRUTH.role) + u["channel"].map(TRUTH.channel)
    for role, event, w in TRUTH.role_any_event:
        logit += w * ((u["role"] == role) & (n(event) > 0))
    for role, w in TRUTH.role_limit_then_pricing.items():
        logit += w * ((u["role"] == role) & ltp)
    return 1 / (1 + np.exp(-logit))


def test_truth_is_a_function_of_written_pre_cutoff_events(run):
    """Check that p_true recomputed from the written events before each cutoff matches."""
    _, events, users, _, truth = run
    expected = _recompute_p_true(events, users, truth)
    assert len(expected) > 2500
    got = truth.set_index("user_id").loc[expected.index, "p_true"]
    np.testing.assert_allclose(got.to_numpy(), expected.to_numpy(), rtol=0, atol=1e-9)
    # and the signals carry the weight: the spread of p_true is wide
    assert expected.quantile(0.9) > 10 * expected.quantile(0.1)


def test_vanity_event_tracks_intent_but_has_no_weight(run):
    """Check that message_sent rises with intent yet the formula gives it no weight."""
    _, events, _, _, truth = run
    assert "message_sent" not in TRUTH.log_counts and "message_sent" not in TRUTH.any_event
    n = events[events["event"] == "message_sent"].groupby("user_id").size()
    t = truth[truth["reason"].isna()].set_index("user_id")
    joined = t.join(n.rename("n"), how="left").fillna({"n": 0})
    assert np.corrcoef(joined["intent"], np.log1p(joined["n"]))[0, 1] > 0.3


def test_drift_brings_later_students_from_paid_search():
    """Check that with drift=1 the last cohort has far more paid-search students than the first."""
    start, end = 0, 100 * 86_400
    shares = []
    for drift in (0.0, 1.0):
        pop = make_population(
            np.random.default_rng(3), 20_000, first_index=0, chunk=0, start=start, end=end,
            drift=drift,
        )  # fmt: skip
        late = pop.signup > start + 0.8 * (end - start)
        student_paid = (pop.role == 3) & (pop.channel == 1)
        shares.append((student_paid[late].mean(), student_paid[~late].mean()))
    (base_late, _), (drift_late, drift_early) = shares
    assert drift_late > 2 * base_late
    assert drift_late > 1.5 * drift_early


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"users": 0}, "'users' parameter of simulate must be an int >= 1. Got 0"),
        ({"days": -1}, "'days' parameter"),
        ({"format": "xlsx"}, "'format' parameter of simulate must be 'parquet', 'csv' or 'jsonl'"),
        ({"drift": 1.5}, r"'drift' parameter of simulate must be in \[0, 1\]. Got 1.5"),
        ({"horizon": timedelta(minutes=5)}, "'horizon' parameter"),
        ({"chunk_users": 0}, "'chunk_users' parameter"),
        ({"trial_days": 0}, "'trial_days' parameter of simulate must be an int >= 1. Got 0"),
        ({"tail_events": 400}, r"'tail_events' parameter of simulate must be an int in \[0, 336\]"),
        ({"base_rate": 0.9}, r"'base_rate' parameter of simulate must be in \[0.001, 0.5\]"),
        (
            {"day_only": True, "observation_window": timedelta(hours=36)},
            "A day-only world needs whole-day observation_window and horizon",
        ),
    ],
)
def test_bad_parameters_are_refused(tmp_path: Path, kwargs: dict, match: str):
    """Check that each bad parameter raises a ConfigError naming it."""
    args = {"users": 10, "seed": 1} | kwargs
    with pytest.raises(ConfigError, match=match):
        simulate(tmp_path, **args)
    assert not (tmp_path / "events").exists()


def test_order_by_packs_and_falls_back():
    """Check that order_by sorts by several keys, with and without packing into one int."""
    a = np.array([2, 1, 2, 1])
    b = np.array([0, 5, -3, 5])
    assert order_by(a, b).tolist() == [1, 3, 2, 0]
    big = np.array([1 << 40, 0, 1 << 40, 0])
    assert order_by(big, big, b).tolist() == [1, 3, 2, 0]


def test_truth_parquet_schema(run):
    """Check truth.parquet's columns and types (naive UTC timestamps, nullable label)."""
    summary, *_ = run
    schema = pq.read_schema(summary.paths["truth"])
    assert schema.names[:8] == [
        "user_id", "account_id", "signup_at", "cutoff_at", "p_true", "label", "eligible", "reason",
    ]  # fmt: skip
    assert str(schema.field("cutoff_at").type) == "timestamp[us]"
    assert str(schema.field("label").type) == "int8"


def test_default_world_is_pinned(tmp_path: Path):
    """Check that the default world's files are identical to the pinned digest.

    CSV text, oracle.json and the truth's values are hashed (not the parquet bytes, which carry
    the pyarrow version), so new world shapes can never change what the default seed writes.
    Floats are rounded to 10 significant digits and the truth hashed as text: a fresh clone on
    another machine or with newer pandas/pyarrow may differ in the last bits of a float or in the
    dtypes and time units a reader picks, and that must not fail it (it did: the byte digest).
    """
    simulate(tmp_path, users=500, seed=7, days=60, format="csv", chunk_users=250)
    digest = hashlib.sha256()
    for path in sorted(tmp_path.rglob("*")):
        if path.is_file() and path.suffix not in (".parquet", ".json"):
            digest.update(str(path.relative_to(tmp_path)).encode())
            digest.update(path.read_bytes())
    oracle = json.loads((tmp_path / "oracle.json").read_text())
    digest.update(json.dumps(_rounded(oracle), sort_keys=True).encode())
    # as text: a hash of the frame would depend on the dtypes and time units a reader picks
    truth = pd.read_parquet(tmp_path / "truth.parquet")
    digest.update(
        truth.to_csv(index=False, float_format="%.10g", date_format="%Y-%m-%dT%H:%M:%S").encode()
    )
    assert digest.hexdigest() == (
        "e2bd827c80ed65eba6969193ed1ce492de48db930938472097415335e2edc156"
    )


def _rounded(value: Any) -> Any:
    """``value`` with every float rounded to 10 significant digits, nested."""
    if isinstance(value, float):
        return float(f"{value:.10g}")
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_rounded(v) for v in value]
    return value


# -- world shapes ------------------------------------------------------------------------------

SHAPES = {
    "day_only": {"day_only": True},
    "tail": {"tail_events": 336},
    "trial_30d": {"trial_days": 30, "observation_window": timedelta(days=14)},
    "base_rate_2pct": {"base_rate": 0.02, "users": 3000},
}


@pytest.fixture(scope="module", params=list(SHAPES))
def shaped(request, tmp_path_factory: pytest.TempPathFactory):
    args = {"users": 1500, "seed": 3, "days": 120} | SHAPES[request.param]
    out = tmp_path_factory.mktemp(request.param)
    summary = simulate(out, **args)
    tables = {
        name: pd.read_parquet(out / name if name == "events" else out / f"{name}.parquet")
        for name in ("events", "users", "conversions", "truth")
    }
    return request.param, summary, tables


def test_truth_is_exact_in_every_world_shape(shaped):
    """Check that p_true recomputed from each shaped world's written files matches exactly."""
    name, summary, t = shaped
    expected = _recompute_p_true(
        t["events"],
        t["users"],
        t["truth"],
        model=summary.truth,
        end=pd.Timestamp("2025-01-01") + pd.Timedelta(days=120),
        dedup=name != "day_only",
    )
    assert len(expected) > 800
    got = t["truth"].set_index("user_id").loc[expected.index, "p_true"]
    np.testing.assert_allclose(got.to_numpy(), expected.to_numpy(), rtol=0, atol=1e-9)
    record = json.loads(summary.paths["oracle"].read_text())
    assert record["settings"]["world"]["truth_intercept"] == summary.truth.intercept


def test_world_shapes_have_their_shape(shaped):
    """Check each shape: midnights, 300+ event names, a longer trial, a 2% base rate."""
    name, summary, t = shaped
    events, users, conversions = t["events"], t["users"], t["conversions"]
    if name == "day_only":
        for col in (events["timestamp"], users["signup_at"], conversions["converted_at"]):
            assert (col.dt.tz_convert(None) == col.dt.tz_convert(None).dt.floor("D")).all()
        assert events.duplicated().sum() > 0.05 * len(events)  # same-day repeats are real rows
    elif name == "tail":
        assert events["event"].nunique() >= 300
        support = events.dropna(subset=["user_id"]).groupby("event")["user_id"].nunique()
        assert (support < 20).sum() > 100 and (support > 200).sum() > 10  # a long tail
        assert len(summary.truth.log_counts) == len(TRUTH.log_counts) + 6
    elif name == "trial_30d":
        truth = t["truth"].set_index("user_id")
        never = truth.index.difference(conversions["user_id"])
        ev = events[events["user_id"].isin(never)].join(truth["signup_at"], on="user_id")
        age = (ev["timestamp"].dt.tz_convert(None) - ev["signup_at"]).dt.days
        assert ev.loc[age.between(20, 27), "user_id"].nunique() > 0.2 * len(never)
        assert (truth["cutoff_at"] - truth["signup_at"] == pd.Timedelta(days=14)).all()
    else:
        assert summary.truth.intercept < TRUTH.intercept - 1
        eligible = t["truth"]["reason"].isna() | (t["truth"]["reason"] == "censored")
        assert t["truth"].loc[eligible, "p_true"].mean() == pytest.approx(0.02, abs=0.002)
        assert 0.01 < summary.oracle.base_rate < 0.03  # the labels drawn from it


def test_default_world_records_no_shape(run):
    """Check that the default world's oracle.json has no world entry (its bytes never change)."""
    summary, *_ = run
    assert "world" not in json.loads(summary.paths["oracle"].read_text())["settings"]
    assert summary.truth is TRUTH
