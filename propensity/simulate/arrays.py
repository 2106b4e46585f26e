"""Array helpers shared by the simulator's steps."""

from __future__ import annotations

import numpy as np

__all__ = ["order_by"]


def order_by(*keys: np.ndarray) -> np.ndarray:
    """Indices that sort by ``keys`` (most significant first), ties kept in input order.

    Packs the integer keys into one int64 when they fit (one stable sort, fast on the nearly
    sorted arrays the simulator makes), else falls back to ``np.lexsort``.

    >>> order_by(np.array([1, 0, 1]), np.array([5, 9, 2])).tolist()
    [1, 2, 0]
    """
    if len(keys[0]) == 0:
        return np.zeros(0, dtype=np.int64)
    packed = np.zeros(len(keys[0]), dtype=np.int64)
    used = 0
    for key in keys:
        shifted = key.astype(np.int64) - key.min()
        bits = max(int(shifted.max()).bit_length(), 1)
        used += bits
        if used > 62:
            return np.lexsort(keys[::-1])
        packed = (packed << bits) | shifted
    return np.argsort(packed, kind="stable")
