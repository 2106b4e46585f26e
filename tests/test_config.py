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
    from pydantic import BaseModel

    for name, field in model.model_fields.items():
        ann = field.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            yield from _keys(ann, f"{prefix}{name}.")
        else:
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
