"""Logging a discovery (aha moments and a suggested rule) to its MLflow run.

>>> with start_run(cfg, "discover") as run:  # doctest: +SKIP
...     log_discovery(run, files, behaviours, metrics, rule="n_invite_accepted_all >= 1")
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path

import pandas as pd

from propensity.tracking.run import TrackedRun

__all__ = ["log_discovery"]


def log_discovery(
    run: TrackedRun,
    files: Iterable[Path],
    behaviours: pd.DataFrame,
    metrics: Mapping[str, float],
    *,
    rule: str,
) -> None:
    """Log the discovery's files under ``discover/``, the ranked table as JSON (browsable in the
    MLflow UI), its numbers as ``discover.*`` metrics and the suggested rule as a tag."""
    run.set_tags({"discover.suggested_rule": rule, "discover.behaviours": len(behaviours)})
    run.log_metrics({f"discover.{k}": float(v) for k, v in metrics.items()})
    run.log_table(behaviours, "discover/behaviours.json")
    for path in files:
        run.log_file(path, "discover")
