"""Exact path-dependent TreeSHAP for LightGBM, vectorised over rows in numpy.

LightGBM's ``pred_contrib`` walks every tree once per row with the recursive TreeSHAP of Lundberg
et al. (O(leaves * depth^2) per tree and row). This module computes the same numbers leaf by leaf:

- For a leaf with value ``v``, let ``P`` be the distinct features on its path, ``z_j`` the product
  of the cover fractions of the path's splits on feature ``j``, and ``o_j(x)`` 1 when row ``x``
  follows all of them. The leaf adds to feature ``i`` in ``P``
  ``v * (o_i - z_i) * sum_{S in P - i} w(|S|, |P|) * prod_{j in S} o_j * prod_{j not in S} z_j``
  (the closed form TreeSHAP evaluates), with ``w`` the Shapley weights.
- That term depends on a row only through which path nodes it follows, and a leaf sees few
  distinct patterns. Codes are built top-down (one shift-add per node), each (leaf, pattern) is
  solved once with polynomial arithmetic, and rows gather the answer: a few vector operations
  per leaf instead of a recursion per row.

Only plain ``gbdt`` binary/regression boosters without linear trees are supported;
:func:`supports` says whether a booster qualifies so callers can fall back to ``pred_contrib``.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from math import factorial

import numpy as np

__all__ = ["TreeShapModel", "supports"]

_ZERO = 1e-35  # LightGBM's kZeroThreshold: |x| <= this counts as zero for zero-as-missing
_CACHE_BITS = 8  # paths with up to this many distinct features keep a full 2**d table


@dataclass(frozen=True)
class _Node:
    feature: int
    categorical: bool
    threshold: float
    categories: np.ndarray  # categories going left (categorical splits)
    default_left: bool
    missing: str  # "None", "Zero" or "NaN"


@dataclass(frozen=True)
class _Leaf:
    value: float
    features: np.ndarray  # distinct path features, in first-seen order
    z: np.ndarray  # product of cover fractions per path feature
    depth: int  # number of path nodes; a row's pattern is one bit per path node
    # membership[k, j] is True when path node k splits on path feature j
    membership: np.ndarray


@dataclass(frozen=True)
class _Tree:
    nodes: tuple[_Node, ...]
    left: tuple[int, ...]  # child index per node: >= 0 a node, < 0 the leaf ~index
    right: tuple[int, ...]
    leaves: tuple[_Leaf, ...]
    expected: float  # sum of leaf values weighted by leaf counts, as LightGBM computes it


def supports(booster) -> bool:
    """Whether this exact numpy TreeSHAP can explain ``booster`` (else use ``pred_contrib``)."""
    dump = booster.dump_model()
    if dump.get("num_tree_per_iteration", 1) != 1 or dump.get("linear", False):
        return False
    params = getattr(booster, "params", {}) or {}
    return str(params.get("boosting", "gbdt")) in {"gbdt", "goss"}


class TreeShapModel:
    """Parsed trees of a LightGBM booster, ready to compute SHAP values.

    >>> TreeShapModel(booster).shap_values(X)  # doctest: +SKIP  (n, n_features + 1), bias last
    """

    def __init__(self, booster) -> None:
        dump = booster.dump_model()
        self.n_features = int(dump["max_feature_idx"]) + 1
        self.trees = tuple(_parse_tree(t["tree_structure"]) for t in dump["tree_info"])
        if any((leaf.z <= 0).any() for tree in self.trees for leaf in tree.leaves):
            raise ValueError("a tree has an empty child (zero cover); use pred_contrib instead")
        max_d = max((len(leaf.features) for t in self.trees for leaf in t.leaves), default=0)
        self._weights = _shapley_weights(max_d + 1)
        self._cache: dict[int, np.ndarray] = {}  # id(leaf) -> (d, 2**d) table, short paths only

    def shap_values(
        self, X: np.ndarray, n_threads: int = 2, chunk: int | None = None
    ) -> np.ndarray:
        """SHAP values on the raw (log-odds) scale, shape ``(n, n_features + 1)``, bias last.

        Rows are processed in chunks (default: an equal share per thread, at most 50,000 rows)
        spread over ``n_threads`` threads; numpy releases the GIL inside its vector operations.
        Large chunks matter: the per-leaf Python overhead is paid once per chunk.
        """
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2 or X.shape[1] != self.n_features:
            raise ValueError(f"X must have {self.n_features} columns; got shape {X.shape}")
        if chunk is None:
            chunk = max(1, min(50_000, -(-X.shape[0] // max(n_threads, 1))))
        out = np.empty((X.shape[0], self.n_features + 1), dtype=np.float64)
        starts = list(range(0, X.shape[0], chunk))

        def run(start: int) -> None:
            block = X[start : start + chunk]
            out[start : start + len(block)] = self._chunk(block).T

        if n_threads > 1 and len(starts) > 1:
            with ThreadPoolExecutor(max_workers=n_threads) as pool:
                list(pool.map(run, starts))
        else:
            for start in starts:
                run(start)
        return out

    def _chunk(self, X: np.ndarray) -> np.ndarray:
        n = X.shape[0]
        cols = _Columns(X)
        phi = np.zeros((self.n_features + 1, n), dtype=np.float64)  # feature-major: rows contiguous
        for tree in self.trees:
            phi[-1] += tree.expected
            if not tree.nodes:
                continue
            left = [_decide(node, cols) for node in tree.nodes]
            # Depth-first over nodes; a row's code at depth m holds one bit per path node saying
            # whether it follows the path there, so each tree costs a few operations per node.
            stack = [(0, np.zeros(n, dtype=np.int64))]
            while stack:
                node, code = stack.pop()
                follows_left = left[node]
                code2 = code << 1
                for child, bits in (
                    (tree.right[node], code2 + ~follows_left),
                    (tree.left[node], code2 + follows_left),
                ):
                    if child >= 0:
                        stack.append((child, bits))
                    else:
                        self._add_leaf(phi, tree.leaves[~child], bits)
        return phi

    def _add_leaf(self, phi: np.ndarray, leaf: _Leaf, code: np.ndarray) -> None:
        n = len(code)
        if (1 << leaf.depth) <= max(n // 4, 256):
            # few possible patterns: index a dense table directly by the row's code
            patterns = np.flatnonzero(np.bincount(code, minlength=1 << leaf.depth))
            table = np.zeros((len(leaf.features), 1 << leaf.depth))
            table[:, patterns] = self._leaf_table(leaf, patterns)
            index = code
        else:
            patterns, index = np.unique(code, return_inverse=True)
            table = np.ascontiguousarray(self._leaf_table(leaf, patterns))
        for i, feature in enumerate(leaf.features):
            phi[feature] += np.take(table[i], index)

    def _leaf_table(self, leaf: _Leaf, patterns: np.ndarray) -> np.ndarray:
        """Contributions ``(d, patterns)`` of one leaf to its path features per node pattern."""
        m = leaf.depth
        # bit (m - 1 - k) of a pattern is path node k (the root is the most significant bit)
        node_bits = (patterns[:, None] >> np.arange(m - 1, -1, -1)) & 1  # (p, m)
        misses = (1 - node_bits) @ leaf.membership  # (p, d): path nodes of j not followed
        follows = misses == 0
        # Many node patterns share one feature pattern o (e.g. a row that misses the first of
        # two splits on the same feature); solve each distinct o once.
        d = follows.shape[1]
        o_code = follows.astype(np.int64) @ (1 << np.arange(d, dtype=np.int64))
        if d <= _CACHE_BITS:
            # every feature pattern of a short path, solved once and kept for later chunks
            table = self._cache.get(id(leaf))
            if table is None:
                table = self._feature_table(leaf, _bit_rows(np.arange(1 << d), d))
                self._cache[id(leaf)] = table  # a racing thread computes the same array
            return table[:, o_code]
        o_unique, o_index = np.unique(o_code, return_inverse=True)
        return self._feature_table(leaf, _bit_rows(o_unique, d))[:, o_index]

    def _feature_table(self, leaf: _Leaf, o: np.ndarray) -> np.ndarray:
        """Contributions ``(d, p)`` of one leaf for each feature pattern row of ``o`` (p, d)."""
        p, d = o.shape
        z = leaf.z[None, :]
        # poly(t) = prod_j (z_j + o_j t): coefficient k sums over subsets S of size k
        poly = np.zeros((p, d + 1))
        poly[:, 0] = 1.0
        for j in range(d):
            shifted = np.zeros_like(poly)
            shifted[:, 1:] = poly[:, :-1] * o[:, j : j + 1]
            poly = poly * z[:, j : j + 1] + shifted
        # Divide out (z_i + o_i t) for every i at once: synthetic division from the top when
        # o_i = 1 (stable because z <= 1), plain division by z_i when o_i = 0.
        quot = np.empty((p, d, d))
        carry = np.zeros((p, d))
        for k in range(d, 0, -1):
            carry = poly[:, k : k + 1] - z * carry
            quot[:, :, k - 1] = carry
        plain = poly[:, None, :d] / z[:, :, None]
        quot = np.where(o[:, :, None] > 0, quot, plain)
        sums = quot @ self._weights[d, :d]  # (p, d)
        return (leaf.value * (o - z) * sums).T


class _Columns:
    """Per-feature column views of a chunk, with the NaN/zero masks LightGBM's decisions need."""

    def __init__(self, X: np.ndarray) -> None:
        self.X = np.asfortranarray(X)
        self._cache: dict[tuple[str, int], np.ndarray] = {}

    def get(self, kind: str, f: int) -> np.ndarray:
        key = (kind, f)
        if key not in self._cache:
            col = self.X[:, f]
            if kind == "raw":
                value = col
            elif kind == "nan":
                value = np.isnan(col)
            elif kind == "nan0":  # NaN read as 0.0, as LightGBM does unless missing is NaN
                value = np.where(np.isnan(col), 0.0, col)
            elif kind == "zero":
                value = np.abs(self.get("nan0", f)) <= _ZERO
            else:  # "int": the category LightGBM reads, -1 for NaN and negatives
                value = np.where(np.isnan(col) | (col < 0), -1, np.trunc(np.nan_to_num(col)))
                value = value.astype(np.int64)
                value[value < 0] = -1
            self._cache[key] = value
        return self._cache[key]


def _decide(node: _Node, cols: _Columns) -> np.ndarray:
    """Boolean 'goes left' per row at one node, replicating LightGBM's Tree::Decision."""
    f = node.feature
    if node.categorical:
        cats = cols.get("int", f)
        return np.isin(cats, node.categories) & (cats >= 0)
    if node.missing == "NaN":
        left = cols.get("raw", f) <= node.threshold
        return left | cols.get("nan", f) if node.default_left else left
    value = cols.get("nan0", f)
    left = value <= node.threshold
    if node.missing == "Zero":
        zero = cols.get("zero", f)
        return left | zero if node.default_left else left & ~zero
    return left


def _parse_tree(root: dict) -> _Tree:
    """Flatten one ``dump_model`` tree into nodes, child links and leaves with their paths."""
    nodes: list[_Node] = []
    lefts: list[int] = []
    rights: list[int] = []
    leaves: list[_Leaf] = []
    if "split_feature" not in root:  # a single-leaf tree only shifts the bias
        return _Tree((), (), (), (), expected=float(root["leaf_value"]))
    total = float(root["internal_count"])
    expected = 0.0

    def count(node: dict) -> float:
        return float(node["internal_count"] if "split_feature" in node else node["leaf_count"])

    def walk(node: dict, path: list[tuple[int, float]]) -> int:
        nonlocal expected
        if "split_feature" not in node:
            value = float(node["leaf_value"])
            expected += value * count(node) / total
            leaves.append(_make_leaf(value, path))
            return ~(len(leaves) - 1)
        index = len(nodes)
        categorical = node["decision_type"] == "=="
        feature = int(node["split_feature"])
        categories = (
            np.array([int(c) for c in str(node["threshold"]).split("||")], dtype=np.int64)
            if categorical
            else np.empty(0, dtype=np.int64)
        )
        nodes.append(
            _Node(
                feature=feature,
                categorical=categorical,
                threshold=0.0 if categorical else float(node["threshold"]),
                categories=categories,
                default_left=bool(node.get("default_left", False)),
                missing=str(node.get("missing_type", "None")),
            )
        )
        lefts.append(0)
        rights.append(0)
        parent = count(node)
        for child, links in ((node["left_child"], lefts), (node["right_child"], rights)):
            links[index] = walk(child, [*path, (feature, count(child) / parent)])
        return index

    walk(root, [])
    return _Tree(tuple(nodes), tuple(lefts), tuple(rights), tuple(leaves), expected=expected)


def _make_leaf(value: float, path: list[tuple[int, float]]) -> _Leaf:
    """A leaf with its distinct path features, their cover products and node membership."""
    order: list[int] = []
    z: dict[int, float] = {}
    for feature, fraction in path:
        if feature not in z:
            order.append(feature)
            z[feature] = 1.0
        z[feature] *= fraction  # a repeated feature multiplies its fractions, as TreeSHAP does
    membership = np.zeros((len(path), len(order)), dtype=np.int64)
    for k, (feature, _) in enumerate(path):
        membership[k, order.index(feature)] = 1
    return _Leaf(
        value=value,
        features=np.array(order, dtype=np.int64),
        z=np.array([z[f] for f in order]),
        depth=len(path),
        membership=membership,
    )


def _bit_rows(codes: np.ndarray, d: int) -> np.ndarray:
    """Rows of 0/1 floats: bit j of each code in column j."""
    return ((codes[:, None] >> np.arange(d)) & 1).astype(np.float64)


def _shapley_weights(size: int) -> np.ndarray:
    """``w[d, k] = k! (d - k - 1)! / d!``: the Shapley weight of a subset of size k among d."""
    w = np.zeros((size + 1, size + 1))
    for d in range(1, size + 1):
        for k in range(d):
            w[d, k] = factorial(k) * factorial(d - k - 1) / factorial(d)
    return w
