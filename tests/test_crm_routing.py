"""Tests of propensity.crm.routing: rules by segment, weekly capacity by rank, overflow."""

from __future__ import annotations

from datetime import datetime

import pandas as pd
import pytest

from propensity.config import RoutingConfig, config_from_dict
from propensity.crm import WAITING, domain_class, route, rule_routes
from propensity.errors import ConfigError

RULES = {
    "rules": [
        {
            "name": "enterprise",
            "route": "sales",
            "when": [{"column": "domain_class", "in": ["enterprise"]}],
        },
        {"name": "big", "route": "sales", "when": [{"column": "company_size", "min": 200}]},
    ],
    "routes": {"sales": {"capacity_per_week": 2, "overflow": "self_serve"}, "self_serve": {}},
}


def _state(scores, entered=True):
    n = len(scores)
    return pd.DataFrame(
        {
            "entity_id": [f"u{i}" for i in range(n)],
            "is_pql": [True] * n,
            "score": scores,
            "entered": [entered] * n,
        }
    )


def test_rules_first_match_and_default():
    """Check that the first matching rule wins and the default route takes the rest."""
    cfg = RoutingConfig.model_validate(RULES)
    seg = pd.DataFrame(
        {"domain_class": ["enterprise", "business", "free_mail"], "company_size": [5, 500, None]}
    )
    assert rule_routes(seg, cfg).tolist() == ["sales", "sales", "self_serve"]


def test_capacity_filled_by_rank_with_overflow():
    """Check that sales takes its weekly capacity by score and the rest overflow to self-serve."""
    cfg = RoutingConfig.model_validate(RULES)
    state = _state([0.5, 0.9, 0.7, 0.6])
    seg = pd.DataFrame({"entity_id": state["entity_id"], "domain_class": "enterprise"})
    out = route(state, seg, datetime(2025, 3, 5), cfg).set_index("entity_id")["route"]
    assert out.to_dict() == {"u0": "self_serve", "u1": "sales", "u2": "sales", "u3": "self_serve"}
    # later the same week: sales is full; next week it has room again
    more = pd.concat([_state([0.95]).assign(entity_id="v0")])
    routed = route(state, seg, datetime(2025, 3, 5), cfg)
    both = pd.concat([routed.assign(entered=False), more], ignore_index=True)
    seg2 = pd.concat([seg, pd.DataFrame({"entity_id": ["v0"], "domain_class": ["enterprise"]})])
    same_week = route(both, seg2, datetime(2025, 3, 7), cfg).set_index("entity_id")["route"]
    assert same_week["v0"] == "self_serve" and same_week["u1"] == "sales"
    next_week = route(both, seg2, datetime(2025, 3, 11), cfg).set_index("entity_id")["route"]
    assert next_week["v0"] == "sales"


def test_no_overflow_waits():
    """Check that PQLs past a route's capacity without overflow wait for the next run."""
    cfg = RoutingConfig.model_validate(
        {"default_route": "sales", "routes": {"sales": {"capacity_per_week": 1}}}
    )
    out = route(
        _state([0.9, 0.8]), pd.DataFrame({"entity_id": ["u0", "u1"]}), datetime(2025, 3, 5), cfg
    )
    assert out["route"].tolist() == ["sales", WAITING]


@pytest.mark.parametrize(
    "routing, match",
    [
        ({"default_route": "nurture"}, "every route must be declared"),
        (
            {"rules": [{"name": "x", "route": "sales", "when": [{"column": "plan"}]}]},
            "needs 'in', 'min' or 'max'",
        ),
        ({"routes": {"sales": {"capacity_per_week": -1}}}, "capacity_per_week"),
        ({"rule": []}, "unknown key"),
    ],
)
def test_routing_config_errors(routing, match):
    """Check that bad routing keys are config errors that name the key."""
    with pytest.raises(ConfigError, match=match):
        config_from_dict({"data": {"events": "e", "users": "u"}, "crm": {"routing": routing}})


def test_domain_class_is_case_blind():
    """Check that domain classes ignore case and mark a missing domain unknown."""
    got = domain_class(pd.Series(["Hooli.COM", None]), ["hooli.com"], []).tolist()
    assert got == ["enterprise", "unknown"]
