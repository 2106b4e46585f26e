"""Compiled loops of the exact TreeSHAP in :mod:`propensity.explain._treeshap` (numba only here).

Per tree and row the work is: one decision per node, then for each leaf the row's *feature
pattern* (bit ``j`` set when the row follows every split of the leaf's path on its ``j``-th
distinct feature) and the leaf's contributions for that pattern. Those contributions depend on
the row only through the pattern, so they are computed on first sight and kept in a per-leaf
memo (``2**d`` patterns of ``d`` values); later rows, and later calls on the same model, read
them back. A row therefore costs a decision per node and a few adds per leaf, against the
``leaves * depth**2`` of the recursive TreeSHAP that LightGBM's ``pred_contrib`` runs.

The functions are compiled on first use and cached on disk (``cache=True``): next to this file
when it is writable, else in numba's per-user cache. Without any writable place they are
compiled in each process instead, which is slower on the first call but gives the same numbers.
"""

from __future__ import annotations

import numba
import numpy as np


def _jit(fn):
    try:
        return numba.njit(cache=True, nogil=True)(fn)
    except RuntimeError:  # numba found no writable cache directory: compile per process
        return numba.njit(nogil=True)(fn)


@_jit
def leaf_paths(node_start, leaf_start, left, right, feature, node_count, leaf_count):
    """Every leaf's path: nodes, directions, distinct features and their cover products.

    Trees are given by their first node and first leaf in the flat arrays; a child ``c < 0`` is
    the tree's leaf ``~c``. Returns per-leaf offsets into the path arrays (the path of leaf
    ``i`` is ``path_start[i]:path_start[i + 1]``, root first), the path node (global index),
    whether the path goes left there, the slot of the node's feature among the leaf's distinct
    features (first-seen order), and per-leaf offsets into ``features`` and ``z`` (the product
    of the path's cover fractions per distinct feature).
    """
    n_nodes = len(feature)
    n_leaves = leaf_start[-1]
    parent = np.full(n_nodes, -1, dtype=np.int64)  # global parent node, -1 at a root
    node_left = np.zeros(n_nodes, dtype=np.bool_)  # whether it is its parent's left child
    leaf_parent = np.full(n_leaves, -1, dtype=np.int64)
    leaf_left = np.zeros(n_leaves, dtype=np.bool_)
    for t in range(len(node_start) - 1):
        for k in range(node_start[t], node_start[t + 1]):
            for side in range(2):
                child = left[k] if side == 0 else right[k]
                if child >= 0:
                    parent[node_start[t] + child] = k
                    node_left[node_start[t] + child] = side == 0
                else:
                    leaf_parent[leaf_start[t] + ~child] = k
                    leaf_left[leaf_start[t] + ~child] = side == 0
    depth = np.zeros(n_leaves, dtype=np.int64)
    for leaf in range(n_leaves):
        k = leaf_parent[leaf]
        while k >= 0:
            depth[leaf] += 1
            k = parent[k]
    path_start = np.zeros(n_leaves + 1, dtype=np.int64)
    path_start[1:] = np.cumsum(depth)
    total = path_start[-1]
    path_node = np.empty(total, dtype=np.int64)
    path_left = np.empty(total, dtype=np.bool_)
    path_slot = np.empty(total, dtype=np.int64)
    fraction = np.empty(total, dtype=np.float64)
    n_distinct = np.zeros(n_leaves, dtype=np.int64)
    for leaf in range(n_leaves):  # fill each path from the leaf up, then count its features
        base = path_start[leaf]
        k = leaf_parent[leaf]
        goes = leaf_left[leaf]
        below = leaf_count[leaf]
        for pos in range(depth[leaf] - 1, -1, -1):
            path_node[base + pos] = k
            path_left[base + pos] = goes
            fraction[base + pos] = below / node_count[k]
            below = node_count[k]
            goes = node_left[k]
            k = parent[k]
        d = 0
        for pos in range(depth[leaf]):
            slot = d
            for earlier in range(pos):
                if feature[path_node[base + earlier]] == feature[path_node[base + pos]]:
                    slot = path_slot[base + earlier]
                    break
            if slot == d:
                d += 1
            path_slot[base + pos] = slot
        n_distinct[leaf] = d
    feat_start = np.zeros(n_leaves + 1, dtype=np.int64)
    feat_start[1:] = np.cumsum(n_distinct)
    features = np.empty(feat_start[-1], dtype=np.int64)
    z = np.ones(feat_start[-1], dtype=np.float64)
    for leaf in range(n_leaves):
        for pos in range(path_start[leaf], path_start[leaf + 1]):
            j = feat_start[leaf] + path_slot[pos]
            features[j] = feature[path_node[pos]]
            z[j] *= fraction[pos]  # a repeated feature multiplies its fractions, as TreeSHAP
    return path_start, path_node, path_left, path_slot, feat_start, features, z


def _inline(fn):
    """Compiled into its callers (no call, no reference counting of array arguments)."""
    return numba.njit(inline="always")(fn)


@_inline
def _goes_left(value, bits, threshold, words, word_start, n_words):
    """LightGBM's Tree::Decision: whether a node sends ``value`` left.

    ``bits`` packs LightGBM's decision type: bit 0 categorical, bit 1 default left, bits 2-3
    the missing type (0 none, 1 zero, 2 NaN). A categorical node's left categories are the set
    bits of ``words[word_start:word_start + n_words]``.
    """
    if bits & 1:  # categorical: NaN and negatives go right; else the category's bit
        if np.isnan(value) or value <= -1.0 or value >= 2147483648.0:
            return False
        code = np.int64(value)  # truncates toward zero, as static_cast<int>
        if (code >> 5) >= n_words:
            return False
        return (words[word_start + (code >> 5)] >> (code & 31)) & 1 == 1
    missing = (bits >> 2) & 3
    if np.isnan(value):
        if missing == 2:
            return (bits & 2) != 0
        value = 0.0
    if missing == 1 and -1e-35 <= value <= 1e-35:  # kZeroThreshold
        return (bits & 2) != 0
    return value <= threshold


@_inline
def _solve(value, z, zs, on, d, gauss_t, gauss_w, factors, out, os):
    """Write a leaf's contributions to its ``d`` features for feature pattern ``on`` (bits) to
    ``out[os:os + d]``; the leaf's cover products are ``z[zs:zs + d]``.

    TreeSHAP's Shapley-weighted subset sum is ``integral_0^1 prod_{j != i} (o_j t + z_j (1 -
    t)) dt`` (the weights are Beta integrals), a polynomial of degree ``d - 1`` that
    Gauss-Legendre quadrature with ``ceil(d / 2)`` nodes (row ``d`` of ``gauss_t`` and
    ``gauss_w``, zero weights past them) integrates exactly. The products leaving out one
    factor come from prefix and suffix products (no division).
    """
    q = (d + 1) // 2
    for a in range(q):
        factors[d, a] = gauss_w[d, a]  # running prefix product, then suffix product
    for j in range(d):
        out[os + j] = 0.0
        o = (on >> j) & 1
        for a in range(q):
            t = gauss_t[d, a]
            f = z[zs + j] * (1.0 - t) + (t if o else 0.0)
            factors[j, a] = factors[d, a]  # w * prod_{k < j}
            factors[d, a] *= f
    for a in range(q):
        factors[d, a] = 1.0
    for j in range(d - 1, -1, -1):
        o = (on >> j) & 1
        s = 0.0
        for a in range(q):
            t = gauss_t[d, a]
            s += factors[j, a] * factors[d, a]
            factors[d, a] *= z[zs + j] * (1.0 - t) + (t if o else 0.0)
        out[os + j] = value * (o - z[zs + j]) * s


@_jit
def shap_values(
    X,
    phi,
    node_start,
    leaf_start,
    feature,
    threshold,
    kind,
    cat_start,
    cat_len,
    cat_words,
    leaf_value,
    path_start,
    path_node,
    path_left,
    path_slot,
    feat_start,
    features,
    z,
    memo_start,
    memo,
    seen_start,
    seen,
    gauss_t,
    gauss_w,
    tree_from,
    tree_to,
):
    """Add the contributions of trees ``tree_from:tree_to`` for the columns (rows of the data)
    of ``X`` (features x rows) to ``phi`` (features + 1, rows).

    ``memo_start[leaf]`` is the leaf's offset into ``memo`` (``2**d * d`` values, pattern-major)
    and ``seen_start[leaf]`` into ``seen`` (``2**d`` flags), or -1 for a leaf with too many
    distinct features to keep a memo: its pattern is solved for every row. Every loop runs over
    rows innermost, where the data are contiguous.
    """
    n = X.shape[1]
    max_nodes = 1
    max_d = 1
    for t in range(tree_from, tree_to):
        max_nodes = max(max_nodes, node_start[t + 1] - node_start[t])
    for leaf in range(len(leaf_value)):
        max_d = max(max_d, feat_start[leaf + 1] - feat_start[leaf])
    left = np.empty((max_nodes, n), dtype=np.bool_)
    on = np.empty(n, dtype=np.int64)
    factors = np.empty((max_d + 1, gauss_t.shape[1]), dtype=np.float64)
    scratch = np.empty(max_d, dtype=np.float64)
    for t in range(tree_from, tree_to):
        first = node_start[t]
        for k in range(node_start[t + 1] - first):
            g = first + k
            f, bits, cut = feature[g], kind[g], threshold[g]
            for r in range(n):
                left[k, r] = _goes_left(X[f, r], bits, cut, cat_words, cat_start[g], cat_len[g])
        for leaf in range(leaf_start[t], leaf_start[t + 1]):
            fs = feat_start[leaf]
            d = feat_start[leaf + 1] - fs
            on[:] = (1 << d) - 1
            for p in range(path_start[leaf], path_start[leaf + 1]):
                k = path_node[p] - first
                goes = path_left[p]
                off = ~(1 << path_slot[p])
                for r in range(n):
                    if left[k, r] != goes:
                        on[r] &= off
            ms = memo_start[leaf]
            if ms < 0:
                for r in range(n):
                    _solve(leaf_value[leaf], z, fs, on[r], d, gauss_t, gauss_w, factors, scratch, 0)
                    for j in range(d):
                        phi[features[fs + j], r] += scratch[j]
                continue
            ss = seen_start[leaf]
            for r in range(n):
                if not seen[ss + on[r]]:
                    _solve(
                        leaf_value[leaf],
                        z,
                        fs,
                        on[r],
                        d,
                        gauss_t,
                        gauss_w,
                        factors,
                        memo,
                        ms + on[r] * d,
                    )
                    seen[ss + on[r]] = True
            for j in range(d):
                fj = features[fs + j]
                for r in range(n):
                    phi[fj, r] += memo[ms + on[r] * d + j]
