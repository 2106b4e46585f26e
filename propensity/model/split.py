"""Out-of-time split: train, validation, calibration and test slices in time order.

The cutoff-time range is cut at the fractions of :class:`~propensity.config.SplitConfig`. A user
goes wholly into the slice that holds their *first* cutoff, so one person's rows (several
cutoffs at different trial ages) never sit on both sides of a boundary: the model is always
judged on people it has not seen. Never random across time: a random split lets the model learn
from the future it is then tested on.

>>> import pandas as pd
>>> f = pd.DataFrame({"user_id": list("abcd"),
...                   "cutoff_at": pd.to_datetime(["2024-01-01", "2024-01-05",
...                                                "2024-01-08", "2024-01-11"])})
>>> split_out_of_time(f, SplitConfig(train=0.4, validation=0.2, calibration=0.2, test=0.2)).test
array([3])
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from propensity.config import SplitConfig
from propensity.errors import DataContractError, InsufficientDataError
from propensity.labels import LabelTimes

__all__ = ["SLICES", "Split", "split_label_times", "split_out_of_time"]

SLICES = ("train", "validation", "calibration", "test")


@dataclass(frozen=True)
class Split:
    """Row positions (for ``frame.iloc``) of each slice, and the cut points that made them.

    ``boundaries`` holds the three cut times; a user whose first cutoff is at or after a cut
    belongs to the later slice.
    """

    train: np.ndarray
    validation: np.ndarray
    calibration: np.ndarray
    test: np.ndarray
    boundaries: tuple[pd.Timestamp, pd.Timestamp, pd.Timestamp]
    ranges: dict[str, tuple[pd.Timestamp | None, pd.Timestamp | None]]

    def positions(self, name: str) -> np.ndarray:
        return getattr(self, name)

    def weeks(self, name: str) -> float:
        """Length of a slice's cutoff date range in weeks; at least a day so it is never 0."""
        start, end = self.ranges[name]
        if start is None or end is None:
            return 1 / 7
        return max((end - start) / pd.Timedelta(days=1), 1.0) / 7

    def summary(self, frame: pd.DataFrame | None = None) -> dict[str, dict[str, Any]]:
        """Per slice: rows, date range (ISO strings), and with ``frame`` users and positives."""
        out = {}
        for name in SLICES:
            pos = self.positions(name)
            start, end = self.ranges[name]
            info: dict[str, Any] = {
                "rows": int(pos.size),
                "start": None if start is None else start.isoformat(),
                "end": None if end is None else end.isoformat(),
                "weeks": self.weeks(name),
            }
            if frame is not None:  # only the two columns counted, not a copy of every column
                info["users"] = int(frame["user_id"].iloc[pos].nunique())
                if "label" in frame:
                    info["positives"] = int(frame["label"].iloc[pos].sum())
            out[name] = info
        return out


def split_out_of_time(frame: pd.DataFrame, cfg: SplitConfig, by: str | None = "user_id") -> Split:
    """Assign each user (each ``by``), by their first ``cutoff_at``, to one of four
    time-ordered slices; with ``by=None`` each row by its own ``cutoff_at``.

    Rows at calendar anchors split by row: a freemium user active for months has rows in every
    slice, and grouping them by the first anchor would train on the test period's anchors.
    """
    missing = [c for c in (*((by,) if by else ()), "cutoff_at") if c not in frame.columns]
    if missing:
        raise DataContractError(
            [
                f"the feature table needs column {c!r} to split by time; it is missing."
                for c in missing
            ]
        )
    cutoffs = pd.to_datetime(frame["cutoff_at"])
    if cutoffs.isna().any():
        raise DataContractError(
            [f"cutoff_at must not be null; found {int(cutoffs.isna().sum())} null rows."]
        )
    if frame.empty:
        raise InsufficientDataError("The feature table is empty; there is nothing to split.")
    # sort=False: transform returns each row's own group minimum either way, and sorting 1M
    # user ids was most of the split's cost
    first = (
        cutoffs
        if by is None
        else cutoffs.groupby(frame[by].to_numpy(), sort=False).transform("min")
    )
    start, end = cutoffs.min(), cutoffs.max()
    if start == end:
        raise InsufficientDataError(
            f"Every cutoff falls at {start}; an out-of-time split needs cutoffs spread over time. "
            f"Load a longer date range of events."
        )
    span = end - start
    fractions = np.cumsum([cfg.train, cfg.validation, cfg.calibration])
    boundaries = tuple(start + span * float(f) for f in fractions)
    slice_of = np.searchsorted(
        np.array(boundaries, dtype="datetime64[ns]"), first.to_numpy(), "right"
    )
    positions = {name: np.flatnonzero(slice_of == i) for i, name in enumerate(SLICES)}
    ranges = {}
    for name, pos in positions.items():
        if pos.size:
            ranges[name] = (cutoffs.iloc[pos].min(), cutoffs.iloc[pos].max())
        else:
            ranges[name] = (None, None)
    return Split(**positions, boundaries=boundaries, ranges=ranges)


def split_label_times(labels: LabelTimes, cfg: SplitConfig) -> Split:
    """:func:`split_out_of_time` of label times: by user at trial ages, by row at calendar
    anchors."""
    return split_out_of_time(labels.frame, cfg, by=None if labels.calendar else "user_id")
