"""Exact path-dependent TreeSHAP for LightGBM, vectorised over rows in numpy.

LightGBM's ``pred_contrib`` walks every tree once per row with the recursive TreeSHAP of Lundberg
et al. (O(leaves * depth^2) per tree and row). This module computes the same numbers leaf by leaf:

- For a leaf with value ``v``, let ``P`` be the distinct features on its path, ``z_j`` the product
  of the cover fractions of the path's splits on feature ``j``, and ``o_j(x)`` 1 when row ``x``
  follows all of them. The leaf adds to feature ``i`` in ``P``
  ``v * (o_i - z_i) * sum_{S in P - i} w(|S|, |P|) * prod_{j in S} o_j * prod_{j not in S} z_j``
  (the closed form TreeSHAP evaluates), with ``w`` the Shapley weights.
- That term depends on a row only through which path nodes it follows. Codes are built top-down
  (one shift-add per node) and rows gather the answer: a few vector operations per leaf instead
  of a recursion per row.
- Everything that does not depend on the rows is prepared once per booster (:func:`prepared`
  caches it): for a leaf with a short path, a map from node pattern to feature pattern and the
  leaf's contributions for all ``2**d`` feature patterns, so scoring a leaf is two gathers and
  an add. Longer paths solve the distinct patterns of each call.

Only plain ``gbdt`` binary/regression boosters without linear trees are supported;
:func:`supports` says whether a booster qualifies so callers can fall back to ``pred_contrib``.
"""

from __future__ import annotations

import weakref
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

__all__ = ["TreeShapModel", "is_prepared", "prepared", "supports"]

_ZERO = 1e-35  # LightGBM's kZeroThreshold: |x| <= this counts as zero for zero-as-missing
_CACHE_BITS = 10  # paths with up to this many distinct features keep a full 2**d table
_MAP_BITS = 13  # ... and with up to this many nodes, a 2**depth node-to-feature pattern map
_BATCH_CELLS = 2_000_000  # bounds the arrays built per batch of tables


@dataclass(frozen=True)
class _Node:
    feature: int
    categorical: bool
    threshold: float
    categories: np.ndarray  # categories going left (categorical splits)
    default_left: bool
    missing: str  # "None", "Zero" or "NaN"


@dataclass
class _Leaf:
    value: float
    features: np.ndarray  # distinct path features, in first-seen order
    z: np.ndarray  # product of cover fractions per path feature
    depth: int  # number of path nodes; a row's pattern is one bit per path node
    # membership[k, j] is True when path node k splits on path feature j
    membership: np.ndarray
    # prepared for short paths: node pattern -> feature pattern, and (2**d, d) contributions
    node_map: np.ndarray | None = None
    table: np.ndarray | None = None


@dataclass(frozen=True)
class _Tree:
    nodes: tuple[_Node, ...]
    left: tuple[int, ...]  # child index per node: >= 0 a node, < 0 the leaf ~index
    right: tuple[int, ...]
    leaves: tuple[_Leaf, ...]
    expected: float  # sum of leaf values weighted by leaf counts, as LightGBM computes it


def supports(booster) -> bool:
    """Whether this exact numpy TreeSHAP can explain ``booster`` (else use ``pred_contrib``)."""
    # the header and first tree of the text model: far cheaper than dump_model on big boosters
    text = booster.model_to_string(num_iteration=1)
    header = text.split("\nTree=", 1)[0]
    if "average_output" in header or "\nis_linear=1" in text:
        return False
    if "num_tree_per_iteration=1\n" not in header:
        return False
    params = getattr(booster, "params", {}) or {}
    return str(params.get("boosting", "gbdt")) in {"gbdt", "goss"}


_PREPARED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def prepared(booster) -> TreeShapModel:
    """The booster's :class:`TreeShapModel`, built on first use and kept while the booster lives.

    The key also holds the tree count and best iteration, so a booster trained further (or
    given another best iteration) is prepared again.
    """
    key = (booster.num_trees(), getattr(booster, "best_iteration", 0))
    hit = _PREPARED.get(booster)
    if hit is None or hit[0] != key:
        hit = (key, TreeShapModel(booster))
        _PREPARED[booster] = hit
    return hit[1]


def is_prepared(booster) -> bool:
    """Whether :func:`prepared` holds this booster's trees already (no preparation cost)."""
    hit = _PREPARED.get(booster)
    return hit is not None and hit[0] == (
        booster.num_trees(),
        getattr(booster, "best_iteration", 0),
    )


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
        self._prepare_tables()

    def _prepare_tables(self) -> None:
        """Full pattern tables and node maps for short paths, built in batches of equal d."""
        short = [
            leaf
            for tree in self.trees
            for leaf in tree.leaves
            if len(leaf.features) <= _CACHE_BITS and leaf.depth <= _MAP_BITS
        ]
        by_d: dict[int, list[_Leaf]] = {}
        for leaf in short:
            by_d.setdefault(len(leaf.features), []).append(leaf)
            leaf.node_map = _node_map(leaf)
        for d, leaves in by_d.items():
            per_batch = max(1, _BATCH_CELLS // ((1 << d) * 4 * max(d, 1)))
            for s in range(0, len(leaves), per_batch):
                batch = leaves[s : s + per_batch]
                z = np.stack([leaf.z for leaf in batch])
                values = _all_patterns(z, np.array([leaf.value for leaf in batch]))
                for leaf, table in zip(batch, values, strict=True):
                    leaf.table = table  # (2**d, d): row = feature pattern

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
            # Depth-first over nodes; bit k of a row's code says whether it follows path node k
            # (the root is bit 0), so each tree costs a few operations per node. A path whose
            # features are distinct then has node pattern = feature pattern.
            stack = [(0, 0, np.zeros(n, dtype=np.int64))]
            while stack:
                node, depth, code = stack.pop()
                goes_left = left[node].astype(np.int64) << depth
                for child, bits in (
                    (tree.right[node], code + ((1 << depth) - goes_left)),
                    (tree.left[node], code + goes_left),
                ):
                    if child >= 0:
                        stack.append((child, depth + 1, bits))
                    else:
                        self._add_leaf(phi, tree.leaves[~child], bits)
        return phi

    def _add_leaf(self, phi: np.ndarray, leaf: _Leaf, code: np.ndarray) -> None:
        if leaf.table is not None:
            pattern = code if leaf.node_map is None else np.take(leaf.node_map, code)
            # a leaf's features are distinct, so the fancy-index add is exact
            phi[leaf.features] += np.take(leaf.table, pattern, axis=0).T
            return
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
        node_bits = (patterns[:, None] >> np.arange(m)) & 1  # (p, m): bit k is path node k
        misses = (1 - node_bits) @ leaf.membership  # (p, d): path nodes of j not followed
        follows = misses == 0
        # Many node patterns share one feature pattern o (e.g. a row that misses the first of
        # two splits on the same feature); solve each distinct o once.
        d = follows.shape[1]
        o_code = follows.astype(np.int64) @ (1 << np.arange(d, dtype=np.int64))
        o_unique, o_index = np.unique(o_code, return_inverse=True)
        return self._feature_table(leaf, _bit_rows(o_unique, d))[:, o_index]

    def _feature_table(self, leaf: _Leaf, o: np.ndarray) -> np.ndarray:
        """Contributions ``(d, p)`` of one leaf for each feature pattern row of ``o`` (p, d).

        Same integral as :func:`_all_patterns`, evaluated for the given patterns only.
        """
        t, w = _gauss(o.shape[1])
        z = leaf.z[None, :]
        factors = o[:, :, None] * t + z[:, :, None] * (1 - t)  # (p, d, q), positive
        whole = factors.prod(axis=1, keepdims=True)
        return (leaf.value * (o - z) * ((whole / factors) @ w)).T


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


def _node_map(leaf: _Leaf) -> np.ndarray | None:
    """Feature pattern (bit j: all path nodes on feature j followed) per node pattern code;
    None when the path's features are distinct (then the two patterns are the same)."""
    m, d = leaf.depth, len(leaf.features)
    if m == d:
        return None
    codes = np.arange(1 << m, dtype=np.int64)  # bit k: path node k followed
    masks = leaf.membership.T @ (1 << np.arange(m, dtype=np.int64))  # path nodes of feature j
    out = np.zeros(1 << m, dtype=np.intp)
    for j, mask in enumerate(masks):
        out |= ((codes & mask) == mask).astype(np.intp) << j
    return out


def _all_patterns(z: np.ndarray, value: np.ndarray) -> np.ndarray:
    """Contributions ``(b, 2**d, d)`` of ``b`` leaves for every feature pattern (bit j = o_j).

    The Shapley-weighted subset sum equals ``integral_0^1 prod_{j != i} (o_j t + z_j (1 - t))
    dt`` (the weights are Beta integrals): a polynomial of degree d - 1, which Gauss-Legendre
    quadrature with ceil(d / 2) nodes integrates exactly. The products over all patterns are
    built by doubling, then one batched matrix product divides out each feature and integrates.
    """
    b, d = z.shape
    t, w = _gauss(d)
    off = z[..., None] * (1 - t)  # (b, d, q): o_j = 0; positive inside (0, 1) as z > 0
    on = off + t  # o_j = 1
    whole = np.ones((b, 1, len(t)))
    for j in range(d):  # patterns with bit j set follow the first 2**j
        whole = np.concatenate([whole * off[:, j : j + 1], whole * on[:, j : j + 1]], axis=1)
    divide = np.concatenate([w / off, w / on], axis=1).transpose(0, 2, 1)  # (b, q, 2d)
    summed = whole @ divide  # (b, 2**d, 2d): columns (bit, feature)
    bits = _bit_rows(np.arange(1 << d), d).astype(bool)  # (2**d, d)
    picked = np.where(bits, summed[:, :, d:], summed[:, :, :d])
    return value[:, None, None] * (bits - z[:, None, :]) * picked


@lru_cache(maxsize=64)
def _gauss(d: int) -> tuple[np.ndarray, np.ndarray]:
    """Gauss-Legendre nodes and weights on [0, 1], exact up to degree d - 1 (and d)."""
    x, w = np.polynomial.legendre.leggauss(max(1, (d + 1) // 2))
    return (x + 1) / 2, w / 2


def _bit_rows(codes: np.ndarray, d: int) -> np.ndarray:
    """Rows of 0/1 floats: bit j of each code in column j."""
    return ((codes[:, None] >> np.arange(d)) & 1).astype(np.float64)
