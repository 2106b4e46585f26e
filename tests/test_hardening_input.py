"""Hardening: bad input files, timestamps, ids and training data, each one clean error (exit 2).

Cases already covered elsewhere are not repeated here; docs/reliability.md lists them all.
"""

from __future__ import annotations

import gzip
import json
from datetime import datetime
from pathlib import Path

import duckdb
import pandas as pd
import pytest
from test_hardening_project import Project, demo_project, run_cli
from typer.testing import CliRunner

from propensity.cli import app
from propensity.config import DataConfig
from propensity.errors import DataContractError
from propensity.io import load_data

NOW = datetime(2025, 6, 1)
HEADER = "user_id,event,timestamp\n"
ROWS = "u1,login,2025-01-01 10:00:00\nu2,doc_created,2025-01-02 11:00:00\n"
GOOD_JSON = json.dumps({"user_id": "u1", "event": "login", "timestamp": "2025-01-01T10:00:00"})
USERS = pd.DataFrame(
    {
        "user_id": ["u1", "u2"],
        "signup_at": pd.to_datetime(["2025-01-01", "2025-01-02"]),
        "email": ["ann@acme.com", "bob@gmail.com"],
    }
)


def _many_rows(n: int) -> str:
    return "".join(
        f"u{1 + i % 2},login,2025-01-0{1 + i % 2} 10:{i % 60:02d}:00\n" for i in range(n)
    )


def _parquet_cut_in_half(path: Path) -> None:
    pd.DataFrame({"user_id": ["u1"] * 500, "event": ["login"] * 500}).to_parquet(path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _gzip_cut_short(path: Path, rows: int) -> None:
    data = gzip.compress((HEADER + _many_rows(rows)).encode())
    path.write_bytes(data[: int(len(data) * 0.8)])


def _jsonl(path: Path, n: int, bad_line: int, bad: str) -> None:
    lines = [GOOD_JSON] * n
    lines[bad_line - 1] = bad
    path.write_text("\n".join(lines) + "\n")


# (file name, writer, the message's fixed part); {path} is the file's path.
BAD_FILES = [
    ("empty.csv", lambda p: p.write_text(""), "events: {path!r} is empty (0 bytes)."),
    ("empty.parquet", lambda p: p.write_bytes(b""), "events: {path!r} is empty (0 bytes)."),
    ("empty.jsonl", lambda p: p.write_text(""), "events: {path!r} is empty (0 bytes)."),
    ("header.csv", lambda p: p.write_text(HEADER), "events: {path!r} has no rows."),
    (
        "cut.parquet",
        _parquet_cut_in_half,
        "events: cannot read {path!r} as parquet: Invalid Input Error: No magic bytes found",
    ),
    (
        "cut.csv.gz",
        lambda p: _gzip_cut_short(p, 200),
        "of {path!r} is where the compressed stream ends early (the file is cut short)",
    ),
    (
        "cut_late.csv.gz",
        lambda p: _gzip_cut_short(p, 200_000),
        "of {path!r} is where the compressed stream ends early (the file is cut short)",
    ),
    (
        "ragged.csv",
        lambda p: p.write_text(HEADER + ROWS + "u1,login,2025-01-03 10:00:00,x,y\n" + ROWS),
        "events: line 4 of {path!r} has 5 fields where the header has 3.",
    ),
    (
        "ragged_late.csv",
        lambda p: p.write_text(HEADER + _many_rows(60_000) + "u1,login,2025-01-03,x\n"),
        "events: line 60002 of {path!r} has 4 fields where the header has 3.",
    ),
    (
        "broken.jsonl",
        lambda p: _jsonl(p, 6, 4, '{"user_id": "u1", "event": "login",'),
        "events: line 4 of {path!r} is not valid JSON (Expecting property name",
    ),
    (
        "broken_late.jsonl",
        lambda p: _jsonl(p, 30_000, 25_001, "not json"),
        "events: line 25001 of {path!r} is not valid JSON (Expecting value).",
    ),
    (
        "latin1.csv",
        lambda p: p.write_bytes(
            (HEADER + ROWS + "u1,café,2025-01-03 10:00:00\n").encode("latin-1")
        ),
        "events: line 4 of {path!r} is not UTF-8 text (byte 0xe9). Re-export the file as UTF-8",
    ),
    (
        "latin1_late.csv",
        lambda p: p.write_bytes(
            (HEADER + _many_rows(60_000) + "u1,café,2025-01-03 10:00:00\n").encode("latin-1")
        ),
        "events: line 60002 of {path!r} is not UTF-8 text (byte 0xe9).",
    ),
]


@pytest.mark.parametrize(("name", "write", "message"), BAD_FILES, ids=[c[0] for c in BAD_FILES])
def test_unreadable_file_is_one_line_and_exit_2(tmp_path, name, write, message):
    """Check that each unreadable file is one error line naming it (and its line), exit 2."""
    path = tmp_path / name
    write(path)
    USERS.to_parquet(tmp_path / "users.parquet")
    result = CliRunner().invoke(
        app, ["validate", "--events", str(path), "--users", str(tmp_path / "users.parquet")]
    )
    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit)  # not an unhandled exception
    assert result.output.startswith("error: ")
    assert len(result.output.strip().splitlines()) == 1, result.output
    assert message.format(path=str(path)) in result.output


def test_mixed_formats_and_zones_in_one_column(tmp_path):
    """Check that one CSV column mixing ISO, zoned, epoch and junk text reads each value right
    and drops (and counts) only the junk."""
    rows = [
        ("u1", "a", "2025-01-01 10:00:00"),  # naive: UTC
        ("u1", "b", "2025-01-01T12:00:00+02:00"),  # 10:00 UTC
        ("u1", "c", "2025-01-01T05:00:00-05:00"),  # 10:00 UTC
        ("u1", "d", "2025-01-01T10:00:00Z"),
        ("u1", "e", "1735725600"),  # epoch seconds: 2025-01-01 10:00 UTC
        ("u1", "f", "01/02/2025 10:00"),  # ambiguous day/month: not guessed
    ]
    path = tmp_path / "events.csv"
    pd.DataFrame(rows, columns=["user_id", "event", "timestamp"]).to_csv(path, index=False)
    USERS.to_parquet(tmp_path / "users.parquet")
    loaded = load_data(DataConfig(events=str(path), users=str(tmp_path / "users.parquet")), now=NOW)
    got = loaded.con.execute("SELECT event, timestamp FROM events ORDER BY event").fetchall()
    assert got == [(e, datetime(2025, 1, 1, 10)) for e in "abcde"]
    (drop,) = [d for d in loaded.report.drops if d.reason == "unparsable timestamp"]
    assert (drop.rows, drop.examples) == (1, ("01/02/2025 10:00",))


def test_a_late_bad_timestamp_in_a_csv_is_dropped_not_a_crash(tmp_path):
    """Check that an unparsable time after the sniffer's sample rows is counted, not fatal."""
    path = tmp_path / "events.csv"
    path.write_text(HEADER + _many_rows(30_000) + "u2,login,not a time\n")
    USERS.to_parquet(tmp_path / "users.parquet")
    loaded = load_data(DataConfig(events=str(path), users=str(tmp_path / "users.parquet")), now=NOW)
    (drop,) = [d for d in loaded.report.drops if d.reason == "unparsable timestamp"]
    assert (drop.rows, drop.examples) == (1, ("not a time",))


def _epoch_events(tmp_path: Path, values: list[int]) -> DataConfig:
    events = pd.DataFrame({"user_id": "u1", "event": "login", "timestamp": values})
    events.to_parquet(tmp_path / "events.parquet")
    USERS.to_parquet(tmp_path / "users.parquet")
    return DataConfig(
        events=str(tmp_path / "events.parquet"), users=str(tmp_path / "users.parquet")
    )


def test_epoch_seconds_mixed_with_milliseconds_is_detected_and_said(tmp_path):
    """Check that a column mixing epoch s and ms is read as ms (the largest value decides) and
    the seconds then land in 1970, an error that points at data.epoch_unit."""
    cfg = _epoch_events(tmp_path, [1735725600, 1735725600123])
    with pytest.raises(DataContractError) as info:
        load_data(cfg, now=NOW)
    assert info.value.problems == [
        "events: 1 rows have timestamp before 1990 (e.g. 1970-01-21 02:08:45). Epoch values may "
        "be in another unit or a default date was exported; check data.epoch_unit and the export."
    ]


def test_epoch_unit_forced_wrong_is_the_future(tmp_path):
    """Check that milliseconds read as seconds (data.epoch_unit: s) are refused as far future."""
    cfg = _epoch_events(tmp_path, [1735725600123]).model_copy(update={"epoch_unit": "s"})
    with pytest.raises(DataContractError, match=r"events: 1 rows have timestamp after 2025-06-02"):
        load_data(cfg, now=NOW)


@pytest.mark.parametrize(
    ("events", "users"),
    [
        # CSV ints, users strings
        ("csv", pd.Series(["7", "8"])),
        # JSONL mixing a number and a string, users ints
        ("jsonl", pd.Series([7, 8])),
        # parquet ints, users float64 (an int column with a missing value, as pandas writes it)
        ("parquet", pd.Series([7.0, 8.0, None])),
    ],
)
def test_ids_as_ints_or_strings_join_as_one_user(tmp_path, events, users):
    """Check that 7, 7.0 and "7" are one user across tables, whatever each file's id type."""
    path = tmp_path / f"events.{events}"
    if events == "csv":
        path.write_text(
            "user_id,event,timestamp\n7,a,2025-01-01 10:00:00\n8,b,2025-01-01 11:00:00\n"
        )
    elif events == "jsonl":
        rows = [
            {"user_id": 7, "event": "a", "timestamp": "2025-01-01T10:00:00"},
            {"user_id": "8", "event": "b", "timestamp": "2025-01-01T11:00:00"},
        ]
        path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    else:
        pd.DataFrame(
            {
                "user_id": [7, 8],
                "event": ["a", "b"],
                "timestamp": pd.to_datetime(["2025-01-01 10:00", "2025-01-01 11:00"]),
            }
        ).to_parquet(path)
    signup = pd.Timestamp("2025-01-01")
    pd.DataFrame({"user_id": users, "signup_at": signup}).to_parquet(tmp_path / "users.parquet")
    loaded = load_data(DataConfig(events=str(path), users=str(tmp_path / "users.parquet")), now=NOW)
    got = loaded.con.execute("SELECT user_id, event FROM events ORDER BY event").fetchall()
    assert got == [("7", "a"), ("8", "b")]
    assert not [d for d in loaded.report.drops if d.table == "events"]


def test_csv_ids_keep_their_spelling(tmp_path):
    """Check that "007" in a CSV is not 7: ids are text, leading zeros included."""
    path = tmp_path / "events.csv"
    path.write_text("user_id,event,timestamp\n007,a,2025-01-01 10:00:00\n7,b,2025-01-01 11:00:00\n")
    pd.DataFrame({"user_id": ["7"], "signup_at": pd.Timestamp("2025-01-01")}).to_parquet(
        tmp_path / "users.parquet"
    )
    loaded = load_data(DataConfig(events=str(path), users=str(tmp_path / "users.parquet")), now=NOW)
    assert loaded.con.execute("SELECT user_id FROM events").fetchall() == [("7",)]
    (drop,) = loaded.report.drops
    assert (drop.reason, drop.rows, drop.examples) == (
        "events of users missing from the users table",
        1,
        ("007",),
    )


def test_duplicated_users_through_the_cli(tmp_path):
    """Check that a users table repeating a user is exit 2 naming the id, through the CLI."""
    path = tmp_path / "events.csv"
    path.write_text(HEADER + ROWS)
    pd.concat([USERS, USERS.iloc[[1]]]).to_parquet(tmp_path / "users.parquet")
    result = CliRunner().invoke(
        app, ["validate", "--events", str(path), "--users", str(tmp_path / "users.parquet")]
    )
    assert result.exit_code == 2
    assert "users: 1 user_id values appear more than once (e.g. u2)" in result.output
    assert "@" not in result.output  # the duplicated row's email is not echoed


# -- training and scoring on the shared demo project (slow) ------------------------------------


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Project:
    return demo_project(tmp_path_factory)


@pytest.mark.slow
def test_more_positives_than_exist_is_exit_2(project, tmp_path):
    """Check that min_positives above what the data holds stops training with exit 2."""
    config = project.write_config(
        tmp_path / "p.yaml", output_dir=str(tmp_path / "out"), model={"min_positives": 100_000}
    )
    done = run_cli(["train", "--config", str(config)], tmp_path, project.env())
    assert done.returncode == 2, done.stderr
    said = " ".join(done.stderr.split())
    assert "error: Not enough data to train honestly: " in said
    assert "at least 100000 converted (model.min_positives)" in said
    assert "fitting LightGBM" not in said and "Traceback" not in said
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_a_single_class_is_exit_2(project, tmp_path):
    """Check that training data with one converter (so no positive to learn from) is exit 2."""
    conversions = pd.read_parquet(project.root / "data" / "conversions.parquet").head(1)
    conversions.to_parquet(tmp_path / "one.parquet")
    config = project.write_config(
        tmp_path / "p.yaml",
        output_dir=str(tmp_path / "out"),
        data={"conversions": str(tmp_path / "one.parquet")},
    )
    done = run_cli(["train", "--config", str(config)], tmp_path, project.env())
    assert done.returncode == 2, done.stderr
    said = " ".join(done.stderr.split())
    assert "error: Not enough data to train honestly: " in said
    assert "at least 50 converted (model.min_positives)" in said
    assert "Traceback" not in said


@pytest.mark.slow
def test_scoring_bad_events_writes_nothing(project, tmp_path):
    """Check that a scoring job fed a broken events file exits 2 and writes no output at all."""
    events = tmp_path / "events.jsonl"
    _jsonl(events, 10, 7, "{oops")
    config = project.write_config(tmp_path / "p.yaml", data={"events": str(events)})
    out = tmp_path / "out" / "scores.parquet"
    done = run_cli(
        [
            "score",
            "-c",
            str(config),
            "--as-of",
            "latest",
            "--out",
            str(out),
            "--model",
            str(project.model),
        ],
        tmp_path,
        project.env(),
    )
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip() == (
        f"error: events: line 7 of {str(events)!r} is not valid JSON (Expecting property name "
        f"enclosed in double quotes). Fix or remove that line; each line must hold one JSON object."
    )
    assert not out.parent.exists()


@pytest.mark.slow
def test_vocabulary_sharing_nothing_warns_or_exits_4(project, tmp_path):
    """Check that events whose names the model never saw warn, and with --fail-on-drift exit 4
    with no scores written (the drift table is, so the reason can be read)."""
    renamed = tmp_path / "renamed.parquet"
    source = project.root / "data" / "events" / "**" / "*.parquet"
    duckdb.sql(
        f"COPY (SELECT * REPLACE ('zz_' || event AS event) FROM read_parquet('{source}')) "
        f"TO '{renamed}' (FORMAT parquet)"
    )
    config = project.write_config(tmp_path / "p.yaml", data={"events": str(renamed)})
    args = ["score", "-c", str(config), "--as-of", "latest", "--model", str(project.model)]
    warned = run_cli([*args, "--out", str(tmp_path / "a.parquet")], tmp_path, project.env())
    assert warned.returncode == 0, warned.stderr
    said = " ".join(warned.stdout.split())
    assert "drift above the limit:" in said and "event_vocabulary" in said
    assert (tmp_path / "a.parquet").is_file()
    failed = run_cli(
        [*args, "--out", str(tmp_path / "b.parquet"), "--fail-on-drift"], tmp_path, project.env()
    )
    assert failed.returncode == 4, failed.stderr
    assert failed.stderr.startswith("error: Drift above the limit 0.25 in ")
    assert "No scores were written" in failed.stderr
    assert not (tmp_path / "b.parquet").exists()
    assert (tmp_path / "b.drift.csv").is_file()
