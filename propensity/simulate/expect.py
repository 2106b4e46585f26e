"""The truth behind a realized precision: the exact chance that a scored row converts.

A score job flags ``(entity, as_of)`` rows; ``propensity outcomes`` counts a row converted when
the entity's first payment falls in ``(as_of, as_of + horizon]``. On a simulated trial world
that chance is known from the truth file, because the simulator draws every later payment from
the user's day-7 state alone (``p_true`` and the cutoff; see ``draw_conversions``): within its
horizon at ``cutoff + EDGE + Beta(1.1, 2.2) x span`` with probability ``p_true``, else later
with probability ``0.4 x p_true``. Behaviour before a payment does not depend on it, so for a
row not paid by ``as_of`` the chance is

    P(T in (a, a + h] | T > a) = (F(a + h) - F(a)) / (1 - F(a))

with ``F`` that mixture's distribution function: exact for rows scored at day 7 or later.

A row scored earlier (``as_of`` before the cutoff) has a ``p_true`` that still depends on the
days to come. :func:`expected_conversion` then gives the same formula on the user's *realized*
day-7 state (its ``p_true`` and any payment before the cutoff): the expectation given the world
up to day 7, not given the as-of. Whether a row is flagged depends only on what was known at
its as-of, so by the tower property the mean of these numbers over the flagged rows has the
same expectation as the as-of truth's mean, and a realized precision scatters around it no more
than a binomial proportion does (its Wilson interval is conservative). We chose this over a
Monte Carlo re-simulation from the as-of because the day-7 truth reads teammates' activity and
invitations accepted hours later, so a restart mid-trial would need a second simulator kept in
step with the first; the realized day-7 state is exact and costs nothing.

Users who never pay after their cutoff (paid before it, internal testers, bots) have a known
payment time (or none): their chance is 0 or 1.

A known contact effect (:mod:`propensity.simulate.contact`) is added exactly: an entity
contacted at ``c`` whose natural payment is not in ``(c, c + k]`` pays with probability
``effect`` at a uniform time in that window (``k`` the contact horizon).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import timedelta
from functools import cache
from pathlib import Path

import numpy as np
import pandas as pd

from propensity.errors import DataContractError
from propensity.simulate.conversion import EDGE, LATE_MEAN, LATE_SHARE, WITHIN_BETA

__all__ = ["TruthWorld", "expected_conversion", "read_truth_world"]


@dataclass(frozen=True, eq=False)
class TruthWorld:
    """What the expectation reads from a simulated world: per user the cutoff, ``p_true``,
    whether a later payment can be drawn, and the realized payment; the simulator's horizon."""

    users: pd.DataFrame  # user_id (index), cutoff_s, p_true, candidate, paid_s (inf: never)
    horizon: timedelta


def read_truth_world(folder: Path) -> TruthWorld:
    """The truth of a world written by ``propensity simulate`` (trial clock, not day-only)."""
    folder = Path(folder)
    files = [folder / "truth.parquet", folder / "oracle.json"]
    missing = [f.name for f in files if not f.is_file()]
    if missing:
        raise DataContractError(
            [
                f"--truth {folder} lacks {', '.join(missing)}: give the folder 'propensity "
                f"simulate --out' wrote."
            ]
        )
    settings = json.loads(files[1].read_text()).get("settings", {})
    truth = pd.read_parquet(files[0])
    need = {"user_id", "cutoff_at", "p_true", "reason", "converted_at"}
    if not need <= set(truth.columns) or "horizon_seconds" not in settings:
        raise DataContractError(
            [
                f"--truth {folder} is not a trial-clock world (its truth lacks "
                f"{', '.join(sorted(need - set(truth.columns))) or 'horizon_seconds'}); the exact "
                f"expectation is known only for worlds of 'propensity simulate' without --task."
            ]
        )
    if settings.get("world", {}).get("day_only"):
        raise DataContractError(
            [
                f"--truth {folder} is a day-only world, whose payments are moved to midnights; "
                f"the exact expectation is written for worlds with full timestamps."
            ]
        )
    users = pd.DataFrame(
        {
            "cutoff_s": _seconds(truth["cutoff_at"]),
            "p_true": truth["p_true"].to_numpy(dtype=float),
            "candidate": (truth["reason"].isna() | (truth["reason"] == "censored")).to_numpy(),
            "paid_s": _seconds(truth["converted_at"]),
        },
        index=truth["user_id"].astype(str).to_numpy(),
    )
    return TruthWorld(users, timedelta(seconds=int(settings["horizon_seconds"])))


def expected_conversion(
    world: TruthWorld,
    entity: pd.Series,
    as_of: pd.Series,
    horizon: timedelta,
    contacted_at: pd.Series | None = None,
    effect: float = 0.0,
    contact_horizon: timedelta | None = None,
) -> np.ndarray:
    """Per row, the chance the entity's first payment falls in ``(as_of, as_of + horizon]``.

    ``contacted_at`` (aligned with the rows; NaT when never contacted), ``effect`` and
    ``contact_horizon`` add the contact effect. An entity unknown to the world gets NaN.

    >>> w = TruthWorld(pd.DataFrame({"cutoff_s": [0.0], "p_true": [0.5], "candidate": [True],
    ...     "paid_s": [np.inf]}, index=["u1"]), timedelta(days=30))
    >>> at = pd.Series([pd.Timestamp(0)])
    >>> float(expected_conversion(w, pd.Series(["u1"]), at, timedelta(days=30)).round(4)[0])
    0.5
    """
    users = world.users.reindex(entity.astype(str).to_numpy())
    a = _seconds(as_of)
    h = horizon.total_seconds()

    def dist(t: np.ndarray) -> np.ndarray:
        """P(T <= t | T > a): T the entity's natural first payment."""
        return _conditional(users, world.horizon.total_seconds(), a, t)

    if contacted_at is None or effect == 0:
        out = dist(a + h)
    else:
        c = _seconds(contacted_at)
        k = (contact_horizon or horizon).total_seconds()
        end = c + k
        never = ~np.isfinite(c)
        end = np.where(never, np.inf, end)
        # the natural payment comes first unless it is after the contact window and the contact
        # won (then the added payment, uniform in (c, c + k], decides)
        overlap = np.clip(np.minimum(a + h, end) - np.maximum(a, c), 0, None) / k
        with np.errstate(invalid="ignore"):
            out = (
                dist(np.minimum(end, a + h))
                + (1 - effect) * np.clip(dist(a + h) - dist(end), 0, None)
                + effect * (1 - dist(end)) * np.where(never, 0.0, overlap)
            )
        out = np.where(never, dist(a + h), out)
    return np.where(users["p_true"].isna().to_numpy(), np.nan, out)


def _conditional(users: pd.DataFrame, horizon: float, a: np.ndarray, t: np.ndarray) -> np.ndarray:
    """P(T <= t | T > a) per row: the mixture for candidates, a known time for the others; 0
    when the realized payment is at or before ``a`` (the row should not have been scored)."""
    cutoff = users["cutoff_s"].to_numpy(dtype=float)
    p = users["p_true"].to_numpy(dtype=float)
    paid = users["paid_s"].to_numpy(dtype=float)
    cand = users["candidate"].eq(True).to_numpy()
    t = np.maximum(t, a)
    fa, ft = _mixture(p, cutoff, horizon, a), _mixture(p, cutoff, horizon, t)
    with np.errstate(divide="ignore", invalid="ignore"):
        mixed = np.where(fa < 1, (ft - fa) / (1 - fa), 0.0)
    known = ((paid > a) & (paid <= t)).astype(float)
    out = np.where(cand, mixed, known)
    return np.where(paid <= a, 0.0, out)


def _mixture(p: np.ndarray, cutoff: np.ndarray, horizon: float, t: np.ndarray) -> np.ndarray:
    """F(t) of a candidate's natural payment time (see ``draw_conversions``)."""
    span = max(horizon - 2 * EDGE, 1)
    within = _beta_cdf((t - cutoff - EDGE) / span)
    late = 1 - np.exp(-np.clip(t - cutoff - horizon - EDGE, 0, None) / LATE_MEAN)
    return p * within + (1 - p) * LATE_SHARE * p * late


def _beta_cdf(x: np.ndarray) -> np.ndarray:
    grid, cdf = _beta_table()
    return np.interp(np.clip(x, 0, 1), grid, cdf)


@cache
def _beta_table() -> tuple[np.ndarray, np.ndarray]:
    """The Beta(WITHIN_BETA) distribution function on a fine grid (error < 1e-6).

    The density is integrated in u = x ** a (dx = du / (a x ** (a - 1))), where it is smooth."""
    a, b = WITHIN_BETA
    u = np.linspace(0.0, 1.0, 1 << 16)
    density = (1 - u ** (1 / a)) ** (b - 1)  # x ** (a - 1) dx = du / a
    steps = (density[1:] + density[:-1]) / 2 * np.diff(u)
    cdf = np.concatenate([[0.0], np.cumsum(steps)])
    return u ** (1 / a), cdf / cdf[-1]


def _seconds(times: pd.Series) -> np.ndarray:
    """Epoch seconds as floats (NaT: +inf, never)."""
    ts = pd.to_datetime(pd.Series(times).reset_index(drop=True))
    if getattr(ts.dt, "tz", None) is not None:
        ts = ts.dt.tz_convert("UTC").dt.tz_localize(None)
    out = ts.astype("datetime64[us]").astype("int64").to_numpy(dtype=float) / 1e6
    return np.where(ts.isna().to_numpy(), np.inf, out)
