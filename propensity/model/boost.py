"""One LightGBM fit: pinned parameters, early stopping with a patience that scales with the
best round, the booster trimmed to its best round and judged on the validation slice.

Fits read float matrices (:func:`~propensity.model.bundle.feature_matrix`), not frames; a
:class:`Columns` tells LightGBM what the frame would have: names, categoricals, levels.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import lightgbm as lgb
import numpy as np
from sklearn.metrics import average_precision_score

from propensity.config import Config, ModelConfig

__all__ = [
    "PATIENCE_FLOOR",
    "PATIENCE_FRACTION",
    "Columns",
    "EarlyStopping",
    "base_params",
    "fit_one",
    "log_loss",
    "patience",
]


@dataclass(frozen=True)
class Columns:
    """The feature columns of fit_model's matrices and the levels of the categorical ones."""

    names: list[str]
    levels: dict[str, list[str]]

    def dataset(
        self,
        X: np.ndarray,
        y: np.ndarray,
        *,
        reference: lgb.Dataset | None = None,
        params: dict[str, Any] | None = None,
        free_raw_data: bool = True,
    ) -> lgb.Dataset:
        """A LightGBM Dataset of the matrix ``X``, as LightGBM would make it of the frame
        :func:`~propensity.model.bundle.align_features` writes (the same booster text)."""
        categorical = [j for j, name in enumerate(self.names) if name in self.levels]
        data = lgb.Dataset(
            X,
            y,
            reference=reference,
            params=params,
            free_raw_data=free_raw_data,
            feature_name=self.names,
            categorical_feature=categorical,
        )
        if reference is None:
            # the levels LightGBM records from a frame's categoricals, in column order; the
            # saved booster keeps them, and scoring a frame maps its values through them
            data.pandas_categorical = [self.levels[n] for n in self.names if n in self.levels]
        return data


def base_params(model: ModelConfig, seed: int) -> dict[str, Any]:
    """LightGBM parameters from the config, pinned for bit-for-bit repeatable training."""
    return {
        "objective": "binary",
        "metric": "binary_logloss",
        "learning_rate": model.learning_rate,
        "num_leaves": model.num_leaves,
        "min_data_in_leaf": model.min_child_samples,
        "feature_fraction": model.feature_fraction,
        "bagging_fraction": model.bagging_fraction,
        "bagging_freq": 1 if model.bagging_fraction < 1 else 0,
        "lambda_l2": model.reg_lambda,
        "seed": seed,
        "deterministic": True,
        "force_row_wise": True,
        "num_threads": model.n_jobs,
        "verbose": -1,
    }


PATIENCE_FRACTION = 0.2  # rounds without improvement allowed, as a share of the best round
PATIENCE_FLOOR = 20


def patience(best_round: int, ceiling: int) -> int:
    """Rounds to wait for a better validation loss after the best one so far (1-based).

    A fixed patience wastes the same number of trees whatever the run: 200 rounds past a best
    at round 150 more than doubles the fit. Scaled with the best round (a fifth of it, at least
    ``PATIENCE_FLOOR``, at most ``model.early_stopping_rounds``), it costs at most ~20% more
    trees, while a run that is still improving late keeps a long enough wait.

    >>> patience(50, 200), patience(400, 200), patience(1000, 100)
    (20, 80, 100)
    """
    return min(ceiling, max(PATIENCE_FLOOR, int(PATIENCE_FRACTION * best_round)))


class EarlyStopping:
    """LightGBM callback: stop when the validation loss has not improved for `patience` rounds,
    keeping the validation scores of the best round.

    The single validation set and metric (binary_logloss, lower is better) are those of
    :func:`base_params`; like ``lgb.early_stopping`` it reports the best iteration at the end.
    :meth:`record`, passed as ``feval``, is handed LightGBM's own validation scores each round
    (kept up to date as trees are added, converted to probabilities): the best round's are
    then the trimmed booster's scores of the validation slice, with no second prediction.
    """

    order = 30  # where lgb.early_stopping runs

    def __init__(self, ceiling: int) -> None:
        self.ceiling = ceiling
        self.loss = np.inf
        self.iteration = 0
        self.results: list[Any] = []
        self.latest: np.ndarray | None = None
        self.scores: np.ndarray | None = None  # validation scores at the best round

    def record(self, preds: np.ndarray, data: lgb.Dataset) -> tuple[str, float, bool]:
        """``feval``: note this round's validation scores (LightGBM reuses the buffer)."""
        self.latest = preds
        return "scores_kept", 0.0, False

    def __call__(self, env: Any) -> None:
        loss = env.evaluation_result_list[0][2]  # binary_logloss; feval's entry comes after
        if loss < self.loss:
            self.loss, self.iteration = loss, env.iteration
            self.results = env.evaluation_result_list[:1]
            self.scores = None if self.latest is None else self.latest.copy()
        waited = env.iteration - self.iteration
        if waited >= patience(self.iteration + 1, self.ceiling) or (
            env.iteration == env.end_iteration - 1
        ):
            raise lgb.callback.EarlyStopException(self.iteration, self.results)


def fit_one(
    params: dict[str, Any],
    parts: dict[str, tuple[np.ndarray, np.ndarray]],
    cfg: Config,
    columns: Columns,
    datasets: tuple[lgb.Dataset, lgb.Dataset] | None = None,
    callbacks: Sequence[Callable[[Any], None]] = (),
) -> tuple[lgb.Booster, int, float, float, np.ndarray]:
    """One LightGBM fit with early stopping: the trimmed booster, its best round, its
    validation AP and log loss at that round, and its validation scores.

    ``datasets`` (train, validation), when given, are reused as built (the search bins its
    sample once for every trial instead of once per trial); ``callbacks`` run after early
    stopping's, each round (the search's pruning).
    """
    X_train, y_train = parts["train"]
    X_valid, y_valid = parts["validation"]
    if datasets is None:
        train_set = columns.dataset(X_train, y_train)
        valid_set = columns.dataset(X_valid, y_valid, reference=train_set)
    else:
        train_set, valid_set = datasets
    stopping = EarlyStopping(cfg.model.early_stopping_rounds)
    booster = lgb.train(
        params,
        train_set,
        num_boost_round=cfg.model.n_estimators,
        valid_sets=[valid_set],
        feval=stopping.record,
        callbacks=[stopping, *callbacks],
    )
    best = booster.best_iteration or booster.current_iteration()
    # keep only the trees up to the best iteration, so a saved model predicts the same
    trimmed = lgb.Booster(model_str=booster.model_to_string(num_iteration=best))
    # (no scores kept only when no round ever improved on an infinite loss)
    p_valid = stopping.scores if stopping.scores is not None else trimmed.predict(X_valid)
    ap = float(average_precision_score(y_valid, p_valid))
    return trimmed, best, ap, log_loss(y_valid, p_valid), p_valid


def log_loss(y: np.ndarray, p: np.ndarray) -> float:
    """Mean binary log loss, probabilities clipped away from 0 and 1."""
    p = np.clip(p, 1e-15, 1 - 1e-15)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log1p(-p)))
