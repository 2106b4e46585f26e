"""The seeded, out-of-time search for LightGBM's settings (the only importer of optuna).

Trials are cheap and bounded whatever the data's size, and hopeless ones are pruned; the winner
is refit on every train row at the configured learning rate (see the comments above
``SEARCH_LEARNING_RATE`` and ``PRUNE_AFTER_TRIALS``).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any, TypeVar

import lightgbm as lgb
import numpy as np
import optuna
import pandas as pd

from propensity.config import Config
from propensity.errors import PropensityWarning
from propensity.model.boost import Columns, base_params, fit_one

Rows = TypeVar("Rows", np.ndarray, pd.DataFrame)

__all__ = ["SEARCH_LEARNING_RATE", "SEARCH_MAX_ROWS", "fit_searched", "user_sample"]


# The search's trials run at this learning rate (or the configured one, if higher) on at most
# SEARCH_MAX_ROWS train rows and SEARCH_MAX_ROWS validation rows (whole users, seeded), binned
# once for every trial: the cost of a trial is bounded whatever the size of the data (yet on
# 1M rows the 17 trials cost more than the rest of the fit, which is why the automatic search
# stops above ``model.search.auto_max_rows`` train rows). The chosen settings are then refit
# once on every train row at the configured learning rate, early-stopped on the whole
# validation slice.
#
# Trials are judged on validation log loss, not average precision. AP on a few hundred validation
# positives moves by more than the settings change it (on a 352-event world, 17 trials spread
# 0.34-0.39 and the AP winner was the worst of three on the later test slice); log loss uses
# every row's probability, is what early stopping already minimises, and rewards the calibrated
# scores the product writes. The rate is 0.1, not coarser: at 0.2 large trees stop after ~15
# rounds and look worse than they are (the same world's search then chose 4-leaf trees whose
# refit at 0.05 lost to the defaults).
#
# The row cap is 100k, not 40k: settings chosen on a sample transfer badly to a train slice twice
# its size (leaf sizes and tree depth that suit 40k rows underfit 85k). On a 45k-user world with
# 352 event types (85k train rows) the search on a 40k sample chose 4-leaf trees, 0.914x of the
# oracle's test AP; on every row, 7-leaf trees, 0.934x (ROC AUC 0.993x -> 0.997x).
SEARCH_LEARNING_RATE = 0.1
SEARCH_MAX_ROWS = 100_000

# Trials whose validation log loss is worse than the median of the finished trials at the same
# round are stopped (optuna's MedianPruner): every PRUNE_EVERY rounds after a warm-up of
# PRUNE_WARMUP_ROUNDS, once PRUNE_AFTER_TRIALS trials have finished, against at least 3 finished
# trials that reached that round. The warm-up is long on purpose: small, strongly regularised
# trees learn slowly and often win (7 leaves, lambda_l2 26 on the 352-event world), and early
# on every fast learner is ahead of them. With a 30-round warm-up, 8 of that world's 16
# proposed trials were pruned at round 30, the small and strongly regularised ones among them
# (11 leaves with lambda_l2 25, 7 leaves); the search chose 13-leaf trees and the test AP fell
# from 0.934x to 0.910x of the oracle. After 100 rounds the fast learners have stopped (their
# best rounds are 30-70 at rate 0.1) and drop out of the comparison, so a trial is measured
# against the slow learners that reached its round (on the 352-event world 2 of 16 trials
# pruned, the same choice as without pruning; on the default world 4, 0.940x against 0.944x).
# Pruning reads only validation losses, which the seeded, deterministic fits repeat exactly:
# the same data gives the same pruned trials and the same choice. A pruned trial is recorded
# (``pruned``, with its best loss and round so far) and never chosen.
PRUNE_AFTER_TRIALS = 5
PRUNE_WARMUP_ROUNDS = 100
PRUNE_EVERY = 10


def fit_searched(
    parts: dict[str, tuple[np.ndarray, np.ndarray]],
    cfg: Config,
    columns: Columns,
    users: np.ndarray,
    valid_users: np.ndarray | None = None,
) -> tuple[lgb.Booster, dict[str, Any], int, list[dict[str, Any]], np.ndarray]:
    """The config's model, or the refit best of a seeded out-of-time search on validation log
    loss; with the model's validation scores (fit_model reports them: no second prediction).

    Trial 0 is the config's settings; then optuna's TPE sampler, seeded, proposes
    ``search_trials(train_rows)`` more (none for a large train slice unless set), each fit at
    ``SEARCH_LEARNING_RATE`` on (user samples of) the train and validation slices, binned once,
    and judged on the sampled validation rows; trials
    that fall behind the median of the finished ones are pruned (see ``PRUNE_AFTER_TRIALS``). A
    fixed trial count keeps the search repeatable; a time budget, when set, may cut it short (it
    warns).
    """
    params = base_params(cfg.model, cfg.seed)
    n_trials = cfg.model.search_trials(train_rows=parts["train"][1].size)
    if not n_trials:
        booster, best, ap, loss, p_valid = fit_one(params, parts, cfg, columns)
        trial = {
            "trial": 0,
            "log_loss": loss,
            "average_precision": ap,
            "best_iteration": best,
            "pruned": False,
            **_searched(params),
        }
        return booster, params, best, [trial], p_valid

    coarse = {**params, "learning_rate": max(params["learning_rate"], SEARCH_LEARNING_RATE)}
    valid_users = np.arange(parts["validation"][1].size) if valid_users is None else valid_users
    sample = {
        "train": user_sample(parts["train"], users, SEARCH_MAX_ROWS, cfg.seed),
        "validation": user_sample(parts["validation"], valid_users, SEARCH_MAX_ROWS, cfg.seed),
    }
    # binned once; feature_pre_filter off so that trials may change min_data_in_leaf
    binning = {**coarse, "feature_pre_filter": False}
    train_set = columns.dataset(*sample["train"], params=binning, free_raw_data=False).construct()
    valid_set = columns.dataset(
        *sample["validation"], reference=train_set, params=binning, free_raw_data=False
    ).construct()
    trials: list[dict[str, Any]] = []
    rows = {"train_rows": sample["train"][1].size, "validation_rows": sample["validation"][1].size}

    def run(candidate: dict[str, Any], trial: optuna.Trial | None = None) -> float:
        seen = {"loss": np.inf, "round": 0}
        callbacks = [] if trial is None else [_pruning(trial, seen)]
        record = {"trial": len(trials), **_searched(candidate), **rows}
        try:
            _, best, ap, loss, _ = fit_one(
                candidate, sample, cfg, columns, (train_set, valid_set), callbacks
            )
        except optuna.TrialPruned:
            # LightGBM's validation log loss at the best round so far; no scores, no AP
            trials.append(
                {**record, "log_loss": seen["loss"], "average_precision": None}
                | {"best_iteration": seen["round"], "pruned": True}
            )
            raise
        trials.append(
            {**record, "log_loss": loss, "average_precision": ap}
            | {"best_iteration": best, "pruned": False}
        )
        return loss

    run(coarse)

    def objective(trial: optuna.Trial) -> float:
        return run({**coarse, **_suggest(trial)}, trial)

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sampler = optuna.samplers.TPESampler(seed=cfg.seed, n_startup_trials=min(6, n_trials))
    pruner = optuna.pruners.MedianPruner(
        n_startup_trials=PRUNE_AFTER_TRIALS,
        n_warmup_steps=PRUNE_WARMUP_ROUNDS,
        interval_steps=PRUNE_EVERY,
        n_min_trials=3,
    )
    study = optuna.create_study(direction="minimize", sampler=sampler, pruner=pruner)
    budget = cfg.model.search.time_budget_s
    study.optimize(objective, n_trials=n_trials, timeout=budget)
    if len(trials) < n_trials + 1:
        warnings.warn(
            PropensityWarning(
                f"The settings search stopped at its time budget (model.search.time_budget_s: "
                f"{budget:g} s) after {len(trials)} of {n_trials + 1} trials, so another machine "
                f"or load may pick other settings from the same data. Remove the budget, raise "
                f"it, or set model.search.trials lower."
            ),
            stacklevel=2,
        )
    # first best wins ties, so the config's own settings are kept unless something beats them
    winner = min((t for t in trials if not t["pruned"]), key=lambda t: (t["log_loss"], t["trial"]))
    chosen = {**params, **_as_params(winner)}
    booster, best, _, _, p_valid = fit_one(chosen, parts, cfg, columns)
    return booster, chosen, best, trials, p_valid


def user_sample(
    train: tuple[Rows, np.ndarray], users: np.ndarray, max_rows: int, seed: int
) -> tuple[Rows, np.ndarray]:
    """At most ``max_rows`` rows of whole users (every cutoff of a kept user), seeded."""
    X, y = train
    if y.size <= max_rows:
        return train
    unique, inverse = np.unique(users, return_inverse=True)
    keep_users = np.random.default_rng(seed).random(unique.size) < max_rows / y.size
    keep = keep_users[inverse]
    return X[keep], y[keep]


def _pruning(trial: optuna.Trial, seen: dict[str, float]) -> Callable[[Any], None]:
    """LightGBM callback: report the validation log loss to ``trial`` every ``PRUNE_EVERY``
    rounds and stop the fit (``optuna.TrialPruned``) when its pruner says so; ``seen`` keeps
    the best loss and round so far, for the record of a pruned trial."""

    def callback(env: Any) -> None:
        loss = env.evaluation_result_list[0][2]
        if loss < seen["loss"]:
            seen.update(loss=loss, round=env.iteration + 1)
        if (env.iteration + 1) % PRUNE_EVERY:
            return
        trial.report(loss, env.iteration + 1)
        if trial.should_prune():
            raise optuna.TrialPruned(f"pruned at round {env.iteration + 1}")

    callback.order = 40  # type: ignore[attr-defined]  # after early stopping (30)
    return callback


_SEARCHED = ("num_leaves", "min_data_in_leaf", "feature_fraction", "bagging_fraction", "lambda_l2")


def _searched(params: dict[str, Any]) -> dict[str, Any]:
    return {k: params[k] for k in _SEARCHED}


def _as_params(trial: dict[str, Any]) -> dict[str, Any]:
    """A search record's settings as LightGBM parameters (bagging needs its frequency)."""
    searched = _searched(trial)
    return searched | {"bagging_freq": 1 if searched["bagging_fraction"] < 1 else 0}


def _suggest(trial: optuna.Trial) -> dict[str, Any]:
    """One point of a search space around LightGBM's useful ranges, small trees included."""
    bagging = trial.suggest_float("bagging_fraction", 0.5, 1.0)
    return {
        "num_leaves": trial.suggest_int("num_leaves", 3, 63, log=True),
        "min_data_in_leaf": trial.suggest_int("min_data_in_leaf", 10, 300, log=True),
        "feature_fraction": trial.suggest_float("feature_fraction", 0.3, 1.0),
        "bagging_fraction": bagging,
        "bagging_freq": 1 if bagging < 1 else 0,
        "lambda_l2": trial.suggest_float("lambda_l2", 1e-3, 30.0, log=True),
    }
