"""Confidence intervals for the discovery table, simultaneous over the rows shown.

Two ratios are reported per behaviour, each with an interval:

- **lift**: the conversion rate of the users who did it over the base rate; the rate gets a
  Wilson score interval (good at small counts and near 0), divided by the base rate;
- **adjusted lift**: observed conversions ``O`` over the conversions ``E`` that a model of
  everything else the users did expects for them (a standardised ratio, as in epidemiology's
  SIR); ``O`` is Poisson, and Byar's approximation gives its interval (within a few percent of
  the exact one from 5 events up, and it needs no special functions).

With ``m`` rows in the table, each interval is at level ``1 - alpha / m`` (Bonferroni), so all of
them hold at once with probability at least ``1 - alpha``: a table of many behaviours does not
get to call the luckiest one significant.

>>> round(z_value(0.05), 3), round(z_value(0.05, m=10), 3)
(1.96, 2.807)
"""

from __future__ import annotations

from statistics import NormalDist

import numpy as np

__all__ = ["byar_interval", "wilson_interval", "z_value"]


def z_value(alpha: float = 0.05, m: int = 1, *, two_sided: bool = True) -> float:
    """The normal quantile for a ``1 - alpha`` interval, Bonferroni-corrected for ``m`` of them."""
    tail = alpha / max(int(m), 1) / (2 if two_sided else 1)
    return NormalDist().inv_cdf(1 - tail)


def wilson_interval(
    positives: np.ndarray, n: np.ndarray, z: float
) -> tuple[np.ndarray, np.ndarray]:
    """Wilson score interval of the rate ``positives / n`` (NaN where ``n`` is 0).

    >>> [round(float(v[0]), 3) for v in wilson_interval(np.array([5.0]), np.array([50.0]), 1.96)]
    [0.043, 0.214]
    """
    o, n = np.asarray(positives, dtype=float), np.asarray(n, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        p = o / n
        centre = (p + z * z / (2 * n)) / (1 + z * z / n)
        half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return np.clip(centre - half, 0, 1), np.clip(centre + half, 0, 1)


def byar_interval(
    observed: np.ndarray, expected: np.ndarray, z: float
) -> tuple[np.ndarray, np.ndarray]:
    """Byar's interval of the ratio ``observed / expected`` for a Poisson ``observed``.

    The lower end is 0 when nothing was observed. NaN where ``expected`` is not positive.

    >>> [round(float(v[0]), 2) for v in byar_interval(np.array([20.0]), np.array([10.0]), 1.96)]
    [1.22, 3.09]
    """
    o = np.asarray(observed, dtype=float)
    e = np.asarray(expected, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        safe = np.maximum(o, 1.0)
        low = o * (1 - 1 / (9 * safe) - z / (3 * np.sqrt(safe))) ** 3
        low = np.where(o > 0, np.maximum(low, 0.0), 0.0)
        o1 = o + 1
        high = o1 * (1 - 1 / (9 * o1) + z / (3 * np.sqrt(o1))) ** 3
        bad = ~(e > 0)
        return np.where(bad, np.nan, low / e), np.where(bad, np.nan, high / e)
