"""Tests for propensity.io.atomic."""

import os
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest

from propensity.errors import OutputError
from propensity.io import atomic_path, write_table
from propensity.io.atomic import run_folder


def test_write_table_round_trip(tmp_path):
    """Check that parquet and CSV outputs read back identically and leave no temp files."""
    frame = pd.DataFrame({"user_id": ["a", "b"], "score": [0.25, 0.75]})
    for fmt in ("parquet", "csv"):
        target = write_table(frame, tmp_path / f"out.{fmt}", fmt)
        back = pd.read_parquet(target) if fmt == "parquet" else pd.read_csv(target)
        pd.testing.assert_frame_equal(back, frame)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.csv", "out.parquet"]


def test_failure_leaves_old_file(tmp_path):
    """Check that an error mid-write keeps the previous output whole and removes the temp file."""
    target = tmp_path / "scores.csv"
    target.write_text("old\n")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("killed")
    assert target.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["scores.csv"]


_SLOW_WRITER = """
import sys, time
from propensity.io import atomic_path
with atomic_path(sys.argv[1]) as tmp:
    with open(tmp, "w") as handle:
        for i in range(10_000):
            handle.write("row %d\\n" % i)
            handle.flush()
            time.sleep(0.001)
"""


def test_sigkill_mid_write_leaves_no_partial_file(tmp_path):
    """Check that a writer killed mid-write leaves no target file, and the next write succeeds."""
    target = tmp_path / "scores.csv"
    proc = subprocess.Popen([sys.executable, "-c", _SLOW_WRITER, str(target)])
    deadline = time.time() + 20
    while not any(p.name.endswith(".tmp") for p in tmp_path.iterdir()):
        assert time.time() < deadline, "writer never started"
        time.sleep(0.05)
    time.sleep(0.2)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not target.exists()
    write_table(pd.DataFrame({"a": [1]}), target, "csv")
    assert target.read_text() == "a\n1\n"


def test_outputs_get_the_mode_of_any_new_file(tmp_path):
    """Check that an output is readable as any new file is (umask), not private like a temp."""
    old = os.umask(0o022)
    try:
        target = write_table(pd.DataFrame({"a": [1]}), tmp_path / "scores.csv", "csv")
    finally:
        os.umask(old)
    assert target.stat().st_mode & 0o777 == 0o644


def test_run_folder_appears_whole_or_not_at_all(tmp_path):
    """Check that a run folder is renamed into place on success and removed on failure."""
    target = tmp_path / "outputs" / "train-abc"
    with run_folder(target) as tmp:
        assert tmp.parent == target.parent and tmp.name.startswith(".train-abc.")
        (tmp / "model").mkdir()
        (tmp / "model" / "booster.txt").write_text("trees")
        assert not target.exists()
    assert (target / "model" / "booster.txt").read_text() == "trees"
    failed = tmp_path / "outputs" / "train-def"
    with pytest.raises(RuntimeError), run_folder(failed) as tmp:
        (tmp / "metrics.json").write_text("{}")
        raise RuntimeError("the fit failed")
    assert sorted(p.name for p in (tmp_path / "outputs").iterdir()) == ["train-abc"]


def test_run_folder_never_replaces_an_existing_output(tmp_path):
    """Check that a run folder whose name exists is an OutputError naming it, nothing touched."""
    target = tmp_path / "train-abc"
    target.mkdir()
    (target / "keep").write_text("old")
    with pytest.raises(OutputError, match="train-abc"), run_folder(target):
        pass
    assert (target / "keep").read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["train-abc"]


def test_run_folder_sweeps_folders_of_killed_writers_only(tmp_path):
    """Check that the next run removes a dead writer's hidden folder and keeps a live one's."""
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    from propensity.io.workspace import owner_token

    stale = tmp_path / f".train-old.{int(dead.stdout)}-1.x1y2.partial"
    live = tmp_path / f".train-now.{owner_token()}.z9.partial"
    for folder in (stale, live):
        folder.mkdir()
        (folder / "metrics.json").write_text("{}")
    with run_folder(tmp_path / "train-new"):
        pass
    assert sorted(p.name for p in tmp_path.iterdir()) == [live.name, "train-new"]
