"""Round trips of every simulated preset and format through the readers in ``propensity.io``."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

from propensity.config import DataConfig, Preset
from propensity.io import load_data
from propensity.simulate import simulate

ARGS = {"users": 300, "seed": 2, "days": 60}
FORMATS = ("parquet", "csv", "jsonl")
EVENT_COLUMNS = {
    Preset.canonical: ["user_id", "event", "timestamp", "account_id", "properties"],
    Preset.segment: ["userId", "event", "timestamp", "properties", "groupId"],
    Preset.amplitude: ["user_id", "event_type", "event_time", "event_properties", "account_id"],
    Preset.mixpanel: ["distinct_id", "event", "time", "properties", "account_id"],
}


def _rows(frame: pd.DataFrame) -> list[tuple]:
    """Sorted rows with every missing value as None, so sources compare exactly."""
    clean = frame.astype(object).where(frame.notna(), None)
    return sorted(map(tuple, clean.itertuples(index=False)), key=repr)


def _epoch(ts: pd.Series) -> pd.Series:
    ts = ts.dt.tz_convert(None) if ts.dt.tz is not None else ts
    return ts.astype("datetime64[s]").astype("int64")


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[tuple]]:
    """The canonical parquet run read with pandas: what every reader must reproduce."""
    out = tmp_path_factory.mktemp("reference")
    simulate(out, **ARGS)
    ev = pd.read_parquet(out / "events").dropna(subset=["user_id"]).drop_duplicates()
    users = pd.read_parquet(out / "users.parquet")
    conv = pd.read_parquet(out / "conversions.parquet")
    return {
        "events": _rows(ev.assign(timestamp=_epoch(ev["timestamp"]))),
        "users": _rows(
            users.assign(
                signup_at=_epoch(users["signup_at"]),
                email_domain=users.pop("email").str.split("@").str[1],
            )
        ),
        "conversions": _rows(conv.assign(converted_at=_epoch(conv["converted_at"]))),
    }


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("preset", list(Preset))
def test_preset_round_trips_through_load_data(tmp_path: Path, reference, preset: Preset, fmt):
    """Check that each preset and format writes its columns and loads back to the same tables."""
    summary = simulate(tmp_path, format=fmt, preset=preset, **ARGS)
    part = tmp_path / "events" / f"part-00000.{fmt}"
    assert part.is_file()
    if fmt == "parquet":
        assert pq.read_schema(part).names == EVENT_COLUMNS[preset]
    elif fmt == "csv":
        assert part.read_text().splitlines()[0] == ",".join(f'"{c}"' for c in EVENT_COLUMNS[preset])
    cfg = DataConfig(
        events=str(tmp_path / "events"),
        users=str(summary.paths["users"]),
        conversions=str(summary.paths["conversions"]),
        format=fmt,
        preset=preset,
        bots={"exclude": False},  # a round trip: the simulator's bot is data here
    )
    con = load_data(cfg).con
    events = con.execute(
        "SELECT user_id, event, epoch(timestamp)::BIGINT AS timestamp, account_id, properties "
        "FROM events"
    ).fetchdf()
    users = con.execute(
        "SELECT user_id, epoch(signup_at)::BIGINT AS signup_at, account_id, role, channel, "
        "company_size, email_domain FROM users"
    ).fetchdf()
    conv = con.execute(
        "SELECT user_id, epoch(converted_at)::BIGINT AS converted_at FROM conversions"
    ).fetchdf()
    assert _rows(events) == reference["events"]
    assert _rows(users) == reference["users"]
    assert _rows(conv) == reference["conversions"]


def test_export_timestamp_styles(tmp_path: Path):
    """Check the timestamp style of each export: ISO with Z, naive microseconds, epoch seconds."""
    shown = {}
    for preset in (Preset.segment, Preset.amplitude, Preset.mixpanel):
        simulate(tmp_path / preset.value, users=20, seed=1, days=10, preset=preset)
        shown[preset] = pd.read_parquet(tmp_path / preset.value / "events")
    assert (
        shown[Preset.segment]["timestamp"].str.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ").all()
    )
    assert (
        shown[Preset.amplitude]["event_time"]
        .str.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{6}")
        .all()
    )
    assert str(shown[Preset.mixpanel]["time"].dtype) == "int64"
    first = shown[Preset.mixpanel]["time"].min()
    assert pd.Timestamp(first, unit="s") >= pd.Timestamp("2025-01-01")
