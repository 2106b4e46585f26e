"""End-to-end tests of account tasks on DuckDB: a simulated team world trained and scored through
the CLI (account PQLs and expansion), rows keyed on the account, and every account PQL naming
members of that account; discover refuses account tasks in one line (Spark's account score job
is held to this one: tests/test_spark_tasks.py)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from propensity.cli import app
from propensity.config import load_config
from propensity.engines import open_engine
from propensity.explain.members import member_lines
from propensity.features import FeatureSpec
from propensity.io import load_data
from propensity.labels import LabelTimes
from propensity.pipeline.crm import read_crm_inputs
from propensity.simulate.tasks import simulate_task
from propensity.task_labels import task_population

ROOT = Path(__file__).parent.parent


def _config(tmp: Path, task: str, data: Path, **update) -> Path:
    cfg = yaml.safe_load((ROOT / "configs" / f"{task}.yaml").read_text())
    cfg["data"].update(
        events=str(data / "events"),
        users=str(data / "users.parquet"),
        conversions=str(data / "conversions.parquet"),
        payments=str(data / "payments.parquet"),
    )
    cfg["output_dir"] = str(tmp / "outputs")
    cfg["threshold"] = {"policy": "top_fraction", "top_fraction": 0.1, "bootstrap": 20}
    cfg["model"].update(min_positives=20, min_negatives=20, n_estimators=150)
    cfg["baselines"]["bootstrap"] = 20
    cfg.update(update)
    path = tmp / f"{task}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


@pytest.fixture(scope="module")
def small_world(tmp_path_factory):
    """A small simulated account world (fast to load)."""
    tmp = tmp_path_factory.mktemp("accounts")
    simulate_task(tmp / "data", "account", entities=300, seed=5, days=98)
    return tmp


def test_account_rows_are_keyed_on_the_account(small_world):
    """Check that account label rows carry the account as their entity key and that their
    features hold the user-level families over the account's events and the members family."""
    cfg = load_config(_config(small_world, "account", small_world / "data"))
    engine = open_engine(cfg)
    labels = engine.label_times(cfg.label, cfg.task)
    frame = labels.frame
    assert (frame["user_id"] == frame["account_id"]).all()
    assert not frame.duplicated(["account_id", "cutoff_at"]).any()
    spec, result = engine.learn_spec(labels, cfg.features, np.ones(len(frame), dtype=bool))
    assert "members" in spec.families and "acct_active_members_7d" in spec.columns
    assert list(result.frame.columns) == ["user_id", "cutoff_at", *spec.columns]
    # n_events_all over the account = every member's events before the anchor
    row = frame.iloc[len(frame) // 2]
    (want,) = engine.con.execute(
        "SELECT count(*) FROM events e JOIN users u USING (user_id) "
        "WHERE u.account_id = ? AND e.timestamp < ? AND e.timestamp >= ?",
        [row["account_id"], row["cutoff_at"], row["signup_at"]],
    ).fetchone()
    assert result.frame.loc[len(frame) // 2, "n_events_all"] == want
    again = engine.features(labels, spec).frame
    pd.testing.assert_frame_equal(again, result.frame)


def test_member_shares_split_the_account_counts(small_world):
    """Check that members' shares of the count columns over an account's events partition the
    account's count: they sum to 1 and each equals the member's own events over the account's."""
    cfg = load_config(_config(small_world, "account", small_world / "data"))
    engine = open_engine(cfg)
    labels = engine.label_times(cfg.label, cfg.task)
    spec, result = engine.learn_spec(labels, cfg.features, np.ones(len(labels), dtype=bool))
    pick = np.flatnonzero(result.frame["n_events_28d"].to_numpy() > 0)[-5:]
    rows = LabelTimes(labels.frame.iloc[pick].reset_index(drop=True), settings=labels.settings)
    shares = engine.member_shares(rows, spec)
    got = shares[shares["feature"] == "n_events_28d"]
    np.testing.assert_allclose(got.groupby("row")["share"].sum(), 1.0)
    members = dict(engine.con.execute("SELECT user_id, account_id FROM users").fetchall())
    for r in got.itertuples(index=False):
        row = rows.frame.iloc[r.row]
        assert members[r.user_id] == row["account_id"]
        (n,) = engine.con.execute(
            "SELECT count(*) FROM events WHERE user_id = ? AND timestamp < ? AND timestamp >= ? "
            "AND timestamp >= ? AND event IN (SELECT unnest(?))",
            [r.user_id, row["cutoff_at"], row["cutoff_at"] - pd.Timedelta(days=28),
             row["signup_at"], list(spec.events)],
        ).fetchone()  # fmt: skip
        total = result.frame["n_events_28d"].iloc[pick[r.row]]
        assert r.share * total == pytest.approx(n)


def test_crm_inputs_follow_the_account_task(small_world):
    """Check that the CRM reads account entities: each account's conversion is the task's
    target (first payment; for expansion, the first payment with more seats) and its segments
    aggregate its members' columns (the largest company size)."""
    simulate_task(small_world / "expansion", "expansion", entities=200, seed=5, days=98)
    for task, data in (("account", "data"), ("expansion", "expansion")):
        cfg = load_config(_config(small_world, task, small_world / data))
        engine = open_engine(cfg)
        inputs = read_crm_inputs(engine, cfg)
        con = engine.con
        pay = con.execute("SELECT account_id, paid_at, seats FROM payments").df()
        conv = con.execute(
            "SELECT u.account_id, min(c.converted_at) AS t FROM conversions c "
            "JOIN users u USING (user_id) GROUP BY 1"
        ).df()
        if task == "account":
            first = pd.concat(
                [pay[["account_id", "paid_at"]].set_axis(["account_id", "t"], axis=1), conv]
            )
            want = first.groupby("account_id")["t"].min()
        else:
            pay = pay.sort_values("paid_at")
            seats0 = pay.groupby("account_id")["seats"].first()
            more = pay[pay["seats"] > pay["account_id"].map(seats0)]
            want = more.groupby("account_id")["paid_at"].min()
        assert len(want) > 0
        got = inputs.converted.set_index("entity_id")["converted_at"]
        pd.testing.assert_series_equal(
            got.sort_index(), want.sort_index(), check_names=False, check_index_type=False
        )
        seg = inputs.segments.set_index("entity_id")
        size = con.execute("SELECT account_id, max(company_size) FROM users GROUP BY 1").df()
        size = size.set_index("account_id").iloc[:, 0]
        assert set(seg.index) == set(size.index)
        assert np.allclose(seg.loc[size.index, "company_size"], size, equal_nan=True)
        assert {"domain_class", "signup_at"} <= set(seg.columns)
        assert not seg.columns.str.contains("email").any() or "email_domain" in seg.columns


def test_member_lines_name_ids_roles_and_what_they_did():
    """Check that the users behind an account PQL read as ids, roles and what each did, then
    the account line."""
    spec = FeatureSpec(
        families=("counts", "members"), events=("billing_viewed",), windows_s=(7 * 86400,),
        session_gap_s=1800, key_events=(),
    )  # fmt: skip
    values = pd.DataFrame({c: [0.0] for c in spec.columns}).assign(
        acct_admin_billing_viewed_28d=2.0, acct_active_members_7d=4.0
    )
    named = pd.DataFrame(
        {
            "row": [0, 0],
            "rank": [1, 2],
            "user_id": ["u00412", "u00413"],
            "role": ["admin", "member"],
            "contribution": [0.5, 0.2],
            "reason": ["acct_admin_billing_viewed_28d", "acct_active_members_7d"],
        }
    )
    shares = pd.DataFrame(
        {
            "row": [0, 0],
            "user_id": ["u00412", "u00413"],
            "role": ["admin", "member"],
            "feature": ["acct_admin_billing_viewed_28d", "acct_active_members_7d"],
            "share": [1.0, 0.25],
        }
    )
    assert member_lines(named, shares, values, spec) == {
        0: "u00412 (admin): billing viewed twice in the last 28d; u00413 (member): active in "
        "the last 7d; 4 teammates active in the last 7d"
    }


def test_discover_refuses_account_tasks(small_world, monkeypatch):
    """Check that discover with an account task exits 2 in one line (train and score run it),
    before it touches the tracking store (no empty experiment is left behind)."""
    config = _config(small_world, "account", small_world / "data")
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.chdir(small_world)
    result = CliRunner().invoke(app, ["discover", "--config", str(config)])
    assert result.exit_code == 2, result.output
    assert not (small_world / "mlflow.db").exists()
    assert "task.entity 'account' is not supported by discover yet" in result.output
    assert "Traceback" not in result.output


def _train_and_score(tmp: Path, task: str, as_of: str, monkeypatch) -> tuple:
    simulate_task(tmp / "data", task, entities=1500, seed=3)
    config = _config(tmp, task, tmp / "data")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp / 'mlflow.db'}")
    runner = CliRunner()
    trained = runner.invoke(app, ["train", "--config", str(config)])
    assert trained.exit_code == 0, trained.output
    run_dir = next((tmp / "outputs").glob("train-*"))
    test = pd.read_parquet(run_dir / "test_scores.parquet")
    assert "account_id" in test.columns and "user_id" not in test.columns
    assert test["cutoff_at"].dt.dayofweek.eq(0).all()
    assert not test.duplicated(["account_id", "cutoff_at"]).any()
    out = tmp / "scores.parquet"
    argv = ["score", "--config", str(config), "--as-of", as_of, "--out", str(out)]
    argv += ["--model", f"models:/{load_config(config).mlflow.registered_model}/1"]
    scored = runner.invoke(app, argv)
    assert scored.exit_code == 0, scored.output
    cfg = load_config(config)
    con = load_data(cfg.data).con
    want = task_population(con, cfg.label, cfg.task, pd.Timestamp(as_of).to_pydatetime())
    return pd.read_parquet(out), want, con


def _check_named_members(scores: pd.DataFrame, con) -> None:
    """Every PQL names at least one user, each a member of that account, ids and roles only."""
    members = dict(con.execute("SELECT user_id, account_id FROM users").fetchall())
    roles = dict(con.execute("SELECT user_id, seat_role FROM users").fetchall())
    pqls = scores[scores["is_pql"]]
    assert len(pqls) > 0
    assert scores.loc[~scores["is_pql"], "members"].isna().all()
    for account, text in zip(pqls["account_id"], pqls["members"], strict=True):
        named = re.findall(r"(?:^|; )(\S+) \((\w+)\): ", text)
        assert named, text
        for user, role in named:
            assert members[user] == account and roles[user] == role
        assert "@" not in text and "teammates active in the last 7d" in text


@pytest.mark.slow
def test_account_pqls_train_score_and_name_their_users(tmp_path, monkeypatch):
    """Check that an account task trains and scores keyed on the account: the scored accounts
    are exactly the eligible ones at --as-of, and every PQL names users of that account."""
    scores, want, con = _train_and_score(tmp_path, "account", "2025-05-19", monkeypatch)
    assert "user_id" not in scores.columns and scores["account_id"].is_unique
    assert sorted(scores["account_id"]) == sorted(want.frame["account_id"])
    _check_named_members(scores, con)
    # a week later, against this run: new and dropped PQLs are accounts too
    out = tmp_path / "later.parquet"
    argv = ["score", "--config", str(tmp_path / "account.yaml"), "--as-of", "2025-05-26"]
    argv += ["--out", str(out), "--previous", str(tmp_path / "scores.parquet")]
    argv += [
        "--model",
        f"models:/{load_config(tmp_path / 'account.yaml').mlflow.registered_model}/1",
    ]
    later = CliRunner().invoke(app, argv)
    assert later.exit_code == 0, later.output
    dropped = pd.read_parquet(tmp_path / "later.dropped.parquet")
    was = set(scores.loc[scores["is_pql"], "account_id"])
    now = pd.read_parquet(out)
    assert set(dropped["account_id"]) == was - set(now.loc[now["is_pql"], "account_id"])


@pytest.mark.slow
def test_expansion_scores_paying_accounts(tmp_path, monkeypatch):
    """Check that an expansion task scores exactly the paying, not yet expanded, active accounts
    at --as-of and names the users behind each PQL."""
    scores, want, con = _train_and_score(tmp_path, "expansion", "2025-05-19", monkeypatch)
    assert sorted(scores["account_id"]) == sorted(want.frame["account_id"])
    paying = {a for (a,) in con.execute("SELECT account_id FROM payments").fetchall()}
    assert set(scores["account_id"]) <= paying
    _check_named_members(scores, con)
