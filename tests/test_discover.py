"""Tests for propensity.discover: intervals, halves, candidates, ranking and the suggested rule.

A small synthetic world with a known truth: conversion depends on a ``key`` event and on
``limit`` followed by ``pricing``; ``chat`` is a vanity event that follows the users' hidden
intent (so it has a high plain lift) but carries no weight once ``key`` is known.
"""

from __future__ import annotations

from datetime import timedelta

import duckdb
import numpy as np
import pandas as pd
import pytest
import yaml

from propensity.baselines import RuleBaseline
from propensity.baselines.grammar import Rule
from propensity.config import FeaturesConfig, config_from_dict
from propensity.discover import (
    candidate_milestones,
    propose_milestones,
    rank_behaviours,
    rule_conditions,
    split_halves,
    suggest_rule,
)
from propensity.discover.candidates import (
    describe_order,
    describe_threshold,
    order_condition,
    prerequisites,
    threshold_columns,
)
from propensity.discover.intervals import byar_interval, wilson_interval, z_value
from propensity.errors import ConfigError, InsufficientDataError
from propensity.features import compute_features, learn_spec
from propensity.labels import LabelTimes
from propensity.pipeline.discover import target_volume
from propensity.report.discover import DiscoveryFiles, discover_section

T0 = pd.Timestamp("2025-01-01")


def _world(n: int, seed: int) -> tuple[duckdb.DuckDBPyConnection, LabelTimes]:
    """Events, users and labelled day-7 cutoffs of ``n`` users with a known truth."""
    rng = np.random.default_rng(seed)
    intent = rng.standard_normal(n)
    key = rng.random(n) < 1 / (1 + np.exp(1.2 - intent))
    limit = rng.random(n) < 0.15
    then_pricing = limit & (rng.random(n) < 0.6)
    chats = rng.poisson(np.exp(1.0 + 0.9 * intent))
    views = rng.poisson(4, n)
    signup = T0 + pd.to_timedelta(rng.integers(0, 120 * 86400, n), unit="s")
    n_key = np.where(key, 1 + rng.poisson(1, n), 0)
    limit_at = rng.uniform(1, 100, n)
    lone_pricing = np.flatnonzero(~limit & (rng.random(n) < 0.1))
    viewers, chatters = np.repeat(np.arange(n), views + 1), np.repeat(np.arange(n), chats)
    keyers, pricers = np.repeat(np.arange(n), n_key), np.flatnonzero(then_pricing)
    parts = [  # event, users, hours after signup
        ("view", viewers, rng.uniform(0, 160, len(viewers))),
        ("chat", chatters, rng.uniform(0, 160, len(chatters))),
        ("key", keyers, rng.uniform(1, 150, len(keyers))),
        ("limit", np.flatnonzero(limit), limit_at[limit]),
        ("pricing", pricers, limit_at[pricers] + rng.uniform(0.1, 20, len(pricers))),
        ("pricing", lone_pricing, rng.uniform(1, 150, len(lone_pricing))),
    ]
    frames = [
        pd.DataFrame(
            {
                "user_id": [f"u{u:05d}" for u in who],
                "event": event,
                "timestamp": signup[who] + pd.to_timedelta(np.round(hours * 3600), unit="s"),
            }
        )
        for event, who, hours in parts
    ]
    logit = -3.2 + 2.0 * key + 1.6 * then_pricing
    label = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    users = pd.DataFrame(
        {
            "user_id": [f"u{u:05d}" for u in range(n)],
            "signup_at": signup,
            "account_id": [f"a{u // 3:05d}" for u in range(n)],
            "email_domain": "acme.com",
        }
    )
    events = pd.concat(frames, ignore_index=True)
    events["properties"] = None
    con = duckdb.connect()
    con.register("events_df", events)
    con.register("users_df", users)
    con.execute("CREATE TABLE events AS SELECT * FROM events_df")
    con.execute("CREATE TABLE users AS SELECT * FROM users_df")
    frame = users[["user_id", "account_id", "signup_at"]].assign(
        cutoff_at=users["signup_at"] + pd.Timedelta(days=7), cutoff_age_days=7.0, label=label
    )
    frame = frame.sort_values(["cutoff_at", "user_id"], ignore_index=True)
    return con, LabelTimes(frame)


@pytest.fixture(scope="module")
def world() -> dict:
    con, labels = _world(6000, seed=3)
    cfg = FeaturesConfig(min_event_support=20, top_transitions=0)
    spec = learn_spec(con, labels, cfg)
    frame = compute_features(con, labels, spec).frame
    frame["label"] = labels.frame["label"].to_numpy()
    return {"con": con, "labels": labels, "spec": spec, "frame": frame}


@pytest.fixture(scope="module")
def ranked(world: dict):
    return rank_behaviours(world["con"], world["frame"], world["spec"], seed=7)


# ---- intervals ---------------------------------------------------------------------------------
def test_wilson_and_byar_intervals_match_known_values():
    """Check the Wilson interval of 5/50 and Byar's interval of 20 observed vs 10 expected."""
    low, high = wilson_interval(np.array([5.0]), np.array([50.0]), 1.96)
    assert (round(low[0], 4), round(high[0], 4)) == (0.0435, 0.2136)
    low, high = byar_interval(np.array([20.0, 0.0]), np.array([10.0, 4.0]), 1.96)
    # the exact (Garwood) interval of 20 events is [12.22, 30.89]; of 0 events, [0, 3.69]
    assert np.allclose([low[0], high[0]], [1.2217, 3.0888], atol=2e-3)
    assert low[1] == 0.0 and high[1] == pytest.approx(3.69 / 4, abs=0.01)


def test_bonferroni_widens_the_interval():
    """Check that z grows with the number of simultaneous intervals and one-sided is smaller."""
    assert z_value(0.05) == pytest.approx(1.95996, abs=1e-4)
    assert z_value(0.05, m=20) == pytest.approx(3.0233, abs=1e-3)
    assert z_value(0.05, two_sided=False) == pytest.approx(1.64485, abs=1e-4)


def test_halves_are_seeded_and_ignore_row_order():
    """Check that the same users and seed give the same halves in any row order."""
    ids = [f"u{i}" for i in range(101)]
    est = split_halves(ids, 0.3, seed=5)
    shuffled = np.random.default_rng(0).permutation(101)
    again = split_halves([ids[i] for i in shuffled], 0.3, seed=5)
    assert est.sum() == 30
    assert np.array_equal(est[shuffled], again)
    assert not np.array_equal(est, split_halves(ids, 0.3, seed=6))


# ---- candidates ----------------------------------------------------------------------------------
def test_candidates_come_from_the_spec_vocabulary(world):
    """Check that every count candidate names a vocabulary event and the windows come first."""
    spec = world["spec"]
    cols = threshold_columns(spec)
    events = {c.event for c in cols if c.kind == "count"}
    assert events == set(spec.events) == {"chat", "key", "limit", "pricing", "view"}
    key = [c.column for c in cols if c.event == "key"]
    assert key[0] == "n_key_all"  # since signup wins ties
    assert {c.kind for c in cols} == {"count", "team", "activity"}


def test_descriptions_and_order_conditions():
    """Check the sentences and that only configured milestones become rule text."""
    from propensity.features import FeatureSpec

    spec = FeatureSpec(
        families=("counts", "order"),
        events=("a", "b"),
        windows_s=(86400,),
        session_gap_s=1800,
        key_events=("a", "b"),
        milestones=(("a", "b", 3600),),
    )
    count = threshold_columns(spec)[0]
    assert describe_threshold(count, 1) == "a at least once since signup"
    assert describe_threshold(count, 3) == "a at least 3 times since signup"
    assert describe_order("a", "b", 86400) == "a, then b within 1d"
    assert order_condition(spec, "a", "b", None) == "order_a_before_b == 1"
    assert order_condition(spec, "a", "b", 3600) == "within_a_then_b_1h == 1"
    assert order_condition(spec, "a", "b", 86400) == ""
    assert order_condition(spec, "b", "a", None) == ""


def test_prerequisites_need_nearly_all_and_a_rare_event():
    """Check that A is B's prerequisite only when it precedes nearly every B and is not common."""
    nan = np.nan
    invite = np.array([1.0, 2.0, 3.0, nan, nan, nan, nan, nan, nan, nan])
    accept = np.array([2.0, 3.0, nan, nan, nan, nan, nan, nan, nan, nan])
    login = np.array([0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, nan, nan, nan])
    found = prerequisites({"invite": invite, "accept": accept, "login": login})
    assert found == {"accept": ("invite",)}  # login precedes too, but 70% of users log in


# ---- ranking -------------------------------------------------------------------------------------
def test_ranking_puts_the_truth_above_the_vanity_event(ranked):
    """Check that the key event and "limit then pricing" outrank chat, whose plain lift is high."""
    t = ranked.table
    rank = {b: int(r) for b, r in zip(t["behaviour"], t["rank"], strict=True)}
    key = min(r for b, r in rank.items() if b.startswith("key"))
    pair = min(r for b, r in rank.items() if b.startswith("limit, then pricing"))
    chat = t[t["behaviour"].str.startswith("chat")].iloc[0]
    assert key == 1
    assert pair < chat["rank"]
    assert chat["lift"] > 1.5  # it travels with converters...
    assert chat["adjusted_low"] < 1 < chat["adjusted_high"]  # ...and adds nothing of its own
    assert not chat["significant"]
    assert t.loc[t["rank"] == key, "significant"].item()


def test_ranking_reports_honest_halves(ranked, world):
    """Check the halves' sizes, the columns, and that estimates are counted on the held-out half."""
    assert ranked.search_users + ranked.estimate_users == 6000
    assert ranked.estimate_users == 3000
    t = ranked.table
    assert list(t["rank"]) == list(range(1, len(t) + 1))
    assert (t["lift_low"] <= t["lift"]).all() and (t["lift"] <= t["lift_high"]).all()
    key = t[t["behaviour"].str.startswith("key")].iloc[0]
    est = split_halves(world["frame"]["user_id"], 0.5, seed=7)
    flags = Rule.parse(key["condition"]).evaluate(world["frame"])
    assert key["users"] == int((flags & est).sum())
    y = world["frame"]["label"].to_numpy()
    assert key["conversion_rate"] == pytest.approx(y[flags & est].mean())


def test_ranking_is_reproducible(world, ranked):
    """Check that the same data and seed give the same table."""
    again = rank_behaviours(world["con"], world["frame"], world["spec"], seed=7)
    pd.testing.assert_frame_equal(again.table, ranked.table)


def test_order_rows_carry_a_milestone_to_add(ranked):
    """Check that an unconfigured "A then B" says which milestone to add, and init gets it."""
    pair = ranked.table[ranked.table["behaviour"].str.startswith("limit, then pricing")].iloc[0]
    assert pair["condition"] == ""
    assert pair["milestone"].startswith("{first: limit, then: pricing")
    milestones = candidate_milestones(ranked)
    assert (milestones[0].first, milestones[0].then) == ("limit", "pricing")


def test_too_little_data_is_one_clear_error(world):
    """Check that a handful of converters raises InsufficientDataError naming the fix."""
    small = world["frame"].head(150)
    with pytest.raises(InsufficientDataError, match="discover.min_users"):
        rank_behaviours(world["con"], small, world["spec"], seed=1)


def test_propose_milestones_from_tables_alone(world):
    """Check that init's entry point proposes "limit then pricing" from the tables and labels."""
    found = propose_milestones(world["con"], world["labels"], seed=7)
    assert ("limit", "pricing") in {(m.first, m.then) for m in found}


# ---- the suggested rule --------------------------------------------------------------------------
def test_suggested_rule_finds_the_key_event_and_pastes_into_a_config(world):
    """Check the rule reads the key event, flags about the volume, and loads as a baseline."""
    rule = suggest_rule(world["frame"], world["spec"], 0.2)
    assert "n_key_all >= 1" in rule.expr
    assert 0.2 <= rule.flagged < 0.3
    assert rule.conditions <= 3
    section = yaml.safe_load(rule.yaml())
    cfg = config_from_dict({"data": {"events": "e"}, "baselines": section})
    baseline = RuleBaseline.from_config(cfg.baselines.rules[0]).fit(world["frame"])
    flags = baseline.predict(world["frame"])
    assert flags.mean() == pytest.approx(rule.flagged)
    y = world["frame"]["label"].to_numpy()
    assert y[flags].mean() > 2 * y.mean()


def test_rule_conditions_are_grammar_text_at_round_thresholds(world):
    """Check that every condition parses, is unique in what it flags, and uses round numbers."""
    texts, masks = rule_conditions(world["frame"], world["spec"])
    assert len(texts) == len(set(texts)) == masks.shape[0]
    assert len({m.tobytes() for m in np.packbits(masks, axis=1)}) == len(texts)
    for text in texts:
        Rule.parse(text)
    counts = [t for t in texts if t.startswith("n_chat_all >= ")]
    assert counts and all(float(t.split(">= ")[1]).is_integer() for t in counts)


@pytest.mark.parametrize(
    ("volume", "conditions", "match"),
    [(0.0, 3, "fraction in"), (1.5, 3, "fraction in"), (0.1, 4, "max_conditions")],
)
def test_bad_rule_settings_raise(world, volume, conditions, match):
    """Check that an impossible volume or too many conditions is a ConfigError."""
    with pytest.raises(ConfigError, match=match):
        suggest_rule(world["frame"], world["spec"], volume, max_conditions=conditions)


def test_target_volume_follows_the_threshold_policy():
    """Check the volume: discover.volume, then capacity per week, then top fraction, then 5%."""
    base = {"data": {"events": "e"}}
    capacity = {"policy": "capacity", "capacity_per_week": 50}
    assert target_volume(config_from_dict({**base, "discover": {"volume": 0.1}}), 1000, 10) == 0.1
    assert target_volume(config_from_dict({**base, "threshold": capacity}), 1000, 10) == 0.5
    assert target_volume(config_from_dict({**base, "threshold": capacity}), 5000, 10) == 0.1
    top = {"policy": "top_fraction", "top_fraction": 0.03}
    assert target_volume(config_from_dict({**base, "threshold": top}), 1000, 10) == 0.03
    precision = {"policy": "precision", "target_precision": 0.5}
    assert target_volume(config_from_dict({**base, "threshold": precision}), 1000, 10) == 0.05


# ---- report section ------------------------------------------------------------------------------
def test_report_section_says_how_to_run_when_missing():
    """Check that without discovery files the section tells how to get them."""
    section = discover_section(DiscoveryFiles())
    assert section.id == "discover"
    assert "propensity discover" in section.body


def test_report_section_shows_behaviours_rule_and_distance(ranked):
    """Check that the section lists the top behaviours, the rule's YAML and the distance."""
    suggestion = {
        "expr": "n_key_all >= 1",
        "yaml": "rules:\n  - name: suggested\n    expr: n_key_all >= 1\n",
        "volume": 0.2,
        "distance": "the model finds 3.0 more converters per week",
    }
    files = DiscoveryFiles(behaviours=ranked.table, suggestion=suggestion, matched=pd.DataFrame())
    body = discover_section(files, top=3).body
    assert "n_key_all &gt;= 1" in body
    assert "3.0 more converters per week" in body
    assert body.count("<tr>") == 4  # header and three behaviours
    assert "20.0%" in body


def test_milestone_within_is_a_duration(ranked):
    """Check that proposed milestones carry their bound as a timedelta (or none)."""
    for m in candidate_milestones(ranked):
        assert m.within is None or isinstance(m.within, timedelta)


# ---- command line and config ---------------------------------------------------------------------
def test_discover_command_names_a_missing_config(tmp_path):
    """Check that a missing config is one line and exit code 2, not a traceback."""
    from typer.testing import CliRunner

    from propensity.cli import app

    result = CliRunner().invoke(app, ["discover", "--config", str(tmp_path / "nope.yaml")])
    assert result.exit_code == 2
    assert "does not exist" in result.output and "Traceback" not in result.output


@pytest.mark.parametrize(
    ("section", "key"),
    [({"max_conditions": 4}, "discover.max_conditions"), ({"volume": 1.0}, "discover.volume"),
     ({"estimate_fraction": 0}, "discover.estimate_fraction"), ({"rules": 3}, "discover.rules")],
)  # fmt: skip
def test_discover_config_is_checked(section, key):
    """Check that a bad discover: value or key is a ConfigError naming it."""
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        config_from_dict({"data": {"events": "e"}, "discover": section})
