"""Hand-computed values for every feature family on a tiny inline event log.

Every user signs up at hour 0 and is cut off at hour 168 (7 days); ``t`` below is hours since
signup. User u1's events (the ones features may see are marked *):

    t=-1 page_view (before signup, ignored)   t=48  teammate_invited*
    t=0.25 login*                             t=100 page_view*
    t=0.5 doc_created* {"pages": 3}           t=150 doc_shared*
    t=1   doc_shared*                         t=167 login*
    t=24  login*                              t=168 login (at the cutoff, ignored)
    t=25  doc_created* {"pages": 5}           t=200 doc_shared (after, ignored)

u2 (same account A as u1): login t=2, doc_created t=100 {"pages": "abc"}, "it's" t=166.
u3 (no account, no domain, signs up a day later): login t=10, zzz t=11. u4, u5 have no events.
"""

from __future__ import annotations

import json
import math
from datetime import datetime, timedelta

import duckdb
import pandas as pd
import pytest

from propensity.config import FeaturesConfig, MilestoneOrder, PropertyAggregate
from propensity.errors import ConfigError, DataContractError, ModelError
from propensity.features import FeatureSpec, compute_features, learn_spec
from propensity.labels import LabelTimes

S1 = datetime(2024, 1, 1)
S3 = datetime(2024, 1, 2)


def _h(base: datetime, hours: float) -> datetime:
    return base + timedelta(hours=hours)


def make_con() -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    users = pd.DataFrame(
        {
            "user_id": ["u1", "u2", "u3", "u4", "u5"],
            "signup_at": [S1, S1, S3, S1, S1],
            "email_domain": ["gmail.com", "acme.com", None, "Stanford.EDU", "bigcorp.com"],
            "account_id": ["A", "A", None, "B", "C"],
            "seats": [3.0, 10.0, None, 1.0, 2.0],
            "region": ["eu", "us", None, "eu", "apac"],
        }
    )
    pages = [json.dumps({"pages": 3}), json.dumps({"pages": 5}), json.dumps({"pages": "abc"})]
    rows = [
        ("u1", "page_view", _h(S1, -1), None),
        ("u1", "login", _h(S1, 0.25), None),
        ("u1", "doc_created", _h(S1, 0.5), pages[0]),
        ("u1", "doc_shared", _h(S1, 1), None),
        ("u1", "login", _h(S1, 24), None),
        ("u1", "doc_created", _h(S1, 25), pages[1]),
        ("u1", "teammate_invited", _h(S1, 48), None),
        ("u1", "page_view", _h(S1, 100), None),
        ("u1", "doc_shared", _h(S1, 150), None),
        ("u1", "login", _h(S1, 167), None),
        ("u1", "login", _h(S1, 168), None),
        ("u1", "doc_shared", _h(S1, 200), None),
        ("u2", "login", _h(S1, 2), None),
        ("u2", "doc_created", _h(S1, 100), pages[2]),
        ("u2", "it's", _h(S1, 166), None),
        ("u3", "login", _h(S3, 10), None),
        ("u3", "zzz", _h(S3, 11), None),
    ]
    events = pd.DataFrame(rows, columns=["user_id", "event", "timestamp", "properties"])
    for name, df in (("users", users), ("events", events)):
        con.register(f"{name}_df", df)
        con.execute(f"CREATE TABLE {name} AS SELECT * FROM {name}_df")
        con.unregister(f"{name}_df")
    return con


def label_times() -> LabelTimes:
    frame = pd.DataFrame(
        {
            "user_id": ["u1", "u2", "u3", "u4", "u5", "u1"],
            "account_id": ["A", "A", None, "B", "C", "A"],
            "signup_at": [S1, S1, S3, S1, S1, S1],
            "cutoff_at": [
                _h(S1, 168),
                _h(S1, 168),
                _h(S3, 168),
                _h(S1, 168),
                _h(S1, 168),
                _h(S1, 72),
            ],  # fmt: skip
            "cutoff_age_days": [7.0, 7.0, 7.0, 7.0, 7.0, 3.0],
            "label": [0, 1, 0, 0, 0, 0],
        }
    )
    return LabelTimes(frame)


CFG = FeaturesConfig(
    windows=("1d", "3d"),
    min_event_support=1,
    top_transitions=0,
    milestones=(
        MilestoneOrder(first="doc_shared", then="teammate_invited", within="48h"),
        MilestoneOrder(first="teammate_invited", then="doc_shared"),
    ),
    enterprise_domains=("BigCorp.com",),
    numeric_user_columns=("seats",),
    categorical_user_columns=("region",),
    properties=(
        PropertyAggregate(
            event="doc_created", property="pages", aggregates=("sum", "mean", "max", "min")
        ),
    ),
)


@pytest.fixture(scope="module")
def feats() -> pd.DataFrame:
    con = make_con()
    lt = label_times()
    spec = learn_spec(con, lt, CFG)
    # Transitions are learned elsewhere (test below); here fix them so the values are known.
    spec = FeatureSpec(**{**spec.to_dict(), **_tuples(spec), "transitions": (
        ("login", "doc_created"), ("doc_shared", "login"), ("page_view", "login"))})  # fmt: skip
    ff = compute_features(con, lt, spec)
    assert ff.unseen_events == {}
    return ff.frame


def _tuples(spec: FeatureSpec) -> dict:
    return {k: getattr(spec, k) for k in spec.__dataclass_fields__}


def _row(frame: pd.DataFrame, i: int) -> dict:
    return frame.iloc[i].to_dict()


def test_keys_and_dtypes(feats: pd.DataFrame) -> None:
    """Check that keys come first, rows keep the label-times order, and dtypes are as promised."""
    assert feats.columns[:2].tolist() == ["user_id", "cutoff_at"]
    assert feats["user_id"].tolist() == ["u1", "u2", "u3", "u4", "u5", "u1"]
    cats = {c for c in feats.columns[2:] if isinstance(feats[c].dtype, pd.CategoricalDtype)}
    assert cats == {"domain_class", "user_region"}
    assert all(feats[c].dtype == "float64" for c in feats.columns[2:] if c not in cats)


def test_counts(feats: pd.DataFrame) -> None:
    """Check window counts and rates per active day."""
    u1 = _row(feats, 0)
    # 1d = t in [144, 168): doc_shared@150, login@167. 3d = t in [96, 168): + page_view@100.
    assert (u1["n_events_1d"], u1["n_doc_shared_1d"], u1["n_login_1d"]) == (2, 1, 1)
    assert (u1["n_events_3d"], u1["n_page_view_3d"], u1["n_doc_created_3d"]) == (3, 1, 0)
    # all: 9 events since signup: login 3, doc_created 2, doc_shared 2, invited 1, page_view 1.
    assert u1["n_events_all"] == 9 and u1["n_login_all"] == 3 and u1["n_page_view_all"] == 1
    # active days (days since signup with an event): 0, 1, 2, 4, 6 -> 5; login 3 / 5.
    assert u1["rate_login_per_active_day"] == pytest.approx(0.6)
    assert u1["rate_teammate_invited_per_active_day"] == pytest.approx(0.2)
    assert u1["n_it_s_all"] == 0  # the event "it's" is u2's; its name is sanitised
    u4 = _row(feats, 3)  # no events at all: counts and rates are 0, not missing
    assert u4["n_events_all"] == 0 and u4["rate_login_per_active_day"] == 0
    early = _row(feats, 5)  # u1 at the 3-day cutoff: t < 72 -> 6 events
    assert early["n_events_all"] == 6 and early["n_events_1d"] == 1  # teammate_invited@48


def test_recency(feats: pd.DataFrame) -> None:
    """Check hours since last event / key event, tenure and cutoff age."""
    u1 = _row(feats, 0)
    assert u1["hours_since_last_event"] == 1.0  # 168 - 167
    assert u1["hours_since_last_doc_shared"] == 18.0  # 168 - 150
    assert u1["hours_since_last_doc_created"] == 143.0  # 168 - 25
    assert math.isnan(u1["hours_since_last_zzz"])  # never did it
    assert u1["tenure_days"] == pytest.approx((168 - 0.25) / 24)  # since the first event
    assert u1["cutoff_age_days"] == 7.0
    assert _row(feats, 5)["cutoff_age_days"] == 3.0
    u4 = _row(feats, 3)
    assert math.isnan(u4["hours_since_last_event"]) and math.isnan(u4["tenure_days"])


def test_activity(feats: pd.DataFrame) -> None:
    """Check active days, sessions, streak, trend and inter-event gaps."""
    u1 = _row(feats, 0)
    assert u1["active_days"] == 5 and u1["longest_streak_days"] == 3  # days 0, 1, 2
    # gaps (h): .25 .5 23 1 23 52 50 17; a new session needs a gap > 30 min (0.5h is not):
    # 6 new sessions + the first = 7.
    assert u1["sessions"] == 7
    assert u1["events_per_session"] == pytest.approx(9 / 7)
    assert u1["gap_mean_hours"] == pytest.approx((167 - 0.25) / 8)
    assert u1["gap_max_hours"] == 52.0
    # trend = recent daily rate / since-signup daily rate: (2/1) / (9/7) and (3/3) / (9/7).
    assert u1["trend_events_1d"] == pytest.approx(14 / 9)
    assert u1["trend_events_3d"] == pytest.approx(7 / 9)
    u3 = _row(feats, 2)  # login@10, zzz@11: the 1h gap is > 30 min, so two sessions
    assert u3["sessions"] == 2 and u3["gap_max_hours"] == 1.0
    u4 = _row(feats, 3)
    assert u4["sessions"] == 0 and math.isnan(u4["events_per_session"])
    assert math.isnan(u4["trend_events_1d"]) and math.isnan(u4["gap_mean_hours"])


def test_timing_and_order(feats: pd.DataFrame) -> None:
    """Check hours to first event and milestone order / within-bound flags."""
    u1 = _row(feats, 0)
    assert u1["hours_to_first_login"] == 0.25 and u1["hours_to_first_page_view"] == 100.0
    assert math.isnan(u1["hours_to_first_it_s"])
    # first doc_shared@1 < first teammate_invited@48, and 47h <= 48h.
    assert u1["order_doc_shared_before_teammate_invited"] == 1
    assert u1["within_doc_shared_then_teammate_invited_2d"] == 1
    assert u1["order_teammate_invited_before_doc_shared"] == 0
    assert _row(feats, 1)["order_doc_shared_before_teammate_invited"] == 0  # u2: neither


def test_transitions_and_diversity(feats: pd.DataFrame) -> None:
    """Check consecutive-pair counts, distinct event types and the entropy of the mix."""
    u1 = _row(feats, 0)
    # order: login dc ds login dc ti pv ds login -> login->dc x2, ds->login x2, pv->login 0.
    assert (u1["tr_login__doc_created"], u1["tr_doc_shared__login"]) == (2, 2)
    assert u1["tr_page_view__login"] == 0
    assert u1["distinct_events"] == 5
    # counts 3, 2, 2, 1, 1 of 9: H = -sum p ln p.
    h = -sum(c / 9 * math.log(c / 9) for c in (3, 2, 2, 1, 1))
    assert u1["event_entropy"] == pytest.approx(h)
    assert _row(feats, 3)["event_entropy"] == 0.0


def test_account(feats: pd.DataFrame) -> None:
    """Check account features count the other users of the account, before the cutoff."""
    u1, u2 = _row(feats, 0), _row(feats, 1)
    # For u1: u2's login@2, doc_created@100, it's@166 -> 1 user; 1d: 1, 3d: 2, all: 3.
    assert u1["account_active_users"] == 1
    assert (u1["account_events_1d"], u1["account_events_3d"], u1["account_events_all"]) == (1, 2, 3)
    # For u2: u1's events before hour 168 (page_view@-1 is before u2's signup, so not in
    # "all"); 1d: ds@150, login@167; 3d: + pv@100.
    assert u2["account_active_users"] == 1
    assert (u2["account_events_1d"], u2["account_events_3d"], u2["account_events_all"]) == (2, 3, 9)
    assert _row(feats, 2)["account_active_users"] == 0  # u3 has no account
    # u4 and u5 are alone in accounts B and C (the plan skips one-user accounts): all zero.
    account = [c for c in feats.columns if c.startswith("account_")]
    assert (feats.loc[feats["user_id"].isin(["u4", "u5"]), account] == 0).all().all()


def test_fit(feats: pd.DataFrame) -> None:
    """Check the domain class and the passed-through user columns."""
    assert feats["domain_class"].tolist() == [
        "free_mail", "corporate", "unknown", "education", "enterprise", "free_mail",
    ]  # fmt: skip
    assert feats["domain_class"].cat.categories.tolist() == [
        "free_mail", "corporate", "enterprise", "education", "unknown",
    ]  # fmt: skip
    assert feats["user_seats"].iloc[:3].tolist()[:2] == [3.0, 10.0]
    assert math.isnan(feats["user_seats"].iloc[2])
    assert feats["user_region"].cat.categories.tolist() == ["apac", "eu", "us"]
    assert feats["user_region"].iloc[1] == "us" and pd.isna(feats["user_region"].iloc[2])


def test_properties(feats: pd.DataFrame) -> None:
    """Check numeric aggregates of a JSON property; non-numeric values are ignored."""
    u1, u2 = _row(feats, 0), _row(feats, 1)
    assert (u1["prop_doc_created_pages_sum"], u1["prop_doc_created_pages_mean"]) == (8.0, 4.0)
    assert (u1["prop_doc_created_pages_max"], u1["prop_doc_created_pages_min"]) == (5.0, 3.0)
    assert u2["prop_doc_created_pages_sum"] == 0.0  # "abc" is not a number
    assert math.isnan(u2["prop_doc_created_pages_mean"])


def test_learned_transitions_ranked_by_information() -> None:
    """Check transitions are ranked by |rate with - rate without| x support, then by name."""
    con = make_con()
    cfg = FeaturesConfig(windows=("1d",), min_event_support=1, top_transitions=2)
    spec = learn_spec(con, label_times(), cfg)
    # 6 rows, 1 positive (u2). doc_created->it's is only in u2's row: |1/1 - 0/5| x 1 = 1.
    # login->doc_created is in u2's row and both u1 rows: |1/3 - 0/3| x 3 = 1 (a tie, broken by
    # name). Pairs only in the two u1 rows: |0 - 1/4| x 2 = 0.5; u3's login->zzz: 0.2.
    assert spec.transitions == (("doc_created", "it's"), ("login", "doc_created"))
    assert [c for c in spec.columns if c.startswith("tr_")] == [
        "tr_doc_created__it_s", "tr_login__doc_created",
    ]  # fmt: skip


def test_vocabulary_support_and_unseen_events() -> None:
    """Check rare event types drop out of the vocabulary and are counted as unseen."""
    con = make_con()
    cfg = FeaturesConfig(windows=("1d",), min_event_support=2, top_transitions=0)
    lt = label_times()
    spec = learn_spec(con, lt, cfg)
    assert spec.events == ("doc_created", "login")  # the only types with >= 2 users
    ff = compute_features(con, lt, spec)
    # Counted over all rows, before each cutoff and after signup (u1 twice: 7d and 3d cutoffs).
    assert ff.unseen_events == {
        "doc_shared": 3, "it's": 1, "page_view": 1, "teammate_invited": 2, "zzz": 1,
    }  # fmt: skip
    assert ff.frame.loc[0, "n_events_all"] == 5  # u1: 3 logins + 2 doc_created


def test_spec_round_trip_and_describe() -> None:
    """Check the spec survives JSON with the same hash and columns, and describes columns."""
    spec = learn_spec(make_con(), label_times(), CFG)
    again = FeatureSpec.from_json(spec.to_json())
    assert again == spec and again.hash == spec.hash and again.columns == spec.columns
    info = spec.describe("n_doc_shared_3d")
    assert (info.family, info.event, info.window) == ("counts", "doc_shared", "3d")
    info = spec.describe("within_doc_shared_then_teammate_invited_2d")
    assert (info.family, info.event, info.event_b, info.window_s) == (
        "order", "doc_shared", "teammate_invited", 172800,
    )  # fmt: skip
    with pytest.raises(ModelError, match="Feature 'nope' must be one of"):
        spec.describe("nope")
    doc = json.loads(spec.to_json())
    doc["hash"] = "0" * 16
    with pytest.raises(ModelError, match="hash must match"):
        FeatureSpec.from_json(json.dumps(doc))


def test_families_switch_off() -> None:
    """Check a family switched off contributes no columns."""
    cfg = CFG.model_copy(update={"families": CFG.families.model_copy(update={"counts": False})})
    spec = learn_spec(make_con(), label_times(), cfg)
    assert not any(c.startswith(("n_", "rate_")) for c in spec.columns)
    assert "hours_since_last_event" in spec.columns


@pytest.mark.parametrize(
    ("update", "error", "match"),
    [
        ({"numeric_user_columns": ("missing",)}, DataContractError, "'missing' named in"),
        ({"numeric_user_columns": ("region",)}, DataContractError, "must be numeric"),
        ({"properties": (PropertyAggregate(event="x", property="a.b"),)}, ConfigError, "plain"),
    ],
)
def test_bad_settings(update: dict, error: type, match: str) -> None:
    """Check bad feature settings raise errors that name the setting."""
    cfg = CFG.model_copy(update=update)
    with pytest.raises(error, match=match):
        learn_spec(make_con(), label_times(), cfg)


def test_duplicate_users_are_reported() -> None:
    """Check a users table repeating a user_id is reported instead of duplicating rows."""
    con = make_con()
    con.execute("INSERT INTO users SELECT * FROM users WHERE user_id = 'u1'")
    lt = label_times()
    spec = learn_spec(make_con(), lt, CFG)
    with pytest.raises(DataContractError, match="users table probably repeats a user_id"):
        compute_features(con, lt, spec)


@pytest.mark.parametrize("unit", ["s", "ms", "us", "ns", "UTC", "Europe/Paris"])
def test_every_timestamp_unit_and_zone_gives_the_same_features(
    feats: pd.DataFrame, unit: str
) -> None:
    """Check that events, users and label times in any pandas/Arrow unit or zone agree."""

    def convert(col: pd.Series) -> pd.Series:
        if unit in ("s", "ms", "us", "ns"):
            return col.astype(f"datetime64[{unit}]")
        return col.dt.tz_localize("UTC").dt.tz_convert(unit)  # the same instants, zoned

    base = make_con()
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    for name, col in (("users", "signup_at"), ("events", "timestamp")):
        df = base.execute(f"SELECT * FROM {name}").df()
        df[col] = convert(pd.to_datetime(df[col]))
        con.register(f"{name}_df", df)
        con.execute(f"CREATE TABLE {name} AS SELECT * FROM {name}_df")
    lt = label_times()
    frame = lt.frame.assign(
        signup_at=convert(lt.frame["signup_at"]), cutoff_at=convert(lt.frame["cutoff_at"])
    )
    spec = learn_spec(make_con(), lt, CFG)
    spec = FeatureSpec(**{**spec.to_dict(), **_tuples(spec), "transitions": (
        ("login", "doc_created"), ("doc_shared", "login"), ("page_view", "login"))})  # fmt: skip
    got = compute_features(con, LabelTimes(frame), spec).frame
    cols = list(spec.columns)
    pd.testing.assert_frame_equal(got[cols], feats[cols])


def test_a_cutoff_decades_after_signup_gives_the_same_features(feats: pd.DataFrame) -> None:
    """Check that rows with a cutoff over 2^31 s after signup (a 64-bit event join) get the
    values the 32-bit join gives the other rows, and their own long ages right."""
    from propensity.features.rows import fits_int32, row_table

    lt = label_times()
    far = _h(S1, 24 * 365 * 70)  # 70 years: t no longer fits a 32-bit integer
    long = lt.frame.iloc[[0]].assign(cutoff_at=far, cutoff_age_days=365.0 * 70)
    frame = pd.concat([lt.frame, long], ignore_index=True)
    assert fits_int32(row_table(lt.frame)) and not fits_int32(row_table(frame))
    spec = learn_spec(make_con(), lt, CFG)
    spec = FeatureSpec(**{**spec.to_dict(), **_tuples(spec), "transitions": (
        ("login", "doc_created"), ("doc_shared", "login"), ("page_view", "login"))})  # fmt: skip
    got = compute_features(make_con(), LabelTimes(frame), spec).frame
    cols = list(spec.columns)
    pd.testing.assert_frame_equal(got[cols].iloc[: len(feats)], feats[cols])
    age_h = (far - S1).total_seconds() / 3600
    assert got["hours_since_last_event"].iloc[-1] == pytest.approx(age_h - 200)
    assert got["tenure_days"].iloc[-1] == pytest.approx((age_h - 0.25) / 24)


def test_one_learn_row_per_user_learns_what_a_learn_mask_learns() -> None:
    """Check that rows all learning, one per user (an event join without user and learn columns),
    learn the spec and values that the same rows learn beside a row left out by the mask."""
    import numpy as np

    from propensity.features import learn_spec_and_features

    cfg = CFG.model_copy(update={"top_transitions": 3})
    lt = label_times()
    one_each = LabelTimes(lt.frame.iloc[:5].reset_index(drop=True))  # u1..u5, all learning
    spec, ff = learn_spec_and_features(make_con(), one_each, cfg)
    mask = np.array([True] * 5 + [False])  # u1's second row joins but does not learn
    spec_m, ff_m = learn_spec_and_features(make_con(), lt, cfg, mask)
    assert spec.transitions and spec == spec_m
    cols = list(spec.columns)
    pd.testing.assert_frame_equal(ff.frame[cols], ff_m.frame[cols].iloc[:5])
