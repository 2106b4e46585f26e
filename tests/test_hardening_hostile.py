"""Hardening (issue 17): hostile and broken inputs, each a clean error or a counted repair.

Every case goes through `propensity validate` (or the reader it calls) and asserts the documented
exit code, a message naming the file, key or column and the fix, and no traceback. Permission
cases run without root's permission-overriding privileges (see run_unprivileged).
"""

from __future__ import annotations

import json
import math
import os
import re
import string
from datetime import datetime
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
from hypothesis import example, given, settings
from hypothesis import strategies as st
from test_hardening_project import run_unprivileged
from typer.testing import CliRunner

from propensity.cli import app
from propensity.config import DataConfig, FeaturesConfig, LabelConfig
from propensity.errors import DataContractError, InsufficientDataError
from propensity.io import load_data
from propensity.labels import build_label_times, check_trainable

NOW = datetime(2025, 6, 1)
EMAIL = re.compile(r"[\w.+-]+@[\w-]+\.[\w.]+")


def _users(n: int = 3, emails: bool = True) -> pd.DataFrame:
    frame = pd.DataFrame(
        {
            "user_id": [f"u{i}" for i in range(1, n + 1)],
            "signup_at": pd.Timestamp("2025-01-01") + pd.to_timedelta(range(n), unit="h"),
        }
    )
    if emails:
        frame["email"] = [f"person{i}@acme{i}.com" for i in range(1, n + 1)]
    return frame


def _events(n: int = 6) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "user_id": [f"u{1 + i % 3}" for i in range(n)],
            "event": ["login", "doc_created"] * (n // 2),
            "timestamp": pd.Timestamp("2025-01-03 10:00") + pd.to_timedelta(range(n), unit="h"),
        }
    )


def _write_users(tmp: Path, users: pd.DataFrame | None = None) -> str:
    (users if users is not None else _users()).to_parquet(tmp / "users.parquet")
    return str(tmp / "users.parquet")


def _validate(*args: str) -> tuple[int, str]:
    """`propensity validate` in-process: exit code and output; never an unhandled exception."""
    result = CliRunner().invoke(app, ["validate", *args])
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(
        result.exception
    )
    assert "Traceback" not in result.output
    return result.exit_code, " ".join(result.output.split())


def _arrow_events(path: Path, timestamps: pa.Array) -> str:
    n = len(timestamps)
    table = pa.table(
        {
            "user_id": pa.array([f"u{1 + i % 3}" for i in range(n)]),
            "event": pa.array(["login"] * n),
            "timestamp": timestamps,
        }
    )
    pq.write_table(table, path)
    return str(path)


# -- timestamps ------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["parquet", "csv", "jsonl"])
def test_every_timestamp_null_names_the_column(tmp_path, fmt):
    """Check that a timestamp column empty in every row is exit 2 naming the column and fix."""
    events = _events().assign(timestamp=None).rename(columns={"timestamp": "ts"})
    path = tmp_path / f"events.{fmt}"
    if fmt == "parquet":
        events.to_parquet(path)
    elif fmt == "csv":
        events.to_csv(path, index=False)
    else:
        events.to_json(path, orient="records", lines=True)
    config = tmp_path / "p.yaml"
    data = {"events": str(path), "users": _write_users(tmp_path)}
    config.write_text(
        yaml.safe_dump({"data": {**data, "columns": {"events": {"timestamp": "ts"}}}})
    )
    code, said = _validate("-c", str(config))
    assert code == 2
    assert "every row has an empty timestamp (column 'ts' of the file is null or blank" in said
    assert "data.columns.events.timestamp" in said


@pytest.mark.parametrize(
    ("values", "dropped"),
    [
        ([1735725600.0, math.nan, 1735725700.0], ["nan"]),
        ([1735725600.0, math.inf, -math.inf, 1735725700.0], ["inf", "-inf"]),
        ([1735725600.0, math.nan, math.inf, 1735812000.5], ["nan", "inf"]),
    ],
)
def test_float_epochs_holding_nan_or_infinity_are_dropped_and_counted(tmp_path, values, dropped):
    """Check that NaN and infinity among float epochs are dropped, counted and shown; the
    good values are read right."""
    path = _arrow_events(tmp_path / "e.parquet", pa.array(values, pa.float64()))
    cfg = DataConfig(events=path, users=_write_users(tmp_path))
    loaded = load_data(cfg, now=NOW)
    (drop,) = [d for d in loaded.report.drops if d.reason == "unparsable timestamp"]
    assert drop.rows == len(dropped)
    assert sorted(drop.examples) == sorted(dropped)
    times = [t for (t,) in loaded.con.execute("SELECT timestamp FROM events").fetchall()]
    assert datetime(2025, 1, 1, 10, 0) in times


@pytest.mark.parametrize("absurd", [99_999_999_999_999_999, 2**62, -(2**62)])
def test_one_absurd_integer_among_good_epochs_is_dropped_not_the_file(tmp_path, absurd):
    """Check that one integer beyond any timestamp is dropped and named, with the unit still
    detected from the good values (not flipped by the outlier), instead of a file error."""
    good = [1735725600 + 3600 * i for i in range(5)]
    path = _arrow_events(tmp_path / "e.parquet", pa.array([*good, absurd], pa.int64()))
    code, said = _validate("--events", path, "--users", _write_users(tmp_path))
    assert code == 0, said
    assert "read as epoch seconds" in said
    assert "unparsable timestamp" in said and str(absurd) in said


def test_one_far_future_epoch_names_the_column_and_the_unit(tmp_path):
    """Check that one epoch value in year 30000 (readable, absurd) is exit 2 naming the
    timestamp column, the future and the epoch unit setting."""
    values = [1735725600, 1735729200, 1_000_000_000_000]
    path = _arrow_events(tmp_path / "e.parquet", pa.array(values, pa.int64()))
    code, said = _validate("--events", path, "--users", _write_users(tmp_path))
    assert code == 2
    assert "events: 1 rows have timestamp after" in said and "in the future" in said
    assert "data.epoch_unit" in said


@pytest.mark.parametrize(
    ("name", "forced", "message"),
    [
        ("events.parquet", "csv", "is read as csv (from data.format), but its content is parquet"),
        ("events.parquet", "jsonl", "is read as jsonl (from data.format), but its content is"),
        ("events.csv", "parquet", "is read as parquet (from data.format), but its content is not"),
    ],
)
def test_a_forced_format_that_does_not_match_the_files(tmp_path, name, forced, message):
    """Check that data.format forcing the wrong format is exit 2 naming file, format and fix."""
    path = tmp_path / name
    if name.endswith(".parquet"):
        _events().to_parquet(path)
    else:
        _events().to_csv(path, index=False)
    config = tmp_path / "p.yaml"
    raw = {"data": {"events": str(path), "users": _write_users(tmp_path), "format": forced}}
    config.write_text(yaml.safe_dump(raw))
    code, said = _validate("-c", str(config))
    assert code == 2
    assert f"events: {str(path)!r} {message}" in said
    assert "data.format" in said or "Rename" in said


@pytest.mark.parametrize("name", ["events.csv", "events.jsonl", "events.csv.gz"])
def test_parquet_bytes_under_a_text_name(tmp_path, name):
    """Check that parquet bytes under a .csv/.jsonl name are exit 2 saying what the file is."""
    path = tmp_path / name
    _events().to_parquet(path)
    code, said = _validate("--events", str(path), "--users", _write_users(tmp_path))
    assert code == 2
    assert f"{str(path)!r} is read as" in said and "but its content is parquet" in said
    assert "Rename the file" in said


def test_gzip_bytes_under_a_plain_csv_name(tmp_path):
    """Check that a gzipped CSV named .csv is exit 2 telling to rename it .csv.gz."""
    import gzip

    path = tmp_path / "events.csv"
    path.write_bytes(gzip.compress(_events().to_csv(index=False).encode()))
    code, said = _validate("--events", str(path), "--users", _write_users(tmp_path))
    assert code == 2
    assert "but its content is gzip-compressed" in said


# -- ids and tables --------------------------------------------------------------------------


@pytest.mark.parametrize("table", ["events", "users"])
def test_every_user_id_null_names_the_column(tmp_path, table):
    """Check that a user_id column empty in every row is exit 2 naming the table and column,
    not a pointer to a drops table that is never printed."""
    events, users = _events(), _users()
    if table == "events":
        events["user_id"] = None
    else:
        users["user_id"] = None
    events.to_parquet(tmp_path / "e.parquet")
    code, said = _validate(
        "--events", str(tmp_path / "e.parquet"), "--users", _write_users(tmp_path, users)
    )
    assert code == 2
    assert f"{table}: every row has an empty user_id (column 'user_id' of the file" in said
    assert "see the drops above" not in said


def _conversions(tmp: Path, days_after_signup: list[float]) -> str:
    users = _users(len(days_after_signup))
    users.to_parquet(tmp / "users.parquet")
    frame = pd.DataFrame(
        {
            "user_id": users["user_id"],
            "converted_at": users["signup_at"] + pd.to_timedelta(days_after_signup, unit="D"),
        }
    )
    frame.to_parquet(tmp / "conversions.parquet")
    return str(tmp / "conversions.parquet")


def test_a_few_conversions_before_signup_are_said(tmp_path):
    """Check that a conversion before signup is said in the summary (the user is excluded from
    labels as already a customer), not accepted silently."""
    conversions = _conversions(tmp_path, [-2, 5, 6, 9])
    _events().to_parquet(tmp_path / "e.parquet")
    code, said = _validate(
        "--events",
        str(tmp_path / "e.parquet"),
        "--users",
        str(tmp_path / "users.parquet"),
        "--conversions",
        conversions,
    )
    assert code == 0, said
    assert "conversions: 1 users converted before their signup_at (e.g. u1)" in said


def test_most_conversions_before_signup_is_exit_2(tmp_path):
    """Check that most converters converting before signup (a misread time) is exit 2."""
    conversions = _conversions(tmp_path, [-2, -1, -3, 9])
    _events().to_parquet(tmp_path / "e.parquet")
    code, said = _validate(
        "--events",
        str(tmp_path / "e.parquet"),
        "--users",
        str(tmp_path / "users.parquet"),
        "--conversions",
        conversions,
    )
    assert code == 2
    assert "3 of 4 converters have converted_at before their signup_at" in said
    assert "data.timezone" in said


def _labelled_world(con_events: pd.DataFrame, n: int, converters: int):
    import duckdb

    con = duckdb.connect()
    users = pd.DataFrame(
        {
            "user_id": [f"u{i}" for i in range(n)],
            "account_id": None,
            "signup_at": pd.Timestamp("2025-01-01"),
        }
    )
    conversions = pd.DataFrame(
        {"user_id": users["user_id"][:converters], "converted_at": pd.Timestamp("2025-01-10")}
    )
    for name, frame in (("users", users), ("conversions", conversions), ("events", con_events)):
        con.register(f"{name}_df", frame)
        con.execute(f"CREATE TABLE {name} AS SELECT * FROM {name}_df")
    return con


@pytest.mark.parametrize("n", [3, 40])
def test_too_few_users_is_said_as_too_little_data(n):
    """Check that three (or forty) users are refused as too little data, naming the counts and
    model.min_positives, before any feature or rule is built."""
    events = pd.DataFrame(
        {"user_id": ["u0"], "event": ["login"], "timestamp": pd.Timestamp("2025-01-02")}
    )
    con = _labelled_world(events, n, converters=1)
    labels = build_label_times(con, LabelConfig(), data_end=datetime(2025, 6, 1))
    with pytest.raises(InsufficientDataError) as info:
        check_trainable(con, labels, LabelConfig(), 50, 50)
    said = str(info.value)
    assert said.startswith(f"Not enough data to train honestly: {n} users can be labelled")
    assert "(1 converted within the horizon" in said and "model.min_positives" in said


def test_no_event_before_any_cutoff_is_said():
    """Check that users whose events all come after their cutoff are refused, naming the time
    zone and mapping settings, instead of training on empty features."""
    events = pd.DataFrame(
        {
            "user_id": [f"u{i}" for i in range(200)],
            "event": "login",
            "timestamp": pd.Timestamp("2025-02-01"),  # every cutoff is 2025-01-08
        }
    )
    con = _labelled_world(events, 200, converters=100)
    labels = build_label_times(con, LabelConfig(), data_end=datetime(2025, 6, 1))
    with pytest.raises(InsufficientDataError, match="None of the 200 labelled users has an event"):
        check_trainable(con, labels, LabelConfig(), 50, 50)


def test_three_users_stop_training_before_the_rules(tmp_path):
    """Check that preparing training on three users stops with the data size (exit 2), before
    any rule template or split could fail on the empty feature table."""
    from propensity.config import config_from_dict
    from propensity.pipeline.prepare import prepare

    _events().to_parquet(tmp_path / "e.parquet")
    conversions = _conversions(tmp_path, [9, 20, 40])
    raw = {
        "data": {
            "events": str(tmp_path / "e.parquet"),
            "users": str(tmp_path / "users.parquet"),
            "conversions": conversions,
            "end": "2025-05-01",
        },
        "baselines": {"templates": ["plan_limit_hit"]},
    }
    with pytest.raises(InsufficientDataError) as info:
        prepare(config_from_dict(raw))
    assert info.value.exit_code == 2
    assert str(info.value).startswith("Not enough data to train honestly: 3 users can be labelled")


def test_properties_that_are_not_json_are_cleared_not_fatal(tmp_path):
    """Check that a row whose properties are not JSON keeps its event, loses its properties,
    is counted, and that property features still compute (the nightly job survives)."""
    from propensity.features import compute_features, learn_spec

    events = _events(6).assign(
        properties=['{"rows": 5}', '{"rows": 1}', "{rows: 7", "not json", '{"rows": 2}', None]
    )
    events.to_parquet(tmp_path / "e.parquet")
    cfg = DataConfig(events=str(tmp_path / "e.parquet"), users=_write_users(tmp_path))
    loaded = load_data(cfg, now=NOW)
    assert loaded.report.tables[0].rows_kept == 6
    (note,) = [n for n in loaded.report.notes if "not valid JSON" in n]
    assert note.startswith("events: 2 rows have properties that are not valid JSON")
    loaded.con.execute("CREATE TABLE conversions2 AS SELECT * FROM conversions")
    labels = build_label_times(loaded.con, LabelConfig(observation_window="5d"), NOW)
    features = FeaturesConfig(
        min_event_support=1, properties=[{"event": "login", "property": "rows"}]
    )
    spec = learn_spec(loaded.con, labels, features)
    frame = compute_features(loaded.con, labels, spec).frame
    assert frame["prop_login_rows_sum"].sum() == 7  # 5 + 2: the broken row counts nothing


# -- identifiers from data and config ----------------------------------------------------------

NASTY = st.text(
    alphabet=st.sampled_from(list(string.ascii_letters + "\"'`;$ -\\.()[]{}é")),
    min_size=1,
    max_size=12,
).filter(lambda s: s.strip() and not s.startswith(("_", ".")))


@settings(max_examples=12, deadline=None, derandomize=True)
@given(names=st.lists(NASTY, min_size=4, max_size=4, unique=True))
@example(names=['user"id', 'ts"x', 'company"size', "seats'; DROP TABLE users; --"])
def test_any_column_name_is_quoted_in_sql(tmp_path_factory, names):
    """Check that columns named with quotes, backslashes and the like, mapped in the config or
    passed through as user attributes and features, are read right (never break the SQL)."""
    from propensity.features import compute_features, learn_spec

    tmp = tmp_path_factory.mktemp("ids")
    uid, ts, attr, size = names
    events = _events().rename(columns={"user_id": uid, "timestamp": ts})
    events.to_parquet(tmp / "e.parquet")
    users = _users().rename(columns={"user_id": uid}).assign(**{attr: ["a", "b", "a"], size: 3.0})
    users.to_parquet(tmp / "u.parquet")
    columns = {"events": {"user_id": uid, "timestamp": ts}, "users": {"user_id": uid}}
    cfg = DataConfig(events=str(tmp / "e.parquet"), users=str(tmp / "u.parquet"), columns=columns)
    loaded = load_data(cfg, now=NOW)
    assert loaded.report.tables[0].rows_kept == 6
    got = loaded.con.execute("SELECT min(timestamp) FROM events").fetchone()[0]
    assert got == datetime(2025, 1, 3, 10)
    labels = build_label_times(loaded.con, LabelConfig(observation_window="5d"), NOW)
    features = FeaturesConfig(
        min_event_support=1, categorical_user_columns=[attr], numeric_user_columns=[size]
    )
    frame = compute_features(loaded.con, labels, learn_spec(loaded.con, labels, features)).frame
    assert len(frame) == 3


# -- inputs that cannot be opened --------------------------------------------------------------


def _env() -> dict[str, str]:
    return {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true"}


def test_a_folder_without_read_permission(tmp_path):
    """Check that a folder this user may not read is exit 2 saying so (not 'matched no files'),
    with privileges dropped: root would read it anyway."""
    folder = tmp_path / "events"
    folder.mkdir()
    _events().to_parquet(folder / "part-0.parquet")
    users = _write_users(tmp_path)
    folder.chmod(0o000)
    try:
        done = run_unprivileged(
            ["validate", "--events", str(folder), "--users", users], tmp_path, _env()
        )
    finally:
        folder.chmod(0o755)
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith(
        f"error: events: no permission to read the folder {str(folder)!r}"
    )
    assert "Traceback" not in done.stderr


def test_a_subfolder_and_a_file_without_read_permission(tmp_path):
    """Check that a locked subfolder, and a locked file, are each named, exit 2."""
    folder = tmp_path / "events"
    (folder / "day=2").mkdir(parents=True)
    _events().to_parquet(folder / "part-0.parquet")
    _events().to_parquet(folder / "day=2" / "part-1.parquet")
    users = _write_users(tmp_path)
    (folder / "day=2").chmod(0o000)
    try:
        locked_dir = run_unprivileged(
            ["validate", "--events", str(folder), "--users", users], tmp_path, _env()
        )
    finally:
        (folder / "day=2").chmod(0o755)
    (folder / "part-0.parquet").chmod(0o000)
    try:
        locked_file = run_unprivileged(
            ["validate", "--events", str(folder), "--users", users], tmp_path, _env()
        )
    finally:
        (folder / "part-0.parquet").chmod(0o644)
    assert locked_dir.returncode == 2 and locked_file.returncode == 2
    assert "no permission to read the folder" in locked_dir.stderr
    assert "day=2" in locked_dir.stderr
    assert f"no permission to read {str(folder / 'part-0.parquet')!r}" in locked_file.stderr
    assert "Traceback" not in locked_dir.stderr + locked_file.stderr


def test_symlink_loops_and_broken_links(tmp_path):
    """Check that a symlink loop and a dangling symlink are each named as such, exit 2."""
    users = _write_users(tmp_path)
    (tmp_path / "a").symlink_to(tmp_path / "b")
    (tmp_path / "b").symlink_to(tmp_path / "a")
    (tmp_path / "self").symlink_to(tmp_path / "self")
    (tmp_path / "dangling.parquet").symlink_to(tmp_path / "gone.parquet")
    for link in ("a", "self"):
        code, said = _validate("--events", str(tmp_path / link), "--users", users)
        assert code == 2
        assert f"{str(tmp_path / link)!r} is a symlink loop" in said
    code, said = _validate("--events", str(tmp_path / "dangling.parquet"), "--users", users)
    assert code == 2
    assert "is a symlink to" in said and "which does not exist" in said


def test_a_symlink_loop_inside_a_folder_is_not_followed(tmp_path):
    """Check that a folder holding a link back to itself is read once, not walked forever."""
    folder = tmp_path / "events"
    folder.mkdir()
    _events().to_parquet(folder / "part-0.parquet")
    (folder / "again").symlink_to(folder)
    code, said = _validate("--events", str(folder), "--users", _write_users(tmp_path))
    assert code == 0, said
    assert "6 │" in said or " 6 " in said


# -- no email address is ever stored or said ----------------------------------------------------


def _work_files(loaded) -> list[Path]:
    (path,) = loaded.con.execute(
        "SELECT path FROM duckdb_databases() WHERE database_name = current_database()"
    ).fetchone()
    return [p for p in Path(path).parent.rglob("*") if p.is_file()]


def test_the_work_database_never_holds_an_email(tmp_path):
    """Check that DuckDB's on-disk work database and its WAL never hold an email address: the
    first projection of the users table already holds the domain. (Before the fix the WAL held
    every address.)"""
    users = _users(300)
    users.to_parquet(tmp_path / "u.parquet")
    events = pd.DataFrame(
        {
            "user_id": users["user_id"],
            "event": "login",
            "timestamp": users["signup_at"] + pd.Timedelta(hours=1),
            "properties": [json.dumps({"invitee": f"friend{i}@mail.com"}) for i in range(300)],
        }
    )
    events.to_parquet(tmp_path / "e.parquet")
    cfg = DataConfig(events=str(tmp_path / "e.parquet"), users=str(tmp_path / "u.parquet"))
    loaded = load_data(cfg, now=NOW)
    files = _work_files(loaded)
    assert any(p.name.startswith("work.duckdb") for p in files)
    for path in files:
        assert not re.search(rb"person\d+@|friend\d+@", path.read_bytes()), path
    domains = loaded.con.execute("SELECT count(DISTINCT email_domain) FROM users").fetchone()
    assert domains == (300,)
    (props,) = loaded.con.execute("SELECT min(properties) FROM events").fetchone()
    assert json.loads(props) == {"invitee": "<email>"}


def test_a_users_column_holding_addresses_is_dropped_and_said(tmp_path):
    """Check that a users column of email addresses under another name is dropped, and said."""
    users = _users().rename(columns={"email": "contact"}).assign(plan=["free", "pro", "free"])
    _events().to_parquet(tmp_path / "e.parquet")
    cfg = DataConfig(events=str(tmp_path / "e.parquet"), users=_write_users(tmp_path, users))
    loaded = load_data(cfg, now=NOW)
    columns = [c for (c, *_) in loaded.con.execute("DESCRIBE users").fetchall()]
    assert "contact" not in columns and "plan" in columns
    assert any("column 'contact' holds email addresses" in n for n in loaded.report.notes)


def test_a_users_column_with_addresses_only_in_late_rows_is_dropped(tmp_path):
    """Check that every row is probed for addresses, not a sample: a contact column empty in its
    first 15,000 rows and holding addresses after them is dropped and never stored (a probe of
    the first 10,000 rows kept it)."""
    users = _users(20_000).assign(signup_at=pd.Timestamp("2025-01-01"))
    users["backup_contact"] = [None] * 15_000 + [f"boss{i}@corp.com" for i in range(5_000)]
    _events().to_parquet(tmp_path / "e.parquet")
    cfg = DataConfig(events=str(tmp_path / "e.parquet"), users=_write_users(tmp_path, users))
    loaded = load_data(cfg, now=NOW)
    columns = [c for (c, *_) in loaded.con.execute("DESCRIBE users").fetchall()]
    assert "backup_contact" not in columns
    assert any("column 'backup_contact' holds email addresses" in n for n in loaded.report.notes)
    loaded.con.execute("CHECKPOINT")
    for path in _work_files(loaded):
        assert not re.search(rb"boss\d+@", path.read_bytes()), path


def test_an_address_in_an_event_name_is_masked_and_never_stored(tmp_path):
    """Check that event names holding an email address (a log that interpolates the invitee)
    are stored with the address masked, so it never reaches counts, vocabularies or features."""
    events = _events().assign(
        event=["invited bob@corp.com", "login", "page /users/carol@corp.com"] * 2
    )
    events.to_parquet(tmp_path / "e.parquet")
    cfg = DataConfig(events=str(tmp_path / "e.parquet"), users=_write_users(tmp_path))
    loaded = load_data(cfg, now=NOW)
    names = {e for (e,) in loaded.con.execute("SELECT DISTINCT event FROM events").fetchall()}
    assert names == {"invited <email>", "login", "page /users/<email>"}
    loaded.con.execute("CHECKPOINT")
    for path in _work_files(loaded):
        assert not re.search(rb"(bob|carol)@corp", path.read_bytes()), path


@pytest.mark.parametrize("where", ["duplicate", "unknown_converter", "bad_signup"])
def test_messages_never_print_an_address(tmp_path, where):
    """Check that problems about user ids that are email addresses name them by their
    pseudonym (an email in a time column by <email>), never the address."""
    users = _users().assign(user_id=["ann@acme.com", "bob@beta.io", "cy@gamma.org"])
    events = _events().assign(user_id=["ann@acme.com", "bob@beta.io", "cy@gamma.org"] * 2)
    conversions = pd.DataFrame()
    if where == "duplicate":
        users = pd.concat([users, users.iloc[[1]]])
    elif where == "unknown_converter":
        conversions = pd.DataFrame(
            {"user_id": ["dee@delta.net"], "converted_at": [pd.Timestamp("2025-01-05")]}
        )
    else:
        users = users.astype({"signup_at": str})
        users.loc[0, "signup_at"] = "ann@acme.com"
    users.to_parquet(tmp_path / "u.parquet")
    events.to_parquet(tmp_path / "e.parquet")
    args = ["--events", str(tmp_path / "e.parquet"), "--users", str(tmp_path / "u.parquet")]
    if len(conversions):
        conversions.to_parquet(tmp_path / "c.parquet")
        args += ["--conversions", str(tmp_path / "c.parquet")]
    code, said = _validate(*args)
    assert EMAIL.search(said) is None, said
    assert ("<email>" if where == "bad_signup" else "sha256:") in said
    if where != "bad_signup":
        assert code == 2


def test_loading_a_world_with_problems_never_says_an_address(tmp_path):
    """Check that the reader's problems list, for ids that are addresses, names pseudonyms."""
    users = pd.DataFrame(
        {
            "user_id": ["a@x.com", "a@x.com", "b@y.com"],
            "signup_at": pd.to_datetime(["2025-01-01"] * 3),
        }
    )
    users.to_parquet(tmp_path / "u.parquet")
    _events().assign(user_id="a@x.com").to_parquet(tmp_path / "e.parquet")
    cfg = DataConfig(events=str(tmp_path / "e.parquet"), users=str(tmp_path / "u.parquet"))
    with pytest.raises(DataContractError) as info:
        load_data(cfg, now=NOW)
    assert "users: 1 user_id values appear more than once (e.g. sha256:" in str(info.value)
