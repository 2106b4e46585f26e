"""Tests of the task worlds (freemium, account, expansion): determinism, their shapes, and a truth
recomputed here, independently, from the written files at every Monday anchor."""

from __future__ import annotations

import hashlib
import json
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from propensity.cli import app
from propensity.errors import ConfigError
from propensity.simulate.catalog import domain_class
from propensity.simulate.hazard import (
    ACCOUNT,
    EXPANSION,
    FREEMIUM,
    HAZARD_EVENTS,
    HazardModel,
    Window,
)
from propensity.simulate.tasks import simulate_task
from propensity.simulate.weeks import monday_on_or_before

DAYS = 120
START = pd.Timestamp("2025-01-01")
END = START + pd.Timedelta(days=DAYS)
DAY, WEEK = pd.Timedelta(days=1), pd.Timedelta(days=7)
MODELS = {"freemium": FREEMIUM, "account": ACCOUNT, "expansion": EXPANSION}


def _read(out: Path) -> dict[str, pd.DataFrame]:
    tables = {
        "events": pd.read_parquet(out / "events"),
        "truth": pd.read_parquet(out / "truth.parquet"),
    }
    for name in ("users", "conversions", "payments"):
        if (out / f"{name}.parquet").exists():
            tables[name] = pd.read_parquet(out / f"{name}.parquet")
    for frame in tables.values():
        for col in frame.columns:
            if isinstance(frame[col].dtype, pd.DatetimeTZDtype):
                frame[col] = frame[col].dt.tz_convert(None)
    return tables


@pytest.fixture(scope="module", params=list(MODELS))
def world(request, tmp_path_factory: pytest.TempPathFactory):
    out = tmp_path_factory.mktemp(request.param)
    n = {"freemium": 900, "account": 500, "expansion": 700}[request.param]
    summary = simulate_task(out, request.param, entities=n, seed=5, days=DAYS)
    return request.param, summary, _read(out)


def _recompute(task: str, t: dict[str, pd.DataFrame], lookback_weeks: int = 4) -> pd.DataFrame:
    """The truth rebuilt from the written files: eligibility, p_true and label per anchor."""
    users = t["users"]
    ev = t["events"].dropna(subset=["user_id"]).drop_duplicates(["user_id", "event", "timestamp"])
    col = "user_id" if task == "freemium" else "account_id"
    entity_of = pd.Series(users[col].to_numpy(), index=users["user_id"].to_numpy(), name=col)
    ev = ev.assign(entity=ev["user_id"].map(entity_of), day=ev["timestamp"].dt.floor("D"))
    roles = users["seat_role"] if "seat_role" in users else pd.Series("", index=users.index)
    admin = set(users.loc[roles == "admin", "user_id"])
    entities = users.drop_duplicates(entity_of.name).set_index(entity_of.name)
    cls = entities["email"].str.split("@").str[1].map(domain_class)
    size = entities["company_size"].astype("float64")
    first_user = ev.groupby("user_id")["timestamp"].min()
    ent_of_user = entity_of.loc[first_user.index].to_numpy()
    if task == "freemium":
        paid = t["conversions"].set_index("user_id")["converted_at"]
        first_pay, expand, seats = paid, pd.Series(dtype="datetime64[us]"), None
    else:
        pay = t["payments"]
        first = pay[pay["kind"] == "first"].set_index("account_id")
        first_pay, seats = first["paid_at"], first["seats"]
        expand = pay[pay["kind"] == "expansion"].set_index("account_id")["paid_at"]
    target = expand if task == "expansion" else first_pay
    origin = pd.Timestamp(monday_on_or_before(int(START.timestamp())), unit="s")
    weeks = int(np.ceil((END - origin) / WEEK))
    lag = 3
    ids = entities.index
    logits = {}
    for j in range(-lag, weeks):
        m = origin + j * WEEK
        logits[j] = _model(task).logit(
            _window(ev, ids, m, origin, admin, first_user, ent_of_user, cls, size,
                    first_pay, seats)
        )  # fmt: skip
    rows = []
    for j in range(weeks):
        m = origin + j * WEEK
        if m < START or m >= END:
            continue
        before = ev[ev["timestamp"] < m]
        seen = before.groupby("entity")["timestamp"].min().reindex(ids).notna()
        recent = ev[(ev["timestamp"] >= m - lookback_weeks * WEEK) & (ev["timestamp"] < m)]
        active = pd.Series(ids.isin(recent["entity"]), index=ids)
        tgt = target.reindex(ids)
        ok = seen & active & ~(tgt < m)
        if task == "expansion":
            ok &= first_pay.reindex(ids) < m
        q = np.column_stack([1 / (1 + np.exp(-logits[j - lag + i])) for i in range(4)])
        p = 1 - np.prod(1 - q, axis=1)
        label = ((tgt >= m) & (tgt < m + 4 * WEEK)).astype("int8")
        frame = pd.DataFrame({"entity_id": ids, "anchor_at": m, "p_true": p, "label": label.values})
        rows.append(frame[ok.to_numpy()])
    return pd.concat(rows, ignore_index=True)


def _model(task: str) -> HazardModel:
    return MODELS[task]


def _window(ev, ids, m, origin, admin, first_user, ent_of_user, cls, size, first_pay, seats):  # type: ignore[no-untyped-def]
    """The hazard's window at Monday ``m``, by pandas, from the written events."""
    win = ev[(ev["timestamp"] >= m - 4 * WEEK) & (ev["timestamp"] < m)]
    read = win[win["event"].isin(HAZARD_EVENTS)]
    counts = (
        read.groupby(["entity", "event"]).size().unstack(fill_value=0)
        .reindex(index=ids, columns=list(HAZARD_EVENTS), fill_value=0)
    )  # fmt: skip
    last = read[read["timestamp"] >= m - WEEK].groupby("entity").size().reindex(ids, fill_value=0)
    total = read.groupby("entity").size().reindex(ids, fill_value=0)
    before = ev[ev["timestamp"] < m]
    first_seen = before.groupby("entity")["timestamp"].min().reindex(ids)
    last_seen = before.groupby("entity")["timestamp"].max().reindex(ids)
    week = (before["timestamp"] - origin) // WEEK
    active_weeks = before.assign(w=week).groupby("entity")["w"].nunique().reindex(ids, fill_value=0)
    days = (
        win.drop_duplicates(["user_id", "day"]).groupby("entity").size().reindex(ids, fill_value=0)
    )
    members_active = win.groupby("entity")["user_id"].nunique().reindex(ids, fill_value=0)
    seen_user = pd.Series(ent_of_user[(first_user < m).to_numpy()])
    members = seen_user.value_counts().reindex(ids, fill_value=0)
    new_mask = ((first_user < m) & (first_user >= m - 4 * WEEK)).to_numpy()
    new = pd.Series(ent_of_user[new_mask]).value_counts().reindex(ids, fill_value=0)
    billing = win[(win["event"] == "billing_viewed") & win["user_id"].isin(admin)]
    if seats is None:
        excess = np.zeros(len(ids))
    else:
        paying = (first_pay.reindex(ids) < m).to_numpy()
        bought = seats.reindex(ids).fillna(0).to_numpy()
        excess = np.where(paying, np.maximum(members.to_numpy() - bought, 0), 0)
    seen = first_seen.notna().to_numpy()
    return Window(
        counts=counts.to_numpy(),
        last_week=last.to_numpy(),
        prior=(total - last).to_numpy(),
        active_days=days.to_numpy(),
        active_weeks=active_weeks.to_numpy(),
        tenure_weeks=np.where(seen, (m - first_seen) / WEEK, 0.0),
        days_since_last=np.where(seen, (m - last_seen) / DAY, 28.0),
        active_members=members_active.to_numpy(),
        new_members=new.to_numpy(),
        admin_billing=billing.groupby("entity").size().reindex(ids, fill_value=0).to_numpy(),
        excess_seats=excess,
        domain_class=cls.map(
            {"free_mail": 0, "corporate": 1, "enterprise": 2, "education": 3}
        ).to_numpy(),
        company_size=size.to_numpy(),
    )


def test_truth_is_exact_at_every_anchor(world):
    """Check that eligibility, p_true and labels recomputed from the written files match."""
    task, _, t = world
    want = _recompute(task, t).sort_values(["anchor_at", "entity_id"], ignore_index=True)
    got = t["truth"].sort_values(["anchor_at", "entity_id"], ignore_index=True)
    assert len(got) > 300
    pd.testing.assert_series_equal(got["entity_id"], want["entity_id"])
    assert (got["anchor_at"] == want["anchor_at"]).all()
    np.testing.assert_allclose(got["p_true"], want["p_true"], rtol=0, atol=1e-9)
    uncensored = got["reason"].isna()
    assert (got.loc[uncensored, "label"] == want.loc[uncensored, "label"]).all()
    assert (got.loc[~uncensored, "anchor_at"] + 4 * WEEK > END).all()


def test_anchors_are_mondays_and_oracle_is_informative(world):
    """Check anchors fall on Monday midnights and the truth ranks its labels well."""
    task, summary, t = world
    anchors = t["truth"]["anchor_at"]
    assert (anchors.dt.dayofweek == 0).all() and (anchors == anchors.dt.floor("D")).all()
    assert anchors.between(START, END).all() and anchors.nunique() >= (
        12 if task == "expansion" else 16
    )
    o = summary.oracle
    assert 0.75 < o.roc_auc < 0.97
    assert 0.01 < o.base_rate < 0.2
    uncensored = t["truth"][t["truth"]["reason"].isna()]
    assert o.n_positive == uncensored["label"].sum()


def test_world_shapes(world):
    """Check each world's shape: one-user accounts, teams joined by invites, larger payments."""
    task, summary, t = world
    users, ev = t["users"], t["events"]
    if task == "freemium":
        assert users["account_id"].is_unique and "seat_role" not in users
        # signups spread over the whole history
        months = users["signup_at"].dt.month.value_counts()
        assert len(months) == 4 and months.min() > 0.15 * len(users)
        return
    sizes = users.groupby("account_id").size()
    assert sizes.max() >= 5 and (sizes == 1).mean() < 0.7
    first = users.sort_values("signup_at").groupby("account_id").head(1)
    assert (first["seat_role"] == "admin").all()
    assert set(users["seat_role"]) == {"admin", "member", "viewer"}
    joined = users[~users["user_id"].isin(first["user_id"])]
    accepted = ev[ev["event"] == "invite_accepted"].drop_duplicates(["user_id", "timestamp"])
    inviter = first.set_index("account_id")["user_id"]
    expect = pd.DataFrame(
        {
            "user_id": joined["account_id"].map(inviter).to_numpy(),
            "timestamp": joined["signup_at"].to_numpy(),
        }
    )
    hits = expect.merge(accepted, on=["user_id", "timestamp"])
    assert len(hits) == len(joined)  # every teammate joined through an accepted invite
    assert (ev["event"] == "billing_viewed").sum() > 50
    pay = t["payments"]
    assert set(pay["kind"]) <= {"first", "expansion"}
    assert pay.groupby("account_id")["kind"].apply(lambda k: k.iloc[0] == "first").all()
    if task == "expansion":
        wide = pay.pivot(index="account_id", columns="kind", values="seats").dropna()
        assert len(wide) > 20 and (wide["expansion"] > wide["first"]).all()
        paying = set(pay.loc[pay["kind"] == "first", "account_id"])
        assert set(t["truth"]["entity_id"]) <= paying


def test_same_seed_same_bytes(tmp_path: Path):
    """Check that a task world's files repeat byte for byte with its seed and differ without."""

    def digest(folder: Path) -> dict[str, str]:
        return {
            str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*"))
            if p.is_file()
        }

    for name, seed in (("a", 3), ("b", 3), ("c", 4)):
        simulate_task(tmp_path / name, "account", entities=150, seed=seed, days=60, format="csv")
    a, b, c = (digest(tmp_path / n) for n in "abc")
    assert a == b and a.keys() == c.keys() and a != c


def test_without_signup_dates_the_truth_is_the_same(tmp_path: Path):
    """Check that --no-signup drops signup_at and changes nothing else that the truth reads."""
    simulate_task(tmp_path / "with", "freemium", entities=300, seed=2, days=70)
    simulate_task(tmp_path / "without", "freemium", entities=300, seed=2, days=70, signup=False)
    a, b = _read(tmp_path / "with"), _read(tmp_path / "without")
    assert "signup_at" in a["users"] and "signup_at" not in b["users"]
    pd.testing.assert_frame_equal(a["truth"], b["truth"])
    pd.testing.assert_frame_equal(a["events"], b["events"])
    first = a["events"].dropna(subset=["user_id"]).groupby("user_id")["timestamp"].min()
    signup = a["users"].set_index("user_id")["signup_at"]
    lag = (first - signup.loc[first.index]).dt.total_seconds()
    assert lag.between(5, 120).all()  # first seen is the signup, within two minutes


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"task": "churn"}, "'task' parameter"),
        ({"entities": 0}, "'entities' parameter"),
        ({"days": 10}, "'days' parameter"),
        ({"horizon": timedelta(days=10)}, "'horizon' parameter .* Got 10d"),
        ({"lookback": timedelta(days=0)}, "'lookback' parameter"),
    ],
)
def test_bad_parameters_are_refused(tmp_path: Path, kwargs: dict, match: str):
    """Check that each bad parameter is refused with a message naming it."""
    args = {"task": "freemium", "entities": 10, "seed": 1} | kwargs
    with pytest.raises(ConfigError, match=match):
        simulate_task(tmp_path, **args)


def test_cli_simulates_a_task_world(tmp_path: Path):
    """Check that 'propensity simulate --task account' writes the world and reports its oracle."""
    result = CliRunner().invoke(
        app,
        ["simulate", "--task", "account", "--users", "200", "--days", "60",
         "--out", str(tmp_path), "--start", str(date(2025, 3, 3))],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "eligible entity-anchors" in result.output
    record = json.loads((tmp_path / "oracle.json").read_text())
    assert record["settings"]["task"] == "account" and record["settings"]["entities"] == 200
    bad = CliRunner().invoke(app, ["simulate", "--task", "freemium", "--horizon", "10d",
                                   "--out", str(tmp_path / "x")])  # fmt: skip
    assert bad.exit_code != 0 and "whole weeks" in bad.output
