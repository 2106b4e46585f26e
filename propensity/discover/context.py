"""What everything else a user did predicts: the yardstick a behaviour is judged against.

A behaviour "separates converters" only if the users who did it convert more than users who did
the same *other* things. Vanity events (a chat message, a page view) travel with engaged users
and so have a high plain lift, yet add nothing once the rest of the behaviour is known. So each
behaviour is compared with a logistic model of conversion on every *other* behaviour's
covariates, and its adjusted lift is observed / expected conversions under that model.

Covariates (standardised, ridge-penalised; the intercept is not penalised):

- per event: ``log1p`` of its count since signup and whether it happened at all;
- ``team``: ``log1p`` of the other active users of the account; ``activity``: active days;
- who the user is (never left out): one-hot categorical fit columns (email domain class, user
  columns) and signed ``log1p`` of numeric user columns with a missing flag.

The full model is fitted once by Newton's method. Leaving out a behaviour's covariates is then
two Newton steps from the full fit with the full fit's curvature (a one-step estimator; it
moves the remaining coefficients to absorb what the dropped ones carried), so a hundred
leave-out models cost about one fit. All of it is numpy linear algebra over columns (the
caller runs it on one BLAS thread: for Gram matrices this small a second thread only adds
contention, 13x slower on a busy 2-core machine).
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd

from propensity.discover.candidates import event_key
from propensity.features import FeatureSpec

__all__ = ["ContextModel"]

_RIDGE = 1.0
_MAX_ITER = 30


class ContextModel:
    """Logistic model of the label on every behaviour's covariates, fitted on ``fit_rows``.

    >>> ctx = ContextModel(frame, spec, fit_rows=search)  # doctest: +SKIP
    >>> p = ctx.probabilities(exclude=["event:message_sent"])  # one per row of frame
    """

    def __init__(self, frame: pd.DataFrame, spec: FeatureSpec, fit_rows: np.ndarray) -> None:
        columns, self.groups = _covariates(frame, spec)
        fit = np.asarray(fit_rows, dtype=bool)
        raw = np.column_stack(columns) if columns else np.zeros((len(frame), 0))
        mean, std = raw[fit].mean(axis=0), raw[fit].std(axis=0)
        varies = std > 1e-12
        self._keep_col = varies
        scaled = (raw[:, varies] - mean[varies]) / std[varies]
        self.X = np.column_stack([np.ones(len(frame)), scaled])
        # positions after dropping constant columns (+1 for the intercept)
        position = np.cumsum(varies) - 1 + 1
        self.groups = {
            key: [int(position[i]) for i in idx if varies[i]] for key, idx in self.groups.items()
        }
        self.fit_rows = fit
        self.y = frame["label"].to_numpy(dtype=float)
        self.beta, self.hessian = _newton(self.X[fit], self.y[fit])

    def probabilities(self, exclude: Iterable[str] = ()) -> np.ndarray:
        """Conversion probability of every row from all covariates except those of ``exclude``."""
        drop = {i for key in exclude for i in self.groups.get(key, [])}
        keep = np.array([i for i in range(self.X.shape[1]) if i not in drop])
        beta = self.beta[keep]
        if drop:
            X, y = self.X[self.fit_rows][:, keep], self.y[self.fit_rows]
            hessian = self.hessian[np.ix_(keep, keep)]
            for _ in range(2):
                beta = beta + np.linalg.solve(hessian, _gradient(X, y, beta))
        return _sigmoid(self.X[:, keep] @ beta)


def _covariates(frame: pd.DataFrame, spec: FeatureSpec) -> tuple[list[np.ndarray], dict]:
    """Covariate columns and, per context key, the indices of its columns."""
    columns: list[np.ndarray] = []
    groups: dict[str, list[int]] = {}

    def add(key: str, *values: np.ndarray) -> None:
        groups.setdefault(key, [])
        for v in values:
            groups[key].append(len(columns))
            columns.append(np.nan_to_num(v.astype(float)))

    s = spec.slugs
    for event in spec.events:
        name = f"n_{s[event]}_all"
        if name in frame:
            n = frame[name].to_numpy(dtype=float)
            add(event_key(event), np.log1p(n), n > 0)
    if "account_active_users" in frame:
        add("team", np.log1p(frame["account_active_users"].to_numpy(dtype=float)))
    if "active_days" in frame:
        add("activity", frame["active_days"].to_numpy(dtype=float))
    for name, levels in spec.categorical.items():
        if name in frame:
            values = frame[name].astype(object).to_numpy()
            add("fit", *(values == level for level in levels))
    for col in spec.numeric_user_columns:
        name = next((f.name for f in spec.features if f.column == col), None)
        if name in frame:
            x = frame[name].to_numpy(dtype=float)
            add("fit", np.sign(x) * np.log1p(np.abs(x)), np.isnan(x))
    return columns, groups


def _sigmoid(eta: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-np.clip(eta, -35, 35)))


def _gradient(X: np.ndarray, y: np.ndarray, beta: np.ndarray) -> np.ndarray:
    g = X.T @ (y - _sigmoid(X @ beta))
    g[1:] -= _RIDGE * beta[1:]
    return g


def _newton(X: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Ridge logistic regression by Newton's method; returns coefficients and the curvature.

    Steps are halved until the penalised log-likelihood improves: a plain Newton step can
    overshoot and diverge when a few covariates nearly separate the classes.
    """
    rate = float(np.clip(y.mean(), 1e-6, 1 - 1e-6)) if y.size else 0.5
    beta = np.zeros(X.shape[1])
    beta[0] = np.log(rate / (1 - rate))
    penalty = np.full(X.shape[1], _RIDGE)
    penalty[0] = 0.0
    hessian = np.eye(X.shape[1])
    current = _objective(X, y, beta)
    for _ in range(_MAX_ITER):
        p = _sigmoid(X @ beta)
        hessian = X.T @ (X * (p * (1 - p))[:, None]) + np.diag(penalty)
        step = np.linalg.solve(hessian, _gradient(X, y, beta))
        for _ in range(20):
            trial = _objective(X, y, beta + step)
            if trial <= current:
                break
            step /= 2
        else:
            break  # no step improves: converged to rounding
        beta, current = beta + step, trial
        if np.abs(step).max() < 1e-6:
            break
    return beta, hessian


def _objective(X: np.ndarray, y: np.ndarray, beta: np.ndarray) -> float:
    """Penalised negative log-likelihood."""
    eta = X @ beta
    loss = np.logaddexp(0, eta) - y * eta
    return float(loss.sum() + 0.5 * _RIDGE * (beta[1:] ** 2).sum())
