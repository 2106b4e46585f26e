"""Tests for propensity.config."""

from datetime import timedelta
from pathlib import Path

import pytest

from propensity.config import config_from_dict, load_config, parse_duration
from propensity.errors import ConfigError

BASE = {"data": {"events": "e.parquet", "users": "u.parquet"}}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("7d", timedelta(days=7)),
        ("48h", timedelta(hours=48)),
        ("30m", timedelta(minutes=30)),
        ("90s", timedelta(seconds=90)),
        ("2w", timedelta(weeks=2)),
        ("1.5d", timedelta(hours=36)),
    ],
)
def test_parse_duration(text, expected):
    """Check that durations parse in every unit."""
    assert parse_duration(text) == expected


@pytest.mark.parametrize("bad", ["7", "d7", "7 days", "", "-1d"])
def test_parse_duration_rejects(bad):
    """Check that malformed durations raise with the accepted forms named."""
    with pytest.raises(ValueError, match="number followed by s, m, h, d or w"):
        parse_duration(bad)


def test_defaults():
    """Check that a config with only data paths gets sensible defaults."""
    cfg = config_from_dict(BASE)
    assert cfg.label.observation_window == timedelta(days=7)
    assert cfg.features.session_gap == timedelta(minutes=30)
    assert cfg.threshold.policy == "top_fraction"


@pytest.mark.parametrize(
    ("raw", "match"),
    [
        ({**BASE, "labell": {}}, r"unknown key 'labell'\. Did you mean 'label'\?"),
        ({**BASE, "label": {"horizen": "7d"}}, r"unknown key 'label\.horizen'.*'horizon'"),
        ({"label": {}}, r"missing required key 'data'"),
        ({**BASE, "label": {"horizon": "soon"}}, r"bad value for 'label\.horizon'"),
        ({**BASE, "threshold": {"policy": "capacity"}}, r"needs capacity_per_week"),
        ({**BASE, "threshold": {"policy": "magic"}}, r"bad value for 'threshold\.policy'"),
        ({**BASE, "split": {"train": 0.9}}, r"must sum to 1"),
        ({**BASE, "data": {**BASE["data"], "preset": "heap"}}, r"'data\.preset'.*'heap'"),
        ({**BASE, "features": {"lagged": {"lags": ["12h"]}}}, r"must be whole days >= 0"),
        ({**BASE, "features": {"lagged": {"recent": "28d"}}}, r"recent must be shorter"),
        ({**BASE, "features": {"lagged": {"lags": ["7d", "1w"]}}}, r"must not repeat a lag"),
        ({**BASE, "model": {"search": {"auto_max_rows": 0}}}, r"model\.search\.auto_max_rows"),
        (
            {**BASE, "model": {"search": {"auto_rows": 10}}},
            r"unknown key 'model\.search\.auto_rows'.*auto_max_rows",
        ),
    ],
)
def test_bad_config(raw, match):
    """Check that each bad key or value is named in the error."""
    with pytest.raises(ConfigError, match=match):
        config_from_dict(raw)


def test_load_config_errors(tmp_path: Path):
    """Check that missing files, bad YAML and non-mapping YAML are reported."""
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "none.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("data: [unclosed")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)
    listy = tmp_path / "list.yaml"
    listy.write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="mapping of sections"):
        load_config(listy)


def test_yaml_is_loaded_safely(tmp_path: Path):
    """Check that YAML tags that would run code are rejected."""
    evil = tmp_path / "evil.yaml"
    evil.write_text("data: !!python/object/apply:os.system ['echo hacked']\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(evil)


def test_config_is_frozen():
    """Check that a loaded config cannot be changed by accident."""
    cfg = config_from_dict(BASE)
    with pytest.raises(Exception, match="frozen"):
        cfg.seed = 1  # type: ignore[misc]


def _keys(model, prefix=""):
    import types
    from typing import Annotated, Union, get_args, get_origin

    from pydantic import BaseModel

    def sections(ann):
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            return [ann]
        if get_origin(ann) in (Union, types.UnionType, Annotated):  # not lists of sections
            return [m for arg in get_args(ann) for m in sections(arg)]
        return []

    for name, field in model.model_fields.items():
        inner = sections(field.annotation)
        for section in inner:  # optional sections and tagged unions are documented key by key
            yield from _keys(section, f"{prefix}{name}.")
        if not inner:
            yield f"{prefix}{name}"


def test_every_key_is_documented():
    """Check that docs/config.md lists every config key, so the reference never rots."""
    from propensity.config import Config

    doc = (Path(__file__).parent.parent / "docs" / "config.md").read_text()
    missing = [k for k in _keys(Config) if f"`{k}`" not in doc]
    assert missing == []


def test_shipped_configs_load():
    """Check that every config shipped in configs/ loads."""
    root = Path(__file__).parent.parent / "configs"
    for path in root.glob("*.yaml"):
        assert load_config(path).project


TASK = {"entity": "account", "anchors": {"kind": "calendar", "start": "2025-02-03"}}


def test_without_task_the_label_section_is_the_task():
    """Check that a config without 'task' has none, and every other section is unchanged."""
    plain = config_from_dict(BASE)
    tasked = config_from_dict({**BASE, "task": TASK})
    assert plain.task is None
    assert plain.model_dump(exclude={"task"}) == tasked.model_dump(exclude={"task"})


def test_task_defaults_follow_the_target():
    """Check a calendar account task's defaults: weekly on Monday, 28d lookback, not paid."""
    task = config_from_dict({**BASE, "task": TASK}).task
    assert (task.anchors.every, task.anchors.weekday) == ("week", "monday")
    assert task.lookback == timedelta(days=28) and task.status == "not_paid"
    assert task.horizon is None and task.first_seen == "signup"
    expand = {**TASK, "target": {"kind": "expansion_payment", "event": "seat_added"}}
    assert config_from_dict({**BASE, "task": expand}).task.status == "paying"


@pytest.mark.parametrize(
    ("task", "match"),
    [
        ({"entity": "team"}, r"bad value for 'task\.entity'"),
        ({"entity": "account"}, r"an account task needs calendar anchors"),
        ({"anchors": {"kind": "weekly"}}, r"does not match any of the expected tags"),
        ({"anchors": {"kind": "calendar", "weekdya": "monday"}}, r"Did you mean 'weekday'"),
        ({"anchors": {"kind": "calendar", "every": "month"}}, r"task\.anchors\.calendar\.every"),
        (
            {"anchors": {"kind": "calendar", "start": "2025-03-01", "end": "2025-01-01"}},
            r"start <= end",
        ),
        ({"anchors": {"kind": "calendar", "start": "soon"}}, r"must be ISO-8601"),
        ({"target": {"kind": "event"}}, r"needs the event's name"),
        ({"target": {"event": "x"}}, r"takes no 'event'"),
        ({"horizon": "7d"}, r"task\.horizon applies to calendar anchors"),
        ({"eligibility": {"lookback": "7d"}}, r"eligibility\.lookback applies to calendar"),
        ({"anchors": {"kind": "calendar"}, "horizon": "0d"}, r"longer than zero"),
        (
            {"anchors": {"kind": "calendar"}, "eligibility": {"status": "paying"}},
            r"set eligibility\.status to 'not_paid'",
        ),
        (
            {"anchors": {"kind": "calendar"}, "target": {"kind": "expansion_payment"}},
            r"needs entity 'account'",
        ),
        ({"first_seen": "first_event"}, r"drop task\.first_seen"),
        ({"entty": "user"}, r"unknown key 'task\.entty'\. Did you mean 'entity'\?"),
    ],
)
def test_bad_task_sections_are_refused(task, match):
    """Check that each bad task section is refused with a message naming the key and the fix."""
    with pytest.raises(ConfigError, match=match):
        config_from_dict({**BASE, "task": task})
