"""Hardening, property-based: generated malformed tables and configs never crash the readers.

Whatever hypothesis writes (random column names, types and values, in parquet, CSV or JSONL,
sometimes cut short or with bytes flipped), `load_data` returns or raises a `PropensityError`;
`config_from_dict` returns or raises a `ConfigError`; `propensity validate` exits 0 or 2 with no
traceback. Any other exception is a bug the shrunk example pins down.
"""

from __future__ import annotations

import tempfile
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from propensity.cli import app
from propensity.config import Config, DataConfig, config_from_dict
from propensity.errors import ConfigError, PropensityError
from propensity.io import LoadedData, load_data

NOW = datetime(2025, 6, 1)
SETTINGS = settings(
    max_examples=30,
    deadline=None,
    derandomize=True,  # the same examples every run: a failure reproduces
    suppress_health_check=[HealthCheck.too_slow],
)
NAMES = ["user_id", "event", "timestamp", "account_id", "properties", "userId", "time", "x", "é"]
ROWS = st.integers(min_value=0, max_value=6)
TEXT = st.text(alphabet=st.characters(blacklist_categories=["Cs"]), max_size=12)


def _column(kind: str, n: int) -> st.SearchStrategy:
    value = {
        "int": st.integers(min_value=-(2**62), max_value=2**62),
        "float": st.floats(allow_nan=True, allow_infinity=True),
        "text": TEXT,
        "time_text": st.sampled_from(
            [
                "2025-01-01 10:00:00",
                "2025-01-01T10:00:00Z",
                "1735725600",
                "1735725600123",
                "",
                "31/12/2024",
                "2025-13-45",
                "9999-12-31",
            ]
        ),
        "bool": st.booleans(),
        "datetime": st.datetimes(min_value=datetime(1900, 1, 1), max_value=datetime(2100, 1, 1)),
    }[kind]
    return st.lists(st.one_of(st.none(), value), min_size=n, max_size=n)


@st.composite
def tables(draw: st.DrawFn) -> pd.DataFrame:
    n = draw(ROWS)
    names = draw(st.lists(st.sampled_from(NAMES), max_size=5, unique=True))
    kinds = ["int", "float", "text", "time_text", "bool", "datetime"]
    columns = {}
    for name in names:
        kind = draw(st.sampled_from(kinds))
        values = draw(_column(kind, n))
        if kind == "datetime":
            columns[name] = pd.to_datetime(pd.Series(values, dtype=object))
        elif kind == "int":
            columns[name] = pd.array(values, dtype="Int64")
        elif kind == "float":
            columns[name] = np.array([np.nan if v is None else v for v in values], dtype=float)
        elif kind == "bool":
            columns[name] = pd.array(values, dtype="boolean")
        else:
            columns[name] = pd.array(values, dtype="string")
    return pd.DataFrame(columns, index=range(n))


@st.composite
def files(draw: st.DrawFn) -> tuple[str, pd.DataFrame, str]:
    """A format, a table and how to damage the written bytes (or not)."""
    fmt = draw(st.sampled_from(["parquet", "csv", "jsonl"]))
    damage = draw(st.sampled_from(["none", "none", "truncate", "flip"]))
    return fmt, draw(tables()), damage


def _write(folder: Path, fmt: str, frame: pd.DataFrame, damage: str, seed: int) -> Path:
    path = folder / f"events.{fmt}"
    if fmt == "parquet":
        frame.to_parquet(path, index=False)
    elif fmt == "csv":
        frame.to_csv(path, index=False)
    else:
        frame.to_json(path, orient="records", lines=True, date_format="iso")
    data = bytearray(path.read_bytes())
    rng = np.random.default_rng(seed)
    if damage == "truncate" and data:
        data = data[: int(rng.integers(0, len(data)))]
    elif damage == "flip" and data:
        for at in rng.integers(0, len(data), size=3):
            data[at] = int(rng.integers(0, 256))
    path.write_bytes(bytes(data))
    return path


USERS = pd.DataFrame({"user_id": ["1", "u1", "x"], "signup_at": pd.to_datetime(["2025-01-01"] * 3)})


@SETTINGS
@given(file=files(), with_users=st.booleans(), seed=st.integers(0, 2**16))
def test_load_data_returns_or_raises_a_propensity_error(file, with_users, seed):
    """Check that any generated (and maybe damaged) events file loads or raises cleanly."""
    fmt, frame, damage = file
    with tempfile.TemporaryDirectory() as tmp:
        path = _write(Path(tmp), fmt, frame, damage, seed)
        users = None
        if with_users:
            USERS.to_parquet(Path(tmp) / "users.parquet")
            users = str(Path(tmp) / "users.parquet")
        try:
            loaded = load_data(DataConfig(events=str(path), users=users), now=NOW)
        except PropensityError as exc:
            assert str(exc).strip()
        else:
            assert isinstance(loaded, LoadedData)
            loaded.con.close()


@SETTINGS
@given(file=files(), seed=st.integers(0, 2**16))
def test_cli_validate_exits_0_or_2_without_traceback(file, seed):
    """Check that `propensity validate` on any generated file exits 0 or 2, never a traceback."""
    fmt, frame, damage = file
    with tempfile.TemporaryDirectory() as tmp:
        path = _write(Path(tmp), fmt, frame, damage, seed)
        result = CliRunner().invoke(app, ["validate", "--events", str(path)])
    assert result.exit_code in (0, 2), result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(
        result.exception
    )
    assert "Traceback" not in result.output


# -- configs --------------------------------------------------------------------------------------

SECTIONS = list(Config.model_fields) + ["modle", "thresholds", ""]
LEAF = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**6), max_value=10**6),
    st.floats(allow_nan=True, allow_infinity=True),
    TEXT,
    st.sampled_from(["7d", "48h", "0s", "-1d", "1e9w", "capacity", "precision", "auto"]),
)
VALUES = st.recursive(
    LEAF,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.dictionaries(
            st.sampled_from(
                NAMES
                + [
                    "policy",
                    "events",
                    "windows",
                    "min_positives",
                    "capacity_per_week",
                    "target_precision",
                ]
            ),
            inner,
            max_size=3,
        ),
    ),
    max_leaves=8,
)


@SETTINGS
@given(raw=st.dictionaries(st.sampled_from(SECTIONS), VALUES, max_size=5))
def test_config_from_dict_returns_or_raises_config_error(raw):
    """Check that any generated mapping validates into a Config or raises a ConfigError."""
    try:
        cfg = config_from_dict(raw)
    except ConfigError as exc:
        assert str(exc).startswith("Invalid config config:")
    else:
        assert isinstance(cfg, Config)


@settings(max_examples=15, deadline=None, derandomize=True)
@given(raw=st.dictionaries(st.sampled_from(SECTIONS), VALUES, max_size=4))
def test_cli_with_any_config_exits_0_or_2(raw):
    """Check that `validate --config` on any generated YAML exits 0 or 2, never a traceback."""
    import yaml

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "p.yaml"
        path.write_text(yaml.safe_dump(raw, allow_unicode=True))
        result = CliRunner().invoke(app, ["validate", "--config", str(path)])
    assert result.exit_code in (0, 2), result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(
        result.exception
    )


BIG = st.one_of(
    st.text(min_size=100, max_size=3000),
    st.lists(st.integers(), min_size=50, max_size=3000),
    st.dictionaries(st.text(min_size=1, max_size=200), st.integers(), min_size=1, max_size=200),
)


@SETTINGS
@given(raw=st.dictionaries(st.sampled_from(SECTIONS), st.one_of(VALUES, BIG), max_size=6))
def test_config_errors_stay_short_whatever_the_values(raw):
    """Check that a config with huge strings, lists or mappings anywhere gives a ConfigError of
    bounded length (a short prefix of each bad value, at most 20 problems), never an echo."""
    raw.setdefault("data", {"events": "e.parquet"})
    try:
        config_from_dict(raw)
    except ConfigError as exc:
        assert len(str(exc)) < 8000, len(str(exc))
