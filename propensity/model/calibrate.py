"""Map raw model scores to honest probabilities, fitted on the calibration slice only.

Two methods, both stored as plain numbers so a saved model never needs pickle:

- ``isotonic``: a monotone step function; stored as its breakpoints and interpolated linearly
  between them (what scikit-learn's ``IsotonicRegression`` predicts);
- ``sigmoid`` (Platt scaling): ``p = 1 / (1 + exp(-(a * logit(p_raw) + b)))``, stored as ``a, b``.

Isotonic is flexible but needs many positives to be stable; ``auto`` picks it only when the
calibration slice holds at least ``isotonic_min_positives`` of them.

>>> cal = Calibrator(method="sigmoid").fit([0.2, 0.8, 0.3, 0.7], [0, 1, 1, 0])
>>> Calibrator.from_dict(cal.to_dict()).predict([0.5]) == cal.predict([0.5])
array([ True])
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
from sklearn.isotonic import IsotonicRegression

from propensity.config import CalibrationConfig
from propensity.errors import ModelError

__all__ = ["Calibrator", "fit_calibrator", "resolve_method"]

Method = Literal["isotonic", "sigmoid", "identity"]
_METHODS = ("isotonic", "sigmoid", "identity")
# Raw probabilities are clipped this far from 0 and 1 before taking the logit.
_EPS = 1e-12


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, _EPS, 1 - _EPS)
    return np.log(p) - np.log1p(-p)


def _fit_platt(s: np.ndarray, y: np.ndarray, iterations: int = 100) -> tuple[float, float]:
    """Maximum-likelihood logistic regression of ``y`` on one feature by Newton's method.

    Written out rather than borrowed from scikit-learn so the fit has no regularisation, no
    solver warnings, and two plain numbers as its whole state. A tiny ridge keeps the Hessian
    invertible when the classes are separable.
    """
    a, b = 1.0, 0.0
    for _ in range(iterations):
        z = np.clip(a * s + b, -35, 35)
        q = 1.0 / (1.0 + np.exp(-z))
        w = q * (1 - q)
        grad = np.array([np.dot(q - y, s), np.sum(q - y)]) + 1e-6 * np.array([a, b])
        hess = np.array(
            [[np.dot(w, s * s), np.dot(w, s)], [np.dot(w, s), np.sum(w)]]
        ) + 1e-6 * np.eye(2)
        step = np.linalg.solve(hess, grad)
        a, b = a - step[0], b - step[1]
        if np.max(np.abs(step)) < 1e-10:
            break
    return float(a), float(b)


_TIE_BREAK = 1e-6


class Calibrator:
    """A fitted map from raw model probability to calibrated probability.

    Parameters
    ----------
    method : {"isotonic", "sigmoid", "identity"}
        ``identity`` passes scores through; it exists for tests and for models that are
        calibrated by construction.
    """

    def __init__(self, *, method: Method = "isotonic") -> None:
        self.method = method

    def fit(self, p_raw: Any, y: Any) -> Calibrator:
        """Learn the map from raw probabilities ``p_raw`` and 0/1 outcomes ``y``."""
        if self.method not in _METHODS:
            raise ValueError(
                f"The 'method' parameter of Calibrator must be one of {_METHODS}. "
                f"Got {self.method!r} instead."
            )
        p = np.asarray(p_raw, dtype=float).ravel()
        t = np.asarray(y, dtype=float).ravel()
        if p.shape != t.shape or p.size == 0:
            raise ValueError(
                f"Calibrator.fit needs p_raw and y of the same non-zero length. "
                f"Got {p.size} and {t.size} instead."
            )
        if self.method == "isotonic":
            iso = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(p, t)
            self.x_ = np.asarray(iso.X_thresholds_, dtype=float)
            self.y_ = np.asarray(iso.y_thresholds_, dtype=float)
        elif self.method == "sigmoid":
            self.a_, self.b_ = _fit_platt(_logit(p), t)
        self.fitted_ = True
        return self

    def predict(self, p_raw: Any) -> np.ndarray:
        """Calibrated probabilities for raw probabilities ``p_raw``."""
        if not getattr(self, "fitted_", False):
            raise ModelError("This Calibrator is not fitted yet. Call fit(p_raw, y) first.")
        p = np.asarray(p_raw, dtype=float).ravel()
        if self.method == "isotonic":
            # np.interp clips outside the breakpoints, like out_of_bounds="clip". Isotonic steps
            # tie many raw scores; a 1e-6 slope in the raw score breaks the ties so calibration
            # never costs ranking (AUC/AP equal the raw model's), at no visible cost in calibration.
            flat = np.interp(p, self.x_, self.y_)
            return np.clip(flat + _TIE_BREAK * p, 0.0, 1.0)
        if self.method == "sigmoid":
            return 1.0 / (1.0 + np.exp(-np.clip(self.a_ * _logit(p) + self.b_, -35, 35)))
        return p.copy()

    def to_dict(self) -> dict[str, Any]:
        """The fitted state as JSON-able numbers (floats round-trip exactly through JSON)."""
        if not getattr(self, "fitted_", False):
            raise ModelError("This Calibrator is not fitted yet; there is nothing to save.")
        out: dict[str, Any] = {"method": self.method}
        if self.method == "isotonic":
            out["x"] = [float(v) for v in self.x_]
            out["y"] = [float(v) for v in self.y_]
        elif self.method == "sigmoid":
            out["a"], out["b"] = self.a_, self.b_
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Calibrator:
        """Rebuild a fitted calibrator from :meth:`to_dict` output."""
        method = d.get("method")
        if method not in _METHODS:
            raise ModelError(
                f"calibrator.json must name a method in {_METHODS}. Got {method!r} instead; "
                f"retrain the model."
            )
        cal = cls(method=method)
        try:
            if method == "isotonic":
                cal.x_ = np.asarray(d["x"], dtype=float)
                cal.y_ = np.asarray(d["y"], dtype=float)
            elif method == "sigmoid":
                cal.a_, cal.b_ = float(d["a"]), float(d["b"])
        except KeyError as exc:
            raise ModelError(
                f"calibrator.json for method {method!r} lacks key {exc.args[0]!r}; retrain the "
                f"model."
            ) from None
        cal.fitted_ = True
        return cal

    def __repr__(self) -> str:
        return f"Calibrator(method={self.method!r})"


def resolve_method(cfg: CalibrationConfig, n_positives: int) -> Method:
    """The concrete method for a config: ``auto`` becomes isotonic only with enough positives."""
    if cfg.method != "auto":
        return cfg.method
    return "isotonic" if n_positives >= cfg.isotonic_min_positives else "sigmoid"


def fit_calibrator(p_raw: Any, y: Any, cfg: CalibrationConfig) -> Calibrator:
    """Fit the calibrator the config asks for on a calibration slice."""
    n_positives = int(np.asarray(y).sum())
    return Calibrator(method=resolve_method(cfg, n_positives)).fit(p_raw, y)
