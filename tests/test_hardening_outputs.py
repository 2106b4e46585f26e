"""Hardening (issue 17): output places, corrupted models, garbage --previous, temp leftovers.

Each bad place is refused before any work (exit 2, naming the option or key and the fix, leaving
what was there untouched); a corrupted model folder is exit 3 naming the file; a killed run's
temporary files are removed by the next run, never a live run's.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from spec_fixtures import model_spec, spec_fields
from test_hardening_project import PROPENSITY, run_unprivileged
from typer.testing import CliRunner

from propensity.cli import app
from propensity.errors import ModelError, OutputError
from propensity.io import atomic_paths, write_table
from propensity.io.workspace import owner_token, sweep, work_folder
from propensity.model.bundle import PQLModel
from propensity.model.calibrate import Calibrator


def _invoke(args: list[str]) -> tuple[int, str]:
    result = CliRunner().invoke(app, args)
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(
        result.exception
    )
    assert "Traceback" not in result.output
    return result.exit_code, " ".join(result.output.split())


def _project(tmp: Path, **top: object) -> Path:
    """A config whose data exists (a tiny world): enough for every pre-flight check."""
    pd.DataFrame(
        {"user_id": ["u1"], "event": ["login"], "timestamp": [pd.Timestamp("2025-01-02")]}
    ).to_parquet(tmp / "events.parquet")
    pd.DataFrame({"user_id": ["u1"], "signup_at": [pd.Timestamp("2025-01-01")]}).to_parquet(
        tmp / "users.parquet"
    )
    raw = {
        "data": {"events": str(tmp / "events.parquet"), "users": str(tmp / "users.parquet")},
        "output_dir": str(tmp / "outputs"),
        **top,
    }
    path = tmp / "p.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def _env(tmp: Path) -> dict[str, str]:
    return {
        **os.environ,
        "MLFLOW_TRACKING_URI": f"sqlite:///{tmp / 'mlflow.db'}",
        "MLFLOW_DISABLE_TELEMETRY": "true",
    }


# -- output folders --------------------------------------------------------------------------


@pytest.mark.parametrize("command", ["train", "compare"])
def test_output_dir_that_is_a_file(tmp_path, monkeypatch, command):
    """Check that output_dir naming a file is exit 2 before any work, the file untouched."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    blocker = tmp_path / "outputs"
    blocker.write_text("keep me")
    code, said = _invoke([command, "-c", str(_project(tmp_path))])
    assert code == 2
    assert f"error: output_dir {str(blocker)!r} is a file; a folder is needed there" in said
    assert blocker.read_text() == "keep me"
    assert not (tmp_path / "mlflow.db").exists()  # stopped before the tracking store


def test_output_dir_that_is_the_root(tmp_path):
    """Check that output_dir: / is refused (it would scatter run folders over the root)."""
    code, said = _invoke(["train", "-c", str(_project(tmp_path, output_dir="/"))])
    assert code == 2
    assert "output_dir '/' is the root of the filesystem" in said


@pytest.mark.parametrize("where", ["itself", "parent"])
def test_output_dir_read_only(tmp_path, where):
    """Check that an output_dir (or its parent) this user may not write in is exit 2, with
    privileges dropped (root writes anywhere)."""
    locked = tmp_path / "locked"
    locked.mkdir()
    output_dir = locked if where == "itself" else locked / "runs"
    config = _project(tmp_path, output_dir=str(output_dir))
    locked.chmod(0o555)
    try:
        done = run_unprivileged(["train", "-c", str(config)], tmp_path, _env(tmp_path))
    finally:
        locked.chmod(0o755)
    assert done.returncode == 2, done.stderr
    assert "cannot be written: this user may not write in" in done.stderr
    assert list(locked.iterdir()) == [] and "Traceback" not in done.stderr


# -- score --out -----------------------------------------------------------------------------


def _score(config: Path, out: Path, *extra: str) -> list[str]:
    return ["score", "-c", str(config), "--as-of", "latest", "--out", str(out), *extra]


def test_out_that_is_a_folder_leaves_nothing(tmp_path):
    """Check that --out naming a folder is exit 2 before any work, and no drift file (or any
    other file) is left beside it or in it."""
    out = tmp_path / "scores"
    out.mkdir()
    (out / "old.txt").write_text("keep")
    config = _project(tmp_path)
    before = sorted(p.name for p in tmp_path.iterdir())
    code, said = _invoke(_score(config, out, "--model", str(tmp_path / "m")))
    assert code == 2
    assert f"--out {str(out)!r} is a folder; a file path is needed" in said
    assert sorted(p.name for p in tmp_path.iterdir()) == before
    assert [p.name for p in out.iterdir()] == ["old.txt"]


def test_out_whose_parent_is_a_file(tmp_path):
    """Check that --out under a file (not a folder) is exit 2 naming that file."""
    (tmp_path / "report.txt").write_text("a file")
    out = tmp_path / "report.txt" / "deeper" / "scores.parquet"
    code, said = _invoke(_score(_project(tmp_path), out))
    assert code == 2
    assert f"{str(tmp_path / 'report.txt')!r} is a file, not a folder" in said


def test_out_in_a_read_only_folder(tmp_path):
    """Check that --out in a folder this user may not write in is exit 2, privileges dropped."""
    locked = tmp_path / "locked"
    locked.mkdir()
    config = _project(tmp_path)
    locked.chmod(0o555)
    try:
        done = run_unprivileged(_score(config, locked / "s.parquet"), tmp_path, _env(tmp_path))
    finally:
        locked.chmod(0o755)
    assert done.returncode == 2, done.stderr
    assert f"--out {str(locked / 's.parquet')!r} cannot be written" in done.stderr
    assert list(locked.iterdir()) == []


@pytest.mark.parametrize("target", ["events.parquet", "events/part-9.parquet"])
def test_out_onto_an_input(tmp_path, target):
    """Check that --out onto the events file, or into the events folder, is refused (it would
    replace the data, or be read back as events next time)."""
    config = _project(tmp_path)
    if "/" in target:
        (tmp_path / "events").mkdir()
        (tmp_path / "events.parquet").rename(tmp_path / "events" / "part-0.parquet")
        raw = yaml.safe_load(config.read_text())
        raw["data"]["events"] = str(tmp_path / "events")
        config.write_text(yaml.safe_dump(raw))
    code, said = _invoke(_score(config, tmp_path / target))
    assert code == 2
    assert "writing there would replace the data or be read back as data" in said


def test_validate_export_onto_an_existing_file(tmp_path):
    """Check that validate --export onto a file is exit 2 before reading, the file untouched."""
    config = _project(tmp_path)
    target = tmp_path / "canonical"
    target.write_text("not a folder")
    code, said = _invoke(["validate", "-c", str(config), "--export", str(target)])
    assert code == 2
    assert f"--export {str(target)!r} is a file; a folder is needed there" in said
    assert target.read_text() == "not a folder"


@pytest.mark.parametrize("command", ["simulate", "demo"])
def test_simulate_and_demo_out_onto_an_existing_file(tmp_path, command):
    """Check that simulate/demo --out onto a file is exit 2 naming it, the file untouched."""
    target = tmp_path / "data"
    target.write_text("precious")
    code, said = _invoke([command, "--out", str(target), "--users", "1000"])
    assert code == 2
    assert f"--out {str(target)!r} is a file; a folder is needed there" in said
    assert target.read_text() == "precious"


# -- atomic writes: symlinks and groups --------------------------------------------------------


def test_outputs_never_write_through_a_symlink(tmp_path):
    """Check that an output path that is a symlink is replaced by the new file: the file it
    pointed at (another output, an input) is left exactly as it was."""
    victim = tmp_path / "victim.csv"
    victim.write_text("precious\n")
    link = tmp_path / "scores.csv"
    link.symlink_to(victim)
    write_table(pd.DataFrame({"a": [1]}), link, "csv")
    assert victim.read_text() == "precious\n"
    assert not link.is_symlink() and link.read_text() == "a\n1\n"


def test_a_group_of_outputs_is_all_or_nothing(tmp_path):
    """Check that a failure while writing a group of outputs writes none of them and leaves
    the old files and no temp file."""
    old = tmp_path / "scores.parquet"
    old.write_text("old scores")
    with pytest.raises(OutputError, match="No space left on device"):
        with atomic_paths([tmp_path / "scores.drift.csv", old]) as (drift, scores):
            drift.write_text("new drift")
            raise OSError(28, "No space left on device")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scores.parquet"]
    assert old.read_text() == "old scores"


def test_disk_full_while_validating_is_one_clean_error(tmp_path):
    """Check that a file size limit hit while `validate --export` runs (a real EFBIG from the
    kernel, as a full disk gives ENOSPC; here DuckDB's work database hits it first) is exit 2
    with the fix, leaving no partial export and no temporary folder."""
    n = 20_000
    pd.DataFrame(
        {
            "user_id": [f"u{i % 500}" for i in range(n)],
            "event": [f"event_{i % 37}" for i in range(n)],
            "timestamp": pd.Timestamp("2025-01-02") + pd.to_timedelta(np.arange(n), unit="s"),
        }
    ).to_parquet(tmp_path / "events.parquet")
    pd.DataFrame(
        {"user_id": [f"u{i}" for i in range(500)], "signup_at": pd.Timestamp("2025-01-01")}
    ).to_parquet(tmp_path / "users.parquet")
    export = tmp_path / "export"
    temp = tmp_path / "tmp"
    temp.mkdir()
    limit = 60_000  # the events table's parquet is larger: its write fails

    def small_files() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    done = subprocess.run(
        [PROPENSITY, "validate", "--events", str(tmp_path / "events.parquet")]
        + ["--users", str(tmp_path / "users.parquet"), "--export", str(export)],
        env={**os.environ, "TMPDIR": str(temp)},
        capture_output=True,
        text=True,
        preexec_fn=small_files,
        timeout=120,
    )
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith("error: ")
    assert "File too large" in done.stderr and "Free disk space" in done.stderr
    assert "Traceback" not in done.stderr
    assert not export.exists() or list(export.iterdir()) == []  # no temp file either
    assert list(temp.iterdir()) == []


# -- --previous --------------------------------------------------------------------------------


def _garbage(path: Path, kind: str) -> None:
    if kind == "random-bytes":
        path.write_bytes(np.random.default_rng(0).bytes(5000))
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "no-columns":
        pd.DataFrame({"x": [1, 2]}).to_parquet(path)
    elif kind == "flags-not-flags":
        pd.DataFrame({"user_id": ["a", "b"], "is_pql": ["maybe", "yes"]}).to_parquet(path)
    elif kind == "scores-not-numbers":
        pd.DataFrame({"user_id": ["a"], "is_pql": [True], "score": ["high"]}).to_parquet(path)
    elif kind == "csv-text":
        path.write_text("hello world\nthis is not a table\n")
    elif kind == "folder":
        path.mkdir()


@pytest.mark.parametrize(
    ("kind", "name", "message"),
    [
        ("random-bytes", "prev.parquet", "cannot be read as a score table"),
        ("empty", "prev.parquet", "cannot be read as a score table"),
        ("empty", "prev.csv", "cannot be read as a score table"),
        ("no-columns", "prev.parquet", "has no column user_id, is_pql"),
        ("flags-not-flags", "prev.parquet", "has is_pql values that are not true/false"),
        ("scores-not-numbers", "prev.parquet", "has scores that are not numbers (e.g. 'high')"),
        ("csv-text", "prev.csv", "has no column user_id, is_pql"),
        ("folder", "prev", "is a folder"),
        ("missing", "prev.parquet", "does not exist"),
    ],
)
def test_previous_scores_that_are_garbage(tmp_path, kind, name, message):
    """Check that a --previous file that is not a score table is exit 2 naming it and the fix,
    before the model is even loaded."""
    previous = tmp_path / name
    _garbage(previous, kind)
    out = tmp_path / "scores.parquet"
    args = _score(_project(tmp_path), out, "--previous", str(previous))
    code, said = _invoke([*args, "--model", str(tmp_path / "no-model")])
    assert code == 2, said
    assert f"error: --previous {str(previous)!r} {message}" in said
    assert "Pass the scores file an earlier 'propensity score' run wrote" in said
    assert not out.exists()


# -- corrupted model folders -------------------------------------------------------------------

LEVELS = ["free_mail", "corporate"]
SPEC = model_spec((), key_events=(), families=("counts", "fit"), window_days=())


def _frame(n: int = 200, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "n_events_all": rng.poisson(3, n).astype(float),
            "domain_class": pd.Categorical(rng.choice(LEVELS, n), categories=LEVELS),
        }
    )


@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> Path:
    frame = _frame()
    y = (frame["n_events_all"] > 3).astype(int)
    params = {"objective": "binary", "verbose": -1, "seed": 0, "num_threads": 1}
    booster = lgb.train(params, lgb.Dataset(frame, y), num_boost_round=5)
    calibrator = Calibrator(method="isotonic").fit(booster.predict(frame), y)
    model = PQLModel(
        booster=booster,
        calibrator=calibrator,
        threshold=0.5,
        categorical={"domain_class": LEVELS},
        **spec_fields(SPEC),
    )
    return model.save(tmp_path_factory.mktemp("bundle") / "model")


def _copy(bundle: Path, tmp: Path) -> Path:
    import shutil

    target = tmp / "model"
    shutil.copytree(bundle, target)
    return target


def _edit_json(path: Path, key: str, value: object) -> None:
    raw = json.loads(path.read_text())
    raw[key] = value
    path.write_text(json.dumps(raw))


def _rehash(model: Path) -> None:
    """Record the current files' checksums: a bundle edited with care, or by a tool."""
    import hashlib

    meta = json.loads((model / "bundle.json").read_text())
    meta["checksums"] = {
        name: hashlib.sha256((model / name).read_bytes()).hexdigest()
        for name in ("booster.txt", "calibrator.json")
    }
    (model / "bundle.json").write_text(json.dumps(meta))


def _legacy(model: Path) -> None:
    """A bundle from before checksums were recorded."""
    _edit_json(model / "bundle.json", "checksums", None)
    meta = json.loads((model / "bundle.json").read_text())
    del meta["checksums"]
    (model / "bundle.json").write_text(json.dumps(meta))


def _cut(path: Path, share: float = 1 / 3) -> None:
    path.write_bytes(path.read_bytes()[: int(len(path.read_bytes()) * share)])


# (file, damage, then: keep / rehash / legacy, the message's fixed part)
CORRUPTIONS = [
    ("bundle.json", lambda p: p.write_text("{not json"), "keep", "bundle.json is not valid JSON"),
    ("bundle.json", lambda p: p.write_text("[1, 2]"), "keep", "does not hold a JSON object"),
    ("bundle.json", lambda p: _edit_json(p, "threshold", "high"), "keep", "'threshold' 'high'"),
    ("bundle.json", lambda p: _edit_json(p, "threshold", 7.5), "keep", "not a probability in"),
    ("bundle.json", lambda p: _edit_json(p, "threshold", None), "keep", "not a probability in"),
    ("bundle.json", lambda p: _edit_json(p, "feature_columns", "x"), "keep", "'feature_columns'"),
    (
        "bundle.json",
        lambda p: _edit_json(p, "feature_columns", ["n_events_all", "domain_class", "x"]),
        "keep",
        "booster.txt expects 2 features where bundle.json lists 3",
    ),
    ("bundle.json", lambda p: _edit_json(p, "categorical", {"zz": [1]}), "keep", "'categorical'"),
    ("bundle.json", lambda p: _edit_json(p, "checksums", "abc"), "keep", "'checksums' that is"),
    ("booster.txt", lambda p: p.write_text("garbage"), "keep", "booster.txt does not match"),
    ("booster.txt", _cut, "keep", "booster.txt does not match the checksum"),
    ("booster.txt", _cut, "legacy", "booster.txt is not a LightGBM model"),
    ("booster.txt", lambda p: _cut(p, 0.05), "legacy", "booster.txt is not a LightGBM model"),
    ("booster.txt", lambda p: p.write_bytes(b"\xff\xfe\x00"), "legacy", "booster.txt cannot be"),
    ("booster.txt", lambda p: p.write_text("garbage"), "rehash", "is not a LightGBM model"),
    ("calibrator.json", lambda p: p.write_text(""), "keep", "calibrator.json does not match"),
    ("calibrator.json", lambda p: p.write_text(""), "rehash", "calibrator.json is not valid JSON"),
    ("calibrator.json", lambda p: _edit_json(p, "x", [0.1]), "rehash", "is not usable"),
    (
        "calibrator.json",
        lambda p: p.write_text('{"method": "isotonic", "x": [0, 1], "y": [0.9, 0.1]}'),
        "rehash",
        "does not map scores to probabilities in increasing order",
    ),
    ("calibrator.json", lambda p: _edit_json(p, "method", "magic"), "rehash", "is not usable"),
    (
        "calibrator.json",
        lambda p: p.write_text('{"method": "sigmoid", "a": "x", "b": 0}'),
        "rehash",
        "calibrator.json is not usable",
    ),
    (
        "calibrator.json",
        lambda p: p.write_text('{"method": "sigmoid", "a": -5, "b": 0}'),
        "rehash",
        "does not map scores to probabilities in increasing order",
    ),
]


@pytest.mark.parametrize(
    ("name", "damage", "then", "message"),
    CORRUPTIONS,
    ids=[f"{c[0]}-{c[2]}-{i}" for i, c in enumerate(CORRUPTIONS)],
)
def test_a_corrupted_model_folder_is_exit_3(bundle, tmp_path, name, damage, then, message):
    """Check that scoring with a model folder whose bundle, booster, calibrator or threshold is
    corrupted is exit 3, one message naming the folder, the file and the fix; also when the
    checksums were updated after the edit, and for bundles from before checksums (whose
    booster is parsed in a child first: LightGBM's parser aborts the process on some texts)."""
    model = _copy(bundle, tmp_path)
    damage(model / name)
    if then == "rehash":
        _rehash(model)
    elif then == "legacy":
        _legacy(model)
    out = tmp_path / "scores.parquet"
    code, said = _invoke(_score(_project(tmp_path), out, "--model", str(model)))
    assert code == 3, said
    assert said.startswith(f"error: Model bundle {str(model)!r} is corrupt: "), said
    assert message in said
    assert "Retrain the model, or restore the folder from the registry" in said
    assert not out.exists()


@settings(
    max_examples=40,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    name=st.sampled_from(["bundle.json", "booster.txt", "calibrator.json"]),
    how=st.sampled_from(["truncate", "flip", "append", "json-value"]),
    at=st.floats(0, 1),
    value=st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-(10**6), 10**6),
        st.floats(allow_nan=True, allow_infinity=True),
        st.text(max_size=8),
        st.lists(st.integers(), max_size=3),
        st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
    ),
    seed=st.integers(0, 2**16),
)
def test_any_damage_to_a_model_folder_loads_or_is_a_model_error(
    bundle, tmp_path_factory, name, how, at, value, seed
):
    """Check that a model folder damaged anywhere (bytes cut, flipped or added, any JSON value
    put in) loads into a model that scores probabilities, or raises ModelError: nothing else."""
    model = _copy(bundle, tmp_path_factory.mktemp("damaged"))
    path = model / name
    data = bytearray(path.read_bytes())
    rng = np.random.default_rng(seed)
    if how == "truncate":
        data = data[: int(at * len(data))]
    elif how == "flip":
        for i in rng.integers(0, len(data), size=4):
            data[i] = int(rng.integers(0, 256))
    elif how == "append":
        data += rng.bytes(20)
    if how == "json-value" and name != "booster.txt":
        raw = json.loads(bytes(data))
        keys = sorted(raw)
        raw[keys[int(at * (len(keys) - 1))]] = value
        data = bytearray(json.dumps(raw).encode())
    path.write_bytes(bytes(data))
    try:
        loaded = PQLModel.load(model)
    except ModelError as exc:
        assert str(exc).startswith(("Model bundle", "No model bundle"))
        return
    try:
        p = loaded.predict_proba(_frame(20, seed=1))[:, 1]
    except ModelError:
        return
    assert np.all(np.isfinite(p)) and np.all((p >= 0) & (p <= 1))


# -- temporary files of killed runs --------------------------------------------------------------


def _dead_token() -> str:
    proc = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        check=True,
        capture_output=True,
        text=True,
    )
    return owner_token(int(proc.stdout)).split("-")[0] + "-1"


def test_the_next_run_removes_a_killed_runs_temp_folders_never_a_live_ones(tmp_path):
    """Check that the temp-folder sweep removes folders whose owner process is dead (or a
    recycled pid with another start time), keeps this live process's, and keeps a folder
    without an owner file until it is an hour old (it may be being created right now)."""
    live = work_folder("duckdb", root=tmp_path)  # sweeps first, so made before the others
    dead = tmp_path / "propensity-duckdb-dead"
    dead.mkdir()
    (dead / "owner").write_text(_dead_token())
    (dead / "work.duckdb").write_bytes(b"x" * 100)
    recycled = tmp_path / "propensity-run-recycled"
    recycled.mkdir()
    (recycled / "owner").write_text(f"{os.getpid()}-1")  # this pid, another start time
    young = tmp_path / "propensity-duckdb-young"
    young.mkdir()
    old = tmp_path / "propensity-duckdb-old"
    old.mkdir()
    os.utime(old, (time.time() - 7200, time.time() - 7200))
    other = tmp_path / "not-ours"
    other.mkdir()
    removed = sweep(tmp_path)
    assert sorted(p.name for p in removed) == sorted([dead.name, recycled.name, old.name])
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([live.name, young.name, "not-ours"])


def test_the_next_write_removes_a_killed_writers_temp_file(tmp_path):
    """Check that writing an output removes the hidden temp files of that output left by
    killed writers, and leaves a live writer's and other outputs' temp files alone."""
    target = tmp_path / "scores.parquet"
    stale = tmp_path / f".scores.parquet.{_dead_token()}.abc123.tmp"
    stale.write_text("half a file")
    live = tmp_path / f".scores.parquet.{owner_token()}.def456.tmp"
    live.write_text("being written")
    other = tmp_path / f".accounts.parquet.{_dead_token()}.ghi789.tmp"
    other.write_text("another output's")
    write_table(pd.DataFrame({"a": [1]}), target)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [target.name, live.name, other.name]
    )


def test_a_cli_run_leaves_no_temp_folder_and_cleans_a_killed_ones(tmp_path):
    """Check that a command run leaves nothing in TMPDIR, and removes what a killed run left."""
    temp = tmp_path / "tmp"
    temp.mkdir()
    stale = temp / "propensity-run-killed"
    (stale / "propensity-duckdb-x").mkdir(parents=True)
    (stale / "owner").write_text(_dead_token())
    (stale / "propensity-duckdb-x" / "work.duckdb.wal").write_bytes(b"wal")
    config = _project(tmp_path)
    done = subprocess.run(
        [PROPENSITY, "validate", "-c", str(config)],
        env={**os.environ, "TMPDIR": str(temp)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert list(temp.iterdir()) == []
