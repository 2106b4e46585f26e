"""Hardening: processes killed mid-job, racing writers, full disks, no PII left by a kill, and an
unreachable tracking store.

Every test here drives the installed `propensity` command in subprocesses against the shared demo
project (see test_hardening_project.py), so they are slow and marked so; CI runs them. Kill points
are chosen where a fault can do harm (the write phase, the load phase), not spread uniformly over
a run that spends most of its time importing.
"""

from __future__ import annotations

import json
import random
import re
import resource
import shutil
import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import duckdb
import pandas as pd
import pytest
import yaml
from test_hardening_project import PROPENSITY, Project, closed_port, demo_project, run_cli
from typer.testing import CliRunner

from propensity.cli import app
from propensity.config import MlflowConfig
from propensity.tracking import load_model

pytestmark = pytest.mark.slow

# 2 kills at a uniform time (anywhere: imports, load, features) and 4 inside the write phase,
# where a non-atomic writer would leave half a file: 20 uniform kills proved no more (43 s -> ~15 s)
UNIFORM_KILLS = 2
WRITE_PHASE_DELAYS = (0.0, 0.01, 0.03, 0.08)
# a kill right as registration starts, and one while it runs (3 random ones before: 32 s)
TRAIN_KILL_DELAYS = (0.2, 1.5)
# Scores differ between runs only in the wall-clock stamp.
VOLATILE = ["scored_at"]


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Project:
    return demo_project(tmp_path_factory)


def _score_args(project: Project, out: Path, as_of: str = "latest") -> list[str]:
    return [
        "score",
        "--config",
        str(project.config),
        "--as-of",
        as_of,
        "--out",
        str(out),
        "--model",
        str(project.model),
        "--top",
        "0",
    ]


def _stable(path: Path) -> pd.DataFrame:
    return pd.read_parquet(path).drop(columns=VOLATILE)


def _visible(folder: Path) -> list[Path]:
    """Output files a reader would pick up (the atomic writer's temp files are hidden)."""
    return sorted(p for p in folder.iterdir() if not p.name.startswith("."))


def _kill_after(args: list[str], cwd: Path, env: dict, delay: float, after: str | None = None):
    """Start the CLI; SIGKILL it `delay` s after start (or after `after` shows on stderr).

    Returns True when it was killed, False when it finished first.
    """
    proc = subprocess.Popen(
        [PROPENSITY, *args],
        cwd=cwd,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE if after else subprocess.DEVNULL,
        text=True,
    )
    if after is not None:
        for line in proc.stderr:
            if after in line:
                break
    try:
        proc.wait(timeout=delay)
        return False
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        return True
    finally:
        if proc.stderr is not None:
            proc.stderr.close()


def test_scoring_killed_at_random_points_leaves_no_partial_file(project, tmp_path):
    """Check that SIGKILL mid-job leaves the scores absent or whole, never partial, and that the
    next run succeeds and removes what the killed runs left (temp files, DuckDB folders).

    One complete run gives the reference rows and the job's duration; then 6 runs are killed,
    two at a time, all sharing one TMPDIR (so a starting run must not remove a live run's
    folder): 2 at a uniform random time and 4 at set delays into the write phase (after the
    first hidden temp file appears, when a non-atomic writer would leave half a file). The
    tracking store is unreachable throughout: a local model folder needs none. Then the next
    run in a killed run's folder succeeds and leaves neither a temp file nor a temp folder.
    """
    temp = tmp_path / "tmp"
    temp.mkdir()
    env = project.env(MLFLOW_TRACKING_URI=f"http://127.0.0.1:{closed_port()}", TMPDIR=str(temp))
    out = tmp_path / "reference" / "scores.parquet"
    began = time.monotonic()
    done = run_cli(_score_args(project, out), project.root, env)
    full = time.monotonic() - began
    assert done.returncode == 0, done.stderr
    expected = _stable(out)
    assert len(expected) > 100
    rng = random.Random(10)
    plans = [
        (tmp_path / f"run{i}" / "scores.parquet", None, rng.random()) for i in range(UNIFORM_KILLS)
    ]
    plans += [
        (tmp_path / f"write{i}" / "scores.parquet", delay, 0.0)
        for i, delay in enumerate(WRITE_PHASE_DELAYS)
    ]

    def attempt(plan: tuple[Path, float | None, float]) -> bool:
        target, write_delay, u = plan
        target.parent.mkdir()
        if write_delay is not None:
            return _kill_in_write_phase(project, target, env, write_delay)
        return _kill_after(_score_args(project, target), project.root, env, full * u)

    with ThreadPoolExecutor(max_workers=2) as pool:
        killed = sum(pool.map(attempt, plans))
    assert killed >= 3
    for target, _, _ in plans:
        if target.exists():  # the job got as far as its rename: the file must be whole
            pd.testing.assert_frame_equal(_stable(target), expected)
        for path in _visible(target.parent):  # sidecars too are absent or whole
            frame = pd.read_csv(path) if path.suffix == ".csv" else pd.read_parquet(path)
            assert len(frame) > 0
    # rerun where a kill left a hidden temp file, if one did: the next write must remove it
    left = [t for t, _, _ in plans if any(p.name.endswith(".tmp") for p in t.parent.iterdir())]
    again = (left or [plans[-1][0]])[0]
    done = run_cli(_score_args(project, again), project.root, env)
    assert done.returncode == 0, done.stderr
    pd.testing.assert_frame_equal(_stable(again), expected)
    assert [p.name for p in again.parent.iterdir() if p.name.endswith(".tmp")] == []
    assert list(temp.iterdir()) == []  # every killed run's folder removed, the last one's too


def _kill_in_write_phase(project: Project, out: Path, env: dict, delay: float) -> bool:
    proc = subprocess.Popen(
        [PROPENSITY, *_score_args(project, out)],
        cwd=project.root,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 300
    while proc.poll() is None and not any(p.name.endswith(".tmp") for p in out.parent.iterdir()):
        assert time.monotonic() < deadline, "the score job never started writing"
        time.sleep(0.005)
    time.sleep(delay)
    if proc.poll() is not None:
        return False
    proc.kill()
    proc.wait()
    return True


def test_training_killed_leaves_no_version_without_artifacts(project, tmp_path, monkeypatch):
    """Check that training killed while logging and registering leaves every registered version
    loadable, and that the next run, with the store unreachable and on_unreachable: local,
    succeeds, logs to the local store and says so."""
    name = "hardening-kill-pql"
    config = project.write_config(
        tmp_path / "lean.yaml",
        output_dir=str(tmp_path / "outputs"),
        features={"top_transitions": 0},
        model={"n_estimators": 60, "early_stopping_rounds": 20, "min_positives": 20},
        threshold={"policy": "top_fraction", "top_fraction": 0.1, "bootstrap": 0},
        baselines={"templates": [], "bootstrap": 0},
        mlflow={"experiment": "hardening-kill", "registered_model": name},
    )
    for delay in TRAIN_KILL_DELAYS:
        _kill_after(
            ["train", "--config", str(config)],
            project.root,
            project.env(),
            delay,
            after="registering the model",
        )
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    store = MlflowConfig(tracking_uri=project.store)
    versions_before = _versions(store, name)
    for version in versions_before:  # whatever a kill left registered is whole
        assert load_model(f"models:/{name}/{version}", store).pqlmodel.feature_columns

    raw = yaml.safe_load(config.read_text())
    raw["mlflow"]["on_unreachable"] = "local"
    local = tmp_path / "local.yaml"
    local.write_text(yaml.safe_dump(raw))
    unreachable = project.env(MLFLOW_TRACKING_URI=f"http://127.0.0.1:{closed_port()}")
    done = run_cli(["train", "--config", str(local)], project.root, unreachable)
    assert done.returncode == 0, done.stderr[-2000:]
    said = " ".join(done.stdout.split())
    assert "is unreachable" in said and "Logged to the local store" in said
    outputs = tmp_path / "outputs"
    assert not list(outputs.glob(".train-*"))  # the killed runs' folders were swept
    runs = list(outputs.glob("train-*"))
    assert len(runs) == 1 and (runs[0] / "report.html").is_file()  # only the finished run
    versions = _versions(store, name)
    assert len(versions) == len(versions_before) + 1
    assert load_model(f"models:/{name}/{versions[-1]}", store).pqlmodel.feature_columns


def _versions(store: MlflowConfig, name: str) -> list[int]:
    from propensity.tracking.store import probe

    client = probe(store.tracking_uri)
    return sorted(int(v.version) for v in client.search_model_versions(f"name = '{name}'"))


def test_two_scoring_jobs_racing_on_one_path_never_mix(project, tmp_path):
    """Check that two jobs writing the same path at once leave one whole output, not a mix."""
    env = project.env()
    # Two different as-of times give two different score tables.
    runs = {"a": "2025-06-20T00:00:00", "b": "latest"}
    alone = {
        key: subprocess.Popen(
            [PROPENSITY, *_score_args(project, tmp_path / f"{key}.parquet", as_of)],
            cwd=project.root,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        for key, as_of in runs.items()
    }
    for proc in alone.values():
        assert proc.wait(timeout=300) == 0, proc.stderr.read()
        proc.stderr.close()
    refs = {key: _stable(tmp_path / f"{key}.parquet") for key in runs}
    assert not refs["a"].equals(refs["b"])
    shared = tmp_path / "shared" / "scores.parquet"
    racing = [
        subprocess.Popen(
            [PROPENSITY, *_score_args(project, shared, as_of)],
            cwd=project.root,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for as_of in runs.values()
    ]
    assert [proc.wait(timeout=300) for proc in racing] == [0, 0]
    got = _stable(shared)
    assert any(got.equals(ref) for ref in refs.values())
    assert [p.name for p in (tmp_path / "shared").iterdir() if p.name.endswith(".tmp")] == []


def test_unreachable_store_stops_training_with_exit_5(project, tmp_path):
    """Check that training against a closed port stops at once with exit 5 and one clear line."""
    unreachable = project.env(MLFLOW_TRACKING_URI=f"http://127.0.0.1:{closed_port()}")
    config = project.write_config(tmp_path / "p.yaml", output_dir=str(tmp_path / "out"))
    done = run_cli(["train", "--config", str(config)], tmp_path, unreachable, timeout=120)
    assert done.returncode == 5, done.stderr
    assert "The MLflow tracking store at 'http://127.0.0.1:" in done.stderr
    assert "is unreachable" in done.stderr and "on_unreachable: local" in done.stderr
    assert "Traceback" not in done.stderr
    assert "loading data" not in done.stderr  # it stopped before any work
    assert not (tmp_path / "out").exists()


def test_scoring_with_a_local_model_folder_needs_no_store(project, tmp_path, monkeypatch):
    """Check that scoring with --model <folder> works while the tracking store is unreachable."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://127.0.0.1:{closed_port()}")
    out = tmp_path / "scores.parquet"
    result = CliRunner().invoke(app, _score_args(project, out))
    assert result.exit_code == 0, result.output
    assert len(pd.read_parquet(out)) > 100


# -- no PII left by a killed job ------------------------------------------------------------------

ADDRESS = re.compile(rb"[\w.+-]+@[\w-]+\.[\w.]+")
# Kill points, as shares of the time from DuckDB's work database appearing to the end of a
# complete validate (measured first, so they follow the machine's load), each jittered by 10%.
# Before the fix every address sat in the work database's WAL from the moment the users table
# was staged (about two thirds into a validate) until a checkpoint or the end; score and train
# read the same tables the same way, then go on for longer.
PII_KILL_SHARES = {"validate": (0.55, 0.85), "score": (0.9,), "train": (1.2,)}


def _addresses(data: bytes, emails: set[bytes], locals_: set[bytes]) -> set[bytes]:
    """The input's addresses (or their local parts followed by @) found in `data`."""
    found = {m for m in ADDRESS.findall(data) if m in emails}
    found |= {m for m in re.findall(rb"user\d{8}@", data) if m[:-1] in locals_}
    return found


def _duckdb_texts(folder: Path, scratch: Path) -> Iterator[bytes]:
    """Every table of every DuckDB database under `folder`, as text (strings are compressed in
    the database file, so its raw bytes may hide an address)."""
    for db in folder.rglob("*.duckdb"):
        copy = scratch / f"copy{len(list(scratch.iterdir()))}"
        shutil.copytree(db.parent, copy, ignore=shutil.ignore_patterns("*.tmp"))
        try:
            con = duckdb.connect(str(copy / db.name), read_only=True)
        except duckdb.Error:
            continue  # a database killed before its first checkpoint: the WAL bytes are scanned
        with con:
            for (table,) in con.execute("SELECT table_name FROM duckdb_tables()").fetchall():
                rows = con.execute(f'SELECT * FROM "{table}"').fetchall()
                yield repr(rows).encode()


def _run_from_database(
    args: list[str], cwd: Path, env: dict, temp: Path, kill_after: float | None = None
) -> tuple[bytes, float]:
    """Run the CLI; SIGKILL it `kill_after` s after its work database appears under `temp`
    (None: let it finish). Returns its output and the seconds from that moment to its end."""
    proc = subprocess.Popen(
        [PROPENSITY, *args], cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    deadline = time.monotonic() + 300
    while proc.poll() is None and not any(temp.rglob("work.duckdb*")):
        assert time.monotonic() < deadline, "the job never opened its work database"
        time.sleep(0.005)
    opened = time.monotonic()
    if kill_after is not None:
        time.sleep(kill_after)
        proc.kill()
    stdout, stderr = proc.communicate()
    return stdout + stderr, time.monotonic() - opened


def test_no_email_address_is_left_anywhere_by_killed_jobs(project, tmp_path):
    """Check that validate, score and train killed at points through the load, and the run
    after them, leave no input email address (nor its local part) in TMPDIR, DuckDB's work
    database and spill files, the outputs, or any message; and that the next run removes the
    killed runs' temporary folders. (Before the fix the work database's WAL held every
    address of the users table.)"""
    users = pd.read_parquet(project.root / "data" / "users.parquet")
    emails = {e.encode() for e in users["email"].dropna()}
    locals_ = {e.split(b"@")[0] for e in emails}
    assert len(emails) > 1000
    temp, outputs, scratch = tmp_path / "tmp", tmp_path / "outputs", tmp_path / "scratch"
    for folder in (temp, outputs, scratch):
        folder.mkdir()
    env = project.env(TMPDIR=str(temp), MLFLOW_TRACKING_URI=f"sqlite:///{outputs / 'm.db'}")
    config = project.write_config(tmp_path / "p.yaml", output_dir=str(outputs / "train"))
    jobs = {
        "validate": ["validate", "-c", str(config), "--export", str(outputs / "export")],
        "score": _score_args(project, outputs / "scores.parquet"),
        "train": ["train", "-c", str(config)],
    }
    rng = random.Random(12)
    messages, leaks, databases = [], [], 0

    def scan(where: str) -> None:
        """Everything under TMPDIR now (the next run removes a killed run's folder)."""
        nonlocal databases
        for path in (p for p in temp.rglob("*") if p.is_file()):
            databases += path.name.startswith("work.duckdb")
            if found := _addresses(path.read_bytes(), emails, locals_):
                leaks.append((where, path.name, sorted(found)[:2]))
        for text in _duckdb_texts(temp, scratch):
            if found := _addresses(text, emails, locals_):
                leaks.append((where, "a table of the work database", sorted(found)[:2]))

    said, span = _run_from_database(jobs["validate"], tmp_path, env, temp)
    messages.append(("validate, complete", said))
    for name, args in jobs.items():
        for share in PII_KILL_SHARES[name]:
            delay = share * span * rng.uniform(0.9, 1.1)
            said, _ = _run_from_database(args, tmp_path, env, temp, kill_after=delay)
            messages.append((f"{name}, killed at {delay:.2f} s", said))
            scan(f"TMPDIR after {name} killed at {delay:.2f} s")
    assert databases > 0, "no kill left a work database to scan"
    for path in (p for p in outputs.rglob("*") if p.is_file()):
        if found := _addresses(path.read_bytes(), emails, locals_):
            leaks.append(("outputs", path.relative_to(outputs), sorted(found)[:2]))
    done = run_cli(jobs["validate"], tmp_path, env)
    assert done.returncode == 0, done.stderr
    messages.append(("validate, after the kills", (done.stdout + done.stderr).encode()))
    for name, said in messages:
        if found := _addresses(said, emails, locals_) or ADDRESS.findall(said):
            leaks.append(("the output of " + name, "", sorted(found)[:2]))
    assert leaks == []
    assert list(temp.iterdir()) == []  # the run after the kills removed what they left


# -- a disk that fills up ----------------------------------------------------------------------


def _file_size_limit(limit: int):
    def apply() -> None:  # in the child: writes past `limit` bytes fail with EFBIG
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return apply


def test_a_file_size_limit_while_scoring_is_one_clean_error(project, tmp_path):
    """Check that score hitting a file size limit (EFBIG from the kernel, the same path as a
    full disk's ENOSPC; the first file past a few KB hits it) exits 2 with one message and the fix,
    no traceback, no output and no temporary folder left."""
    temp, out = tmp_path / "tmp", tmp_path / "out" / "scores.parquet"
    temp.mkdir()
    env = project.env(TMPDIR=str(temp))
    # the events stay in memory now (no work file at this size): the limit meets the outputs
    for limit in (2_048, 8_192):
        done = subprocess.run(
            [PROPENSITY, *_score_args(project, out)],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            preexec_fn=_file_size_limit(limit),
            timeout=600,
        )
        said = " ".join(done.stderr.split())
        assert done.returncode == 2, said
        assert said.startswith("error: ") and "File too large" in said and "Free disk space" in said
        assert "Traceback" not in said
        assert not out.parent.exists() or list(out.parent.iterdir()) == []
        assert list(temp.iterdir()) == []


_SMALL_DISK = """
mount -t tmpfs -o size="$SIZE" tmpfs "$DISK" || exit 99
"$@"
rc=$?
cp -a "$DISK/." "$COPY/"
exit $rc
"""


def _on_a_small_disk(args: list[str], disk: Path, size: str, env: dict, cwd: Path):
    """Run the CLI with `disk` a tmpfs of `size` (a real ENOSPC when it fills), in a private
    mount namespace so nothing outside sees it; what it left there is copied to disk.copy."""
    if shutil.which("unshare") is None:
        pytest.skip("no unshare here to mount a small disk")
    disk.mkdir(parents=True)
    copy = disk.with_name(disk.name + ".copy")
    copy.mkdir()
    done = subprocess.run(
        ["unshare", "-m", "--propagation", "private", "sh", "-c", _SMALL_DISK, "sh"]
        + [PROPENSITY, *args],
        cwd=cwd,
        env={**env, "SIZE": size, "DISK": str(disk), "COPY": str(copy)},
        capture_output=True,
        text=True,
        timeout=900,
    )
    if done.returncode == 99 or "unshare failed" in done.stderr:
        pytest.skip(f"cannot mount a small disk here: {done.stderr.strip()[:200]}")
    return done, copy


@pytest.mark.parametrize(
    ("command", "size"),
    [("score", "24k"), ("train", "160k")],
)
def test_a_full_disk_while_writing_outputs_leaves_nothing_partial(project, tmp_path, command, size):
    """Check that score and train whose output folder is on a disk that fills up (a tmpfs of a
    few pages: the drift table fits, the scores do not; the run folder fits a few files) exit 2
    with one message naming the disk and the fix, and leave no partial file: score writes its
    outputs as one group, so none of them; train leaves only whole files."""
    disk = tmp_path / "disk"
    config = project.write_config(
        tmp_path / "p.yaml",
        output_dir=str(disk / "runs"),
        model={"n_estimators": 60, "early_stopping_rounds": 20, "min_positives": 20},
        threshold={"policy": "top_fraction", "top_fraction": 0.1, "bootstrap": 0},
        baselines={"templates": [], "bootstrap": 0},
    )
    args = {
        "score": _score_args(project, disk / "scores.parquet"),
        "train": ["train", "-c", str(config)],
    }[command]
    env = project.env(MLFLOW_TRACKING_URI=f"sqlite:///{tmp_path / 'm.db'}")
    done, left = _on_a_small_disk(args, disk, size, env, tmp_path)
    said = " ".join(done.stderr.split())
    assert done.returncode == 2, said
    assert "No space left on device" in said and "Free disk space" in said, said
    assert "Traceback" not in said
    files = [p for p in left.rglob("*") if p.is_file()]
    assert [p for p in files if p.name.endswith(".tmp")] == []
    if command == "score":
        assert files == []  # not even the drift table, which fitted
    for path in files:
        if path.suffix == ".parquet":
            assert len(pd.read_parquet(path)) > 0
        elif path.suffix == ".json":
            json.loads(path.read_text())
