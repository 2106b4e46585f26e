"""Tests for propensity.io: readers, presets, formats, cleaning and the data contract."""

import gzip
import hashlib
import json
from datetime import datetime
from pathlib import Path

import numpy as np
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


@pytest.mark.parametrize("fmt", ["parquet", "csv", "jsonl"])
def test_user_ids_that_are_email_addresses_are_keyed_by_their_hash(tmp_path, fmt):
    """Check that ids that are addresses are never stored: each becomes one pseudonym in every
    table (the SHA-256 of the lowercased address, so a CRM can join), gives its domain, and is
    said once in the summary; duplicated ones are named by pseudonym, never by address."""
    ids = {"u1": "Ann@Acme.com", "u2": "bob@gmail.com", "u3": "u3"}
    events = EVENTS.assign(user_id=EVENTS.user_id.map(ids))
    users = USERS.drop(columns="email").assign(user_id=USERS.user_id.map(ids))
    conversions = CONVERSIONS.assign(user_id=CONVERSIONS.user_id.map(ids))
    loaded = load_data(
        _config(tmp_path, fmt, events=events, users=users, conversions=conversions), now=NOW
    )
    key = "sha256:" + hashlib.sha256(b"ann@acme.com").hexdigest()
    for table in ("events", "users", "conversions"):
        got = {u for (u,) in loaded.con.execute(f"SELECT user_id FROM {table}").fetchall()}
        assert not any("@" in u for u in got), table
        assert key in got, table
    domains = dict(loaded.con.execute("SELECT user_id, email_domain FROM users").fetchall())
    assert domains[key] == "acme.com" and domains["u3"] is None
    assert any("2 user ids are email addresses" in n for n in loaded.report.notes)
    twice = pd.concat([users, users.iloc[:1]])
    with pytest.raises(DataContractError) as err:
        load_data(_config(tmp_path, fmt, events=events, users=twice), now=NOW)
    assert key[:24] in str(err.value) and "@" not in str(err.value)


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


# -- dedup (issue 13): which repeats are one event sent twice ---------------------------------


def _repeats(day_only: bool) -> pd.DataFrame:
    """u1 logs in twice on one day (two real events), plus one row a tracker sent twice."""
    times = ["2025-01-02", "2025-01-02", "2025-01-03", "2025-01-03"]
    if not day_only:
        times = ["2025-01-02 09:00", "2025-01-02 09:00", "2025-01-03 10:00", "2025-01-03 11:00"]
    return pd.DataFrame(
        {
            "user_id": ["u1", "u1", "u2", "u2"],
            "event": ["login", "login", "login", "doc_created"],
            "timestamp": pd.to_datetime(times),
        }
    )


@pytest.mark.parametrize(
    ("day_only", "mode", "kept", "said"),
    [
        (True, "auto", 4, "dedup: none, every timestamp is at midnight (a day-only export)"),
        (False, "auto", 3, "dedup: exact duplicates (rows equal in every column); 1 duplicate"),
        (True, "exact", 3, "same-day repeats were removed too"),
        (False, "none", 4, "dedup: none, as data.dedup.mode says; no event removed"),
    ],
)
def test_dedup_modes_and_day_only_exports(tmp_path, day_only, mode, kept, said):
    """Check that day-only exports keep same-day repeats by default, timed exports lose exact
    duplicates, each mode does what it says, and the summary says which rule ran."""
    from propensity.config import DedupConfig

    cfg = _config(tmp_path, events=_repeats(day_only), dedup=DedupConfig(mode=mode))
    loaded = load_data(cfg, now=NOW)
    assert loaded.report.tables[0].rows_kept == kept
    assert loaded.report.notes[0].startswith(said) or said in loaded.report.notes[0]
    assert loaded.report.dedup["mode"] == ("none" if kept == 4 else "exact")
    assert loaded.report.as_dict()["dedup"]["removed"] == 4 - kept


def test_dedup_by_event_id(tmp_path):
    """Check that rows sharing an event id are one event (the earliest kept), rows with other
    ids stay even when identical otherwise, and the preset's id column is used by default."""
    from propensity.config import DedupConfig

    events = _repeats(day_only=True).assign(messageId=["m1", "m2", "m3", "m3"])
    events["timestamp"] = events["timestamp"].dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    segment = events.rename(columns={"user_id": "userId"})
    segment.to_parquet(tmp_path / "seg.parquet")
    users = _write(USERS, tmp_path / "users", "parquet")
    loaded = load_data(
        DataConfig(events=str(tmp_path / "seg.parquet"), users=users, preset=Preset.segment),
        now=NOW,
    )
    got = loaded.con.execute("SELECT user_id, event FROM events ORDER BY ALL").fetchall()
    assert got == [("u1", "login"), ("u1", "login"), ("u2", "doc_created")]
    assert loaded.report.dedup == {
        "mode": "event_id",
        "column": "messageId",
        "why": "the export's event id column, segment",
        "removed": 1,
    }
    (drop,) = [d for d in loaded.report.drops if d.reason.startswith("duplicate events")]
    assert (drop.reason, drop.rows) == ("duplicate events (same 'messageId')", 1)
    cfg = _config(
        tmp_path, events=events.rename(columns={"messageId": "eid"}), dedup={"column": "nope"}
    )
    [problem] = _problems(cfg)
    assert "data.dedup.column 'nope' is not a column of the events" in problem
    with pytest.raises(ValueError, match="dedup mode 'event_id' needs"):
        DedupConfig(mode="event_id")


# -- bots (issue 13): inhuman rates and metronome gaps ------------------------------------------


def _bot_world(tmp: Path, bot: pd.DataFrame) -> DataConfig:
    """Three people (one heavy: 400 events over a working day) plus the given bot rows."""
    people = []
    for user, n in (("u1", 400), ("u2", 30), ("u3", 5)):
        seconds = sorted(np.random.default_rng(len(user) + n).integers(8 * 3600, 19 * 3600, n))
        people.append(
            pd.DataFrame(
                {
                    "user_id": user,
                    "event": "login",
                    "timestamp": pd.Timestamp("2025-01-02") + pd.to_timedelta(seconds, unit="s"),
                }
            )
        )
    events = pd.concat([*people, bot], ignore_index=True)
    users = pd.concat(
        [USERS, pd.DataFrame({"user_id": ["bot"], "signup_at": [pd.Timestamp("2025-01-01")]})]
    )
    return _config(tmp, events=events, users=users)


def _burst() -> np.ndarray:
    """1,500 events 1 to 3 seconds apart: a rate no person keeps up, gaps not regular."""
    return np.cumsum(np.random.default_rng(5).integers(1, 4, 1500))


def _bot(seconds: np.ndarray) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "user_id": "bot",
            "event": "page_view",
            "timestamp": pd.Timestamp("2025-01-02") + pd.to_timedelta(seconds, unit="s"),
        }
    )


@pytest.mark.parametrize(
    ("seconds", "why"),
    [
        (_burst(), "1,500 events in one hour on 2025-01-02"),
        (np.arange(2, 24 * 3600, 1800), "active in 24 of the 24 hours of 2025-01-02"),
        (np.arange(60) * 997 + 13, "59 gaps between events varying by 0.000 of their mean"),
    ],
    ids=["rate", "round-the-clock", "metronome"],
)
def test_bots_are_found_counted_and_excluded(tmp_path, seconds, why):
    """Check that a burst, a round-the-clock crawler and a timer-driven script are each
    excluded from every table with the rule and the reason in the summary, while a heavy person
    (400 events in a working day) is kept."""
    loaded = load_data(_bot_world(tmp_path, _bot(seconds)), now=NOW)
    users = {u for (u,) in loaded.con.execute("SELECT user_id FROM users").fetchall()}
    assert "bot" not in users and {"u1", "u2", "u3"} <= users
    assert loaded.report.bots == 1
    drops = {(d.table, d.reason): d.rows for d in loaded.report.drops}
    assert drops[("users", "bot or scripted account (data.bots)")] == 1
    assert drops[("events", "bot or scripted account (data.bots)")] == len(seconds)
    notes = " ".join(loaded.report.notes)
    assert "bots: a user is excluded as a bot for" in notes
    assert f"bots: 1 user excluded (bot: {why}" in notes


def test_bots_can_be_kept_and_tuned(tmp_path):
    """Check that data.bots.exclude: false keeps a flagged user (and says so), and that a
    raised threshold no longer flags it."""
    from propensity.config import BotsConfig

    burst = _bot(_burst())
    kept = load_data(
        _bot_world(tmp_path, burst).model_copy(update={"bots": BotsConfig(exclude=False)}),
        now=NOW,
    )
    assert kept.con.execute("SELECT count(*) FROM users WHERE user_id = 'bot'").fetchone() == (1,)
    assert any("look scripted" in n and "are kept" in n for n in kept.report.notes)
    tuned = BotsConfig(max_events_per_hour=5000, busiest_day_factor=0)
    loaded = load_data(_bot_world(tmp_path, burst).model_copy(update={"bots": tuned}), now=NOW)
    assert loaded.report.bots == 0


# -- data.end (issue 13) -------------------------------------------------------------------------


def test_data_end_drops_later_rows_and_is_the_reports_end(tmp_path):
    """Check that rows after data.end are dropped and counted in every table, and that the
    report's end of data is data.end (what labels and --as-of latest use)."""
    from datetime import datetime as dt

    cfg = _config(tmp_path, end="2025-01-02T12:00:00")
    loaded = load_data(cfg, now=NOW)
    drops = {(d.table, d.reason): d.rows for d in loaded.report.drops}
    assert drops[("events", "after data.end (2025-01-02 12:00)")] == 1  # u3 on 01-03
    assert drops[("users", "after data.end (2025-01-02 12:00)")] == 1  # u3 signed up 01-03
    assert drops[("conversions", "after data.end (2025-01-02 12:00)")] == 1  # u1 on 01-15
    assert loaded.report.data_end == dt(2025, 1, 2, 12) and loaded.report.data_end_configured
    assert "data ends at 2025-01-02 12:00:00 (data.end)" in loaded.report.notes
    unset = load_data(_config(tmp_path), now=NOW).report
    assert unset.data_end == unset.last_event and not unset.data_end_configured


def test_data_end_in_the_future_is_refused(tmp_path):
    """Check that a data.end after now (plus data.max_future) is a problem naming the key."""
    [problem] = _problems(_config(tmp_path, end="2031-01-01"))
    assert problem.startswith("data.end 2031-01-01 00:00 is after 2025-06-02 00:00 UTC")


def test_lost_users_table_is_read_and_cleaned(tmp_path):
    """Check that data.lost_users is read like the other tables (mapping, time formats) into a
    canonical lost_users table."""
    lost = pd.DataFrame({"uid": ["u2", None], "deleted": ["2025-01-04T00:00:00Z", "2025-01-05"]})
    lost.to_csv(tmp_path / "lost.csv", index=False)
    cfg = _config(
        tmp_path,
        lost_users=str(tmp_path / "lost.csv"),
        columns={"lost_users": {"user_id": "uid", "lost_at": "deleted"}},
    )
    loaded = load_data(cfg, now=NOW)
    rows = loaded.con.execute("SELECT user_id, lost_at FROM lost_users").fetchall()
    assert rows == [("u2", datetime(2025, 1, 4))]
    assert ("lost_users", "missing user_id") in {(d.table, d.reason) for d in loaded.report.drops}


def test_on_simulated_worlds_only_the_bot_is_flagged(tmp_path):
    """Check that on a simulated world (1,200 users, heavy users included) and on its day-only
    copy, the bot rules flag exactly the simulator's bot and no person."""
    import duckdb

    from propensity.simulate import simulate

    simulate(tmp_path / "w", users=1200, seed=4, days=120)
    truth = pd.read_parquet(tmp_path / "w" / "truth.parquet")
    bots = sorted(truth.loc[truth["reason"] == "bot", "user_id"])
    assert len(bots) == 1
    day_only = tmp_path / "day_only.parquet"
    duckdb.sql(
        f"COPY (SELECT * REPLACE (date_trunc('day', timestamp) AS timestamp) FROM "
        f"read_parquet('{tmp_path / 'w' / 'events'}/*.parquet')) TO '{day_only}' (FORMAT parquet)"
    )
    for events in (str(tmp_path / "w" / "events"), str(day_only)):
        cfg = DataConfig(events=events, users=str(tmp_path / "w" / "users.parquet"))
        loaded = load_data(cfg, now=datetime(2025, 7, 1))
        flagged = sorted(
            loaded.con.execute(
                "SELECT user_id FROM read_parquet(?) EXCEPT SELECT user_id FROM users",
                [str(tmp_path / "w" / "users.parquet")],
            ).fetchall()
        )
        assert [u for (u,) in flagged] == bots, events


def test_payments_table_is_read_and_cleaned(tmp_path):
    """Check that data.payments is read like the other tables (mapping, time formats, numbers
    from text) into a canonical payments table, rows missing a column dropped and counted."""
    pay = pd.DataFrame(
        {
            "acct": ["a1", "a1", None, "a2"],
            "paid": ["2025-01-04T00:00:00Z", "2025-02-01", "2025-01-05", "2025-01-09"],
            "seats": ["3", "5.0", "2", None],
        }
    )
    pay.to_csv(tmp_path / "payments.csv", index=False)
    cfg = _config(
        tmp_path,
        payments=str(tmp_path / "payments.csv"),
        columns={"payments": {"account_id": "acct", "paid_at": "paid"}},
    )
    loaded = load_data(cfg, now=NOW)
    rows = loaded.con.execute(
        "SELECT account_id, paid_at, seats FROM payments ORDER BY paid_at"
    ).fetchall()
    assert rows == [("a1", datetime(2025, 1, 4), 3.0), ("a1", datetime(2025, 2, 1), 5.0)]
    drops = {(d.table, d.reason): d.rows for d in loaded.report.drops}
    assert drops[("payments", "missing account_id")] == 1
    assert drops[("payments", "missing seats")] == 1


@pytest.mark.parametrize(
    ("payments", "expected"),
    [
        (
            pd.DataFrame({"account_id": ["a1"], "paid_at": ["2025-01-04"]}),
            "payments: missing column 'seats'",
        ),
        (
            pd.DataFrame({"account_id": ["a1"], "paid_at": ["2025-01-04"], "seats": ["many"]}),
            "payments: no value of column 'seats' could be read as a number (e.g. many)",
        ),
        (
            pd.DataFrame({"account_id": ["a1"], "paid_at": ["2025-01-04"], "seats": [0]}),
            "payments: 1 rows have seats of 0 or less",
        ),
        (
            pd.DataFrame({"account_id": ["zz"], "paid_at": ["2025-01-04"], "seats": [2]}),
            "payments: 1 accounts paid but no user in the users table belongs to them",
        ),
    ],
)
def test_bad_payments_are_one_clear_problem(tmp_path, payments, expected):
    """Check that a payments table breaking the contract is one problem naming the fix."""
    payments.to_csv(tmp_path / "payments.csv", index=False)
    [problem] = _problems(_config(tmp_path, payments=str(tmp_path / "payments.csv")))
    assert problem.startswith(expected), problem


def test_users_without_an_account_take_their_events_smallest(tmp_path):
    """Check that a user without an account takes the smallest account their events carry,
    one with an account keeps it, one whose events carry none stays without, in their order."""
    events = pd.DataFrame(
        {
            "user_id": ["u2", "u2", "u2", "u1", "u3", "u4"],
            "event": ["login"] * 6,
            "timestamp": pd.to_datetime(["2025-01-02 09:00:00"] * 6)
            + pd.to_timedelta(range(6), unit="min"),
            "account_id": ["b9", None, "b2", "a1", None, "z1"],
        }
    )
    users = pd.DataFrame(
        {
            "user_id": ["u4", "u2", "u3", "u1"],
            "signup_at": pd.to_datetime(["2025-01-01"] * 4),
            "account_id": ["kept", None, None, None],
        }
    )
    cfg = DataConfig(
        events=_write(events, tmp_path / "events", "parquet"),
        users=_write(users, tmp_path / "users", "parquet"),
    )
    loaded = load_data(cfg, now=NOW)
    rows = loaded.con.execute("SELECT user_id, account_id FROM users").fetchall()
    assert rows == [("u4", "kept"), ("u2", "b2"), ("u3", None), ("u1", "a1")]


def test_message_examples_are_the_first_values_in_sorted_order():
    """Check that a message's examples do not depend on the order DuckDB reads rows in, so the
    same input gives the same message (a LIMIT alone gave the first rows reached)."""
    import duckdb

    from propensity.io.clean import examples

    con = duckdb.connect()
    con.execute("SET threads = 1")
    con.execute("CREATE TABLE t AS SELECT * FROM (VALUES ('u9'), ('u3'), ('u7'), ('u1')) v(x)")
    assert examples(con, "SELECT DISTINCT x FROM t") == ("u1", "u3", "u7")
    assert examples(con, "SELECT x FROM t WHERE x > 'u2'") == ("u3", "u7", "u9")
