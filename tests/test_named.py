"""Tests of config entries checked against the data: named events, and rules naming features."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import yaml

from propensity.baselines import RuleBaseline, RuleError, check_baselines
from propensity.config import FeaturesConfig, config_from_dict
from propensity.errors import PropensityWarning
from propensity.features import FeatureSpec
from propensity.features.named import drop_missing_named, spec_frame, why_missing
from propensity.simulate import simulate

ROOT = Path(__file__).resolve().parents[1]
SUPPORT = {"login": 300, "doc_shared": 120, "plan_limit_hit": 7, "theme_opened": 30}


def _spec(events: tuple[str, ...] = ("doc_shared", "login")) -> FeatureSpec:
    return FeatureSpec(
        families=("counts", "recency", "activity", "fit"),
        events=events,
        windows_s=(86_400, 7 * 86_400),
        session_gap_s=1800,
        key_events=("login",),
        categorical_user_columns=(("role", ("engineer", "manager")),),
    )


def test_drop_missing_named_removes_entries_of_absent_events():
    """Check that milestones, properties and key events of absent events go, the rest stays."""
    cfg = FeaturesConfig(
        key_events=["login", "pricing_viewed"],
        milestones=[
            {"first": "plan_limit_hit", "then": "pricing_viewed"},
            {"first": "login", "then": "doc_shared"},
        ],
        properties=[
            {"event": "export_done", "property": "rows"},
            {"event": "doc_shared", "property": "size"},
        ],
    )
    kept, dropped = drop_missing_named(cfg, SUPPORT)
    assert dropped == [
        "key event pricing_viewed",
        "milestone plan_limit_hit -> pricing_viewed",
        "property export_done.rows",
    ]
    assert kept.key_events == ("login",)
    assert [(m.first, m.then) for m in kept.milestones] == [("login", "doc_shared")]
    assert [p.event for p in kept.properties] == ["doc_shared"]
    assert drop_missing_named(kept, SUPPORT) == (kept, [])


@pytest.mark.parametrize(
    ("feature", "expected"),
    [
        (
            "n_plan_limit_hit_all",
            "event 'plan_limit_hit' is done by only 7 users in the training rows, below "
            "features.min_event_support (20); lower features.min_event_support to 7 or list "
            "'plan_limit_hit' in features.key_events",
        ),
        (
            "hours_since_last_theme_opened",
            "event 'theme_opened' (30 users) is not among the features.max_event_types (60) "
            "most common event types; raise features.max_event_types or list 'theme_opened' in "
            "features.key_events",
        ),
        ("n_doc_share_all", "no event named like 'doc_share' occurs before any training cutoff "),
        ("hours_to_first_doc_shared", "recency and timing features exist only for"),
        ("n_doc_shared_3d", "event 'doc_shared' is in the vocabulary but not with this window"),
        ("active_days", None),
    ],
)
def test_why_missing_names_the_setting(feature, expected):
    """Check that each reason a per-event feature is absent names the setting to change."""
    got = why_missing(feature, _spec(), SUPPORT, FeaturesConfig())
    if expected is None:
        assert got is None
    else:
        assert got is not None and got.startswith(expected)
    if feature == "n_doc_share_all":
        assert "close names in the data: doc_shared" in got


def test_check_baselines_lists_every_problem_at_once():
    """Check that every rule's problem is in one error, each with its reason or close names."""
    spec = _spec()
    rules = [
        RuleBaseline(expr="n_plan_limit_hit_all >= 1", name="limit"),
        RuleBaseline(expr="n_login_al >= 1", name="typo"),
        RuleBaseline(expr="n_login_all >= 'x'", name="types"),
        RuleBaseline(expr="user_role == 'founder'", name="level"),
    ]
    frame = spec_frame(spec)
    assert list(frame.columns) == list(spec.columns) and len(frame) == 0
    with pytest.warns(PropensityWarning, match="'founder' is not a level of 'user_role'"):
        with pytest.raises(RuleError) as info:
            check_baselines(rules, frame, lambda f: why_missing(f, spec, SUPPORT, FeaturesConfig()))
    message = str(info.value)
    assert message.startswith("3 problems with the baselines under 'baselines:':")
    limit = "Rule 'limit' ('n_plan_limit_hit_all >= 1') does not fit the feature table: feature"
    assert f"{limit} 'n_plan_limit_hit_all': event 'plan_limit_hit' is done by only 7" in message
    assert "below features.min_event_support (20)" in message
    assert "feature 'n_login_al': no such feature; did you mean 'n_login_all', " in message
    assert "numeric feature 'n_login_all' is compared with text 'x'" in message


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("named")
    simulate(out, users=1500, seed=5, days=120)
    return out


def _demo_config(world: Path, **changes) -> object:
    raw = yaml.safe_load((ROOT / "configs" / "demo.yaml").read_text(encoding="utf-8"))
    raw["data"].update(
        events=str(world / "events"),
        users=str(world / "users.parquet"),
        conversions=str(world / "conversions.parquet"),
    )
    for section, values in changes.items():
        raw[section] = {**raw.get(section, {}), **values}
    return config_from_dict(raw)


def test_demo_config_on_other_data_warns_once_and_builds_no_constant_features(world):
    """Check that milestones/properties of absent events are dropped with one warning line."""
    from propensity.pipeline.prepare import prepare

    cfg = _demo_config(
        world,
        features={
            "milestones": [
                {"first": "workspace_created", "then": "pricing_viewed"},
                {"first": "doc_shared", "then": "invite_accepted", "within": "48h"},
            ],
            "properties": [{"event": "report_run", "property": "rows", "aggregates": ["sum"]}],
        },
    )
    with pytest.warns(PropensityWarning) as caught:
        prepared = prepare(cfg)
    assert len(caught) == 1
    assert str(caught[0].message) == (
        "features: ignoring 2 config entries whose events never occur before a training cutoff "
        "in this data (milestone workspace_created -> pricing_viewed; property report_run.rows);"
        " remove them from the config, or map the event names."
    )
    columns = prepared.spec.columns
    assert "order_doc_shared_before_invite_accepted" in columns
    assert not [c for c in columns if "workspace_created" in c or "report_run" in c]
    constant = [c for c in columns if prepared.frame[c].nunique(dropna=False) <= 1]
    assert len(constant) <= 3, constant


def test_rule_on_a_rare_event_fails_fast_naming_min_event_support(world):
    """Check that a rule on an event below min_event_support fails before features, saying so."""
    from propensity.pipeline.prepare import prepare

    cfg = _demo_config(world, features={"min_event_support": 400})
    began = time.perf_counter()
    with pytest.raises(RuleError) as info:
        prepare(cfg)
    message = str(info.value)
    assert "problems with the baselines" in message
    assert message.startswith("5 problems with the baselines under 'baselines:':")
    assert (
        "Rule 'invite_and_message' ('n_teammate_invited_all >= 2 and n_message_sent_all >= 20') "
        "does not fit the feature table: feature 'n_teammate_invited_all': event "
        "'teammate_invited' is done by only "
    ) in message
    assert "below features.min_event_support (400); lower features.min_event_support to" in (
        message
    )
    assert time.perf_counter() - began < 30  # before the feature table, not after it


def test_event_support_counts_users_before_their_cutoff():
    """Check users per event in [signup, cutoff), all types or only the named ones."""
    import duckdb
    import pandas as pd

    from propensity.features.named import event_support

    con = duckdb.connect()
    t = pd.Timestamp("2025-01-01")
    con.register(
        "events",
        pd.DataFrame(
            {
                "user_id": ["a", "a", "b", "b", "c"],
                "event": ["login", "o'clock", "login", "login", "login"],
                "timestamp": [t, t, t, t + pd.Timedelta(days=9), t - pd.Timedelta(days=1)],
            }
        ),
    )
    con.register(
        "rows",
        pd.DataFrame(
            {
                "user_id": ["a", "b", "c"],
                "signup_at": [t] * 3,
                "cutoff_at": [t + pd.Timedelta(days=7)] * 3,
            }
        ),
    )
    fetch = lambda sql: con.execute(sql).fetchall()  # noqa: E731
    assert event_support(fetch, "rows") == {"login": 2, "o'clock": 1}
    assert event_support(fetch, "rows", ["login", "absent"]) == {"login": 2}
    assert event_support(fetch, "rows", ["o'clock"]) == {"o'clock": 1}  # quoted: no filter in SQL
    assert event_support(fetch, "rows", []) == {}
