"""Tests for propensity.io: readers, presets, formats, cleaning and the data contract."""

import gzip
import json
from datetime import datetime
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from propensity.cli import app
from propensity.config import DataConfig, ExcludeConfig, Preset
from propensity.errors import DataContractError
from propensity.io import load_data

NOW = datetime(2025, 6, 1)
EVENTS = pd.DataFrame(
    {
        "user_id": ["u1", "u1", "u2", "u3"],
        "event": ["login", "doc_created", "login", "login"],
        "timestamp": pd.to_datetime(
            [
                "2025-01-01 10:00:00",
                "2025-01-01 10:05:30",
                "2025-01-02 09:00:00",
                "2025-01-03 12:00:00",
            ]
        ),
        "account_id": ["a1", "a1", "a2", "a3"],
        "properties": ['{"size": 3}', None, "{}", "{}"],
    }
)
USERS = pd.DataFrame(
    {
        "user_id": ["u1", "u2", "u3"],
        "signup_at": pd.to_datetime(["2025-01-01", "2025-01-02", "2025-01-03"]),
        "email": ["Ann@Acme.com", "bob@gmail.com", "qa@propensity-internal.test"],
        "role": ["engineer", "student", "founder"],
    }
)
CONVERSIONS = pd.DataFrame({"user_id": ["u1"], "converted_at": pd.to_datetime(["2025-01-15"])})


def _export(events: pd.DataFrame, preset: Preset) -> pd.DataFrame:
    """Reshape canonical events into the column layout of an export preset."""
    ts = events["timestamp"]
    if preset == Preset.segment:
        return pd.DataFrame(
            {
                "userId": events.user_id,
                "event": events.event,
                "timestamp": ts.dt.strftime("%Y-%m-%dT%H:%M:%SZ"),
                "groupId": events.account_id,
                "properties": events.properties,
            }
        )
    if preset == Preset.amplitude:
        return pd.DataFrame(
            {
                "user_id": events.user_id,
                "event_type": events.event,
                "event_time": ts.dt.strftime("%Y-%m-%d %H:%M:%S.%f"),
                "event_properties": events.properties,
            }
        )
    if preset == Preset.mixpanel:
        return pd.DataFrame(
            {
                "distinct_id": events.user_id,
                "event": events.event,
                "time": (ts.astype("int64") // 10**9),
                "properties": events.properties,
            }
        )
    return events


def _write(frame: pd.DataFrame, path: Path, fmt: str) -> str:
    if fmt == "parquet":
        frame.to_parquet(path.with_suffix(".parquet"))
        return str(path.with_suffix(".parquet"))
    if fmt == "csv":
        frame.to_csv(path.with_suffix(".csv"), index=False)
        return str(path.with_suffix(".csv"))
    if fmt == "csv.gz":
        target = path.with_suffix(".csv.gz")
        with gzip.open(target, "wt") as handle:
            frame.to_csv(handle, index=False)
        return str(target)
    target = path.with_suffix(".jsonl")
    frame.to_json(target, orient="records", lines=True, date_format="iso")
    return str(target)


def _config(
    tmp: Path,
    fmt: str = "parquet",
    preset: Preset = Preset.canonical,
    events: pd.DataFrame = EVENTS,
    users: pd.DataFrame = USERS,
    conversions: pd.DataFrame = CONVERSIONS,
    **kw,
) -> DataConfig:
    return DataConfig(
        events=_write(_export(events, preset), tmp / "events", fmt),
        users=_write(users, tmp / "users", "parquet"),
        conversions=_write(conversions, tmp / "conversions", "parquet"),
        preset=preset,
        **kw,
    )


@pytest.mark.parametrize("preset", list(Preset))
@pytest.mark.parametrize("fmt", ["parquet", "csv", "csv.gz", "jsonl"])
def test_presets_and_formats_round_trip(tmp_path, preset, fmt):
    """Check that every preset in every format reads back to the same canonical events."""
    loaded = load_data(_config(tmp_path, fmt, preset), now=NOW)
    got = loaded.con.execute("SELECT user_id, event, timestamp FROM events ORDER BY timestamp").df()
    expected = EVENTS[["user_id", "event", "timestamp"]]
    pd.testing.assert_frame_equal(got, expected, check_dtype=False)
    if preset in (Preset.canonical, Preset.segment):  # the others carry no account here
        accounts = loaded.con.execute("SELECT DISTINCT account_id FROM events").fetchall()
        assert {a for (a,) in accounts} == {"a1", "a2", "a3"}


def test_directory_and_glob(tmp_path):
    """Check that a folder of part files and a glob both read every part."""
    folder = tmp_path / "events"
    folder.mkdir()
    EVENTS.iloc[:2].to_parquet(folder / "part-0.parquet")
    EVENTS.iloc[2:].to_parquet(folder / "part-1.parquet")
    users = _write(USERS, tmp_path / "users", "parquet")
    for given in (str(folder), str(folder / "*.parquet")):
        loaded = load_data(DataConfig(events=given, users=users), now=NOW)
        assert loaded.report.tables[0].rows_kept == 4


def test_email_becomes_domain(tmp_path):
    """Check that email addresses are reduced to a lower-case domain and never kept."""
    loaded = load_data(_config(tmp_path), now=NOW)
    cols = [c for (c, *_) in loaded.con.execute("DESCRIBE users").fetchall()]
    assert "email" not in cols
    domains = dict(loaded.con.execute("SELECT user_id, email_domain FROM users").fetchall())
    assert domains == {"u1": "acme.com", "u2": "gmail.com", "u3": "propensity-internal.test"}
    assert loaded.con.execute("SELECT role FROM users WHERE user_id = 'u2'").fetchone() == (
        "student",
    )


@pytest.mark.parametrize(
    ("column", "values", "expected"),
    [
        ("epoch_s", [1735725600, 1735725930], ["2025-01-01 10:00:00", "2025-01-01 10:05:30"]),
        (
            "epoch_ms",
            [1735725600123, 1735725930999],
            ["2025-01-01 10:00:00", "2025-01-01 10:05:30"],
        ),
        (
            "iso_zone",
            ["2025-01-01T12:00:00+02:00", "2025-01-01T10:05:30.5Z"],
            ["2025-01-01 10:00:00", "2025-01-01 10:05:30"],
        ),
        (
            "iso_naive",
            ["2025-01-01T10:00:00", "2025-01-01 10:05:30"],
            ["2025-01-01 10:00:00", "2025-01-01 10:05:30"],
        ),
        (
            "numeric_text",
            ["1735725600", "1735725930"],
            ["2025-01-01 10:00:00", "2025-01-01 10:05:30"],
        ),
    ],
)
def test_timestamp_forms(tmp_path, column, values, expected):
    """Check that epoch s/ms, zoned and naive ISO text all become UTC whole seconds."""
    events = pd.DataFrame({"user_id": ["u1", "u1"], "event": ["a", "b"], "timestamp": values})
    events.to_parquet(tmp_path / "e.parquet")
    users = _write(USERS, tmp_path / "users", "parquet")
    loaded = load_data(DataConfig(events=str(tmp_path / "e.parquet"), users=users), now=NOW)
    got = [
        str(t)
        for (t,) in loaded.con.execute("SELECT timestamp FROM events ORDER BY timestamp").fetchall()
    ]
    assert got == expected
    if column == "epoch_ms":
        assert "events: 'timestamp' read as epoch milliseconds" in loaded.report.notes


def test_naive_times_in_configured_zone(tmp_path):
    """Check that naive timestamps are read in data.timezone and converted to UTC."""
    cfg = _config(tmp_path, timezone="America/New_York")
    loaded = load_data(cfg, now=NOW)
    first = loaded.con.execute("SELECT min(timestamp) FROM events").fetchone()[0]
    assert first == datetime(2025, 1, 1, 15, 0)  # 10:00 EST is 15:00 UTC


def test_cleaning_is_counted(tmp_path):
    """Check that every cleaning rule drops what it should and says how many."""
    dirty = pd.concat(
        [
            EVENTS,
            EVENTS.iloc[[0]],  # an exact duplicate
            pd.DataFrame(
                {"user_id": [None], "event": ["login"], "timestamp": [pd.Timestamp("2025-01-02")]}
            ),
            pd.DataFrame(
                {
                    "user_id": ["ghost"],
                    "event": ["login"],
                    "timestamp": [pd.Timestamp("2025-01-02")],
                }
            ),
        ],
        ignore_index=True,
    )
    dirty["timestamp"] = dirty["timestamp"].astype(str)
    dirty.loc[len(dirty)] = ["u2", "login", "not a time", None, None]
    cfg = _config(
        tmp_path, events=dirty, exclude=ExcludeConfig(email_domains=("propensity-internal.test",))
    )
    loaded = load_data(cfg, now=NOW)
    drops = {(d.table, d.reason): d for d in loaded.report.drops}
    assert drops[("events", "unparsable timestamp")].rows == 1
    assert drops[("events", "unparsable timestamp")].examples == ("not a time",)
    assert drops[("events", "missing user_id")].rows == 1
    assert drops[("events", "exact duplicate events")].rows == 1
    assert drops[("events", "internal or test user (data.exclude)")].rows == 1
    assert drops[("users", "internal or test user (data.exclude)")].rows == 1
    assert drops[("events", "events of users missing from the users table")].rows == 1
    assert loaded.report.tables[0].rows_kept == 3  # u1 x2, u2 x1


def test_exclude_by_user_id(tmp_path):
    """Check that users listed in data.exclude.user_ids vanish from every table."""
    cfg = _config(tmp_path, exclude=ExcludeConfig(user_ids=("u1",)))
    loaded = load_data(cfg, now=NOW)
    for table in ("events", "users", "conversions"):
        n = loaded.con.execute(f"SELECT count(*) FROM {table} WHERE user_id = 'u1'").fetchone()
        assert n == (0,)


def _problems(cfg: DataConfig) -> list[str]:
    with pytest.raises(DataContractError) as info:
        load_data(cfg, now=NOW)
    return info.value.problems


def test_missing_column_names_found_columns_and_fix(tmp_path):
    """Check that a missing column lists the columns found, a close match and the mapping key."""
    events = EVENTS.rename(columns={"event": "event_name"})
    [problem] = _problems(_config(tmp_path, events=events))
    assert "events: missing column 'event'" in problem
    assert "found user_id, event_name, timestamp, account_id, properties" in problem
    assert "Did you mean 'event_name'?" in problem
    assert "data.columns.events.event" in problem


def test_column_mapping_fixes_it(tmp_path):
    """Check that data.columns maps a differently named source column."""
    events = EVENTS.rename(columns={"event": "event_name"})
    cfg = _config(tmp_path, events=events, columns={"events": {"event": "event_name"}})
    assert load_data(cfg, now=NOW).report.tables[0].rows_kept == 4


def test_every_problem_reported_at_once(tmp_path):
    """Check that duplicated users, unknown converters and future times come in one error."""
    users = pd.concat([USERS, USERS.iloc[[1]]], ignore_index=True)
    conversions = pd.concat(
        [
            CONVERSIONS,
            pd.DataFrame({"user_id": ["nobody"], "converted_at": [pd.Timestamp("2025-01-20")]}),
        ]
    )
    events = EVENTS.copy()
    events.loc[3, "timestamp"] = pd.Timestamp("2031-01-01")
    problems = _problems(_config(tmp_path, events=events, users=users, conversions=conversions))
    text = "\n".join(problems)
    assert len(problems) == 3
    assert "users: 1 user_id values appear more than once (e.g. u2)" in text
    assert "conversions: 1 users converted but are not in the users table (e.g. nobody)" in text
    assert "events: 1 rows have timestamp after 2025-06-02 00:00 UTC, in the future" in text


def test_wrong_type(tmp_path):
    """Check that a column whose type cannot hold timestamps is named with its type."""
    events = EVENTS.assign(timestamp=[True, False, True, True])
    [problem] = _problems(_config(tmp_path, events=events))
    assert "column 'timestamp' (for 'timestamp') has type BOOLEAN" in problem


def test_all_timestamps_unparsable(tmp_path):
    """Check that a column with no readable timestamp is an error, not a silent empty table."""
    events = EVENTS.assign(timestamp=["soon", "later", "never", "now-ish"])
    [problem] = _problems(_config(tmp_path, events=events))
    assert "no value of column 'timestamp' could be read as a timestamp" in problem


def test_before_1990(tmp_path):
    """Check that timestamps before 1990 are reported with the epoch-unit hint."""
    events = EVENTS.copy()
    events.loc[0, "timestamp"] = pd.Timestamp("1970-01-01 00:00:01")
    [problem] = _problems(_config(tmp_path, events=events))
    assert "events: 1 rows have timestamp before 1990" in problem


def test_empty_and_missing_inputs(tmp_path):
    """Check that an empty file and a missing path are each named."""
    EVENTS.iloc[:0].to_parquet(tmp_path / "empty.parquet")
    users = _write(USERS, tmp_path / "users", "parquet")
    problems = _problems(
        DataConfig(events=str(tmp_path / "empty.parquet"), users=str(tmp_path / "missing.parquet"))
    )
    assert any("has no rows" in p for p in problems)
    assert any("'" + str(tmp_path / "missing.parquet") + "' does not exist" in p for p in problems)
    assert users


def test_unknown_user_events_fail(tmp_path):
    """Check that unknown_user_events: fail turns unknown users into a contract error."""
    events = pd.concat(
        [
            EVENTS,
            pd.DataFrame(
                {"user_id": ["ghost"], "event": ["a"], "timestamp": [pd.Timestamp("2025-01-02")]}
            ),
        ]
    )
    [problem] = _problems(_config(tmp_path, events=events, unknown_user_events="fail"))
    assert "events: 1 users have events but are not in the users table (e.g. ghost)" in problem


def test_cli_validate_ok_and_bad(tmp_path):
    """Check that the validate command prints a summary, or one error line and exit code 2."""
    cfg = _config(tmp_path)
    runner = CliRunner()
    result = runner.invoke(
        app,
        [
            "validate",
            "--events",
            cfg.events,
            "--users",
            cfg.users,
            "--conversions",
            cfg.conversions,
        ],
    )
    assert result.exit_code == 0, result.output
    assert "The data meets the contract" in result.output
    assert "doc_created" in result.output
    assert "@" not in result.output
    bad = runner.invoke(app, ["validate", "--events", str(tmp_path / "nope.csv")])
    assert bad.exit_code == 2
    assert "does not exist" in bad.output
    assert "Traceback" not in bad.output


def test_cli_validate_needs_a_source():
    """Check that validate without --config or --events explains what to give."""
    result = CliRunner().invoke(app, ["validate"])
    assert result.exit_code == 2
    assert "give --config CONFIG, or at least --events PATH" in result.output


def test_jsonl_properties_object(tmp_path):
    """Check that JSON-object properties in JSONL become JSON text."""
    path = tmp_path / "e.jsonl"
    rows = [
        {
            "user_id": "u1",
            "event": "a",
            "timestamp": "2025-01-01T00:00:00Z",
            "properties": {"rows": 5},
        }
    ]
    path.write_text("\n".join(json.dumps(r) for r in rows))
    users = _write(USERS, tmp_path / "users", "parquet")
    loaded = load_data(DataConfig(events=str(path), users=users), now=NOW)
    (props,) = loaded.con.execute("SELECT properties FROM events").fetchone()
    assert json.loads(props) == {"rows": 5}


def test_cli_validate_exports_canonical_tables(tmp_path):
    """Check that validate --export writes cleaned canonical parquet without email addresses."""
    cfg = _config(tmp_path, preset=Preset.segment)
    out = tmp_path / "canonical"
    result = CliRunner().invoke(
        app,
        [
            "validate",
            "--events",
            cfg.events,
            "--users",
            cfg.users,
            "--conversions",
            cfg.conversions,
            "--preset",
            "segment",
            "--export",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    events = pd.read_parquet(out / "events.parquet")
    users = pd.read_parquet(out / "users.parquet")
    assert list(events.columns) == ["user_id", "event", "timestamp", "account_id", "properties"]
    assert len(events) == 4 and "email" not in users.columns
    assert sorted(users["email_domain"]) == ["acme.com", "gmail.com", "propensity-internal.test"]
    assert sorted(p.name for p in out.iterdir()) == [
        "conversions.parquet",
        "events.parquet",
        "users.parquet",
    ]
