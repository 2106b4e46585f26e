"""Reference statistics stored with the model, so scoring can say "top 5% of trials" and measure
drift without the training data at hand."""

from __future__ import annotations

import pandas as pd

from propensity.config import TaskConfig
from propensity.model.bundle import PQLModel

__all__ = ["attach_references"]


def attach_references(
    model: PQLModel,
    train_rows: pd.DataFrame,
    drift_rows: pd.DataFrame,
    columns: list[str],
    task: TaskConfig | None = None,
) -> None:
    """Store reason-code quantiles (training rows) and drift histograms in `model.metadata`.

    `drift_rows` should look like what the score job meets (users at every trial age, scored out
    of sample): scores on the model's own training rows are optimistic and would raise false
    score-drift alarms. ``task`` sets the reasons' words ("top 5% of active free users").
    """
    from propensity.drift import fit_drift_reference
    from propensity.explain import fit_reference, wording

    scores = model.predict_proba(drift_rows[columns])[:, 1]
    model.metadata["reason_reference"] = fit_reference(train_rows, columns, wording(task))
    model.metadata["drift_reference"] = fit_drift_reference(drift_rows, columns, scores)
