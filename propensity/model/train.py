"""Fit the PQL model: LightGBM on the train slice, early stopping (and, when the config sets no
LightGBM setting, a seeded search) on validation, a calibrator on out-of-sample scores (the
calibration slice, plus cross-fitted out-of-fold scores of the train slice when the calibration
slice has fewer than ``CROSS_FIT_BELOW_POSITIVES`` positives), threshold and honest
metrics on the untouched test slice, computed through the model's own predict path.

Class imbalance is left alone on purpose: no ``scale_pos_weight``, no ``is_unbalance``. Gradient
boosting on log loss ranks rare positives well without reweighting, and reweighting would push
the raw scores far from probabilities, leaving the calibration slice (the smallest one) to undo a
large distortion. Unweighted raw scores are already close to calibrated, so the calibrator only
has to make a small correction, and is kept only when it beats the raw scores on held-out folds.

The threshold is chosen on the test slice (the period whose weekly volume the policy speaks of)
and reported on it too, so for the ``capacity`` and ``precision`` policies the reported precision
at the threshold is slightly optimistic; ranking and calibration metrics are not affected.
The search's trials are cheap and their cost is bounded whatever the data's size (learning rate
0.1, user samples of at most ``SEARCH_MAX_ROWS`` train and validation rows, binned once) and
the winner is refit at the configured rate on every row. The search has no time limit unless
``model.search.time_budget_s`` sets one, because a search cut short by time depends on machine
speed and load (on a 45k-user world at load 10 a 300 s budget most likely stopped it after 11
of 17 trials and another model came out); a budget that cuts it short warns, and
``metrics["search"]`` records the trials planned and run.

>>> result = fit_model(frame, cols, cats, cfg, spec_dict, spec_hash)  # doctest: +SKIP
>>> result.metrics["test_calibrated"]["roc_auc"]  # doctest: +SKIP
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import lightgbm as lgb
import numpy as np
import optuna
import pandas as pd
from sklearn.metrics import average_precision_score

from propensity.config import Config, ModelConfig
from propensity.contract import TRAINING
from propensity.errors import InsufficientDataError, PropensityWarning
from propensity.evaluate import bootstrap_roc_auc, ranking_metrics, reliability_curve
from propensity.model.bundle import PQLModel, align_features
from propensity.model.calibrate import fit_calibrator
from propensity.model.split import SLICES, Split, split_out_of_time
from propensity.model.threshold import ThresholdPolicy, threshold_report

__all__ = [
    "CROSS_FIT_BELOW_POSITIVES",
    "MIN_EVAL_PER_CLASS",
    "TrainingResult",
    "base_params",
    "fit_model",
    "scalar_metrics",
]

# Validation, calibration and test each need this many of both classes to mean anything.
MIN_EVAL_PER_CLASS = 5

# The calibrator is fitted on the calibration slice alone when that slice has at least this
# many positives (one row per user, as ``report_rows`` counts them); below it, cross-fitted
# out-of-fold scores of the train slice are added, at the cost of 5 more LightGBM fits. The
# cross-fitting exists because calibrators fitted on a few hundred positives were noisier than
# the raw scores; with thousands of positives the calibration slice is enough on its own, and
# it is the closer period to the one scored. On 1M users it saves ~4 full fits.
CROSS_FIT_BELOW_POSITIVES = 1000


@dataclass(frozen=True)
class TrainingResult:
    """Everything a training run produced; ``model`` is ready to save."""

    model: PQLModel
    split: Split
    metrics: dict[str, Any]
    test_frame: pd.DataFrame  # user_id, cutoff_at, label, p_raw, p
    best_iteration: int
    params: dict[str, Any]
    search: list[dict[str, Any]] = field(default_factory=list)


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


def fit_model(
    frame: pd.DataFrame,
    feature_columns: Sequence[str],
    categorical: Mapping[str, Sequence[str]] | Sequence[str],
    cfg: Config,
    feature_spec: dict[str, Any],
    feature_spec_hash: str,
    report_rows: np.ndarray | None = None,
    split: Split | None = None,
) -> TrainingResult:
    """Train, calibrate and threshold a PQL model on a labelled feature table.

    ``categorical`` maps each categorical column to its levels; a plain list of names takes the
    levels from the frame (its pandas categories, else the sorted distinct values).

    ``report_rows`` (a boolean mask over ``frame``) picks the test rows that every reported
    number, the threshold and ``test_frame`` use. With several cutoffs per user, pass the main
    cutoff's rows: one row per user keeps PQLs per week a count of people. Trees, early stopping
    and calibration still use every row, since scoring meets users at every trial age.

    ``split`` is the out-of-time split of ``frame`` already made (``prepare`` made it to learn
    the spec on the training slice); without it the split is made here, the same way.
    """
    feature_columns = list(feature_columns)
    _check_frame(frame, feature_columns)
    levels = _levels(frame, categorical)
    split = split if split is not None else split_out_of_time(frame, cfg.split)
    y = frame["label"].to_numpy(dtype=float)
    counted = (
        np.ones(len(frame), dtype=bool) if report_rows is None else np.asarray(report_rows, bool)
    )
    _check_counts(split, y, counted, cfg.model)

    # encode slice by slice, column by column: one copy of the features in total
    parts = {
        name: (
            align_features(frame, feature_columns, levels, rows=split.positions(name)),
            y[split.positions(name)],
        )
        for name in SLICES
    }
    users = frame["user_id"].to_numpy()[split.train]
    valid_users = frame["user_id"].to_numpy()[split.validation]
    booster, params, best_iteration, trials, p_valid = _train(parts, cfg, users, valid_users)

    # The calibrator learns from scores the model did not train on, every trial age (score
    # meets them all): the calibration slice, plus, when that slice is small, cross-fitted
    # out-of-fold scores of the train slice. Auto keeps a map only when it beats the raw scores
    # on held-out folds.
    p_fit, y_fit = booster.predict(parts["calibration"][0]), parts["calibration"][1]
    cal_positions = split.calibration
    cal_positives = int(y[cal_positions[counted[cal_positions]]].sum())
    cross_fitted = cal_positives < CROSS_FIT_BELOW_POSITIVES
    if cross_fitted:
        oof = _out_of_fold(params, parts["train"], users, best_iteration, cfg.seed)
        p_fit, y_fit = np.r_[oof, p_fit], np.r_[parts["train"][1], y_fit]
    calibrator = fit_calibrator(p_fit, y_fit, cfg.calibration, seed=cfg.seed)
    train_start, train_end = split.ranges["train"]
    model = PQLModel(
        booster=booster,
        calibrator=calibrator,
        threshold=0.5,  # replaced below, once chosen on what the model writes
        feature_columns=feature_columns,
        categorical=levels,
        feature_spec=feature_spec,
        feature_spec_hash=feature_spec_hash,
    )
    # Every reported number is computed on what `score` writes: the model's own predict path.
    test_positions = split.test[counted[split.test]]
    test_rows = frame.iloc[test_positions]
    y_test = y[test_positions]
    p_raw_test = model.predict_raw(test_rows[feature_columns])
    p_test = model.calibrator.predict(p_raw_test)  # what predict_proba does, booster run once
    weeks = split.weeks("test")
    policy = ThresholdPolicy(cfg=cfg.threshold, weeks=weeks).fit(p_test, y_test)
    choice = policy.choice_
    model.threshold = policy.threshold_
    bins = cfg.calibration.ece_bins
    metrics: dict[str, Any] = {
        "split": split.summary(frame),
        "test_slice": {"rows": int(y_test.size), "positives": int(y_test.sum())},
        "validation": {
            "average_precision": float(average_precision_score(parts["validation"][1], p_valid))
        },
        "test_raw": ranking_metrics(y_test, p_raw_test, bins),
        "test_calibrated": ranking_metrics(y_test, p_test, bins),
        "test_calibrated_ci": {
            "roc_auc": list(bootstrap_roc_auc(y_test, p_test, cfg.threshold.bootstrap, cfg.seed))
        },
        "reliability_raw": reliability_curve(y_test, p_raw_test, bins).to_dict("list"),
        "reliability_calibrated": reliability_curve(y_test, p_test, bins).to_dict("list"),
        "calibration": {
            "method": calibrator.method_,
            "note": calibrator.note_,
            "rows": int(y_fit.size),
            "positives": int(y_fit.sum()),
            "cross_fitted": cross_fitted,
            "held_out_log_loss": dict(calibrator.cv_log_loss_),
        },
        "search": {
            "trials_planned": cfg.model.search_trials() + 1 if cfg.model.search_trials() else 1,
            "trials_run": len(trials),
        },
        "threshold": {
            **choice.to_dict(),
            **threshold_report(
                y_test, p_test, choice.threshold, weeks, cfg.threshold.bootstrap, cfg.seed
            ),
        },
    }
    model.metadata.update(
        {
            "training_window": [train_start.isoformat(), train_end.isoformat()],
            "best_iteration": best_iteration,
            "params": params,
            "metrics": scalar_metrics(metrics),
            "threshold_policy": choice.to_dict(),
        }
    )
    test_frame = pd.DataFrame(
        {
            "user_id": test_rows["user_id"].to_numpy(),
            "cutoff_at": test_rows["cutoff_at"].to_numpy(),
            "label": test_rows["label"].to_numpy(dtype=int),
            "p_raw": p_raw_test,
            "p": p_test,
        }
    )
    return TrainingResult(model, split, metrics, test_frame, best_iteration, params, trials)


def scalar_metrics(metrics: dict[str, Any]) -> dict[str, float]:
    """The numeric leaves of a metrics dict as ``section.name`` -> float (for tracking)."""
    out: dict[str, float] = {}
    for key, value in metrics.get("test_slice", {}).items():
        out[f"test_slice.{key}"] = float(value)
    for key, (low, high) in metrics.get("test_calibrated_ci", {}).items():
        out[f"test_calibrated.{key}_ci_low"] = float(low)
        out[f"test_calibrated.{key}_ci_high"] = float(high)
    for section in ("validation", "test_raw", "test_calibrated"):
        for key, value in metrics[section].items():
            out[f"{section}.{key}"] = float(value)
    threshold = metrics["threshold"]
    for key in (
        "threshold",
        "weeks",
        "n_flagged",
        "per_week",
        "precision",
        "recall",
        "lift",
        "conversions_captured",
        "base_rate",
    ):
        out[f"threshold.{key}"] = float(threshold[key])
    for key, (low, high) in threshold["ci"].items():
        out[f"threshold.{key}_ci_low"] = float(low)
        out[f"threshold.{key}_ci_high"] = float(high)
    return out


# -- checks ----------------------------------------------------------------------------------


def _check_frame(frame: pd.DataFrame, feature_columns: list[str]) -> None:
    """The training table's contract: keys, every feature column and a 0/1 label, checked
    lazily (one error naming every problem, carrying the failing rows)."""
    TRAINING.validate(frame, columns=feature_columns, binary=("label",))


def _levels(
    frame: pd.DataFrame, categorical: Mapping[str, Sequence[str]] | Sequence[str]
) -> dict[str, list[str]]:
    if isinstance(categorical, Mapping):
        return {name: [str(v) for v in values] for name, values in categorical.items()}
    out = {}
    for name in categorical:
        col = frame[name]
        if isinstance(col.dtype, pd.CategoricalDtype):
            out[name] = [str(v) for v in col.cat.categories]
        else:
            out[name] = sorted(str(v) for v in col.dropna().unique())
    return out


def _check_counts(split: Split, y: np.ndarray, counted: np.ndarray, model: ModelConfig) -> None:
    """Refuse to train or evaluate on too few examples, naming every short slice at once.

    Counts only the ``counted`` rows (one per user at the main cutoff): the rows every reported
    number uses, so extra cutoffs of the same users never make a slice look bigger than it is.
    """
    problems = []
    train = y[split.train[counted[split.train]]]
    pos, neg = int(train.sum()), int(train.size - train.sum())
    if pos < model.min_positives:
        problems.append(
            f"the train slice has {pos} positives; at least {model.min_positives} are needed "
            f"(lower model.min_positives, raise split.train, or load more data)"
        )
    if neg < model.min_negatives:
        problems.append(
            f"the train slice has {neg} negatives; at least {model.min_negatives} are needed "
            f"(lower model.min_negatives, raise split.train, or load more data)"
        )
    for name in SLICES[1:]:
        positions = split.positions(name)
        part = y[positions[counted[positions]]]
        pos, neg = int(part.sum()), int(part.size - part.sum())
        if min(pos, neg) < MIN_EVAL_PER_CLASS:
            problems.append(
                f"the {name} slice has {pos} positives and {neg} negatives; at least "
                f"{MIN_EVAL_PER_CLASS} of each are needed to evaluate (raise split.{name} or "
                f"load a longer date range)"
            )
    if problems:
        raise InsufficientDataError(
            "Not enough data to train honestly: " + "; ".join(problems) + "."
        )


def _out_of_fold(
    params: dict[str, Any],
    train: tuple[pd.DataFrame, np.ndarray],
    users: np.ndarray,
    rounds: int,
    seed: int,
    folds: int = 5,
) -> np.ndarray:
    """Cross-fitted raw scores of the train slice: each user scored by a model fit without them.

    Users (all their cutoffs) are dealt to folds by a seeded shuffle; each fold's model has the
    chosen parameters and the final model's number of trees.
    """
    X, y = train
    unique, inverse = np.unique(users, return_inverse=True)
    fold_of = np.random.default_rng(seed).permutation(unique.size) % folds
    fold = fold_of[inverse]
    out = np.empty(y.size, dtype=float)
    for k in range(folds):
        held = fold == k
        if not held.any():
            continue
        data = lgb.Dataset(X[~held], y[~held], free_raw_data=True)
        out[held] = lgb.train(params, data, num_boost_round=rounds).predict(X[held])
    return out


# -- training --------------------------------------------------------------------------------


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


def _early_stopping(ceiling: int) -> Callable[[Any], None]:
    """LightGBM callback: stop when the validation loss has not improved for `patience` rounds.

    The single validation set and metric (binary_logloss, lower is better) are those of
    :func:`base_params`; like ``lgb.early_stopping`` it reports the best iteration at the end.
    """
    best = {"score": np.inf, "iteration": 0, "results": []}

    def callback(env: Any) -> None:
        score = env.evaluation_result_list[0][2]
        if score < best["score"]:
            best.update(score=score, iteration=env.iteration, results=env.evaluation_result_list)
        waited = env.iteration - best["iteration"]
        if waited >= patience(best["iteration"] + 1, ceiling) or (
            env.iteration == env.end_iteration - 1
        ):
            raise lgb.callback.EarlyStopException(best["iteration"], best["results"])

    callback.order = 30  # type: ignore[attr-defined]  # where lgb.early_stopping runs
    return callback


def _fit_one(
    params: dict[str, Any],
    parts: dict[str, tuple[pd.DataFrame, np.ndarray]],
    cfg: Config,
    datasets: tuple[lgb.Dataset, lgb.Dataset] | None = None,
) -> tuple[lgb.Booster, int, float, float, np.ndarray]:
    """One LightGBM fit with early stopping: the trimmed booster, its best round, its
    validation AP and log loss at that round, and its validation scores.

    ``datasets`` (train, validation), when given, are reused as built (the search bins its
    sample once for every trial instead of once per trial).
    """
    X_train, y_train = parts["train"]
    X_valid, y_valid = parts["validation"]
    if datasets is None:
        train_set = lgb.Dataset(X_train, y_train, free_raw_data=True)
        valid_set = lgb.Dataset(X_valid, y_valid, reference=train_set)
    else:
        train_set, valid_set = datasets
    booster = lgb.train(
        params,
        train_set,
        num_boost_round=cfg.model.n_estimators,
        valid_sets=[valid_set],
        callbacks=[_early_stopping(cfg.model.early_stopping_rounds)],
    )
    best = booster.best_iteration or booster.current_iteration()
    # keep only the trees up to the best iteration, so a saved model predicts the same
    trimmed = lgb.Booster(model_str=booster.model_to_string(num_iteration=best))
    p_valid = trimmed.predict(X_valid)
    ap = float(average_precision_score(y_valid, p_valid))
    return trimmed, best, ap, _log_loss(y_valid, p_valid), p_valid


def _log_loss(y: np.ndarray, p: np.ndarray) -> float:
    p = np.clip(p, 1e-15, 1 - 1e-15)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log1p(-p)))


# The search's trials run at this learning rate (or the configured one, if higher) on at most
# SEARCH_MAX_ROWS train rows and SEARCH_MAX_ROWS validation rows (whole users, seeded), binned
# once for every trial: the cost of a trial is bounded whatever the size of the data (on 1M rows
# the 17 trials cost less than the final fit). The chosen settings are then refit once on every
# train row at the configured learning rate, early-stopped on the whole validation slice.
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


def _train(
    parts: dict[str, tuple[pd.DataFrame, np.ndarray]],
    cfg: Config,
    users: np.ndarray,
    valid_users: np.ndarray | None = None,
) -> tuple[lgb.Booster, dict[str, Any], int, list[dict[str, Any]], np.ndarray]:
    """The config's model, or the refit best of a seeded out-of-time search on validation log
    loss; with the model's validation scores (fit_model reports them: no second prediction).

    Trial 0 is the config's settings; then optuna's TPE sampler, seeded, proposes
    ``search_trials()`` more, each fit at ``SEARCH_LEARNING_RATE`` on (user samples of) the
    train and validation slices, binned once, and judged on the sampled validation rows. A fixed
    trial count keeps the search repeatable; a time budget, when set, may cut it short (it warns).
    """
    params = base_params(cfg.model, cfg.seed)
    n_trials = cfg.model.search_trials()
    if not n_trials:
        booster, best, ap, loss, p_valid = _fit_one(params, parts, cfg)
        trial = {
            "trial": 0,
            "log_loss": loss,
            "average_precision": ap,
            "best_iteration": best,
            **_searched(params),
        }
        return booster, params, best, [trial], p_valid

    coarse = {**params, "learning_rate": max(params["learning_rate"], SEARCH_LEARNING_RATE)}
    valid_users = np.arange(parts["validation"][1].size) if valid_users is None else valid_users
    sample = {
        "train": _user_sample(parts["train"], users, SEARCH_MAX_ROWS, cfg.seed),
        "validation": _user_sample(parts["validation"], valid_users, SEARCH_MAX_ROWS, cfg.seed),
    }
    # binned once; feature_pre_filter off so that trials may change min_data_in_leaf
    binning = {**coarse, "feature_pre_filter": False}
    train_set = lgb.Dataset(*sample["train"], params=binning, free_raw_data=False).construct()
    valid_set = lgb.Dataset(
        *sample["validation"], reference=train_set, params=binning, free_raw_data=False
    ).construct()
    trials: list[dict[str, Any]] = []
    rows = {"train_rows": sample["train"][1].size, "validation_rows": sample["validation"][1].size}

    def run(candidate: dict[str, Any]) -> float:
        _, best, ap, loss, _ = _fit_one(candidate, sample, cfg, (train_set, valid_set))
        trials.append(
            {
                "trial": len(trials),
                "log_loss": loss,
                "average_precision": ap,
                "best_iteration": best,
            }
            | _searched(candidate)
            | rows
        )
        return loss

    run(coarse)

    def objective(trial: optuna.Trial) -> float:
        return run({**coarse, **_suggest(trial)})

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sampler = optuna.samplers.TPESampler(seed=cfg.seed, n_startup_trials=min(6, n_trials))
    study = optuna.create_study(direction="minimize", sampler=sampler)
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
    winner = min(trials, key=lambda t: (t["log_loss"], t["trial"]))
    chosen = {**params, **_as_params(winner)}
    booster, best, _, _, p_valid = _fit_one(chosen, parts, cfg)
    return booster, chosen, best, trials, p_valid


def _user_sample(
    train: tuple[pd.DataFrame, np.ndarray], users: np.ndarray, max_rows: int, seed: int
) -> tuple[pd.DataFrame, np.ndarray]:
    """At most ``max_rows`` rows of whole users (every cutoff of a kept user), seeded."""
    X, y = train
    if y.size <= max_rows:
        return train
    unique, inverse = np.unique(users, return_inverse=True)
    keep_users = np.random.default_rng(seed).random(unique.size) < max_rows / y.size
    keep = keep_users[inverse]
    return X[keep], y[keep]


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
