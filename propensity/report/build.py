"""`build_report`: a training run's folder (plus optional extras) to one offline HTML file.

Reads what a training run writes to ``outputs/<project>/train-<run_id>/`` (see
``propensity/pipeline/artifacts.py``), adds global SHAP and partial dependence when the test
feature rows are given, and writes ``report.html`` next to them, with the new figures also saved
under ``plots/`` so they can be logged one by one.

>>> build_report(Path("outputs/demo/train-abc"), features=test_rows)  # doctest: +SKIP
PosixPath('outputs/demo/train-abc/report.html')
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from propensity.errors import ModelError, PropensityError
from propensity.explain import mean_abs_shap, shap_values
from propensity.features import FeatureSpec
from propensity.figures import (
    beeswarm_figure,
    figure_png,
    importance_bar_figure,
    plot_partial_dependence,
)
from propensity.model.bundle import PQLModel
from propensity.report.dependence import partial_dependence
from propensity.report.discover import discover_section, load_discovery
from propensity.report.html import render_page
from propensity.report.outcomes import outcomes_section
from propensity.report.sections import (
    data_section,
    drift_section,
    drivers_section,
    headline_section,
    performance_section,
    pqls_section,
    promotion_section,
    summary_section,
    threshold_section,
)

__all__ = ["REPORT_FILE", "REPORT_PLOTS", "RunFiles", "build_report", "explain_figures", "load_run"]

REPORT_FILE = "report.html"
# Figures build_report adds to plots/ (the training run already wrote the others).
REPORT_PLOTS = ("shap_importance.png", "shap_beeswarm.png", "partial_dependence.png")
_REQUIRED = ("metrics.json", "data_summary.json", "comparison.csv")


@dataclass(frozen=True, eq=False)
class RunFiles:
    """The files of one training run's output folder, parsed."""

    run_dir: Path
    metrics: dict[str, Any]
    summary: dict[str, Any]
    comparison: pd.DataFrame
    plots: dict[str, bytes] = field(default_factory=dict)
    model: PQLModel | None = None
    test_scores: pd.DataFrame | None = None  # the rows every reported number uses
    spec: FeatureSpec | None = None

    @property
    def used(self) -> dict[str, int] | None:
        """Rows and payers behind the reported numbers (None when the run did not keep them)."""
        if self.test_scores is None:
            return None
        return {"rows": len(self.test_scores), "positives": int(self.test_scores["label"].sum())}


def load_run(run_dir: Path | str) -> RunFiles:
    """Parse a run folder; raises :class:`ModelError` naming every required file missing."""
    run_dir = Path(run_dir)
    missing = [name for name in _REQUIRED if not (run_dir / name).is_file()]
    if missing:
        raise ModelError(
            f"The run folder {str(run_dir)!r} is not a training run's output: missing "
            f"{', '.join(missing)}. Pass the train-<run_id> folder a training run wrote, or "
            f"rebuild it from MLflow with `propensity report --run-id ID`."
        )
    plots = {p.name: p.read_bytes() for p in sorted((run_dir / "plots").glob("*.png"))}
    model_dir = run_dir / "model"
    scores = run_dir / "test_scores.parquet"
    model = PQLModel.load(model_dir) if model_dir.is_dir() else None
    spec = _spec(run_dir / "feature_spec.json") or (model.spec if model is not None else None)
    return RunFiles(
        run_dir=run_dir,
        metrics=json.loads((run_dir / "metrics.json").read_text(encoding="utf-8")),
        summary=json.loads((run_dir / "data_summary.json").read_text(encoding="utf-8")),
        comparison=pd.read_csv(run_dir / "comparison.csv"),
        plots=plots,
        model=model,
        test_scores=pd.read_parquet(scores, columns=["label"]) if scores.is_file() else None,
        spec=spec,
    )


def _spec(path: Path) -> FeatureSpec | None:
    """The run's feature spec, for readable feature names (None when absent or unreadable)."""
    if not path.is_file():
        return None
    try:
        return FeatureSpec.from_json(path.read_text(encoding="utf-8"), source=repr(str(path)))
    except PropensityError:
        return None


def explain_figures(
    model: PQLModel,
    features: pd.DataFrame,
    *,
    max_rows: int = 2000,
    pdp_features: int = 6,
    pdp_rows: int = 300,
    seed: int = 0,
) -> tuple[pd.DataFrame, dict[str, bytes]]:
    """Mean |SHAP| table and the PNGs of SHAP bar, beeswarm and partial dependence.

    SHAP runs on a seeded sample of at most ``max_rows`` rows of ``features`` (extra columns such
    as keys and label are ignored); partial dependence of the ``pdp_features`` most important
    features uses ``pdp_rows`` of them.
    """
    X = model.prepare(features)
    if len(X) > max_rows:
        keep = np.sort(np.random.default_rng(seed).choice(len(X), size=max_rows, replace=False))
        X = X.iloc[keep]
    phi = shap_values(model.booster, X, method="native")
    importance = mean_abs_shap(phi, list(X.columns))
    top = importance.loc[importance["mean_abs_shap"] > 0, "feature"].tolist()
    curves = {
        name: partial_dependence(
            lambda frame: model.predict_proba(frame)[:, 1], X, name, sample=pdp_rows, seed=seed
        )
        for name in top[:pdp_features]
    }
    figures = {
        "shap_importance.png": figure_png(importance_bar_figure(importance)),
        "shap_beeswarm.png": figure_png(beeswarm_figure(phi, X, seed=seed)),
    }
    if curves:
        figures["partial_dependence.png"] = figure_png(plot_partial_dependence(curves))
    return importance, figures


def build_report(
    run_dir: Path | str,
    *,
    features: pd.DataFrame | None = None,
    promotion: Mapping[str, Any] | None = None,
    drift: pd.DataFrame | None = None,
    drift_limit: float = 0.25,
    run_id: str | None = None,
    title: str = "PQL model report",
    seed: int = 0,
    scores: pd.DataFrame | None = None,
    outcomes: tuple[pd.DataFrame, pd.DataFrame, Mapping[str, Any]] | None = None,
) -> Path:
    """Write ``run_dir/report.html`` (and the SHAP/dependence PNGs under ``plots/``).

    ``features``: the test split's feature rows (SHAP and partial dependence need them);
    ``promotion``: ``decision``, ``reason``, ``metric``, ``new_value``, ``champion_value``,
    ``champion_version``, ``version`` (as the run's ``promotion.*`` tags and metrics hold them);
    ``drift``: a ``propensity.drift.psi_table`` of the newest scored cohort; ``scores``: the
    score table of the newest score run (its PQLs and their reasons are listed); ``outcomes``:
    ``(runs, segments, lift)`` as ``propensity outcomes`` wrote them.
    """
    run = load_run(run_dir)
    importance, figures = None, {}
    if features is not None:
        if run.model is None:
            raise ModelError(
                f"SHAP needs the model, but {str(run.run_dir / 'model')!r} is missing. Rebuild "
                f"from MLflow with `propensity report --run-id ID`, which downloads it."
            )
        importance, figures = explain_figures(run.model, features, seed=seed)
        for name, png in figures.items():
            _write_bytes(run.run_dir / "plots" / name, png)
    sections = [
        summary_section(run.metrics, run.comparison, run.used),
        pqls_section(scores),
        data_section(run.summary, run.metrics.get("split", {}), run.used),
        headline_section(run.comparison),
        discover_section(load_discovery(run.run_dir)),
        threshold_section(run.metrics.get("threshold", {})),
        performance_section(run.metrics, run.plots),
        drivers_section(importance, figures, run.plots, run.spec),
        promotion_section(promotion),
        drift_section(drift, drift_limit),
        outcomes_section(*(outcomes or (None, None, None))),
    ]
    rid = run_id or run.run_dir.name.removeprefix("train-")
    test = run.metrics.get("split", {}).get("test", {})
    subtitle = f"run {rid}; test period {test.get('start', '?')} to {test.get('end', '?')}"
    target = run.run_dir / REPORT_FILE
    _write_bytes(target, render_page(title, subtitle, sections).encode("utf-8"))
    return target


def _write_bytes(target: Path, data: bytes) -> None:
    # temp file + rename: a reader (or the MLflow upload) never sees half a file
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
