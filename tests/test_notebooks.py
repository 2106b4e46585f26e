"""Tests for notebooks/: every notebook runs top to bottom on a small simulated dataset."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

nbclient = pytest.importorskip("nbclient", reason="install the dev extra (nbclient, ipykernel)")
nbformat = pytest.importorskip("nbformat", reason="install the dev extra (nbformat)")

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


@pytest.fixture(scope="module")
def small_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """3,000 simulated users: enough positives for the demo config's minimums, seconds to build."""
    from propensity.simulate import simulate

    folder = tmp_path_factory.mktemp("notebook-data")
    simulate(folder, users=3000, seed=11)
    return folder


def test_there_are_notebooks_saved_without_outputs():
    """Check that the notebooks exist and are committed with no outputs or execution counts."""
    assert [p.name for p in NOTEBOOKS] == [
        "01_event_log_and_labels.ipynb",
        "02_features_and_shap.ipynb",
        "03_rules_vs_model.ipynb",
    ]
    for path in NOTEBOOKS:
        book = nbformat.read(path, as_version=4)
        for cell in book.cells:
            if cell.cell_type == "code":
                assert cell.outputs == [] and cell.execution_count is None, path.name
                assert "def " not in cell.source, f"{path.name}: logic belongs in propensity"


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs_top_to_bottom(path, small_data, monkeypatch):
    """Check that the notebook executes without an error on a small simulated dataset."""
    monkeypatch.setenv("PROPENSITY_DATA", str(small_data))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    book = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(
        book, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(ROOT)}}
    )
    client.execute()
    errors = [o for c in book.cells for o in c.get("outputs", []) if o.output_type == "error"]
    assert errors == []
    assert os.environ["PROPENSITY_DATA"] == str(small_data)
