"""Map raw model scores to honest probabilities, fitted on out-of-sample scores only.

Two maps, both stored as plain numbers so a saved model never needs pickle:

- ``isotonic``: a monotone step function; stored as its breakpoints and interpolated linearly
  between them (what scikit-learn's ``IsotonicRegression`` predicts), steps of exactly 0 or 1
  pulled inside (0, 1);
- ``sigmoid`` (Platt scaling): ``p = 1 / (1 + exp(-(a * logit(p_raw) + b)))``, stored as ``a, b``.

``auto`` (a scikit-learn style estimator learning ``method_``) keeps a map only when it beats
the raw scores on held-out folds, and tries isotonic only with ``isotonic_min_positives``
positives. Every map increases with the raw score: a fit that would not (a negative Platt slope
inverts the ranking, and the inverted AUC would look excellent) falls back to the raw scores.

>>> cal = Calibrator(method="sigmoid").fit([0.2, 0.8, 0.3, 0.7], [0, 1, 1, 0])
>>> Calibrator.from_dict(cal.to_dict()).predict([0.5]) == cal.predict([0.5])
array([ True])
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.isotonic import IsotonicRegression
from sklearn.model_selection import StratifiedKFold

from propensity.config import CalibrationConfig
from propensity.errors import ModelError

__all__ = ["Calibrator", "fit_calibrator"]

Method = Literal["auto", "isotonic", "sigmoid", "identity"]
_METHODS = ("auto", "isotonic", "sigmoid", "identity")
_FITTED = ("isotonic", "sigmoid", "identity")  # what a fitted calibrator can be
# Raw probabilities are clipped this far from 0 and 1 before taking the logit.
_EPS = 1e-12


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, _EPS, 1 - _EPS)
    return np.log(p) - np.log1p(-p)


def _platt_loss(a: float, b: float, s: np.ndarray, y: np.ndarray) -> float:
    z = a * s + b
    # log(1 + exp(z)) - y z, stable for either sign of z
    return float(np.sum(np.logaddexp(0.0, z) - y * z) + 5e-7 * (a * a + b * b))


def _fit_platt(s: np.ndarray, y: np.ndarray, iterations: int = 100) -> tuple[float, float]:
    """Maximum-likelihood logistic regression of ``y`` on one feature by damped Newton steps.

    Written out rather than borrowed from scikit-learn so the fit has no regularisation, no
    solver warnings, and two plain numbers as its whole state. A tiny ridge keeps the Hessian
    invertible when the classes are separable; step halving keeps every step downhill (a full
    Newton step from a = 1 diverges when the true slope is negative).
    """
    a, b = 1.0, 0.0
    loss = _platt_loss(a, b, s, y)
    s_squared = s * s  # the same every step
    for _ in range(iterations):
        z = np.clip(a * s + b, -35, 35)
        q = 1.0 / (1.0 + np.exp(-z))
        w = q * (1 - q)
        # np.sum of products, not np.dot: dot hands long vectors to the BLAS, whose threads
        # (and so whose rounding) depend on the machine's cores, and whose idle second thread
        # spun for most of the calibrator's CPU; numpy's pairwise sum is the same everywhere.
        residual, ws = q - y, np.sum(w * s)
        grad = np.array([np.sum(residual * s), np.sum(residual)]) + 1e-6 * np.array([a, b])
        hess = np.array([[np.sum(w * s_squared), ws], [ws, np.sum(w)]]) + 1e-6 * np.eye(2)
        step = np.linalg.solve(hess, grad)
        scale = 1.0
        while scale > 1e-6:
            new = _platt_loss(a - scale * step[0], b - scale * step[1], s, y)
            if new <= loss:
                break
            scale /= 2
        a, b, loss = a - scale * step[0], b - scale * step[1], new
        if np.max(np.abs(scale * step)) < 1e-10:
            break
    return float(a), float(b)


_TIE_BREAK = 1e-6
# Held-out log loss clips probabilities this far from 0 and 1 (an isotonic step at 0 would
# otherwise make one unlucky fold infinitely bad).
_LOSS_EPS = 1e-6


def _log_loss(y: np.ndarray, p: np.ndarray) -> float:
    q = np.clip(p, _LOSS_EPS, 1 - _LOSS_EPS)
    return float(-np.mean(y * np.log(q) + (1 - y) * np.log1p(-q)))


def _fit_isotonic(p: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Isotonic breakpoints, with steps of exactly 0 or 1 pulled inside (0, 1).

    A block of n rows that were all positive says "at least n/(n+1)", not "certainly": its
    value becomes the Jeffreys estimate (k + 1/2)/(n + 1), and the running maximum keeps the
    map increasing, so no score is ever written as exactly 1.000 (or 0).
    """
    iso = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(p, y)
    fitted = iso.predict(p)
    xs = np.asarray(iso.X_thresholds_, dtype=float)
    ys = np.asarray(iso.y_thresholds_, dtype=float).copy()
    for edge in (0.0, 1.0):
        block = fitted == edge
        if block.any():
            n, k = float(block.sum()), float(y[block].sum())
            ys[ys == edge] = (k + 0.5) / (n + 1.0)
    return xs, np.maximum.accumulate(ys)


class Calibrator(BaseEstimator):
    """A map from raw model probability to calibrated probability, increasing by construction.

    Parameters
    ----------
    method : {"auto", "isotonic", "sigmoid", "identity"}
        ``auto`` judges identity, sigmoid and (with at least ``isotonic_min_positives``
        positives) isotonic by ``cv``-fold held-out log loss on the data it is fitted on, and
        keeps a map only when it beats the raw scores there. ``identity`` passes scores
        through.
    isotonic_min_positives : int
        Fewer positives than this and ``auto`` does not try isotonic (unstable steps).
    cv : int
        Folds of the held-out judgement of ``auto``.
    random_state : int
        Seed of the folds.

    Attributes
    ----------
    method_ : str
        The map in use. A fit that would decrease (a sigmoid slope <= 0, a flat isotonic
        map) falls back to ``identity``: a calibrator never inverts the model's ranking.
    note_ : str
        Why ``method_`` was chosen, in one line.
    cv_log_loss_ : dict
        ``auto`` only: held-out log loss of each candidate.
    """

    def __init__(
        self,
        *,
        method: Method = "auto",
        isotonic_min_positives: int = 500,
        cv: int = 5,
        random_state: int = 0,
    ) -> None:
        self.method = method
        self.isotonic_min_positives = isotonic_min_positives
        self.cv = cv
        self.random_state = random_state

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
        self.cv_log_loss_: dict[str, float] = {}
        if self.method == "auto":
            method, note = self._choose(p, t)
        else:
            method, note = self.method, f"{self.method} (set in the config)"
        self._fit_method(method, p, t)
        if not self._increasing():
            note = f"the {method} fit does not increase with the raw score; raw scores are used"
            self._fit_method("identity", p, t)
        self.note_ = note
        self.fitted_ = True
        return self

    def _fit_method(self, method: str, p: np.ndarray, t: np.ndarray) -> None:
        self.method_ = method
        if method == "isotonic":
            self.x_, self.y_ = _fit_isotonic(p, t)
        elif method == "sigmoid":
            self.a_, self.b_ = _fit_platt(_logit(p), t)

    def _increasing(self) -> bool:
        if self.method_ == "sigmoid":
            return bool(self.a_ > 0)
        if self.method_ == "isotonic":
            return bool(self.y_[-1] > self.y_[0])
        return True

    def _choose(self, p: np.ndarray, t: np.ndarray) -> tuple[str, str]:
        """The candidate with the lowest held-out log loss; identity unless one beats it."""
        positives = int(t.sum())
        candidates = ["identity", "sigmoid"]
        if positives >= self.isotonic_min_positives:
            candidates.append("isotonic")
        folds = min(self.cv, positives, int(t.size - positives))
        if folds < 2:
            return "identity", "too few positives or negatives to judge a calibrator"
        splitter = StratifiedKFold(folds, shuffle=True, random_state=self.random_state)
        losses = dict.fromkeys(candidates, 0.0)
        for fit_idx, held in splitter.split(p, t):
            for name in candidates:
                part = Calibrator(method=name).fit(p[fit_idx], t[fit_idx])
                losses[name] += _log_loss(t[held], part.predict(p[held])) * held.size / t.size
        self.cv_log_loss_ = losses
        best = min(candidates, key=lambda name: (losses[name], candidates.index(name)))
        if best == "identity":
            return "identity", "no calibrator beat the raw scores on held-out folds"
        return best, (
            f"{best}: held-out log loss {losses[best]:.5f} vs {losses['identity']:.5f} raw"
        )

    def predict(self, p_raw: Any) -> np.ndarray:
        """Calibrated probabilities for raw probabilities ``p_raw``."""
        if not getattr(self, "fitted_", False):
            raise ModelError("This Calibrator is not fitted yet. Call fit(p_raw, y) first.")
        p = np.asarray(p_raw, dtype=float).ravel()
        if self.method_ == "isotonic":
            # np.interp clips outside the breakpoints, like out_of_bounds="clip". Isotonic steps
            # tie many raw scores; a 1e-6 slope in the raw score breaks the ties so calibration
            # never costs ranking (AUC/AP equal the raw model's), at no visible cost in calibration.
            flat = np.interp(p, self.x_, self.y_)
            return np.clip(flat + _TIE_BREAK * p, 0.0, 1.0 - _TIE_BREAK)
        if self.method_ == "sigmoid":
            return 1.0 / (1.0 + np.exp(-np.clip(self.a_ * _logit(p) + self.b_, -35, 35)))
        return p.copy()

    def to_dict(self) -> dict[str, Any]:
        """The fitted state as JSON-able numbers (floats round-trip exactly through JSON)."""
        if not getattr(self, "fitted_", False):
            raise ModelError("This Calibrator is not fitted yet; there is nothing to save.")
        out: dict[str, Any] = {"method": self.method_}
        if self.method_ == "isotonic":
            out["x"] = [float(v) for v in self.x_]
            out["y"] = [float(v) for v in self.y_]
        elif self.method_ == "sigmoid":
            out["a"], out["b"] = self.a_, self.b_
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Calibrator:
        """Rebuild a fitted calibrator from :meth:`to_dict` output."""
        method = d.get("method")
        if method not in _FITTED:
            raise ModelError(
                f"calibrator.json must name a method in {_FITTED}. Got {method!r} instead; "
                f"retrain the model."
            )
        cal = cls(method=method)
        cal.method_, cal.note_, cal.cv_log_loss_ = method, "loaded", {}
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


def fit_calibrator(p_raw: Any, y: Any, cfg: CalibrationConfig, seed: int = 0) -> Calibrator:
    """Fit the calibrator the config asks for on out-of-sample raw scores."""
    return Calibrator(
        method=cfg.method, isotonic_min_positives=cfg.isotonic_min_positives, random_state=seed
    ).fit(p_raw, y)
