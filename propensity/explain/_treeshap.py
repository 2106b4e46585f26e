"""Exact path-dependent TreeSHAP for LightGBM, compiled with numba.

LightGBM's ``pred_contrib`` walks every tree once per row with the recursive TreeSHAP of Lundberg
et al. (O(leaves * depth^2) per tree and row). This module computes the same numbers leaf by leaf:

- For a leaf with value ``v``, let ``P`` be the distinct features on its path, ``z_j`` the product
  of the cover fractions of the path's splits on feature ``j``, and ``o_j(x)`` 1 when row ``x``
  follows all of them. The leaf adds to feature ``i`` in ``P``
  ``v * (o_i - z_i) * sum_{S in P - i} w(|S|, |P|) * prod_{j in S} o_j * prod_{j not in S} z_j``
  (the closed form TreeSHAP evaluates), with ``w`` the Shapley weights.
- That term depends on a row only through its pattern ``o``, so each leaf keeps the answers for
  the patterns it has met (:mod:`propensity.explain._kernels`): a row costs one decision per node
  and a few adds per leaf, and the memo grows with use.
- The trees are read from the booster's text model (flat arrays, no JSON) and their paths are
  prepared once per booster (:func:`prepared` caches them with the memo).

Only plain ``gbdt`` binary/regression boosters without linear trees are supported;
:func:`supports` says whether a booster qualifies so callers can fall back to ``pred_contrib``.
"""

from __future__ import annotations

import threading
import weakref
from concurrent.futures import ThreadPoolExecutor

import numpy as np

__all__ = [
    "TreeShapModel",
    "is_prepared",
    "is_warming",
    "prepare_in_background",
    "prepared",
    "supports",
]

# A leaf with up to this many distinct path features keeps a memo of 2**d patterns x d values
# (at 10: 80 KiB, allocated untouched; only the patterns met are written). Longer paths, rare
# in boosted trees, solve each row's pattern anew.
_MEMO_BITS = 10
_CHUNK = 8192  # rows per kernel call


def supports(booster) -> bool:
    """Whether this exact TreeSHAP can explain ``booster`` (else use ``pred_contrib``)."""
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
_WARMING: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
# one preparation at a time: a caller that meets a booster being prepared in the background
# waits for that work instead of doing it twice
_PREPARING = threading.Lock()


def prepared(booster) -> TreeShapModel:
    """The booster's :class:`TreeShapModel`, built on first use and kept while the booster lives.

    The key also holds the tree count and best iteration, so a booster trained further (or
    given another best iteration) is prepared again.
    """
    key = (booster.num_trees(), getattr(booster, "best_iteration", 0))
    with _PREPARING:
        hit = _PREPARED.get(booster)
        if hit is None or hit[0] != key:
            hit = (key, TreeShapModel(booster))
            _PREPARED[booster] = hit
    return hit[1]


def prepare_in_background(booster) -> threading.Thread | None:
    """Start preparing ``booster`` (numba's import and compiled code, the trees) in a thread.

    A score job calls this as soon as its model is loaded, so the fixed cost of the first
    explanation overlaps the data read (DuckDB releases the GIL while it reads) instead of
    adding to it. Returns the thread, or None when there is nothing to do.
    """
    if is_prepared(booster) or is_warming(booster) or not supports(booster):
        return None

    def work() -> None:
        try:
            prepared(booster)
        except Exception:  # noqa: BLE001 (the caller's own call meets the error and falls back)
            _WARMING.pop(booster, None)

    thread = threading.Thread(target=work, name="treeshap-prepare", daemon=True)
    _WARMING[booster] = thread
    thread.start()
    return thread


def is_warming(booster) -> bool:
    """Whether a background preparation of this booster is running or has finished."""
    thread = _WARMING.get(booster)
    return thread is not None


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

    def __init__(self, booster, memo_bits: int = _MEMO_BITS) -> None:
        self.memo_bits = memo_bits
        from propensity.explain import _kernels  # numba: imported when first needed

        self._kernels = _kernels
        trees = _parse_text(booster.model_to_string())
        self.n_features = trees.pop("n_features")
        self.bias = trees.pop("bias")
        node_count = trees.pop("node_count")
        leaf_count = trees.pop("leaf_count")
        left = trees.pop("left")
        right = trees.pop("right")
        paths = _kernels.leaf_paths(
            trees["node_start"], trees["leaf_start"], left, right, trees["feature"],
            node_count, leaf_count,
        )  # fmt: skip
        names = ("path_start", "path_node", "path_left", "path_slot", "feat_start", "features", "z")
        trees.update(zip(names, paths, strict=True))
        if (trees["z"] <= 0).any():
            raise ValueError("a tree has an empty child (zero cover); use pred_contrib instead")
        d = np.diff(trees["feat_start"])
        keep = d <= self.memo_bits
        memo_size = np.where(keep, d << d, 0)
        seen_size = np.where(keep, 1 << d, 0)
        trees["memo_start"] = np.where(keep, np.cumsum(memo_size) - memo_size, -1)
        trees["seen_start"] = np.where(keep, np.cumsum(seen_size) - seen_size, -1)
        trees["memo"] = np.empty(int(memo_size.sum()), dtype=np.float64)
        trees["seen"] = np.zeros(int(seen_size.sum()), dtype=np.bool_)
        trees["gauss_t"], trees["gauss_w"] = _gauss_table(int(d.max(initial=0)))
        self._trees = trees
        self._lock = threading.Lock()  # the memo is written while computing

    @property
    def n_trees(self) -> int:
        return len(self._trees["node_start"]) - 1

    def shap_values(self, X: np.ndarray, n_threads: int = 1) -> np.ndarray:
        """SHAP values on the raw (log-odds) scale, shape ``(n, n_features + 1)``, bias last.

        Rows go through in chunks of ``_CHUNK`` (bounded scratch memory). With
        ``n_threads > 1`` the trees are split into that many groups, each summed into its own
        array by a thread (the compiled loop releases the GIL), then added up.
        """
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2 or X.shape[1] != self.n_features:
            raise ValueError(f"X must have {self.n_features} columns; got shape {X.shape}")
        n_threads = max(1, min(n_threads, self.n_trees))
        bounds = np.linspace(0, self.n_trees, n_threads + 1).astype(int)
        out = np.empty((X.shape[0], self.n_features + 1))
        t = self._trees

        def run(columns: np.ndarray, phi: np.ndarray, i: int) -> None:
            self._kernels.shap_values(
                columns, phi, t["node_start"], t["leaf_start"], t["feature"], t["threshold"],
                t["kind"], t["cat_start"], t["cat_len"], t["cat_words"], t["leaf_value"],
                t["path_start"], t["path_node"], t["path_left"], t["path_slot"],
                t["feat_start"], t["features"], t["z"], t["memo_start"], t["memo"],
                t["seen_start"], t["seen"], t["gauss_t"], t["gauss_w"],
                int(bounds[i]), int(bounds[i + 1]),
            )  # fmt: skip

        with self._lock, ThreadPoolExecutor(max_workers=n_threads) as pool:
            # one thread per tree group at a time: each leaf's memo has a single writer
            for start in range(0, X.shape[0], _CHUNK):
                block = X[start : start + _CHUNK]
                columns = np.ascontiguousarray(block.T)  # feature-major: rows run innermost
                parts = [np.zeros((self.n_features + 1, len(block))) for _ in range(n_threads)]
                if n_threads == 1:
                    run(columns, parts[0], 0)
                else:
                    list(pool.map(run, [columns] * n_threads, parts, range(n_threads)))
                phi = parts[0]
                for part in parts[1:]:
                    phi += part
                phi[-1] += self.bias
                out[start : start + len(block)] = phi.T
        return out


def _parse_text(text: str) -> dict:
    """Flat arrays of all trees from LightGBM's text model (``model_to_string``).

    Per tree the nodes are ``node_start[t]:node_start[t + 1]`` and the leaves
    ``leaf_start[t]:leaf_start[t + 1]``; children keep the text's local numbering (``c < 0``
    is the tree's leaf ``~c``). A single-leaf tree has neither and only moves the bias.
    """
    header, _, body = text.partition("\nTree=")
    fields = dict(line.split("=", 1) for line in header.splitlines() if "=" in line)
    body = body.split("\nend of trees", 1)[0]
    columns: dict[str, list[np.ndarray]] = {
        k: [] for k in ("feature", "threshold", "kind", "left", "right", "node_count")
    }
    columns.update(leaf_value=[], leaf_count=[], cat_start=[], cat_len=[], cat_words=[])
    node_start, leaf_start, words, bias = [0], [0], 0, 0.0
    for block in body.split("\nTree=") if body else []:  # each block starts with its index
        tree = dict(line.split("=", 1) for line in block.splitlines() if "=" in line)
        if int(tree["num_leaves"]) <= 1:
            bias += float(tree["leaf_value"].split()[0])
            node_start.append(node_start[-1])
            leaf_start.append(leaf_start[-1])
            continue
        feature = np.array(tree["split_feature"].split(), dtype=np.int64)
        threshold = np.array(tree["threshold"].split(), dtype=np.float64)
        kind = np.array(tree["decision_type"].split(), dtype=np.int64)
        value = np.array(tree["leaf_value"].split(), dtype=np.float64)
        count = np.array(tree["leaf_count"].split(), dtype=np.float64)
        internal = np.array(tree["internal_count"].split(), dtype=np.float64)
        bias += float(np.sum(count / internal[0] * value))  # LightGBM's ExpectedValue
        cat_start = np.zeros(len(feature), dtype=np.int64)
        cat_len = np.zeros(len(feature), dtype=np.int64)
        if int(tree.get("num_cat", 0)) > 0:
            bounds = np.array(tree["cat_boundaries"].split(), dtype=np.int64)
            tree_words = np.array(tree["cat_threshold"].split(), dtype=np.uint32)
            cat = (kind & 1) == 1
            index = threshold[cat].astype(np.int64)
            cat_start[cat] = words + bounds[index]
            cat_len[cat] = bounds[index + 1] - bounds[index]
            columns["cat_words"].append(tree_words)
            words += len(tree_words)
        for name, array in (
            ("feature", feature), ("threshold", threshold), ("kind", kind),
            ("left", np.array(tree["left_child"].split(), dtype=np.int64)),
            ("right", np.array(tree["right_child"].split(), dtype=np.int64)),
            ("node_count", internal), ("leaf_value", value), ("leaf_count", count),
            ("cat_start", cat_start), ("cat_len", cat_len),
        ):  # fmt: skip
            columns[name].append(array)
        node_start.append(node_start[-1] + len(feature))
        leaf_start.append(leaf_start[-1] + len(value))
    out = {name: np.concatenate(parts) if parts else np.empty(0) for name, parts in columns.items()}
    for name in ("feature", "kind", "left", "right", "cat_start", "cat_len"):
        out[name] = out[name].astype(np.int64)
    out["cat_words"] = out["cat_words"].astype(np.uint32)
    out.update(
        node_start=np.array(node_start, dtype=np.int64),
        leaf_start=np.array(leaf_start, dtype=np.int64),
        n_features=int(fields["max_feature_idx"]) + 1,
        bias=bias,
    )
    return out


def _gauss_table(max_d: int) -> tuple[np.ndarray, np.ndarray]:
    """Gauss-Legendre nodes and weights on [0, 1] per path length ``d`` (row ``d``):
    ``ceil(d / 2)`` nodes, exact for the degree ``d - 1`` polynomial each leaf integrates."""
    t = np.zeros((max_d + 1, max(1, (max_d + 1) // 2)))
    w = np.zeros_like(t)
    for d in range(1, max_d + 1):
        q = (d + 1) // 2
        x, weights = np.polynomial.legendre.leggauss(q)
        t[d, :q] = (x + 1) / 2
        w[d, :q] = weights / 2
    return t, w
