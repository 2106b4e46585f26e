"""Tests of propensity.pipeline.backtest: many as-of dates in one process."""

from __future__ import annotations

from datetime import datetime, timedelta

import pandas as pd
import pytest

from propensity.config import load_config
from propensity.errors import DataContractError
from propensity.pipeline.backtest import as_of_dates, backtest_job
from propensity.pipeline.score import score_job


def test_as_of_dates_range_and_errors():
    """Check that the dates run inclusively and a reversed or huge range is one clear error."""
    days = as_of_dates(datetime(2025, 1, 1), datetime(2025, 1, 3), timedelta(days=1))
    assert days == [datetime(2025, 1, 1), datetime(2025, 1, 2), datetime(2025, 1, 3)]
    with pytest.raises(DataContractError, match="--to must not be before --as-of"):
        as_of_dates(datetime(2025, 1, 3), datetime(2025, 1, 1), timedelta(days=1))
    with pytest.raises(DataContractError, match="at most 1000 dates"):
        as_of_dates(datetime(2025, 1, 1), datetime(2025, 6, 1), timedelta(hours=1))


@pytest.mark.slow
def test_backtest_scores_equal_separate_runs(trained_world, tmp_path):
    """Check that a backtest gives each date exactly the scores of a separate score run."""
    _, config = trained_world
    cfg = load_config(config)
    done = backtest_job(cfg, "2025-03-01", "2025-03-03", timedelta(days=1), tmp_path / "bt.parquet")
    assert sorted(done.scores["as_of"].unique()) == [
        pd.Timestamp(f"2025-03-0{d}") for d in (1, 2, 3)
    ]
    for day in ("2025-03-01", "2025-03-03"):
        alone = score_job(cfg, day, tmp_path / f"{day}.parquet").scores
        mine = done.scores[done.scores["as_of"] == pd.Timestamp(day)].reset_index(drop=True)
        pd.testing.assert_frame_equal(
            mine.drop(columns="scored_at"), alone.drop(columns="scored_at")
        )
